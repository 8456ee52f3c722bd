"""Stage 3, shards: download candidates with img2dataset behind a guarded fetch, filter,
deduplicate (exact + perceptual), decontaminate and write WebDataset + Parquet shards."""
