"""The sections of ``wit shards --help``. The config classes that declare the stage's options
(``pipeline.core.options.option(group=...)``) name their section with these titles."""

IO = "input/output"
DOWNLOAD = "download (img2dataset)"
FILTERS = "filters, dedup, decontamination"
CLIP = "CLIP-score filter"

DESCRIPTIONS = {
    FILTERS: "--filter picks a rule set; each rule option below overrides it (the change is "
             "printed and recorded in manifest.json)",
}
