"""Artifacts of ``wit index`` (``OUT/index/``), read by ``wit browse``.

- ``mapping.parquet``: :data:`MAPPING`, one row per indexed sample (every kept sample of the
  shards, the ones with an image in a tar), in index-id order: row ``i`` describes vector
  ``i`` of the faiss index and of the embedding arrays. Rows are sorted by (shard, key) and
  written in row groups of :data:`MAPPING_ROW_GROUP` rows, so a reader finds id ``i`` in row
  group ``i // MAPPING_ROW_GROUP`` without reading the rest.
- ``image.npy``, ``text.npy``: float32 ``[n, embed_dim]`` L2-normalised image and caption
  embeddings, row ``i`` for index id ``i`` (``numpy.load(mmap_mode="r")``).
- ``image.faiss``: a faiss index of ``image.npy`` (inner product = cosine similarity).
- ``index.json``: :data:`INDEX_JSON_KEYS`: the index kind and parameters, counts, the
  checkpoint and its model config, embedding timings. Written last: it marks a complete index.
- ``_parts/``: per-shard embeddings of an unfinished run (``wit index`` resumes from them);
  removed when the index is complete.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.shards import SAMPLES

_SAMPLE = {f.name: f for f in SAMPLES}

MAPPING = pa.schema(
    [
        # position in the faiss index and the embedding arrays
        pa.field("index_id", pa.int64(), nullable=False),
        # the shard's name (``00000`` for ``00000.tar``)
        pa.field("shard", pa.string(), nullable=False),
        _SAMPLE["key"], _SAMPLE["uid"], _SAMPLE["url"], _SAMPLE["caption"], _SAMPLE["texts"],
        _SAMPLE["page_url"], _SAMPLE["source"], _SAMPLE["matched_entry_ids"],
        _SAMPLE["status"], _SAMPLE["width"], _SAMPLE["height"], _SAMPLE["sha256"],
        _SAMPLE["phash"], _SAMPLE["clip_score"],
        # the image member of the tar: where its data starts and its size in bytes (the offset
        # index that serves images straight out of the tar, no extraction)
        pa.field("image_offset", pa.int64(), nullable=False),
        pa.field("image_size", pa.int64(), nullable=False),
        # the image member's extension (jpg, png, webp): the served content type
        pa.field("image_format", pa.string(), nullable=False),
    ]
)

# the SAMPLES columns a mapping row copies from its shard Parquet
MAPPING_SAMPLE_COLUMNS = [f.name for f in MAPPING if f.name in _SAMPLE]

MAPPING_ROW_GROUP = 4096

INDEX_JSON_KEYS = ("kind", "params", "count", "dim", "metric", "shards", "checkpoint",
                   "model_config", "device", "embedding", "build_seconds")
