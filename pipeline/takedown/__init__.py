"""The ``takedown`` stage: remove samples named by a takedown list from existing shards
(``wit takedown``), rewriting only the shards that hold them."""
