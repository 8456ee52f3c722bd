"""Artifacts of the ``queries`` stage (``OUT/queries/``).

- ``metadata.json``: a flat JSON list of strings; the index is the entry id (MetaCLIP's format).
- ``metadata.parquet``: :data:`METADATA`, one row per entry, same order and ids.
- ``stats.json``: a JSON object; :data:`STATS_KEYS` are always present.
"""

import pyarrow as pa

# Sources one can choose (--sources), in merge order.
SOURCES = ("wordnet", "unigram", "bigram", "title")
# The numerals "0".."99" are always added first, as MetaCLIP seeds its entry set with them;
# entry ids are assigned in this order.
NUMERAL = "numeral"
MERGE_ORDER = (NUMERAL, *SOURCES)

METADATA = pa.schema(
    [
        pa.field("entry_id", pa.int64(), nullable=False),
        pa.field("entry", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        # unigram/bigram: occurrences in the dump; title: summed pageviews or in-links;
        # wordnet, numeral: null.
        pa.field("count", pa.int64()),
        # bigram: PMI (log2); null for the other sources.
        pa.field("score", pa.float64()),
    ]
)

STATS_KEYS = ("inputs", "entries", "entries_per_source", "thresholds", "title_rule", "versions")
