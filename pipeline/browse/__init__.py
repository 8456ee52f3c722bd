"""Looking inside a dataset: ``wit index`` (CLIP embeddings of every kept sample, a faiss
index, a mapping Parquet: :mod:`schemas.index`) and ``wit browse`` (a local, read-only web
app over the shards and that index). Loads a checkpoint through the CLIP library
(``training.clip``), nothing else of another stage."""
