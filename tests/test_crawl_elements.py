"""The crawl's element types survive Beam's coders as themselves, and travel as plain tuples
(not pickled objects) between the steps of the pipeline."""

from __future__ import annotations

from apache_beam import typehints
from apache_beam.coders import FastPrimitivesCoder, registry

from pipeline.crawl.elements import FirstCopy, FirstCopyCoder, MatchedPair, TextMatch
from pipeline.crawl.pairs import make_pair, pair_uid


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
            copy = FirstCopyCoder().decode(FirstCopyCoder().encode(acc))
            assert copy == acc and isinstance(copy, FirstCopy)
    assert registry.get_coder(MatchedPair).is_deterministic()


def test_elements_are_encoded_as_plain_tuples_not_pickled():
    m = matched_pair("https://example.com/page")
    coded = registry.get_coder(MatchedPair).encode(m)
    plain = (m.uid, tuple(m.pair), tuple(tuple(t) for t in m.matches))
    assert coded == FastPrimitivesCoder().encode(plain)
    assert len(coded) < len(FastPrimitivesCoder().encode(m))  # the pickling fallback
