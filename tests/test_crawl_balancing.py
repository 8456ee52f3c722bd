"""Balancing: the pure formulas, then the real Beam pipeline on URL lists — entries at or
below t keep every pair, an entry far above t keeps about t, and the candidate files are
byte-identical on the in-process runner and with two worker processes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.stats import binomial_tolerance

from pipeline.cli import main
from pipeline.crawl.balancing import (
    entry_probability,
    keep,
    keep_probability,
    uniform_draw,
)
from schemas import CANDIDATES, ENTRY_COUNTS, read_validated


def test_formulas() -> None:
    assert entry_probability(5, 20) == 1.0
    assert entry_probability(20, 20) == 1.0
    assert entry_probability(80, 20) == 0.25
    assert keep_probability([]) == 0.0
    assert keep_probability([0.5, 0.5]) == pytest.approx(0.75)
    assert keep_probability([0.1, 1.0]) == 1.0
    with pytest.raises(ValueError):
        entry_probability(3, 0)


def test_draw_is_deterministic_and_uniform() -> None:
    assert uniform_draw(0, "abc") == uniform_draw(0, "abc") != uniform_draw(1, "abc")
    draws = [uniform_draw(7, f"uid{i}") for i in range(20_000)]
    assert all(0.0 <= d < 1.0 for d in draws)
    below = sum(d < 0.3 for d in draws)  # Binomial(20000, 0.3): 5 sigma ~ 324
    assert abs(below - 6000) < binomial_tolerance(20_000, 0.3)
    # an entry at or below t never drops a pair, whatever the draw
    assert all(keep(f"u{i}", [0], {0: 10}, 10, 3) for i in range(100))


N_CAT, N_DOG, N_BOTH, T = 3000, 60, 40, 150


def write_inputs(tmp_path: Path) -> tuple[str, str]:
    rows = ([(f"https://img.test/cat/{i}.jpg", f"my cat number {i}") for i in range(N_CAT)]
            + [(f"https://img.test/dog/{i}.jpg", f"a dog, photo {i}") for i in range(N_DOG)]
            + [(f"https://img.test/both/{i}.jpg", f"cat and dog {i}") for i in range(N_BOTH)]
            + [(f"https://img.test/none/{i}.jpg", f"nothing here {i}") for i in range(25)]
            + [("https://img.test/cat/0.jpg", "my cat number 0")] * 5)  # exact duplicates
    urls = tmp_path / "list.parquet"
    pq.write_table(pa.table({"url": [u for u, _ in rows], "caption": [c for _, c in rows]}),
                   urls, row_group_size=500)
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(["cat", "dog", "bird"]))
    return str(urls), str(meta)


def run_crawl(urls: str, meta: str, out: Path, beam_args: list[str],
              options: tuple[str, ...] = ()) -> pa.Table:
    code = main(["crawl", "--urls", urls, "--metadata", meta, "--out", str(out),
                 "--t", str(T), "--seed", "11", *options, "--", *beam_args])
    assert code == 0
    parts = sorted((out / "candidates").glob("part-*.parquet"))
    return pa.concat_tables(read_validated(str(p), CANDIDATES) for p in parts)


@pytest.mark.integration
def test_balancing_and_determinism_across_runners(tmp_path: Path) -> None:
    urls, meta = write_inputs(tmp_path)
    memory = run_crawl(urls, meta, tmp_path / "a", [], ("--num-shards", "3"))
    run_crawl(urls, meta, tmp_path / "b", ["--direct_running_mode=multi_processing",
                                           "--direct_num_workers=2"], ("--num-shards", "3"))
    files = {p.name: p.read_bytes() for p in sorted((tmp_path / "a" / "candidates").glob(
        "*.parquet"))}
    assert sorted(files) == ["entry_counts.parquet", *(f"part-{i:05d}-of-00003.parquet"
                                                       for i in range(3))]
    for name, data in files.items():  # same bytes, not just the same rows
        assert (tmp_path / "b" / "candidates" / name).read_bytes() == data, name
    rows = memory.to_pylist()
    assert len({r["uid"] for r in rows}) == len(rows)  # exact duplicates removed

    counts = read_validated(str(tmp_path / "a" / "candidates" / "entry_counts.parquet"),
                            ENTRY_COUNTS).to_pylist()
    assert [(c["entry"], c["count"]) for c in counts] == [
        ("cat", N_CAT + N_BOTH), ("dog", N_DOG + N_BOTH), ("bird", 0)]
    assert counts[0]["p"] == pytest.approx(T / (N_CAT + N_BOTH))
    assert counts[1]["p"] == 1.0 and counts[2]["p"] == 1.0

    only_cat = [r for r in rows if r["matched_entry_ids"] == [0]]
    with_dog = [r for r in rows if 1 in r["matched_entry_ids"]]
    assert len(with_dog) == N_DOG + N_BOTH  # count <= t: every pair kept
    # only-cat pairs are Bernoulli(p_cat): the kept count is within 5 sigma of N_CAT * p
    p_cat = T / (N_CAT + N_BOTH)
    assert abs(len(only_cat) - N_CAT * p_cat) < binomial_tolerance(N_CAT, p_cat)
    assert not math.isclose(len(only_cat), N_CAT)

    stats = json.loads((tmp_path / "a" / "candidates" / "stats.json").read_text())
    urls_stats = stats["sources"]["urls"]
    assert urls_stats["duplicates"] == 5
    assert urls_stats["unmatched"] == 25
    assert urls_stats["kept"] == len(rows)
    assert stats["outputs"] == sorted(files)
    stats_b = json.loads((tmp_path / "b" / "candidates" / "stats.json").read_text())
    assert stats_b["sources"] == stats["sources"]


@pytest.mark.integration
def test_other_seed_other_sample(tmp_path: Path) -> None:
    urls, meta = write_inputs(tmp_path)
    a = run_crawl(urls, meta, tmp_path / "a", [])
    main(["crawl", "--urls", urls, "--metadata", meta, "--out", str(tmp_path / "c"),
          "--t", str(T), "--seed", "12"])
    c = pa.concat_tables(pq.read_table(p) for p in
                         (tmp_path / "c" / "candidates").glob("part-*.parquet"))
    assert set(a.column("uid").to_pylist()) != set(c.column("uid").to_pylist())
