"""Benchmark: MetaCLIP substring matching throughput, texts per CPU-second, against a
500,000-entry query list.

Side by side on the same texts:
  naive  - MetaCLIP's loop (`f" {entry} " in spaced_text` for every entry), on a subset
  bare   - a plain loop over one pyahocorasick automaton (the anchor)
  beam   - the matching step of the crawl stage (pipeline.crawl.transform.MatchEntries) in a
           Beam pipeline on the in-process runner: read texts -> pairs -> match -> digest
  job    - the whole `wit crawl --urls` job (read, dedup, match, count, balance, write)
Matches must be identical (naive vs bare on the subset; bare vs beam on all texts, by an
order-independent digest). Then peak RSS of the whole job for 1x and 10x input, each in
its own process.

Inputs are real words: WordNet 3.0 lemma names (/usr/share/wordnet, Debian wordnet-base)
plus word bigrams of the Wikipedia sample (../shared/data), up to 500,000 entries; texts are
the alt texts of the Common Crawl sample WARCs plus alt-length snippets of Wikipedia text.

    python bench/match.py [--texts 100000] [--entries 500000] [--naive 300] [--rss-base 20000]
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
from timing import cpu_seconds, peak_rss_mb  # noqa: E402

SHARED = Path(os.environ.get("WIT_SHARED_DATA", REPO.parent / "shared" / "data"))
WORDNET = Path("/usr/share/wordnet")
WIKI = SHARED / "wikipedia" / "enwiki-sample-pages-articles.xml.bz2"
WARCS = sorted((SHARED / "webarchive").glob("*.warc.gz"))


def wordnet_lemmas() -> list[str]:
    lemmas: dict[str, None] = {}
    for pos in ("noun", "verb", "adj", "adv"):
        with open(WORDNET / f"data.{pos}", encoding="utf-8") as f:
            for line in f:
                if line.startswith(" "):
                    continue
                fields = line.split()
                n = int(fields[3], 16)
                for i in range(n):
                    word = re.sub(r"\(\w+\)$", "", fields[4 + 2 * i]).replace("_", " ")
                    lemmas[word] = None
    return list(lemmas)


def wiki_text() -> str:
    with bz2.open(WIKI, "rt", encoding="utf-8") as f:
        xml = f.read()
    text = " ".join(re.findall(r"<text[^>]*>(.*?)</text>", xml, re.S))
    text = re.sub(r"&lt;.*?&gt;|\{\{.*?\}\}|\[\[(?:[^|\]]*\|)?([^\]]*)\]\]", r"\1", text)
    return re.sub(r"[=\[\]{}|'*#]+", " ", text)


def build_metadata(n: int, wiki: str) -> list[str]:
    entries = dict.fromkeys(wordnet_lemmas())
    words = re.findall(r"[A-Za-z][a-z]+", wiki)
    for a, b in zip(words, words[1:]):
        if len(entries) >= n:
            break
        entries.setdefault(f"{a} {b}", None)
    if len(entries) < n:  # more real-word bigrams: WordNet adjective + noun lemmas
        adjs = [w for w in wordnet_lemmas() if " " not in w][:3000]
        nouns = [w for w in wordnet_lemmas() if " " not in w][-3000:]
        for a in adjs:
            for b in nouns:
                if len(entries) >= n:
                    break
                entries.setdefault(f"{a} {b}", None)
    return list(entries)[:n]


def build_texts(n: int, wiki: str) -> list[str]:
    from collections import Counter as C

    from pipeline.crawl.pairs import normalize_text
    from pipeline.crawl.warc_source import warc_pairs
    alts = [p.text for w in WARCS for p in warc_pairs(str(w), C())]
    snippets = []
    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(wiki.split())):
        words = sentence.split()
        for start in range(0, len(words), 12):
            chunk = " ".join(words[start:start + 3 + (len(snippets) * 7) % 13])
            if len(chunk) > 8:
                snippets.append(chunk)
    # as the URL-list reader will see them (entities decoded, whitespace collapsed)
    def as_read(text: str) -> str:  # a fixed point: the XML holds double-escaped entities
        while (clean := normalize_text(text, unescape=True)) != text:
            text = clean
        return text

    base = [t for t in map(as_read, alts + snippets) if t]
    # vary the repeats so every text is distinct (exact duplicates would be deduplicated)
    return [t if i < len(base) else f"{t} {i // len(base)}"
            for i, t in enumerate(base[i % len(base)] for i in range(n))]


def digest(key: str, ids: list[int]) -> int:
    h = hashlib.blake2b(f"{key}:{ids}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big")


def run_beam_stage(meta_path: str, urls_path: str) -> tuple[int, int]:
    """The crawl stage's read+match step (ReadFiles on a URL list) in a Beam pipeline on
    the in-process runner; returns (digest of (uid, ids), matched)."""
    import apache_beam as beam

    from pipeline.core.beam import make_pipeline
    from pipeline.crawl.transform import CrawlConfig, ReadFiles

    def fold(elements):
        total, n = 0, 0
        for value, count in elements:
            total, n = (total + value) % 2**64, n + count
        return total, n

    config = CrawlConfig(metadata=meta_path, out="unused")
    p = make_pipeline([])
    result = (p | beam.Create([urls_path])
              | beam.ParDo(ReadFiles("urls", config)).with_outputs("stats", main="matched")
              ).matched
    out_path = urls_path + ".digest.json"
    # a URL list gives one text per image: its ids, as the bare loop computes them
    (result | beam.Map(lambda m: (digest(m.uid, list(m.matches[0].entry_ids)), 1))
     | beam.CombineGlobally(fold)
     | beam.Map(lambda r: Path(out_path).write_text(json.dumps(list(r)))))
    p.run().wait_until_finish()
    total, n = json.loads(Path(out_path).read_text())
    return total, n


def child_job(args) -> None:
    """Run the whole crawl job on a URL list; print peak RSS (for the --rss runs)."""
    from pipeline.cli import main
    code = main(["crawl", "--urls", args.urls, "--metadata", args.meta, "--out", args.out])
    print(json.dumps({"code": code, "max_rss_mb": peak_rss_mb()}))


def write_url_list(path: Path, texts: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"url": [f"https://img.example/{i}.jpg" for i in range(len(texts))],
                             "caption": texts}), path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=100_000, help="texts matched (default 100000)")
    ap.add_argument("--entries", type=int, default=500_000, help="metadata size (500000)")
    ap.add_argument("--naive", type=int, default=300, help="texts for the naive scan (300)")
    ap.add_argument("--rss-base", type=int, default=20_000,
                    help="texts of the 1x RSS run; the 10x run uses ten times as many")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--urls", help=argparse.SUPPRESS)
    ap.add_argument("--meta", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_job(args)
        return 0
    os.environ.setdefault("WIT_PROGRESS", "0")
    if not WIKI.exists() or not (WORDNET / "data.noun").exists():
        print(f"needs {WIKI} and WordNet in {WORDNET} (apt-get install wordnet-base)")
        return 2

    import ahocorasick

    from pipeline.crawl.matching import Matcher, naive_match, spacing

    wiki = wiki_text()
    metadata = build_metadata(args.entries, wiki)
    texts = build_texts(args.texts, wiki)
    tmp = Path(tempfile.mkdtemp(prefix="bench-match-"))
    meta_path = tmp / "metadata.json"
    meta_path.write_text(json.dumps(metadata))
    texts_path = tmp / "texts.tsv"
    texts_path.write_text("".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    print(f"metadata: {len(metadata):,} entries (WordNet lemmas + Wikipedia bigrams); "
          f"texts: {len(texts):,} (mean {sum(map(len, texts)) / len(texts):.0f} chars)")

    urls = tmp / "urls.parquet"
    write_url_list(urls, texts)

    # bare anchor: one automaton, a plain loop over the same URL list
    from collections import Counter

    from pipeline.crawl.pairs import make_uid
    from pipeline.crawl.url_lists import url_list_pairs
    c0 = cpu_seconds()
    automaton = ahocorasick.Automaton()
    keys: dict[str, list[int]] = {}
    for i, e in enumerate(metadata):
        keys.setdefault(f" {e} ", []).append(i)
    for k, ids in keys.items():
        automaton.add_word(k, ids)
    automaton.make_automaton()
    build_cpu = cpu_seconds() - c0
    c0 = cpu_seconds()
    bare, bare_digest, read_texts = [], 0, []
    for pair in url_list_pairs(str(urls), Counter()):
        read_texts.append(pair.text)
        found: set[int] = set()
        for _, ids in automaton.iter(spacing(pair.text)):
            found.update(ids)
        result = sorted(found)
        bare.append(result)
        if result:
            bare_digest = (bare_digest + digest(make_uid(pair.url, pair.text), result)) % 2**64
    bare_cpu = cpu_seconds() - c0
    matched = sum(1 for ids in bare if ids)
    assert read_texts == texts, "the URL list does not hold the benchmark texts"
    c0 = cpu_seconds()
    for text in texts:
        for _ in automaton.iter(spacing(text)):
            pass
    scan_cpu = cpu_seconds() - c0
    del automaton

    # naive MetaCLIP scan on a subset, and identity with the automaton
    c0 = cpu_seconds()
    naive = [naive_match(t, metadata) for t in texts[: args.naive]]
    naive_cpu = cpu_seconds() - c0
    assert naive == bare[: args.naive], "naive scan and automaton disagree"
    assert Matcher(metadata).match(texts[0]) == bare[0]

    # the crawl stage's read+match step in Beam (automaton built in DoFn.setup)
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    beam_digest, beam_matched = run_beam_stage(str(meta_path), str(urls))
    beam_cpu = cpu_seconds() - c0
    beam_wall = time.perf_counter() - t0
    assert (beam_digest, beam_matched) == (bare_digest, matched), "Beam matches differ"
    # the same on a tenth of the texts: the difference is the marginal cost per text,
    # without the fixed cost of starting a pipeline and building the automaton
    small = tmp / "urls_small.parquet"
    n_small = len(texts) // 10
    write_url_list(small, texts[:n_small])
    c0 = cpu_seconds()
    run_beam_stage(str(meta_path), str(small))
    small_cpu = cpu_seconds() - c0

    # the whole job, CPU of its own process
    subprocess.run([sys.executable, __file__, "--child", "--urls", str(urls),
                    "--meta", str(meta_path), "--out", str(tmp / "job")],
                   capture_output=True, text=True, check=True)
    job_cpu_s = cpu_seconds(resource.RUSAGE_CHILDREN)

    rate = {name: n / cpu for name, n, cpu in [
        ("naive", args.naive, naive_cpu), ("scan", len(texts), scan_cpu),
        ("bare", len(texts), bare_cpu),
        ("beam", len(texts), beam_cpu), ("beam_excl_build", len(texts), beam_cpu - build_cpu),
        ("beam_marginal", len(texts) - n_small, beam_cpu - small_cpu),
        ("job", len(texts), job_cpu_s)]}
    print(f"automaton build ({len(metadata):,} entries): {build_cpu:.1f} CPU-s, once per worker")
    print(f"matched texts: {matched:,}/{len(texts):,}; identical matches: naive == bare on "
          f"{args.naive} texts, bare == beam on all {len(texts):,}")
    print(f"{'variant':<36}{'texts/CPU-s':>14}{'bare/variant':>14}")
    labels = {"naive": "naive MetaCLIP scan (read excl.)",
              "scan": "automaton scan only (read excl.)",
              "bare": "bare loop: read list + automaton",
              "beam": "Beam read+match (incl. build)",
              "beam_excl_build": "Beam read+match (excl. build)",
              "beam_marginal": "Beam read+match, marginal (10x-1x)",
              "job": "whole wit crawl job (incl. build)"}
    for name, label in labels.items():
        print(f"{label:<36}{rate[name]:>14,.0f}{rate['bare'] / rate[name]:>13.2f}x")
    print(f"Beam read+match wall time: {beam_wall:.1f}s; ratio to the anchor "
          f"(goal <= 1.2): {rate['bare'] / rate['beam']:.2f} incl. build, "
          f"{rate['bare'] / rate['beam_excl_build']:.2f} excl. build, "
          f"{rate['bare'] / rate['beam_marginal']:.2f} marginal")

    # peak RSS, 1x and 10x, each in a fresh process
    for factor in (1, 10):
        n = args.rss_base * factor
        path = tmp / f"rss{factor}.parquet"
        write_url_list(path, build_texts(n, wiki))
        out = subprocess.run([sys.executable, __file__, "--child", "--urls", str(path),
                              "--meta", str(meta_path), "--out", str(tmp / f"rss{factor}")],
                             capture_output=True, text=True, check=True).stdout
        rss = json.loads(out.strip().splitlines()[-1])["max_rss_mb"]
        print(f"peak RSS, whole job, {factor:>2}x input ({n:,} texts): {rss:,.0f} MB")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
