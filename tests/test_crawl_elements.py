"""The crawl's element types survive Beam's coders as themselves, and travel as plain tuples
(not pickled objects) between the steps of the pipeline: the graph gives their PCollections
those coders."""

from __future__ import annotations

import apache_beam as beam
from apache_beam import typehints
from apache_beam.coders import FastPrimitivesCoder, registry
from helpers.coders import accumulator_coder, named_tuples_in, pcollection_coders

from pipeline.crawl.elements import FirstCopy, MatchedPair, TextMatch
from pipeline.crawl.pairs import make_pair, pair_uid
from pipeline.crawl.transform import Crawl, CrawlConfig


def matched_pair(page_url: str | None) -> MatchedPair:
    pair = make_pair("https://img.example/a.jpg", ("a cat", "a cat on a mat"), page_url, "warc")
    return MatchedPair(pair_uid(pair.url, pair.texts), pair,
                       (TextMatch(0, (3,)), TextMatch(1, (3, 7))))


def test_named_tuples_round_trip_through_the_registered_coders():
    for page_url in ("https://example.com/page", None):
        m = matched_pair(page_url)
        kv = registry.get_coder(typehints.Tuple[str, MatchedPair])
        uid, back = kv.decode(kv.encode((m.uid, m)))
        assert (uid, back) == (m.uid, m)
        assert type(back.pair).__name__ == "Pair"
        assert all(isinstance(t, TextMatch) for t in back.matches)
        for acc in (FirstCopy(m, 3), FirstCopy(None, 0)):
            coder = registry.get_coder(FirstCopy)
            copy = coder.decode(coder.encode(acc))
            assert copy == acc and isinstance(copy, FirstCopy)
    assert registry.get_coder(MatchedPair).is_deterministic()


def test_elements_are_encoded_as_plain_tuples_not_pickled():
    m = matched_pair("https://example.com/page")
    coded = registry.get_coder(MatchedPair).encode(m)
    plain = (m.uid, tuple(m.pair), tuple(tuple(t) for t in m.matches))
    assert coded == FastPrimitivesCoder().encode(plain)
    assert len(coded) < len(FastPrimitivesCoder().encode(m))  # the pickling fallback


def test_the_crawl_gives_its_pcollections_the_element_coders():
    pipeline = beam.Pipeline()
    _ = pipeline | "Crawl" >> Crawl(CrawlConfig(metadata="/nonexistent/metadata.json",
                                                out="/nonexistent/out",
                                                warc=["/nonexistent/a.warc"]))
    coders = pcollection_coders(pipeline)
    for step in ("ByUid", "Dedup/GroupByKey", "Unique"):
        assert list(named_tuples_in(coders[f"Crawl/{step}"])) == [MatchedPair], step
    dedup = coders["Crawl/Dedup/Combine/ParDo(CombineValuesDoFn)"]
    assert list(named_tuples_in(dedup)) == [FirstCopy]
    assert list(named_tuples_in(accumulator_coder(pipeline, "Crawl/Dedup"))) == [FirstCopy]
