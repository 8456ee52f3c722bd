"""The pyspark distributor runs the download end to end on a local[2] Spark master."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers.shards import Server, english_caption, options, real_images, to_jpeg, write_candidates

from pipeline.shards import job as shards_job

pytestmark = pytest.mark.integration


def test_pyspark_distributor_local(tmp_path):
    images = real_images(5)
    server = Server()
    rows = []
    for i, (_, image) in enumerate(images):
        server.routes[f"/img/{i}.jpg"] = to_jpeg(image)
        rows.append({"url": server.url(f"/img/{i}.jpg"), "text": english_caption(i)})
    rows.append({"url": server.url("/missing.jpg"), "text": "not on the server"})
    candidates = write_candidates(tmp_path / "candidates", rows)
    try:
        manifest = shards_job.run(options(candidates, tmp_path / "out", distributor="pyspark",
                                      spark_master="local[2]", download_shard_size=3), [])
    finally:
        server.close()
    assert manifest["statuses"] == {"failed_to_download": 1, "success": 5}
    df = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "out" / "shards").glob("*.parquet")))
    assert sorted(df["url"]) == sorted(r["url"] for r in rows)
    assert sorted(p.name for p in (tmp_path / "out" / "shards" / "_work" / "round0").glob("*_stats.json")) \
        == ["00000_stats.json", "00001_stats.json"]
