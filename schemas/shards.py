"""Artifacts of the ``shards`` stage (``OUT/shards/``).

- ``{00000..N}.tar``: WebDataset shards, ``KEY.jpg`` + ``KEY.txt`` (the caption) +
  ``KEY.json`` per kept sample (the JSON holds the :data:`SAMPLES` row, ``texts`` included).
- ``{shard}.parquet``: :data:`SAMPLES`, img2dataset's per-shard metadata: the kept samples of
  the tar **and** every dropped candidate whose key falls between them, each with a status.
  Every candidate row appears in exactly one of these files.
- ``{shard}_stats.json``: img2dataset's per-shard counts plus ``status_dict``.
- ``sizes.json``: ``{"00000.tar": n, ...}``, samples per tar (open_clip's convention).
- ``manifest.json``: :data:`MANIFEST_KEYS`: counts at every step and reason, config,
  versions, input fingerprints.
- ``report.html``: the dataset card.
"""

import pyarrow as pa

# success | failed_to_download | failed_to_resize | filtered:<reason> | duplicate_of:<key>
# | contaminated   (filtered:clip_score: below --min-clip-score / outside --clip-top-fraction)
STATUS_PREFIXES = ("success", "failed_to_download", "failed_to_resize", "filtered:",
                   "duplicate_of:", "contaminated")

SAMPLES = pa.schema(
    [
        # position of the candidate in the input (zero-padded), stable across reruns
        pa.field("key", pa.string(), nullable=False),
        pa.field("uid", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        # the best text of the image (also KEY.txt)
        pa.field("caption", pa.string(), nullable=False),
        # every kept text of the image, caption first (candidates' ``texts``); training
        # samples among them with ``wit train --text random``
        pa.field("texts", pa.list_(pa.string())),
        pa.field("page_url", pa.string()),
        pa.field("source", pa.string()),
        pa.field("matched_entry_ids", pa.list_(pa.int64())),
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
    ]
)

MANIFEST_KEYS = ("counts", "statuses", "filtered", "shards", "config", "versions", "inputs")
