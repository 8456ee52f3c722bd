"""Synthetic-but-realistic inputs for ``bench/scale.py``, one generator per stage.

Text comes from a Zipfian vocabulary (rank-frequency exponent ~1.1, an open-ended rank
space), so the number of distinct words and bigrams grows with the input like real text
(Heaps' law) instead of repeating the same pages. Every generator is seeded: the same size
gives the same files.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ZIPF_A = 1.1
VOCAB = 1 << 26  # open enough that new words keep appearing at every size we run
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]  # 90 syllables
PUNCT = {1: ",", 2: ".", 3: "the", 4: "of", 5: "and", 6: "in", 7: "a", 8: "to"}


class Vocabulary:
    """Rank -> word, built on demand (ranks 1-8 are punctuation and function words)."""

    def __init__(self) -> None:
        self.cache: dict[int, str] = {}

    def word(self, rank: int) -> str:
        found = self.cache.get(rank)
        if found is None:
            found = PUNCT.get(rank)
            if found is None:
                parts, n = [], rank
                while n:
                    n, r = divmod(n, len(SYLLABLES))
                    parts.append(SYLLABLES[r])
                found = "".join(parts)
            self.cache[rank] = found
        return found

    def words(self, ranks: np.ndarray) -> list[str]:
        unique, inverse = np.unique(ranks, return_inverse=True)
        table = np.array([self.word(int(r)) for r in unique], dtype=object)
        return table[inverse].tolist()


def zipf_ranks(rng: np.random.Generator, n: int) -> np.ndarray:
    ranks = rng.zipf(ZIPF_A, n)
    return np.where(ranks < VOCAB, ranks, ranks % VOCAB + 9)


# -- queries: a pages-articles XML dump ------------------------------------------------------

HEADER = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" '
          'xml:lang="en">\n  <siteinfo>\n    <sitename>Wikipedia</sitename>\n'
          '    <dbname>enwiki</dbname>\n    <case>first-letter</case>\n    <namespaces>\n'
          '      <namespace key="0" case="first-letter" />\n'
          '      <namespace key="6" case="first-letter">File</namespace>\n'
          '      <namespace key="14" case="first-letter">Category</namespace>\n'
          '    </namespaces>\n  </siteinfo>\n')
PAGE = ('  <page>\n    <title>{title}</title>\n    <ns>0</ns>\n    <id>{id}</id>\n{redirect}'
        '    <revision>\n      <id>{id}</id>\n      <model>wikitext</model>\n'
        '      <format>text/x-wiki</format>\n      <text xml:space="preserve">{text}</text>\n'
        '    </revision>\n  </page>\n')


def title_of(vocab: Vocabulary, article: int) -> str:
    return f"{vocab.word(article + 9).capitalize()} {vocab.word(article * 7 + 11)}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def page_text(vocab: Vocabulary, rng: np.random.Generator, articles: int) -> str:
    """~3 KB of wikitext: an infobox, sections, bold, links to other articles (Zipfian
    popularity, so some are linked often), a reference and categories."""
    ranks = zipf_ranks(rng, int(rng.integers(250, 700)))
    words = vocab.words(ranks)
    targets = np.minimum(rng.zipf(1.3, len(words) // 25 + 1) - 1, articles - 1)
    for slot, target in zip(range(5, len(words), 25), targets):
        words[slot] = f"[[{title_of(vocab, int(target))}|{words[slot]}]]"
    paragraphs = [" ".join(words[i:i + 120]) for i in range(0, len(words), 120)]
    body = "\n\n".join(f"== {p.split(' ', 1)[0].capitalize()} ==\n'''{p[:1].upper()}'''{p[1:]}"
                       "<ref>{{cite web|title=x|url=http://example.org}}</ref>"
                       for p in paragraphs)
    return (f"{{{{Infobox thing\n| name = {words[0]}\n| size = {len(words)}\n}}}}\n{body}\n"
            f"[[Category:{words[-1].capitalize()}]]")


def write_dump(path: Path, target_bytes: int, seed: int, first_article: int,
               articles: int) -> int:
    """A plain-XML pages-articles dump of about ``target_bytes``; 1 page in 20 is a redirect.
    Returns the number of bytes written."""
    rng = np.random.default_rng(seed)
    vocab = Vocabulary()
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(HEADER)
        article = first_article
        while written < target_bytes:
            title = title_of(vocab, article)
            if article % 20 == 19:
                page = PAGE.format(title=title, id=article + 1, text="#REDIRECT [[x]]",
                                   redirect=f'    <redirect title="{title_of(vocab, article - 1)}" />\n')
            else:
                page = PAGE.format(title=title, id=article + 1, redirect="",
                                   text=_escape(page_text(vocab, rng, articles)))
            f.write(page)
            written += len(page)
            article += 1
        f.write("</mediawiki>\n")
    return written


# -- crawl: metadata + URL lists -------------------------------------------------------------


def write_metadata(path: Path, entries: int, seed: int) -> None:
    """``entries`` distinct query entries: 60% single words, 40% word pairs (Zipfian)."""
    rng = np.random.default_rng(seed)
    vocab = Vocabulary()
    found: dict[str, None] = {}
    while len(found) < entries:
        ranks = zipf_ranks(rng, entries) + 8
        words = vocab.words(ranks)
        for i, word in enumerate(words):
            found.setdefault(word if i % 5 < 3 else f"{word} {words[i - 1]}", None)
            if len(found) >= entries:
                break
    path.write_text(json.dumps(list(found)))


def write_url_list(path: Path, rows: int, seed: int) -> None:
    """``rows`` (url, caption) pairs, alt-text-like captions of 3-14 words; 5% repeat an
    earlier pair (the dedup step has work to do)."""
    rng = np.random.default_rng(seed)
    vocab = Vocabulary()
    lengths = rng.integers(3, 15, rows)
    words = vocab.words(zipf_ranks(rng, int(lengths.sum())) + 2)
    captions, urls, pos = [], [], 0
    for i, n in enumerate(lengths.tolist()):
        if i and i % 20 == 0:
            captions.append(captions[i // 2])
            urls.append(urls[i // 2])
        else:
            captions.append(" ".join(words[pos:pos + n]).capitalize())
            urls.append(f"https://img{seed % 97}-{i % 1000}.example.com/{seed}/{i}.jpg")
        pos += n
    table = pa.table({"url": urls, "caption": captions})
    pq.write_table(table, path, row_group_size=50_000)


# -- shards: downloaded rows (img2dataset's per-shard parquet + tar) -------------------------

CLUSTER_CENTRES = [0, 0xFFFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xAAAA_AAAA_5555_5555,
                   0xF0F0_F0F0_0F0F_0F0F]


def _flip(rng: np.random.Generator, value: int, max_bits: int) -> int:
    for bit in rng.choice(64, int(rng.integers(0, max_bits + 1)), replace=False):
        value ^= 1 << int(bit)
    return value


def downloaded_rows(first_key: int, rows: int, seed: int) -> list[dict]:
    """Rows as the downloader writes them: 80% success (a tenth of them images too small for
    the filters), 20% failed downloads. pHashes: 3% exact copies (same sha256), 7% near copies (<= 8
    bits flipped) of earlier rows, 4% near a few cluster centres (blank, white, text-only
    images), the rest uniform."""
    rng = np.random.default_rng(seed)
    out: list[dict] = []
    for i in range(rows):
        key = f"{first_key + i:010d}"
        draw = rng.random()
        row = {"key": key, "uid": hashlib.sha1(key.encode()).hexdigest()[:16],
               "page_url": f"https://site{i % 5000}.example.com/p/{i}",
               "source": "urls", "matched_entry_ids": [int(i % 50_000)],
               "caption": f"caption {key} of a picture", "url": f"https://img.example.com/{key}.jpg",
               "status": "success", "error_message": None, "width": 256, "height": 256,
               "original_width": 640, "original_height": 480, "original_bytes": 60_000,
               "sha256": hashlib.sha256(key.encode()).hexdigest(), "phash": None}
        phash = int(rng.integers(0, 1 << 63)) * 2 + int(rng.integers(0, 2))
        if draw < 0.2:
            row.update(status="failed_to_download", error_message="timeout", width=None,
                       height=None, original_width=None, original_height=None,
                       original_bytes=None, sha256=None)
            out.append(row)
            continue
        if draw < 0.3:
            row.update(original_width=120, original_height=90)
        elif draw < 0.33 and out:
            donor = out[int(rng.integers(0, len(out)))]
            if donor["sha256"]:
                row.update(sha256=donor["sha256"], phash=donor["phash"])
        elif draw < 0.40 and out:
            donor = out[int(rng.integers(0, len(out)))]
            if donor["phash"]:
                phash = _flip(rng, int(donor["phash"], 16), 8)
        elif draw < 0.44:
            phash = _flip(rng, CLUSTER_CENTRES[int(rng.integers(0, len(CLUSTER_CENTRES)))], 6)
        if row["phash"] is None:
            row["phash"] = f"{phash:016x}"
        out.append(row)
    return out


def write_download_shard(folder: Path, shard: int, rows: list[dict]) -> None:
    """``{shard}.parquet``, ``{shard}.tar`` (a 64-byte stand-in image per success row: the
    dedup and assignment steps never decode images) and ``{shard}_stats.json``."""
    name = f"{shard:05d}"
    pq.write_table(pa.Table.from_pylist(rows), folder / f"{name}.parquet")
    with tarfile.open(folder / f"{name}.tar", "w") as tar:
        for row in rows:
            if row["status"] == "success":
                data = hashlib.sha256(row["key"].encode()).digest() * 2
                info = tarfile.TarInfo(f"{row['key']}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (folder / f"{name}_stats.json").write_text(json.dumps({"count": len(rows)}))
