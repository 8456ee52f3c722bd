"""The queries Beam job on the real Wikipedia dump excerpt (106 articles): its counts equal a
plain-Python reference, and its outputs are identical across runs and runners."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from queries import job
from queries.dump import iter_pages
from queries.select import NUMERALS, pmi
from queries.tokenize import count_text
from queries.transform import QueryConfig
from queries.wikitext import normalize_title, to_plain_text
from schemas import METADATA, read_validated

SAMPLE_ARGS = ["--min-count", "20", "--min-pmi", "12", "--min-bigram-count", "5",
               "--min-inlinks", "3"]


@pytest.fixture(scope="module")
def reference(wiki_sample):
    """Unigram/bigram counts and in-link titles computed page by page in plain Python."""
    unigrams, bigrams, links = Counter(), Counter(), Counter()
    redirects, articles = {}, set()
    for page, namespaces in iter_pages(str(wiki_sample)):
        if page.namespace != 0:
            continue
        if page.redirect:
            redirects[normalize_title(page.title)] = normalize_title(page.redirect)
            continue
        text, page_links = to_plain_text(page.text, namespaces)
        count_text(text, unigrams, bigrams)
        articles.add(normalize_title(page.title))
        for link in page_links:
            if normalize_title(link):
                target = normalize_title(link)
                links[redirects.get(target, target)] += 1
    # redirects may come after the pages that link to them: resolve again at the end
    inlinks = Counter()
    for target, count in links.items():
        inlinks[redirects.get(target, target)] += count
    return unigrams, bigrams, inlinks, articles


def run_job(out: Path, sources=("unigram", "bigram", "title"), beam_args=(), **overrides):
    config = QueryConfig(wiki=(str(overrides.pop("wiki")),), sources=sources, out=str(out),
                         **overrides)
    return job.run(config, list(beam_args))


def entries(out: Path, source: str) -> dict:
    table = read_validated(str(out / "queries" / "metadata.parquet"), METADATA).to_pylist()
    return {r["entry"]: (r["count"], r["score"]) for r in table if r["source"] == source}


@pytest.mark.integration
def test_counts_equal_plain_python_reference(tmp_path, wiki_sample, reference):
    unigrams, bigrams, inlinks, articles = reference
    # small flush size: partial counts are flushed many times and summed by the combine;
    # no --min-bigram-count: MetaCLIP's default keeps bigrams seen once
    stats = run_job(tmp_path, wiki=wiki_sample, min_count=1, min_pmi=10.0, min_inlinks=2,
                    flush_keys=500)
    assert stats["thresholds"]["min_bigram_count"] == 1
    assert stats["inputs"]["tokens"] == sum(unigrams.values())
    assert stats["inputs"]["articles"] == 106 and stats["inputs"]["redirects"] == 99
    # numerals are always the first 100 entries, so unigram "1" is a duplicate of numeral "1"
    assert entries(tmp_path, "numeral").keys() == set(NUMERALS)
    assert {e: c for e, (c, _) in entries(tmp_path, "unigram").items()} == {
        w: c for w, c in unigrams.items() if w not in NUMERALS}

    total = sum(unigrams.values())
    expected_bigrams = {}
    for bigram, count in bigrams.items():
        a, b = bigram.split(" ")
        score = pmi(count, unigrams[a], unigrams[b], total)
        if score >= 10.0 and bigram not in unigrams:
            expected_bigrams[bigram] = (count, score)
    got = entries(tmp_path, "bigram")
    assert got.keys() == expected_bigrams.keys() and len(got) > 50
    assert any(count == 1 for count, _ in got.values())
    for bigram, (count, score) in expected_bigrams.items():
        assert got[bigram][0] == count and got[bigram][1] == pytest.approx(score)

    expected_titles = {t: c for t, c in inlinks.items()
                       if c >= 2 and t in articles and ":" not in t and t not in unigrams
                       and t not in expected_bigrams and t not in NUMERALS}
    got_titles = {e: c for e, (c, _) in entries(tmp_path, "title").items()}
    assert got_titles == expected_titles and got_titles
    assert "in-links" in stats["title_rule"] or "inlinks" in stats["title_rule"]


def _outputs(out: Path) -> tuple[bytes, bytes]:
    return ((out / "queries" / "metadata.json").read_bytes(),
            (out / "queries" / "metadata.parquet").read_bytes())


@pytest.mark.integration
def test_identical_across_runs_and_runners(tmp_path, wiki_sample):
    settings = dict(wiki=wiki_sample, min_count=20, min_pmi=12.0, min_bigram_count=5,
                    min_inlinks=3)
    run_job(tmp_path / "a", **settings)
    run_job(tmp_path / "b", **settings)
    run_job(tmp_path / "mp", beam_args=["--direct_running_mode=multi_processing",
                                        "--direct_num_workers=2"], **settings)
    first = _outputs(tmp_path / "a")
    assert first == _outputs(tmp_path / "b") == _outputs(tmp_path / "mp")
    assert len(json.loads(first[0])) > 1000


@pytest.mark.integration
def test_cli_writes_the_three_outputs_with_wordnet(tmp_path, wiki_sample, capsys):
    assert main(["queries", "--wiki", str(wiki_sample), "--out", str(tmp_path), *SAMPLE_ARGS]) == 0
    out = tmp_path / "queries"
    metadata = json.loads((out / "metadata.json").read_text())
    stats = json.loads((out / "stats.json").read_text())
    table = pq.read_table(out / "metadata.parquet")
    assert table.schema.equals(METADATA, check_metadata=False)
    assert table.column("entry").to_pylist() == metadata
    assert table.column("entry_id").to_pylist() == list(range(len(metadata)))
    assert metadata[:100] == list(NUMERALS) and metadata[100:102] == ["able", "unable"]
    assert "hot spring" in metadata
    # MetaCLIP's Table 1: 86,654 = 86,554 WordNet synset names + 100 numerals
    assert stats["entries_per_source"]["wordnet"]["kept"] == 86_554
    assert stats["entries_per_source"]["numeral"]["kept"] == 100
    assert stats["entries"] == len(metadata)
    assert sum(r["kept"] for r in stats["entries_per_source"].values()) == len(metadata)
    assert stats["versions"]["wordnet"] == "3.0"
    assert "queries:" in capsys.readouterr().out  # the summary


@pytest.mark.integration
def test_titles_from_pageviews(tmp_path, wiki_sample):
    views = tmp_path / "pageviews-20240101-000000.gz"
    with gzip.open(views, "wt") as f:
        f.write("en Hot_dog 60 0\nen Hot_dog 49 0\nen.m Hot_dog 900 0\n"
                "en Main_Page 5000 0\nen Special:Search 900 0\nde Hund 300 0\n"
                "en Ada_Lovelace 40 0\nbroken line\n")
    later = tmp_path / "pageviews-20240101-010000"
    later.write_text("en Hot_dog 55 0\nen Ada_Lovelace 45 0\n")
    config = QueryConfig(pageviews=(str(views), str(later)), sources=("title",), min_views=70,
                         out=str(tmp_path))
    stats = job.run(config, [])
    assert entries(tmp_path, "title") == {"Main Page": (5000, None), "Hot dog": (115, None)}
    # the numerals come first whatever the sources, as in MetaCLIP
    metadata = json.loads((tmp_path / "queries" / "metadata.json").read_text())
    assert metadata == [*NUMERALS, "Main Page", "Hot dog"]
    assert stats["entries_per_source"]["numeral"] == {
        "candidates": 100, "invalid": 0, "duplicates": 0, "capped": 0, "kept": 100}
    assert stats["inputs"]["pageview_lines"] == 10 and stats["inputs"]["pageview_bad_lines"] == 1
    assert stats["title_rule"].startswith("pageviews")
