"""bench/scale.py's one-stage-one-size mode: a size given in rows, texts or MB of XML
becomes whole x1 units of the stage's inputs; and the shuffle-buffer probe measures what
a real in-process Beam run holds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import apache_beam as beam

from pipeline.core.beam import make_pipeline

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


scale = _load("scale")
beam_buffers = _load("beam_buffers")


def test_one_size_modes_cover_the_asked_amount():
    mode, size = scale.one_size_mode("shards", 1_000_000)
    assert (mode["shards_rows"], size) == (1_000_000, 1)
    mode, size = scale.one_size_mode("crawl", 4_000_000)
    assert mode["crawl_texts"] * size == 4_000_000 and mode["crawl_entries"] == 500_000
    mode, size = scale.one_size_mode("crawl", 10_000)
    assert (mode["crawl_texts"], size) == (10_000, 1)
    mode, size = scale.one_size_mode("queries", 1024)
    assert mode["queries_mb"] * size == 1024
    mode, size = scale.one_size_mode("queries", 6)
    assert (mode["queries_mb"], size) == (6, 1)


def test_the_buffer_probe_sees_a_shuffle_of_a_real_pipeline():
    beam_buffers.install()
    try:
        pipeline = make_pipeline([])
        _ = (pipeline | beam.Create([(i % 7, "x" * 50) for i in range(700)])
             | beam.GroupByKey() | beam.Map(lambda kv: len(list(kv[1]))))
        pipeline.run().wait_until_finish()
        grouped = [row for row in beam_buffers.report() if row["kind"] == "group"]
    finally:
        beam_buffers.uninstall()
    assert any(row["elements"] == 700 and row["encoded_bytes"] >= 700 * 50
               and row["decoded_bytes_est"] >= 700 * 50 for row in grouped)


def test_deep_size_counts_what_a_value_holds():
    small = beam_buffers.deep_size(("a", 1))
    assert beam_buffers.deep_size(("a", 1, "b" * 1000)) >= small + 1000
    shared = "y" * 500
    assert beam_buffers.deep_size([shared, shared]) < 2 * 500  # counted once
