"""Stage 3, shards: download candidates with img2dataset behind a guarded fetch, filter,
deduplicate (exact + perceptual), decontaminate and write WebDataset + Parquet shards."""

from pipeline.core.offline import stay_offline

stay_offline()  # before any img2dataset import in this package and its worker processes
