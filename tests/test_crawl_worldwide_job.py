"""``wit crawl --worldwide`` end to end on real texts in five languages (tests/data/worldwide:
official country names from Debian's iso-codes in en, de, ja, zh, th): per-language entry
counts and t_lang checked against an independent computation (the real LID model, the
reference spacing rule and Algorithm 1 written in tests/test_crawl_worldwide.py), and the
outputs byte-identical on the in-process runner and with two worker processes."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_crawl_worldwide import ref_match, ref_p_to_t, ref_t_to_p

from pipeline.cli import main
from pipeline.core.language import OTHER, detect_language
from schemas import CANDIDATES, LANGUAGE_ENTRY_COUNTS, read_validated

DATA = Path(__file__).parent / "data" / "worldwide"
T_EN, SEED = 5, 4
RUNNERS = {"in_process": [],
           "multi_processing": ["--direct_running_mode=multi_processing",
                                "--direct_num_workers=2"]}

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("beam_temp_files")]


def expected_counts() -> dict[str, Counter]:
    metadata = {lang: json.loads((DATA / f"{lang}.json").read_text(encoding="utf-8"))
                for lang in json.loads((DATA / "index.json").read_text())["languages"]}
    counts: dict[str, Counter] = {lang: Counter() for lang in metadata}
    for line in (DATA / "captions.jsonl").read_text(encoding="utf-8").splitlines():
        caption = json.loads(line)["caption"]
        lang = detect_language(caption)
        if lang in metadata:
            counts[lang].update(ref_match(caption, metadata[lang]))
    return {lang: Counter({metadata[lang][i]: n for i, n in c.items()})
            for lang, c in counts.items()}


def run_crawl(out: Path, beam_args: list[str]) -> None:
    assert main(["crawl", "--worldwide", "--metadata", str(DATA / "index.json"),
                 "--urls", str(DATA / "captions.jsonl"), "--t", str(T_EN), "--seed", str(SEED),
                 "--num-shards", "2", "--out", str(out), "--", *beam_args]) == 0


def test_worldwide_crawl(tmp_path) -> None:
    digests = {}
    for name, beam_args in RUNNERS.items():
        run_crawl(tmp_path / name, beam_args)
        folder = tmp_path / name / "candidates"
        digests[name] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in sorted(folder.iterdir()) if p.name != "stats.json"}
        stats = json.loads((folder / "stats.json").read_text())
        assert stats["balancing"]["worldwide"] is True
    assert digests["in_process"] == digests["multi_processing"]

    folder = tmp_path / "in_process" / "candidates"
    rows = read_validated(str(folder / "language_entry_counts.parquet"),
                          LANGUAGE_ENTRY_COUNTS).to_pylist()
    found = {lang: Counter({r["entry"]: r["count"] for r in rows
                            if r["language"] == lang and r["count"]})
             for lang in {r["language"] for r in rows}}
    expected = expected_counts()
    assert found == expected
    for lang in ("en", "de", "ja", "zh", "th"):  # every language really matched
        assert sum(found[lang].values()) >= 20, lang
    assert found["en"]["Public"] == 0 and found["de"]["Republik"] < found["ja"]["共和国"]
    assert found["th"]["รัฐ"] > found["th"]["สาธารณรัฐ"]  # a Thai entry inside longer words

    # t_lang from t_en through the tail proportion (Algorithm 1), unmatched entries as 0
    doc = json.loads((folder / "languages.json").read_text())
    full = {lang: [next(r["count"] for r in rows if r["language"] == lang
                        and r["entry_id"] == i) for i in range(item["entries"])]
            for lang, item in doc["languages"].items()}
    p = ref_t_to_p(full["en"], T_EN)
    assert doc["p"] == p and 0 < p < 1
    for lang, item in doc["languages"].items():
        expected_t = T_EN if lang == "en" else max(1, ref_p_to_t(full[lang], p))
        assert item["t"] == expected_t, lang
        assert item["matches"] == sum(full[lang])
    assert len({item["t"] for item in doc["languages"].values()}) > 1  # thresholds differ

    kept = [r for part in sorted(folder.glob("part-*.parquet"))
            for r in read_validated(str(part), CANDIDATES).to_pylist()]
    assert kept and {r["language"] for r in kept} <= set(doc["languages"]) | {OTHER}
    assert all(r["texts"] == [r["text"]] for r in kept)
    # every kept row's entries are its own language's and were counted
    for r in kept:
        assert all(full[r["language"]][e] > 0 for e in r["matched_entry_ids"])
    # a frequent English entry is sampled down, a rare one keeps every image
    en_kept = Counter(e for r in kept if r["language"] == "en" for e in r["matched_entry_ids"])
    assert en_kept[0] < found["en"]["Republic"]
    assert len(pq.ParquetFile(folder / "language_entry_counts.parquet").schema_arrow) == 5


def test_each_text_of_an_image_has_its_own_language(tmp_path) -> None:
    """An <img> whose alt and title are in different languages: each text is routed by its
    own LID call and counted in its language; the image keeps one of them (drawn), with that
    text's language and entry ids. A French text (no French list) goes to `other`."""
    from helpers.crawl import write_warc

    rows = [json.loads(line) for line in
            (DATA / "captions.jsonl").read_text(encoding="utf-8").splitlines()]
    en = [r["caption"] for r in rows if "/en/" in r["url"]]
    ja = [r["caption"] for r in rows if "/ja/" in r["url"]]
    imgs = "".join(f'<img src="/i{i}.png" alt="{a}" title="{b}">'
                   for i, (a, b) in enumerate(zip(en, ja)))
    imgs += '<img src="/fr.png" alt="Un chat noir dort sur le canapé du salon">'
    warc = write_warc(tmp_path / "p.warc.gz", [("https://site.test/page", f"<p>{imgs}</p>")])
    out = tmp_path / "out"
    assert main(["crawl", "--worldwide", "--metadata", str(DATA / "index.json"),
                 "--warc", str(warc), "--t", "1000", "--out", str(out)]) == 0
    folder = out / "candidates"
    counts = read_validated(str(folder / "language_entry_counts.parquet"),
                            LANGUAGE_ENTRY_COUNTS).to_pylist()
    found = Counter({(r["language"], r["entry"]): r["count"] for r in counts if r["count"]})
    expected: Counter = Counter()
    for text in en + ja:  # each text routed on its own (ja captions LID as ja, or zh)
        lang = detect_language(text)
        if not (DATA / f"{lang}.json").exists():
            continue  # `other`: no list, no match
        entries = json.loads((DATA / f"{lang}.json").read_text(encoding="utf-8"))
        expected.update((lang, entries[i]) for i in ref_match(text, entries))
    assert found == expected and {"en", "ja"} <= {lang for lang, _ in found}
    kept = [r for part in sorted(folder.glob("part-*.parquet"))
            for r in read_validated(str(part), CANDIDATES).to_pylist()]
    assert {"en", "ja"} <= {r["language"] for r in kept}  # both drawn somewhere
    for r in kept:
        assert r["text"] in (en + ja) and detect_language(r["text"]) == r["language"]
        entries = json.loads((DATA / f"{r['language']}.json").read_text(encoding="utf-8"))
        assert r["matched_entry_ids"] == ref_match(r["text"], entries)
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["totals"]["unmatched"] >= 1  # the French text: `other`, no list, no match
