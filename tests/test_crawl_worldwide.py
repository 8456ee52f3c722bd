"""MetaCLIP 2's worldwide rules, pure: t_to_p / p_to_t and the per-image curation against a
re-implementation written here from the paper's Algorithm 1 and the reference curation code
(numpy, as the reference computes them), the spacing rule of per-language matching against a
script test built on ``unicodedata`` names, and LID-code routing against the reference's
merge of Wikipedia codes."""

from __future__ import annotations

import json
import random
import string
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.errors import InputError
from pipeline.core.language import OTHER, detect_language, merge_code, route, wiki_language
from pipeline.crawl.balancing import uniform_draw
from pipeline.crawl.matching import spacing
from pipeline.crawl.worldwide_balancing import (
    TextEntries,
    choose_text,
    curate,
    language_thresholds,
    p_to_t,
    t_to_p,
)
from pipeline.crawl.worldwide_matching import LanguageMatcher, WorldwideMatcher, naive_match
from pipeline.crawl.worldwide_metadata import load_worldwide_metadata
from pipeline.crawl.worldwide_routing import WorldwideRouter

# -- Algorithm 1, as the reference computes it (numpy) -----------------------------------------


def ref_t_to_p(counts: list[int], t: int) -> float:
    a = np.array(counts, dtype=np.uint64)
    return float(a[a < t].sum() / a.sum())


def ref_p_to_t(counts: list[int], p: float) -> int:
    a = np.sort(np.array(counts, dtype=np.uint64))
    portion = np.cumsum(a) / a.sum()
    return int(a[np.abs(portion - p).argmin()])


def ref_probs(counts: list[int], t: int) -> np.ndarray:
    a = np.array(counts, dtype=np.float64)
    a[a < t] = t
    return t / a


counts_lists = st.lists(st.integers(0, 5000), min_size=1, max_size=60).filter(
    lambda c: sum(c) > 0)


@settings(max_examples=300, deadline=None)
@given(counts_lists, st.integers(1, 6000))
def test_t_to_p_equals_reference(counts: list[int], t: int) -> None:
    assert t_to_p(counts, t) == ref_t_to_p(counts, t)


@settings(max_examples=300, deadline=None)
@given(counts_lists, st.floats(0.0, 1.0))
def test_p_to_t_equals_reference(counts: list[int], p: float) -> None:
    # ours is never below 1 (the reference's t = 0 divides by zero when it balances)
    assert p_to_t(counts, p) == max(1, ref_p_to_t(counts, p))


def test_t_p_boundaries() -> None:
    assert t_to_p([0, 0], 5) is None and p_to_t([0, 0, 0], 0.5) is None
    assert t_to_p([5, 5], 5) == 0.0  # strictly below t
    assert t_to_p([4, 6], 5) == 0.4
    assert t_to_p([4, 6], 7) == 1.0
    # a tie between two entries: the first in ascending order wins (numpy's argmin)
    assert p_to_t([1, 1, 2], 0.375) == ref_p_to_t([1, 1, 2], 0.375) == 1
    assert p_to_t([0, 0, 10], 0.01) == 1 and ref_p_to_t([0, 0, 10], 0.01) == 0
    assert p_to_t([7], 0.0) == 7 and p_to_t([3, 9], 1.0) == 9


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["en", "de", "ja", "zh", "th", OTHER]), counts_lists,
                       min_size=1), st.integers(1, 3000))
def test_language_thresholds_follow_algorithm_1(counts: dict[str, list[int]],
                                                t_en: int) -> None:
    found = language_thresholds(counts, t_en)
    if "en" not in counts:
        assert found.p is None and set(found.t.values()) == {t_en}
        return
    p = ref_t_to_p(counts["en"], t_en)
    assert found.p == p
    for lang, lang_counts in counts.items():
        expected = t_en if lang == "en" else max(1, ref_p_to_t(lang_counts, p))
        assert found.t[lang] == expected, lang


def test_language_thresholds_equal_p_means_equal_tail() -> None:
    # shares are scale-free: a language whose counts are English's times ten gets ten times
    # what p_to_t gives English itself (the count where the cumulative share reaches p: 3
    # here, not t_en, since t_to_p and p_to_t are not exact inverses in the reference either)
    en = [1, 2, 3, 50, 400, 3000]
    found = language_thresholds({"en": en, "de": [c * 10 for c in en]}, 50)
    assert found.p == 6 / 3456 and p_to_t(en, found.p) == 3 and found.t["de"] == 30


def ref_curate(uid: str, matched: list[TextEntries], counts: dict, thresholds: dict,
               seed: int) -> TextEntries | None:
    """The reference's curate(): one matched text at random, kept with 1 - prod(1 - p)."""
    chosen = matched[int(uniform_draw(seed, f"{uid}\x00choice") * len(matched))]
    size = max(chosen.entry_ids) + 1
    lang_counts = [counts.get((chosen.language, i), 0) for i in range(size)]
    probs = ref_probs(lang_counts, thresholds[chosen.language])
    prob = 1.0 - np.prod(1.0 - probs[list(chosen.entry_ids)])
    return chosen if uniform_draw(seed, uid) < prob else None


def test_curate_equals_reference() -> None:
    rng = random.Random(11)
    langs = ["en", "de", "ja", "th"]
    counts = {(lang, e): rng.choice([1, 5, 40, 300, 2000]) for lang in langs for e in range(8)}
    thresholds = {"en": 50, "de": 30, "ja": 200, "th": 5}
    kept = 0
    for i in range(3000):
        matched = [TextEntries(j, rng.choice(langs), tuple(sorted(rng.sample(range(8),
                                                                             rng.randint(1, 3)))))
                   for j in range(rng.randint(1, 4))]
        ours = curate(f"uid{i}", matched, counts, thresholds, seed=3)
        assert ours == ref_curate(f"uid{i}", matched, counts, thresholds, 3), i
        kept += ours is not None
    assert 0 < kept < 3000  # the draws really decide
    assert curate("x", [], counts, thresholds, 0) is None


def test_choose_text_uniform_and_seeded() -> None:
    picks = [choose_text(f"u{i}", 3, 9) for i in range(9000)]
    assert choose_text("u1", 3, 9) == choose_text("u1", 3, 9)
    assert all(2700 < picks.count(k) < 3300 for k in range(3))
    with pytest.raises(ValueError):
        choose_text("u", 0, 0)


# -- spacing rule --------------------------------------------------------------------------

NO_SPACE_SCRIPTS = ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH", "THAI ", "LAO ",
                    "MYANMAR ", "KHMER ", "TIBETAN ", "HIRAGANA ", "KATAKANA ",
                    "HALFWIDTH KATAKANA", "KANGXI RADICAL", "CJK RADICAL",
                    "IDEOGRAPHIC DESCRIPTION")
CJK_PUNCTUATION = "，。、；：？！“”‘’（）【】《》〈〉「」『』～—"


def ref_no_space(char: str) -> bool:
    if char in string.punctuation or char in CJK_PUNCTUATION:
        return True
    name = unicodedata.name(char, "")
    return name.startswith(NO_SPACE_SCRIPTS)


def ref_match(text: str, entries: list[str]) -> list[int]:
    spaced = spacing(text)
    found = []
    for i, entry in enumerate(entries):
        if not entry:
            continue
        key = ("" if ref_no_space(entry[0]) else " ") + entry + (
            "" if ref_no_space(entry[-1]) else " ")
        if key in spaced:
            found.append(i)
    return found


ALPHABET = "ab猫犬ねコก가 .,!「"
words = st.text(alphabet=ALPHABET, min_size=1, max_size=4)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=30), st.lists(words, max_size=12))
def test_matcher_equals_reference_spacing(text: str, entries: list[str]) -> None:
    expected = ref_match(text, entries)
    assert LanguageMatcher(entries).match(text) == expected
    assert naive_match(text, entries) == expected


def test_spacing_boundary_cases() -> None:
    entries = ["猫", "cat", "PNG画像", "ネコ", "고양이", "แมว", "Public"]
    m = LanguageMatcher(entries)
    assert m.match("一只猫在睡觉") == [0]  # CJK entry inside a sentence
    assert m.match("category of cats") == []  # Latin entry inside a longer word
    assert m.match("my cat.") == [1]
    assert m.match("PNG画像です") == [2]  # mixed entry: a boundary before P only
    assert m.match("APNG画像") == []
    assert m.match("黒いネコの写真") == [3]  # kana: no spaces needed (ours)
    assert m.match("고양이가 있다") == []  # Hangul keeps word boundaries (as the reference)
    assert m.match("작은 고양이 사진") == [4]
    assert m.match("ภาพแมวดำ") == [5]
    assert m.match("Republic of Chad") == []
    assert m.match("a cat and 一只猫") == [0, 1]  # mixed-script text


# -- routing -------------------------------------------------------------------------------

# Wikipedia dbnames and the language MetaCLIP 2's align_lid_to_wiki merges them into
WIKI = {"enwiki": "en", "dewiki": "de", "zh_yuewiki": "zh", "zh_classicalwiki": "zh",
        "zh_min_nanwiki": "zh", "be_x_oldwiki": "be", "cbk_zamwiki": "cbk", "nds_nlwiki": "nds",
        "jawiki": "ja", "thwiki": "th"}


def test_wiki_language_merges_as_reference() -> None:
    for dbname, language in WIKI.items():
        assert wiki_language(dbname) == language
    with pytest.raises(ValueError):
        wiki_language("dewiktionary")


def test_route() -> None:
    languages = {"en", "de", "ja", "zh", "th"}
    assert route("de", languages) == "de"
    assert route("yue", languages) == "zh"  # Cantonese: zh_yue, merged into zh
    assert route("zh-TW", languages) == "zh" and merge_code("ZH_cn") == "zh"
    assert route("fr", languages) == OTHER  # no French metadata
    assert route("", languages) == OTHER
    assert route("xx-unknown", languages) == OTHER


def test_router_lid_per_text(tmp_path) -> None:
    """Each text gets its own LID call (the real lid.176 model) and its language's list."""
    router = WorldwideRouter({"en": ["cat"], "de": ["Katze"], "ja": ["猫"], "th": ["แมว"]})
    texts = ["A black cat sleeps on the warm sofa", "Eine schwarze Katze schläft auf dem Sofa",
             "黒い猫がソファの上で寝ています", "แมวดำนอนอยู่บนโซฟา",
             "Un chat noir dort sur le canapé"]
    found = [router.text_match(i, t) for i, t in enumerate(texts)]
    assert [f.language for f in found] == ["en", "de", "ja", "th", OTHER]
    assert [f.entry_ids for f in found] == [(0,), (0,), (0,), (0,), ()]
    assert [f.language for f in found[:4]] == [detect_language(t) for t in texts[:4]]
    # an English entry is not looked for in a German text
    assert WorldwideMatcher({"en": ["Katze"], "de": []}).match("de", "Katze") == []


def test_load_worldwide_metadata_errors(tmp_path) -> None:
    (tmp_path / "de.json").write_text(json.dumps(["Katze"]))
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"languages": {"de": {"file": "de.json"}}}))
    assert load_worldwide_metadata(str(index)) == {"de": ["Katze"]}
    for bad, words in [({"languages": {}}, "at least one"),
                       ({"languages": {"zh_yue": {"file": "de.json"}}}, "merged code"),
                       ({"languages": {"de": {"file": "../x.json"}}}, "relative"),
                       ({"languages": {"de": {"file": "missing.json"}}}, "missing.json")]:
        index.write_text(json.dumps(bad))
        with pytest.raises(InputError, match=words):
            load_worldwide_metadata(str(index))
    with pytest.raises(InputError, match="index not found"):
        load_worldwide_metadata(str(tmp_path / "nope.json"))


def test_candidates_without_language_column_still_read(tmp_path) -> None:
    """Candidate files written before the ``language`` column existed read as null there."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.shards.reader import candidate_files, iter_candidate_batches
    from schemas.candidates import CANDIDATES

    old = pa.schema([f for f in CANDIDATES if f.name != "language"])
    path = tmp_path / "part-00000.parquet"
    pq.write_table(pa.Table.from_pylist([{"uid": "a", "url": "https://x.test/a.png", "text": "t",
                                          "texts": ["t"], "page_url": None, "source": "urls",
                                          "matched_entry_ids": [0]}], schema=old), path)
    assert candidate_files(str(tmp_path)) == [str(path)]
    (table,) = iter_candidate_batches([str(path)])
    assert table.column("language").to_pylist() == [None]
