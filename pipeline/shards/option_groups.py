"""The sections of ``wit shards --help``. The config classes that declare the stage's options
(``pipeline.core.options.option(group=...)``) name their section with these titles."""

IO = "input/output"
URLS = "URL lists (--urls)"
DOWNLOAD = "download (img2dataset)"
FILTERS = "filters, dedup, decontamination"
CLIP = "CLIP-score filter"

DESCRIPTIONS = {
    URLS: "how --urls files are read (img2dataset's options of the same names); every row is "
          "downloaded as it is: no query list, no matching, no balancing",
    FILTERS: "--filter picks a rule set; each rule option below overrides it (the change is "
             "printed and recorded in manifest.json)",
}
