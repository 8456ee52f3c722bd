"""``wit crawl --worldwide``: MetaCLIP 2's counting and per-language balancing as one
composite PTransform (:class:`BalanceWorldwide`), applied to the deduplicated MatchedPairs
whose TextMatches carry their language (routed and matched where they were read):

    MatchedPair ──LanguageEntryIds, Count──► ((language, entry id), count)
    counts ──ToList, Thresholds──► Thresholds(p, t per language)          (one element)
    MatchedPair + counts + thresholds ──Curate──► kept row (a CANDIDATES dict)
    counts + thresholds ──► language_entry_counts.parquet, languages.json

The pure rules are in :mod:`pipeline.crawl.worldwide_balancing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.pvalue import AsDict, AsSingleton

from pipeline.core import fsio
from pipeline.crawl.balancing import entry_probability
from pipeline.crawl.elements import MatchedPair
from pipeline.crawl.worldwide_balancing import (
    TextEntries,
    Thresholds,
    curate,
    language_thresholds,
)
from pipeline.crawl.worldwide_metadata import load_worldwide_metadata
from pipeline.crawl.writer import parquet_bytes
from schemas import validate
from schemas.candidates import LANGUAGE_ENTRY_COUNTS

LANGUAGE_ENTRY_COUNTS_FILE = "language_entry_counts.parquet"
LANGUAGES_FILE = "languages.json"

LanguageEntry = tuple[str, int]


def language_entries(m: MatchedPair) -> list[LanguageEntry]:
    """Every matched text counts its entries in its own language (MetaCLIP 2)."""
    return [(match.language, e) for match in m.matches for e in match.entry_ids]


def full_counts(counts: Mapping[LanguageEntry, int],
                sizes: Mapping[str, int]) -> dict[str, list[int]]:
    """Language -> the count of every entry of its query list (0 where never matched)."""
    return {lang: [counts.get((lang, i), 0) for i in range(size)]
            for lang, size in sizes.items()}


def thresholds_of(counts: Iterable[tuple[LanguageEntry, int]], index: str,
                  t_en: int) -> Thresholds:
    sizes = {lang: len(entries) for lang, entries in load_worldwide_metadata(index).items()}
    return language_thresholds(full_counts(dict(counts), sizes), t_en)


def language_entry_counts_table(metadata: Mapping[str, Sequence[str]],
                                counts: Mapping[LanguageEntry, int],
                                thresholds: Thresholds) -> pa.Table:
    rows = {name: [] for name in LANGUAGE_ENTRY_COUNTS.names}  # type: dict[str, list[Any]]
    for lang in sorted(metadata):
        t = thresholds.t[lang]
        for entry_id, entry in enumerate(metadata[lang]):
            n = counts.get((lang, entry_id), 0)
            for name, value in zip(LANGUAGE_ENTRY_COUNTS.names,
                                   (lang, entry_id, entry, n, entry_probability(n, t))):
                rows[name].append(value)
    return pa.table(rows, schema=LANGUAGE_ENTRY_COUNTS)


def languages_document(metadata: Mapping[str, Sequence[str]],
                       counts: Mapping[LanguageEntry, int], thresholds: Thresholds,
                       t_en: int) -> dict[str, Any]:
    """``languages.json``: t_en, p and, per language, t, entries and matches counted."""
    matches: dict[str, int] = {}
    for (lang, _), n in counts.items():
        matches[lang] = matches.get(lang, 0) + n
    return {"t_en": t_en, "p": thresholds.p,
            "languages": {lang: {"t": thresholds.t[lang], "entries": len(metadata[lang]),
                                 "matches": matches.get(lang, 0)}
                          for lang in sorted(metadata)}}


def write_language_outputs(_: Any, out: str, index: str, t_en: int,
                           counts: Mapping[LanguageEntry, int],
                           thresholds: Thresholds) -> list[str]:
    metadata = load_worldwide_metadata(index)
    table_path = fsio.join(out, LANGUAGE_ENTRY_COUNTS_FILE)
    table = validate(language_entry_counts_table(metadata, counts, thresholds),
                     LANGUAGE_ENTRY_COUNTS, where=table_path)
    fsio.atomic_write_bytes(table_path, parquet_bytes(table))
    doc_path = fsio.join(out, LANGUAGES_FILE)
    fsio.atomic_write_json(doc_path, languages_document(metadata, counts, thresholds, t_en))
    return [table_path, doc_path]


class Curate(beam.DoFn):
    """A MatchedPair -> its candidate row if MetaCLIP 2's curation keeps the image: one of
    its matched texts drawn at random, kept with ``1 - prod(1 - p_e)`` in its language."""

    def __init__(self, seed: int):
        self.seed = seed

    def process(self, element: MatchedPair, counts: dict[LanguageEntry, int],
                thresholds: Thresholds) -> Iterator[dict[str, Any]]:
        uid, pair, matches = element
        texts = [TextEntries(m.text_index, m.language, m.entry_ids) for m in matches]
        chosen = curate(uid, texts, counts, thresholds.t, self.seed)
        if chosen is None:
            return
        text = pair.texts[chosen.text_index]
        yield {"uid": uid, "url": pair.url, "text": text, "texts": [text],
               "page_url": pair.page_url, "source": pair.source,
               "matched_entry_ids": list(chosen.entry_ids), "language": chosen.language}


class BalanceWorldwide(beam.PTransform):
    """Unique MatchedPairs -> (kept rows, paths of the per-language outputs)."""

    def __init__(self, out: str, index: str, t_en: int, seed: int):
        super().__init__()
        self.out, self.index, self.t_en, self.seed = out, index, t_en, seed

    def expand(self, unique_pairs: beam.PCollection):
        counts = (unique_pairs
                  | "LanguageEntryIds" >> beam.FlatMap(language_entries)
                  | "CountLanguageEntries" >> beam.combiners.Count.PerElement())
        thresholds = (counts
                      | "AllCounts" >> beam.combiners.ToList()
                      | "Thresholds" >> beam.Map(thresholds_of, self.index, self.t_en))
        kept = unique_pairs | "Curate" >> beam.ParDo(
            Curate(self.seed), counts=AsDict(counts), thresholds=AsSingleton(thresholds))
        files = (unique_pairs.pipeline | "OneLanguageOutput" >> beam.Create([None])
                 | "WriteLanguageOutputs" >> beam.FlatMap(
                     write_language_outputs, self.out, self.index, self.t_en,
                     counts=AsDict(counts), thresholds=AsSingleton(thresholds)))
        return kept, files
