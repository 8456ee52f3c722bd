"""The scale harness's generated inputs are what the stages read, and grow like real data
(new words and bigrams keep appearing: Heaps' law, not repeated pages)."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from queries.dump import iter_pages
from queries.tokenize import count_text
from queries.wikitext import to_plain_text

# bench/ is not a package: load the generator module from its file
_PATH = Path(__file__).resolve().parents[1] / "bench" / "scale_inputs" / "__init__.py"
_SPEC = importlib.util.spec_from_file_location("scale_inputs", _PATH)
assert _SPEC and _SPEC.loader
gen = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(gen)


def _counts(path: Path) -> tuple[Counter, Counter, int]:
    unigrams, bigrams, pages = Counter(), Counter(), 0
    for page, namespaces in iter_pages(str(path)):
        pages += 1
        if not page.redirect:
            count_text(to_plain_text(page.text, namespaces)[0], unigrams, bigrams)
    return unigrams, bigrams, pages


def test_dumps_parse_and_vocabulary_grows_with_size(tmp_path):
    one, four = tmp_path / "one.xml", tmp_path / "four.xml"
    gen.write_dump(one, 100_000, seed=1, first_article=0, articles=100)
    gen.write_dump(four, 400_000, seed=2, first_article=100, articles=400)
    words1, bigrams1, pages1 = _counts(one)
    words4, bigrams4, pages4 = _counts(four)
    assert pages1 > 20 and pages4 > 3 * pages1
    tokens1, tokens4 = sum(words1.values()), sum(words4.values())
    assert 3 * tokens1 < tokens4 < 5 * tokens1
    # sublinear but growing: Heaps' law with an exponent well above 0.5
    assert 2 * len(words1) < len(words4) < 4 * len(words1)
    assert 2.5 * len(bigrams1) < len(bigrams4) < 4 * len(bigrams1)


def test_url_lists_and_download_shards_have_the_stage_columns(tmp_path):
    gen.write_url_list(tmp_path / "urls.parquet", 1000, seed=3)
    table = pq.read_table(tmp_path / "urls.parquet")
    assert table.column_names == ["url", "caption"] and table.num_rows == 1000
    repeats = len(range(20, 1000, 20))  # every 20th row repeats an earlier pair
    assert len(set(table.column("url").to_pylist())) == 1000 - repeats
    rows = gen.downloaded_rows(0, 2000, seed=4)
    gen.write_download_shard(tmp_path, 0, rows)
    statuses = Counter(r["status"] for r in rows)
    assert 0.75 < statuses["success"] / 2000 < 0.85
    hashes = Counter(r["phash"] for r in rows if r["phash"])
    assert max(hashes.values()) > 1  # exact copies present
    assert {p.name for p in tmp_path.iterdir()} >= {"00000.parquet", "00000.tar",
                                                    "00000_stats.json"}
