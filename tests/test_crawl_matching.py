"""MetaCLIP substring matching: the Aho–Corasick matcher against MetaCLIP's brute-force
loop, on generated texts and entries (punctuation, tabs, unicode, spaces, overlaps)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.errors import InputError
from pipeline.crawl.matching import Matcher, load_metadata, naive_match, spacing

# Small alphabets make collisions (and so matches and overlaps) likely.
ALPHABET = "ab c,.;:?!`\t\n\ré-日"
words = st.text(alphabet="abcé日", min_size=1, max_size=4)
entries = st.one_of(
    words,
    st.lists(words, min_size=2, max_size=3).map(" ".join),  # entries with spaces
    st.text(alphabet=ALPHABET, min_size=0, max_size=5),  # anything, even punctuation
)


def brute_force(text: str, metadata: list[str]) -> list[int]:
    """Written from the definition, independently of pipeline.crawl.matching."""
    padded = " " + text + " "
    for punct in ",.;:?!`":
        padded = padded.replace(punct, " " + punct + " ")
    padded = padded.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return [i for i, e in enumerate(metadata) if (" " + e + " ") in padded]


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=40),
       metadata=st.lists(entries, min_size=1, max_size=12))
def test_matcher_equals_brute_force(text: str, metadata: list[str]) -> None:
    assert Matcher(metadata).match(text) == brute_force(text, metadata)
    assert naive_match(text, metadata) == brute_force(text, metadata)


@settings(max_examples=100, deadline=None)
@given(metadata=st.lists(words, min_size=1, max_size=8, unique=True),
       picks=st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=6),
       seps=st.lists(st.sampled_from([" ", ", ", ". ", "\t", "\n", "; ", "!"]),
                     min_size=6, max_size=6))
def test_entries_joined_by_separators_all_match(metadata, picks, seps) -> None:
    chosen = [metadata[i % len(metadata)] for i in picks]
    text = "".join(word + sep for word, sep in zip(chosen, seps))
    found = Matcher(metadata).match(text)
    assert found == brute_force(text, metadata)
    assert {metadata.index(w) for w in chosen} <= set(found)


def test_examples() -> None:
    metadata = ["cat", "black cat", "cat.", "Cat", "sat", "the black", "on the mat", "日本"]
    m = Matcher(metadata)
    # overlapping entries share their spaces; "cat." never matches (the dot is spaced)
    assert m.match("The black cat sat on the mat.") == [0, 1, 4, 6]
    assert m.match("the black\tcat!") == [0, 1, 5]
    assert m.match("catalog") == []  # whole words only
    assert m.match("日本 photo") == [7]
    assert spacing("a,b\tc") == " a , b c "


def test_duplicate_entries_all_reported() -> None:
    assert Matcher(["dog", "cat", "dog"]).match("a dog") == [0, 2]


def test_empty_metadata_matches_nothing() -> None:
    assert Matcher([]).match("anything at all") == []


def test_load_metadata_errors(tmp_path) -> None:
    good = tmp_path / "m.json"
    good.write_text(json.dumps(["a", "b c"]))
    assert load_metadata(str(good)) == ["a", "b c"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": 1}))
    with pytest.raises(InputError, match="bad.json: expected a JSON list"):
        load_metadata(str(bad))
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(["a", 3]))
    with pytest.raises(InputError, match="mixed.json: entry 1 is int"):
        load_metadata(str(mixed))
    with pytest.raises(InputError, match="missing.json: metadata file not found"):
        load_metadata(str(tmp_path / "missing.json"))


def test_source_dofn_builds_automaton_in_setup_only(tmp_path) -> None:
    """The DoFn pickled into the pipeline carries a path, not an automaton."""
    import pickle

    from pipeline.crawl.transform import CrawlConfig, ReadFiles

    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps([f"entry {i}" for i in range(5000)]))
    fn = ReadFiles("urls", CrawlConfig(metadata=str(meta), out=str(tmp_path)))
    assert fn.matcher is None
    assert len(pickle.dumps(fn)) < 5000  # far smaller than the 5000 entries
    fn.setup()
    assert fn.matcher is not None and fn.matcher.match("an entry 42 here") == [42]
    missing = ReadFiles("urls", CrawlConfig(metadata=str(tmp_path / "nope.json"), out="x"))
    with pytest.raises(InputError, match="nope.json: metadata file not found"):
        missing.setup()
