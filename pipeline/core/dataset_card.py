"""``OUT/shards/README.md``: a Hugging Face dataset card (the Hub's YAML header, then a
datasheet) made from the job's own ``manifest.json`` by a pure function, so what the card
says is what the job counted.

The YAML is written by hand, every string as a JSON string (a valid YAML double-quoted
scalar): the runtime needs no YAML library, and a caption-like value (an input path, a
language code) can never break the header.
"""

from __future__ import annotations

import json
from typing import Any

from schemas import status as st

# the Hub's size_categories, by upper bound of the sample count
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                   (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
                   (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                   (10_000_000_000, "1B<n<10B"))
TASK_CATEGORIES = ("zero-shot-image-classification", "image-to-text", "text-to-image")
# the Hub's licence ids that a per-sample licence (an SPDX id, lower-cased) may name as is
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0",
    "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0",
    "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "odc-by", "pddl", "odbl", "unlicense",
    "bsd-3-clause", "gpl-3.0", "lgpl-3.0", "agpl-3.0"})
# SPDX ids the Hub spells otherwise
SPDX_TO_HUB = {"odc-by-1.0": "odc-by", "pddl-1.0": "pddl", "odbl-1.0": "odbl"}
# funnel steps of manifest["counts"], in order, with what each one removed
STEPS = (
    ("candidates", "candidate image URLs (crawl candidates or URL-list rows)"),
    ("downloaded", "fetched and decoded (failed downloads, robots.txt/X-Robots-Tag "
                   "opt-outs, blocked addresses, hash mismatches and undecodable images "
                   "removed)"),
    ("after_filters", "after the basic filters (caption and image rules)"),
    ("after_pixel_guard", "after the --max-pixels resource guard"),
    ("after_decontamination", "after removing near-copies of evaluation images"),
    ("after_clip_filter", "after the CLIP-score filter (when enabled)"),
    ("after_exact_dedup", "after exact duplicates (same sha256) were removed"),
    ("kept", "kept, after near-duplicates (pHash) were removed"),
)


def size_category(samples: int) -> str:
    for bound, name in SIZE_CATEGORIES:
        if samples < bound:
            return name
    return "n>10B"


def license_id(licenses: dict[str, int] | None) -> str:
    """The card's ``license``: the one Hub licence id every kept sample carries, else
    ``other`` (the datasheet lists the mix). ``licenses``: kept samples per licence value,
    as a job that records per-sample licences puts it in the manifest; None or empty when
    it records none (web images come under their owners' many terms)."""
    if licenses and len(licenses) == 1:
        (only,) = licenses
        hub = SPDX_TO_HUB.get(only.strip().lower(), only.strip().lower())
        if hub in HUB_LICENSES:
            return hub
    return "other"


def _q(value: Any) -> str:
    """A YAML scalar: JSON's string/number syntax is valid YAML."""
    return json.dumps(value, ensure_ascii=False)


def yaml_header(manifest: dict[str, Any], shard_glob: str = "*.tar") -> str:
    counts, shards = manifest["counts"], manifest["shards"]
    lines = [
        "---",
        f"license: {_q(license_id(manifest.get('licenses')))}",
        "task_categories:", *(f"- {_q(t)}" for t in TASK_CATEGORIES),
        "size_categories:", f"- {_q(size_category(shards['samples']))}",
        "tags:", "- \"webdataset\"", "- \"clip\"", "- \"image-text\"",
        "configs:",
        "- config_name: \"default\"",
        "  data_files:",
        "  - split: \"train\"",
        f"    path: {_q(shard_glob)}",
        # counts the card was made from, for tools (and the test) to compare
        "webimagetext:",
        f"  samples: {shards['samples']}",
        f"  shards: {shards['count']}",
        "  counts:",
        *(f"    {k}: {int(v)}" for k, v in counts.items()),
        "---",
    ]
    return "\n".join(lines) + "\n"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _cell(value: Any) -> str:
    # a cell holds config values and paths: no pipe or newline may end the row early
    return str(value).replace("|", "\\|").replace("\n", " ")


def _sources(manifest: dict[str, Any]) -> list[str]:
    config = manifest.get("config", {})
    kind = "URL lists (`wit shards --urls`)" if "url_list" in config else \
        "candidates of `wit crawl` (image URLs and their alt/title/nearby texts from web " \
        "pages, matched against a list of queries and balanced per query)"
    lines = ["## Sources", "", f"Input: {kind}. Files (sha256 of each, as read):", ""]
    lines += _table(("file", "bytes", "sha256"),
                    [(f"`{i['path']}`", i["bytes"], f"`{i['sha256']}`")
                     for i in manifest.get("inputs", [])])
    lines += ["", "Images were fetched from their original web hosts, honouring robots.txt "
              "and `X-Robots-Tag: noai`/`noimageai`, with per-host rate limits."]
    return lines


def _steps(manifest: dict[str, Any]) -> list[str]:
    counts = manifest["counts"]
    rows, previous = [], None
    for key, what in STEPS:
        if key in counts:
            removed = "" if previous is None else previous - counts[key]
            rows.append((f"`{key}`", what, counts[key], removed))
            previous = counts[key]
    return ["## Curation steps", "", *_table(("step", "meaning", "samples", "removed"), rows),
            "", "Every candidate's fate is a `status` in the shard Parquets:", "",
            *_table(("status", "rows"), sorted(manifest["statuses"].items()))]


def _filters(manifest: dict[str, Any]) -> list[str]:
    config = manifest.get("config", {})
    filters = config.get("filters", {})
    dropped, texts = manifest.get("filtered", {}), manifest.get("texts", {})
    rules = [(k, filters[k]) for k in ("preset", "min_words", "min_chars", "languages",
                                       "min_side", "max_aspect", "min_bytes", "max_pixels")
             if k in filters]
    lines = ["## Filters and thresholds", "",
             *_table(("setting", "value"), [(f"`{k}`", json.dumps(v)) for k, v in rules]), "",
             "The caption rules judge every text of an image; a failing text is dropped "
             "and the image goes only when no text passes. `max_pixels` is a resource guard, "
             "not a dataset rule.", "",
             *_table(("rule", "images dropped", "texts dropped (image kept)"),
                     [(r, dropped.get(r, 0), texts.get("filtered", {}).get(r, 0))
                      for r in (*st.FILTER_RULES, *st.GUARDS)])]
    clip = config.get("clip_filter")
    if clip:
        lines += ["", f"CLIP-score filter: {json.dumps({k: v for k, v in clip.items() if k != 'model_config'})}; "
                  f"{dropped.get(st.CLIP_SCORE, 0)} images dropped."]
    return lines


def _dedup(manifest: dict[str, Any]) -> list[str]:
    config, duplicates = manifest.get("config", {}), manifest.get("duplicates", {})
    evals = config.get("eval_images") or []
    return [
        "## Deduplication and decontamination", "",
        f"- Exact duplicates (same sha256 of the downloaded bytes): "
        f"{duplicates.get(st.EXACT, 0)} removed.",
        f"- Near-duplicates (64-bit DCT pHash within {config.get('near_dup_bits')} bits): "
        f"{duplicates.get(st.NEAR, 0)} removed; the best-ranked copy is kept, the others "
        "are `duplicate_of:<key>` in the Parquets.",
        f"- Decontamination: {config.get('eval_hashes', 0)} evaluation images from "
        f"{len(evals)} folder(s) ({', '.join(f'`{e}`' for e in evals) or 'none given'}); "
        f"images within {config.get('contamination_bits')} pHash bits of one removed: "
        f"{manifest['statuses'].get(st.CONTAMINATED, 0)}.",
    ]


def _license(manifest: dict[str, Any]) -> list[str]:
    licenses = manifest.get("licenses")
    lines = ["## Licence", ""]
    if licenses and license_id(licenses) != "other":
        lines += [f"`license: {license_id(licenses)}`: the licence every kept sample's "
                  "page or image names (`license` column of the Parquets)."]
    elif licenses:
        lines += ["`license: other`: the kept samples come under several licences, or none "
                  "that the Hub names: the licences their pages and images name (`license` "
                  "column of the Parquets), per kept sample; samples without one are under "
                  "their owners' terms (often all rights reserved), and using them beyond "
                  "research on image-text models may need permission.", "",
                  *_table(("licence", "samples"), sorted(licenses.items()))]
    else:
        lines += ["`license: other`: the images and texts were published on the web by "
                  "many owners under many terms (all rights reserved, Creative Commons "
                  "variants, public domain, terms of service), and this job recorded no "
                  "per-sample licence. Each sample's `url` and `page_url` name its source; "
                  "the compilation is for research on image-text models, and using a sample "
                  "beyond that may need its owner's permission."]
    return lines


LIMITATIONS = (
    "Captions are web alt texts, titles and nearby text written by strangers: they can be "
    "wrong, offensive, or hold personal data; the basic filters judge form (length, "
    "language), not content.",
    "No NSFW, face or watermark filtering is applied.",
    "The sample reflects what the queries and the crawled hosts contain: topics, languages "
    "and regions are not balanced beyond the per-query balancing of the crawl.",
    "Images are resized; `original_width`/`original_height`/`original_bytes` describe the "
    "download. Links rot: the same URLs fetched later give fewer images.",
    "Near-duplicate search is approximate (recall about 0.99 at 10 bits) and pairwise; "
    "decontamination only covers the evaluation images given to the run.",
)


def _loading(shard_glob: str) -> list[str]:
    return [
        "## Loading", "",
        "WebDataset tars in img2dataset's layout: `KEY.jpg` (or png/webp), `KEY.txt` (the "
        "caption) and `KEY.json` (the sample's row: `texts` holds every kept text, caption "
        "first), with a Parquet of every candidate beside each tar.", "",
        "```python",
        "import datasets",
        f"ds = datasets.load_dataset(\"webdataset\", data_files={{\"train\": \"{shard_glob}\"}}, "
        "split=\"train\")",
        "```", "",
        "`webdataset` and open_clip (`--train-data '{00000..N}.tar'`, with `sizes.json`) read "
        "the tars as they are.",
    ]


def _takedowns(manifest: dict[str, Any]) -> list[str]:
    """What ``wit takedown`` removed since the run (``removals.jsonl`` has every row)."""
    done = manifest.get("takedowns") or []
    if not done:
        return []
    lines = ["## Takedowns", "",
             f"Version {manifest.get('version', 1)}. Samples removed after the run by "
             "`wit takedown` (`removals.jsonl` lists each: keys, hashes, URLs, the rule; "
             "the curation counts above are the original run's; the sample count at the top and `kept` are current):", "",
             "| version | rules matched | samples removed | shards rewritten |",
             "|---|---|---|---|"]
    for entry in done:
        lines.append(f"| {entry.get('version')} | {entry.get('removed', 0)} | "
                     f"{entry.get('removed_samples', 0)} | {entry.get('shards_rewritten', 0)} |")
    return [*lines, ""]


def dataset_card(manifest: dict[str, Any], shard_glob: str = "*.tar") -> str:
    """The README.md of ``OUT/shards/``: YAML header, then the datasheet."""
    shards = manifest["shards"]
    parts = [
        yaml_header(manifest, shard_glob),
        "# webimagetext shards", "",
        f"{shards['samples']} image-text samples in {shards['count']} WebDataset shard(s), "
        "built by `wit shards` (webimagetext). Made from this job's `manifest.json`; "
        "`report.html` beside it has the histograms and sample images.", "",
        *_sources(manifest), "",
        *_steps(manifest), "",
        *_filters(manifest), "",
        *_dedup(manifest), "",
        *_license(manifest), "",
        *_takedowns(manifest),
        "## Known limitations", "", *(f"- {line}" for line in LIMITATIONS), "",
        *_loading(shard_glob), "",
    ]
    return "\n".join(parts)
