"""Artifacts of the ``shards`` stage (``OUT/shards/``).

- ``{00000..N}.tar``: WebDataset shards, ``KEY.jpg`` + ``KEY.txt`` (the caption: the first
  text that passed the filters) + ``KEY.json`` per kept sample (the JSON holds the
  :data:`SAMPLES` row less the columns about drops, every field with one type in every
  sample: ``pipeline.shards.writer.stored_sample_json``; ``texts`` included: only texts
  that passed; and the ``--save-additional-columns`` of a ``--urls`` run).
- ``{shard}.parquet``: :data:`SAMPLES` (then the additional columns: :func:`samples_schema`),
  img2dataset's per-shard metadata: the kept samples of the tar **and** every dropped
  candidate whose key falls between them, each with a status. Every candidate row (every
  row of a ``--urls`` list) appears in exactly one of these files.
- ``{shard}_stats.json``: :func:`shard_stats`, img2dataset's per-shard counts plus
  ``status_dict`` and ``filtered_texts`` (the same shape in the download rounds of
  ``_work/``, plus timings).
- ``sizes.json``: ``{"00000.tar": n, ...}``, samples per tar (open_clip's convention).
- ``manifest.json``: :data:`MANIFEST_KEYS`: counts at every step and reason, config,
  versions, input fingerprints.
- ``report.html``: the dataset card; ``README.md``: the Hugging Face dataset card (YAML
  header + datasheet) made from the manifest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from schemas import status as st

# Columns of the per-shard Arrow inputs of the downloader (``_work/input/{shard}.arrow``),
# img2dataset's convention: caption, url last. Inputs from ``wit shards --urls`` add, after
# them, the list's --save-additional-columns, then INPUT_ERROR and (--verify-hash-col)
# EXPECTED_HASH; the download Parquets keep them all, the final shards only the additional
# columns.
DOWNLOAD_INPUT_COLUMNS = ["key", "uid", "page_url", "source", "matched_entry_ids", "language",
                          "source_file", "source_offset", "fetch_time", "page_licenses", "texts",
                          "caption", "url"]
# why a --urls row cannot be downloaded at all (no http(s) URL, an unreadable line), or null
INPUT_ERROR = "_input_error"
# the hash the list gives for the image, as ``<type>:<hex digest>`` (e.g. ``sha256:9f86...``)
EXPECTED_HASH = "_expected_hash"

# img2dataset's output columns, which the downloader adds after the input ones in the
# download Parquets of ``_work/round{r}/``.
DOWNLOAD_FIELDS = [
    pa.field("status", pa.string()),
    pa.field("error_message", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("original_width", pa.int32()),
    pa.field("original_height", pa.int32()),
    pa.field("sha256", pa.string()),
    pa.field("original_bytes", pa.int64()),
    # pHash of the stored image, computed by the downloader where it is in hand
    pa.field("phash", pa.string()),
    *(pa.field(name, kind) for name, kind in (
        ("final_url", pa.string()), ("http_status", pa.int32()), ("content_type", pa.string()),
        ("optout_checks", pa.list_(pa.string())), ("image_licenses", pa.list_(pa.string())),
        ("license", pa.string()))),
]


def download_schema(input_schema: pa.Schema) -> pa.Schema:
    """A download Parquet's schema: the input columns (``key`` among them), then
    :data:`DOWNLOAD_FIELDS`."""
    return pa.schema([*input_schema, *DOWNLOAD_FIELDS])


def download_input_columns(schema: pa.Schema) -> list[str]:
    """The input columns of a download Parquet of ``schema`` (what a retry round reads back)."""
    added = {f.name for f in DOWNLOAD_FIELDS}
    return [name for name in schema.names if name not in added]

SAMPLES = pa.schema(
    [
        # position of the candidate in the input (zero-padded), stable across reruns
        pa.field("key", pa.string(), nullable=False),
        pa.field("uid", pa.string(), nullable=False),
        # "" for a ``--urls`` row without one (status failed_to_download)
        pa.field("url", pa.string(), nullable=False),
        # the best text of the image (also KEY.txt): the first of ``texts``; "" for a
        # ``--urls`` row without one
        pa.field("caption", pa.string(), nullable=False),
        # every kept text of the image, caption first (candidates' ``texts`` that pass the
        # filter's caption rules); training samples among them with ``wit train --text random``
        pa.field("texts", pa.list_(pa.string())),
        # the filter reason (``caption_words``, ``language``, ...) of each text the caption
        # rules dropped from an image that kept another text, in text order; null for rows
        # the filters did not judge, and for an image dropped whole (its status says why)
        pa.field("text_filter_reasons", pa.list_(pa.string())),
        pa.field("page_url", pa.string()),
        pa.field("source", pa.string()),
        pa.field("matched_entry_ids", pa.list_(pa.int64())),
        # ``wit crawl --worldwide``: the caption's metadata language (candidates' column);
        # null otherwise
        pa.field("language", pa.string()),
        # schemas/status.py: success | failed_to_download[:host_backoff] | failed_to_resize |
        # filtered:<reason> | contaminated | duplicate_of:<key>
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_message", pa.string()),
        # stored (resized) image size
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        # downloaded image size (header) and byte count
        pa.field("original_width", pa.int32()),
        pa.field("original_height", pa.int32()),
        pa.field("original_bytes", pa.int64()),
        # of the downloaded bytes
        pa.field("sha256", pa.string()),
        # 64-bit DCT perceptual hash of the stored image, 16 hex digits
        pa.field("phash", pa.string()),
        # the kept sample this one duplicates (also in status)
        pa.field("duplicate_of", pa.string()),
        # download rounds this row went through (1 + --retry-failed rounds that retried it)
        pa.field("attempts", pa.int32(), nullable=False),
        # image-caption cosine similarity under --clip-filter's checkpoint (multiple of 1e-6);
        # null when not scored (no --clip-filter, or dropped before scoring)
        pa.field("clip_score", pa.float64()),
        # -- provenance and licence (docs/consent.md) --
        # the candidate's: schemas.candidates (WARC/WAT/URL-list file, record offset or row
        # number, the page's fetch time); null for candidates written before them
        pa.field("source_file", pa.string()),
        pa.field("source_offset", pa.int64()),
        pa.field("fetch_time", pa.string()),
        # the image response: URL after redirects, HTTP status (also of a failed request
        # that got one), Content-Type; null when nothing was received
        pa.field("final_url", pa.string()),
        pa.field("http_status", pa.int32()),
        pa.field("content_type", pa.string()),
        # the opt-out checks the image passed before its body was read (robots_txt,
        # x_robots_tag, ...: the filtered:<reason> each would give); null when not fetched
        pa.field("optout_checks", pa.list_(pa.string())),
        # licence signals, "kind=raw text" (pipeline.core.licenses): the page's (crawl) and
        # the image's own (EXIF, IPTC, XMP; read from the downloaded bytes)
        pa.field("page_licenses", pa.list_(pa.string())),
        pa.field("image_licenses", pa.list_(pa.string())),
        # the SPDX id the signals name (image first), else the raw text of the first
        # licence signal, else null; --licenses keeps only listed ids (filtered:license)
        pa.field("license", pa.string()),
    ]
)


def samples_schema(extra: pa.Schema | None = None) -> pa.Schema:
    """A shard Parquet's schema: :data:`SAMPLES`, then the ``--save-additional-columns`` of
    a ``wit shards --urls`` run (``extra``, with their types in the list)."""
    return pa.schema([*SAMPLES, *(extra or [])])


# names an additional column of a URL list cannot have: the SAMPLES columns (``uid`` aside:
# a list's own uid column fills SAMPLES' uid) and the internal ones
RESERVED_COLUMNS = frozenset({f.name for f in SAMPLES} - {"uid"}) | {
    INPUT_ERROR, EXPECTED_HASH, "_round", "_source"}

MANIFEST_KEYS = ("counts", "statuses", "filtered", "texts", "shards", "config", "versions",
                 "inputs")


def shard_stats(statuses: Iterable[str], text_reasons: Iterable[str] = (),
                **timing: float) -> dict[str, Any]:
    """``{shard}_stats.json`` of the statuses of one shard's rows: img2dataset's counts
    (``count``, ``successes``, ``failed_to_download``, ``failed_to_resize``), the other
    status groups (``filtered``, ``duplicates``, ``contaminated``) and ``status_dict``, every
    status with its count in status order (``duplicate_of:<key>`` left out: one per kept
    sample would only repeat the Parquet), then ``filtered_texts``: the texts the caption
    rules dropped from images that kept another text, by reason (``text_reasons``: the rows'
    ``text_filter_reasons`` together; always empty in the download rounds, whose rows the
    filters have not judged yet). The download rounds add ``timing`` (img2dataset's
    ``duration``, ``start_time``, ``end_time``) after them."""
    counts = Counter(statuses)
    groups: Counter[str] = Counter()
    for status, n in counts.items():
        groups[st.status_group(status)] += n
    return {
        "count": sum(counts.values()),
        "successes": groups[st.SUCCESS],
        "failed_to_download": groups[st.FAILED_TO_DOWNLOAD],
        "failed_to_resize": groups[st.FAILED_TO_RESIZE],
        "filtered": groups[st.FILTERED],
        "duplicates": groups[st.DUPLICATE],
        "contaminated": groups[st.CONTAMINATED],
        "status_dict": {k: v for k, v in sorted(counts.items()) if not st.is_duplicate(k)},
        "filtered_texts": dict(sorted(Counter(text_reasons).items())),
        **timing,
    }


SHARD_STATS_KEYS = ("count", "successes", "failed_to_download", "failed_to_resize", "filtered",
                    "duplicates", "contaminated", "status_dict", "filtered_texts")
