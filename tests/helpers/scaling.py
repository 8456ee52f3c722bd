"""Inputs the runner and storage scaling tests share: `wit queries` options for the sample
dump, and `wit crawl` arguments over the sample web archives plus a URL list."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from helpers.data import shared_file

QUERIES_ARGS = ["--sources", "unigram,bigram,title", "--min-count", "20", "--min-pmi", "12",
                "--min-bigram-count", "5", "--min-inlinks", "3"]


def crawl_inputs(tmp_path: Path) -> list[str]:
    """The sample WARCs + WAT, a malformed WARC, and a URL list whose 'cat' entry is far above
    t, so balancing draws (seeded) really decide which rows stay."""
    warcs = [str(shared_file(f"webarchive/{n}")) for n in
             ("cc-main-2020-34-sample.warc.gz", "clipped.warc.gz", "whirlwind.warc.gz")]
    malformed = str(shared_file("webarchive/malformed/example-wrong-chunks.warc.gz"))
    wat = str(shared_file("webarchive/whirlwind.warc.wat.gz"))
    urls = tmp_path / "list.parquet"
    rows = ([(f"https://img.test/cat/{i}.jpg", f"my cat number {i}") for i in range(400)]
            + [(f"https://img.test/dog/{i}.jpg", f"a dog, photo {i}") for i in range(20)]
            + [("https://img.test/cat/0.jpg", "my cat number 0")] * 3)
    pq.write_table(pa.table({"url": [u for u, _ in rows], "caption": [c for _, c in rows]}),
                   urls, row_group_size=100)
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(["Houston Press", "Biquipedia", "Hovenier", "Escopete", "the",
                                "cat", "dog"]))
    return ["--warc", *warcs, malformed, "--wat", wat, "--urls", str(urls),
            "--metadata", str(meta), "--t", "40", "--seed", "5"]
