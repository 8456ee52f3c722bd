"""MetaCLIP 2's per-language metadata, pure: the offline word segmenters on real text in
zh/ja/th (tests/data/worldwide), tokens that keep combining marks, a dump's language from its
``<siteinfo>`` dbname (the real sample dump too), and the capped merge of a language's
sources against a re-implementation written here from the reference's build_metadata."""

from __future__ import annotations

import json
import random
import string
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from pipeline.core.errors import InputError
from pipeline.crawl.worldwide_metadata import load_worldwide_metadata
from queries import segment
from queries.dump import DumpError
from queries.worldwide import (
    count_text,
    dump_language,
    language_metadata,
    word_tokens,
    write_worldwide_metadata,
)

DATA = Path(__file__).parent / "data" / "worldwide"


def captions(lang: str) -> list[str]:
    rows = [json.loads(line) for line in (DATA / "captions.jsonl").read_text("utf-8").split("\n")
            if line]
    return [r["caption"] for r in rows if f"/{lang}/" in r["url"]]


@pytest.mark.parametrize("lang, word", [("zh", "共和国"), ("ja", "共和"), ("th", "สาธารณรัฐ")])
def test_segmenters_offline_on_real_text(lang: str, word: str) -> None:
    segmenter = segment.segmenter_for(lang)
    assert segmenter is not None and segment.segmenter_for(lang) is segmenter  # built once
    words = Counter()
    for caption in captions(lang):
        run = caption.replace(" ", "")
        pieces = segmenter(run)
        assert "".join(pieces) == run  # nothing lost or added
        words.update(pieces)
    assert words[word] >= 5 and len(words) > 40


# official country names from Debian's iso-codes 4.15.0 translations (iso_3166-1.mo), the
# zero-width spaces of the Khmer ones removed: "country X" (lo, my), "republic X" (km)
ICU_TEXTS = {
    "lo": ["ປະເທດຈີນ", "ປະເທດກຳປູເຈຍ", "ປະເທດມຽນມາ", "ປະເທດໄທ"],
    "km": ["សាធារណរដ្ឋប្រជាមានិតចិន", "សាធារណរដ្ឋបារាំង", "ព្រះរាជាណាចក្រកម្ពុជា"],
    "my": ["ပြင်သစ်နိုင်ငံ", "ကမ္ဘောဒီးယားနိုင်ငံ", "ထိုင်းနိုင်ငံ"],
}
ICU_WORDS = {"lo": "ປະເທດ", "km": "សាធារណរដ្ឋ", "my": "နိုင်ငံ"}


@pytest.mark.parametrize("lang", sorted(ICU_TEXTS))
def test_icu_word_breaker_for_the_other_no_space_languages(lang: str) -> None:
    """lo, km, my (and bo, dz) have no segmenter of their own: ICU's dictionary-based word
    breaker (PyICU, the worldwide extra) splits them, the shared word a word of its own."""
    segmenter = segment.segmenter_for(lang)
    assert segmenter is not None
    words = Counter()
    for name in ICU_TEXTS[lang]:
        pieces = segmenter(name)
        assert "".join(pieces) == name and len(pieces) >= 2
        words.update(pieces)
    assert words[ICU_WORDS[lang]] >= 2
    assert segment.segment(" ".join(ICU_TEXTS[lang]), lang).count(ICU_WORDS[lang]) >= 2


def test_space_languages_need_no_segmenter_and_unknown_ones_fail() -> None:
    assert segment.segmenter_for("de") is None and segment.segment("a b", "de") == "a b"
    try:
        import icu  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="PyICU"):
            segment.segmenter_for("lo")
    segment.register("xx", lambda: lambda text: list(text))
    try:
        assert segment.segment("ab cd", "xx") == "a b c d"
    finally:
        del segment._FACTORIES["xx"]
        segment.segmenter_for.cache_clear()


def ref_words(text: str) -> list[str]:
    """Words of a space-delimited text: maximal runs of letter/number/mark characters (or
    _), joined across one inner apostrophe or hyphen."""
    words, current, i = [], "", 0
    def is_char(c):
        return (unicodedata.category(c)[0] in "LNM" or c == "_")
    while i < len(text):
        c = text[i]
        if is_char(c):
            current += c
        elif (c in "'’-" and current and i + 1 < len(text) and is_char(text[i + 1])):
            current += c
        elif current:
            words.append(current)
            current = ""
        i += 1
    return words + ([current] if current else [])


def test_tokens_keep_combining_marks() -> None:
    rng = random.Random(5)
    alphabet = "aéकि्ทั  ,.-'\n" + "\u0301"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        assert [t for t in word_tokens(text, "hi") if t] == ref_words(text), repr(text)
    assert word_tokens("देवनागरी लिपि", "hi") == ["देवनागरी", "लिपि"]
    unigrams, bigrams = Counter(), Counter()
    assert count_text("สาธารณรัฐอิสลาม, อัฟกานิสถาน", "th", unigrams, bigrams) == 3
    assert bigrams == Counter({"สาธารณรัฐ อิสลาม": 1})  # the comma breaks the second pair


def write_dump(path: Path, dbname: str | None) -> None:
    db = f"<dbname>{dbname}</dbname>" if dbname is not None else ""
    path.write_text('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/"><siteinfo>'
                    f'<sitename>W</sitename>{db}<namespaces><namespace key="0" /></namespaces>'
                    "</siteinfo><page><title>A</title><ns>0</ns><id>1</id><revision><id>1"
                    "</id><text>x</text></revision></page></mediawiki>", encoding="utf-8")


def test_dump_language(tmp_path, wiki_sample) -> None:
    assert dump_language(str(wiki_sample)) == "en"
    for dbname, language in [("dewiki", "de"), ("zh_yuewiki", "zh"), ("thwiki", "th")]:
        write_dump(tmp_path / "d.xml", dbname)
        assert dump_language(str(tmp_path / "d.xml")) == language
    for dbname in (None, "dewiktionary"):
        write_dump(tmp_path / "d.xml", dbname)
        with pytest.raises(DumpError, match="d.xml"):
            dump_language(str(tmp_path / "d.xml"))


def ref_language_metadata(lang, wordnet, unigrams, bigrams, titles):
    """The reference's build_metadata, re-written: caps relative to the vocabulary."""
    punct = set(string.punctuation) | set("，。、；：？¿！“”‘’（）【】《》〈〉「」『』～—")
    def ok(m):
        return (0 < len(m) <= 256 and not all(c in punct for c in m))
    out = {str(n): "numeral" for n in range(100)}
    for m in wordnet:
        m = (m.replace("+", "") if lang in ("zh", "ja", "fr") else m).strip()
        if ok(m) and m not in out:
            out[m] = "wordnet"
    caps = {"unigram": min(251_465, int(len(unigrams) * 0.1)), "bigram": 100_646,
            "title": min(61_235, int(len(titles) * 0.76))}
    ranked = {
        "unigram": [w for w, _ in sorted(unigrams, key=lambda x: (-x[1], x[0]))],
        "bigram": [(b.replace(" ", "") if lang in ("zh", "ja", "th") else b)
                   for b, s in sorted(bigrams, key=lambda x: (-x[1], x[0])) if s > 30],
        "title": [t for t, _ in sorted(titles, key=lambda x: (-x[1], x[0]))]}
    for source in ("unigram", "bigram", "title"):
        n = 0
        for m in ranked[source]:
            m = m.strip()
            if n < caps[source] and ok(m) and m not in out:
                out[m] = source
                n += 1
    return list(out.items())


def test_language_metadata_equals_reference() -> None:
    rng = random.Random(2)
    vocab = ["猫", "犬", "Katze", "Hund", "1", "42", ",", "", "x" * 300, " Bild ", "a+b", "ab"]
    for trial in range(300):
        lang = rng.choice(["de", "zh", "ja", "th"])
        unigrams = [(w, rng.randint(1, 50)) for w in rng.sample(vocab, rng.randint(0, 12))]
        bigrams = [(f"{rng.choice(vocab)} {rng.choice(vocab)}", rng.choice([10.0, 30.0, 30.5,
                                                                            40.0]))
                   for _ in range(rng.randint(0, 8))]
        titles = [(rng.choice(vocab) + str(i), rng.randint(1, 9)) for i in range(rng.randint(0, 9))]
        wordnet = rng.sample(vocab, rng.randint(0, 4))
        assert (language_metadata(lang, wordnet, unigrams, bigrams, titles)
                == ref_language_metadata(lang, wordnet, unigrams, bigrams, titles)), trial


def test_caps_relative_to_vocabulary() -> None:
    unigrams = [(f"w{i}", 1000 - i) for i in range(500)]
    titles = [(f"T{i}", i) for i in range(100)]
    rows = language_metadata("de", [], unigrams, [("a b", 30.0), ("c d", 31.0)], titles)
    sources = Counter(s for _, s in rows)
    assert sources == {"numeral": 100, "unigram": 50, "bigram": 1, "title": 76}
    assert [e for e, s in rows if s == "unigram"][:2] == ["w0", "w1"]


def test_written_metadata_is_what_the_crawl_reads(tmp_path) -> None:
    rows = {"de": language_metadata("de", ["Katze"], [("Hund", 3)], [], []),
            "th": language_metadata("th", [], [], [("แมว ดำ", 35.0)],
                                    [("กรุงเทพ", 5), ("เชียงใหม่", 2)])}  # title cap: 1
    index = write_worldwide_metadata(str(tmp_path / "worldwide"), rows)
    read = load_worldwide_metadata(index)
    assert read == {lang: [e for e, _ in r] for lang, r in rows.items()}
    assert "แมวดำ" in read["th"]
    doc = json.loads(Path(index).read_text())
    assert doc["languages"]["de"]["sources"] == {"numeral": 100, "wordnet": 1}
    sources = json.loads((tmp_path / "worldwide" / "th.sources.json").read_text())
    assert sources[-2:] == ["bigram", "title"] and "เชียงใหม่" not in read["th"]


def write_pages_dump(path: Path, dbname: str, pages: list[tuple[str, str]]) -> Path:
    from xml.sax.saxutils import escape

    body = "".join(f"<page><title>{escape(t)}</title><ns>0</ns><id>{i + 1}</id><revision>"
                   f"<id>{i + 1}</id><text>{escape(x)}</text></revision></page>"
                   for i, (t, x) in enumerate(pages))
    path.write_text('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/"><siteinfo>'
                    f"<sitename>W</sitename><dbname>{dbname}</dbname><namespaces>"
                    f'<namespace key="0" /></namespaces></siteinfo>{body}</mediawiki>',
                    encoding="utf-8")
    return path


def language_pages(lang: str) -> list[tuple[str, str]]:
    """Pages titled by the fixture's names, each text three names and a link to the next
    two pages (so titles have in-links)."""
    names = captions(lang)
    n = len(names)
    return [(names[i], f"{names[i]}。{names[(i + 1) % n]}\n{names[(i + 5) % n]} "
             f"[[{names[(i + 1) % n]}]] [[{names[(i + 2) % n]}]]") for i in range(n)]


def expected_language(lang: str, min_pmi: float,
                      titles: dict[str, int] | None = None) -> list[tuple[str, str]]:
    """The same list from counts gathered here: tokens per page (plain text: links as
    their text), PMI as log2(c(ab) N / (c(a) c(b))), in-links per title (or ``titles``:
    the language's summed pageviews)."""
    import math

    unigrams, bigrams, inlinks = Counter(), Counter(), Counter()
    for _, text in language_pages(lang):
        for target in [part.split("]]")[0] for part in text.split("[[")[1:]]:
            inlinks[target] += 1
        plain = text.replace("[[", "").replace("]]", "")
        tokens = word_tokens(plain, lang)
        unigrams.update(t for t in tokens if t)
        bigrams.update(f"{a} {b}" for a, b in zip(tokens, tokens[1:]) if a and b)
    total = sum(unigrams.values())
    pmi = [(b, math.log2(c * total / (unigrams[b.split(" ")[0]] * unigrams[b.split(" ")[1]])))
           for b, c in bigrams.items()]
    return language_metadata(lang, [], unigrams.items(), [x for x in pmi if x[1] >= min_pmi],
                             (inlinks if titles is None else titles).items(), min_pmi)


@pytest.mark.integration
@pytest.mark.usefixtures("beam_temp_files")
def test_wit_queries_worldwide(tmp_path, wiki_sample) -> None:
    from pipeline.cli import main

    dumps = [write_pages_dump(tmp_path / f"{lang}.xml", f"{lang}wiki", language_pages(lang))
             for lang in ("de", "th", "zh")]
    out = tmp_path / "out"
    assert main(["queries", "--worldwide", "--wiki", str(wiki_sample), *map(str, dumps),
                 "--min-pmi", "2", "--min-inlinks", "1", "--min-count", "20",
                 "--out", str(out)]) == 0
    folder = out / "queries" / "worldwide"
    index = str(folder / "index.json")
    read = load_worldwide_metadata(index)
    assert set(read) == {"en", "de", "th", "zh"}
    english = json.loads((out / "queries" / "metadata.json").read_text())
    assert read["en"] == english and len(english) > 1000  # MetaCLIP 1's list
    for lang in ("de", "th", "zh"):
        expected = expected_language(lang, 2.0)
        assert read[lang] == [e for e, _ in expected], lang
        sources = json.loads((folder / f"{lang}.sources.json").read_text())
        assert sources == [s for _, s in expected]
        assert {"unigram", "title"} <= set(sources), lang
    assert "สาธารณรัฐ" in read["th"] and "共和国" in read["zh"]


def test_pageview_lines_per_language() -> None:
    from queries.pageviews import title_views, wikipedia_language

    assert [wikipedia_language(d) for d in ("de", "de.wikipedia", "zh-yue", "de.m", "de.b",
                                            "de.m.wikipedia", "", ".wikipedia")] == \
        ["de", "de", "zh-yue", None, None, None, None, None]
    assert title_views("de Berliner_Mauer 80 0", language="de") == ("Berliner Mauer", 80)
    assert title_views("de.wikipedia Berliner_Mauer 80", language="de") == ("Berliner Mauer", 80)
    assert title_views("de Berliner_Mauer 80 0") is None  # English by default
    assert title_views("de.m Berliner_Mauer 80 0", language="de") is None  # mobile
    assert title_views("th %E0%B8%A5%E0%B8%B2%E0%B8%A7 60 0", language="th") == ("ลาว", 60)
    assert title_views("en Hot_dog 120 0") == ("Hot dog", 120)  # English as before


# summed pageviews per language in the fixture below: the order differs from the in-link
# ranking (every page has two in-links, so in-links order titles by text); a title outside
# the dump counts too, as for English
DE_VIEWS = {"Republik Benin": 400, "Republik Armenien": 90 + 90,
            "Brandenburger Tor": 150, "Berliner Mauer": 300}
TH_VIEWS = {"สาธารณรัฐเบนิน": 500, "กรุงเทพมหานคร": 120}


def write_pageviews(path: Path) -> Path:
    """Hourly lines of two languages, German in both domain spellings and summed over two
    lines, plus lines that count for neither (mobile, other projects, English, French,
    below the hourly minimum, a namespace)."""
    lines = ["de Republik_Benin 400 0", "de Republik_Armenien 90 0",
             "de.wikipedia Republik_Armenien 90", "de Brandenburger_Tor 150 0", "de Berliner_Mauer 300 0",
             "de.m Republik_Benin 9000 0", "de.b Republik_Benin 9000 0",
             "de Spezial:Suche 9000 0", "de Islamische_Republik_Afghanistan 1 0",
             "th %E0%B8%AA%E0%B8%B2%E0%B8%98%E0%B8%B2%E0%B8%A3%E0%B8%93%E0%B8%A3%E0%B8%B1%E0%B8%90"
             "%E0%B9%80%E0%B8%9A%E0%B8%99%E0%B8%B4%E0%B8%99 500 0",
             "th กรุงเทพมหานคร 120 0", "en Republic_of_Benin 700 0", "fr Bénin 700 0"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.integration
@pytest.mark.usefixtures("beam_temp_files")
def test_wit_queries_worldwide_titles_by_pageviews(tmp_path) -> None:
    """`--pageviews` with `--worldwide`: each language's titles are its own Wikipedia's
    titles by summed pageviews (hourly counts below --min-hourly-views ignored), not in-links."""
    from pipeline.cli import main

    dumps = [write_pages_dump(tmp_path / f"{lang}.xml", f"{lang}wiki", language_pages(lang))
             for lang in ("de", "th")]
    views = write_pageviews(tmp_path / "pageviews-20240101-000000")
    out = tmp_path / "out"
    assert main(["queries", "--worldwide", "--wiki", *map(str, dumps), "--pageviews", str(views),
                 "--min-pmi", "2", "--min-views", "100", "--min-hourly-views", "2",
                 "--out", str(out)]) == 0
    folder = out / "queries" / "worldwide"
    read = load_worldwide_metadata(str(folder / "index.json"))
    index = json.loads((folder / "index.json").read_text())
    for lang, by_views in (("de", DE_VIEWS), ("th", TH_VIEWS)):
        expected = expected_language(lang, 2.0, by_views)
        assert read[lang] == [e for e, _ in expected], lang
        sources = json.loads((folder / f"{lang}.sources.json").read_text())
        assert sources == [s for _, s in expected]
        assert index["languages"][lang]["titles"] == "pageviews"
        titles = [e for e, s in zip(read[lang], sources) if s == "title"]
        assert titles and set(titles) <= set(by_views), (lang, titles)
        assert expected != expected_language(lang, 2.0), lang  # in-links would differ
    # the titles outside the dump, ranked by their views; Armenia's two lines summed (each
    # alone is below --min-views); 76% of 4 titles: 3 kept
    de_titles = [e for e, s in zip(read["de"], json.loads(
        (folder / "de.sources.json").read_text())) if s == "title"]
    assert de_titles == ["Republik Benin", "Berliner Mauer", "Republik Armenien"]
    assert "กรุงเทพมหานคร" in read["th"]
    assert "Islamische Republik Afghanistan" not in read["de"]  # 1 view an hour: ignored
