"""MetaCLIP 2's per-language balancing (pure; no Beam).

Counts are kept per (language, entry). English keeps the threshold ``t_en`` (``--t``); every
other language gets the threshold that leaves the same *tail proportion* of its matches as
``t_en`` leaves of English's (MetaCLIP 2, Algorithm 1):

- ``t_to_p(counts_en, t_en)``: the share of English matches that fall on entries counted
  fewer than ``t_en`` times;
- ``p_to_t(counts_lang, p)``: the count of the entry, in ascending count order, at which the
  cumulative share of the language's matches is closest to ``p`` (first such entry on a tie);
  ``counts_lang`` holds every entry of the language's metadata, unmatched ones as 0.

An entry's probability is ``t_lang / max(count, t_lang)``. Per image, one of its texts that
matched is drawn at random and the image is kept with probability ``1 - prod(1 - p_e)`` over
the entries that text matched, in that text's language. Both draws hash ``(seed, uid)``, so
the result does not depend on the runner, worker count or order.

Where we differ from the reference (docs/crawl.md): a threshold is at least 1 (the reference
can give ``t = 0``, a division by zero); without English matches ``p`` is undefined and every
language keeps ``t_en``; a language without matches keeps ``t_en`` (nothing to balance).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from pipeline.crawl.balancing import entry_probability, keep_probability, uniform_draw

ENGLISH = "en"


def t_to_p(counts: Sequence[int], t: int) -> float | None:
    """Tail proportion: the share of matches on entries counted fewer than ``t`` times;
    None when there are no matches."""
    total = sum(counts)
    if total == 0:
        return None
    return sum(c for c in counts if c < t) / total


def p_to_t(counts: Sequence[int], p: float) -> int | None:
    """The threshold giving tail proportion ``p`` (see the module docstring), at least 1;
    None when there are no matches."""
    ordered = sorted(counts)
    total = sum(ordered)
    if total == 0:
        return None
    best_count, best_gap, cumulative = ordered[0], float("inf"), 0
    for count in ordered:
        cumulative += count
        gap = abs(cumulative / total - p)
        if gap < best_gap:  # strict: the first entry wins a tie, as numpy's argmin
            best_count, best_gap = count, gap
    return max(1, best_count)


class Thresholds(NamedTuple):
    """The tail proportion of English (None: no English matches) and ``t`` per language."""

    p: float | None
    t: dict[str, int]


def language_thresholds(counts: Mapping[str, Sequence[int]], t_en: int) -> Thresholds:
    """``t`` for every language of ``counts`` (language -> count of every entry)."""
    if t_en <= 0:
        raise ValueError(f"t must be positive, got {t_en}")
    p = t_to_p(counts.get(ENGLISH, ()), t_en)
    thresholds = {}
    for language, language_counts in counts.items():
        t = None if language == ENGLISH or p is None else p_to_t(language_counts, p)
        thresholds[language] = t_en if t is None else t
    return Thresholds(p, dict(sorted(thresholds.items())))


class TextEntries(NamedTuple):
    """One text of an image that matched: its index, language and entry ids."""

    text_index: int
    language: str
    entry_ids: tuple[int, ...]


def _draw(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def choose_text(uid: str, texts: int, seed: int) -> int:
    """Which of an image's ``texts`` matched texts is drawn (uniform, from (seed, uid))."""
    if texts <= 0:
        raise ValueError("an image needs at least one matched text")
    return min(texts - 1, int(_draw(seed, f"{uid}\x00choice") * texts))


def curate(uid: str, matched: Sequence[TextEntries],
           counts: Mapping[tuple[str, int], int], thresholds: Mapping[str, int],
           seed: int) -> TextEntries | None:
    """MetaCLIP 2's curation of one image: the drawn text if the image is kept, else None.
    ``counts`` maps (language, entry id) to its count, ``thresholds`` language to ``t``."""
    if not matched:
        return None
    chosen = matched[choose_text(uid, len(matched), seed)]
    t = thresholds[chosen.language]
    p = keep_probability(entry_probability(counts.get((chosen.language, e), 0), t)
                         for e in chosen.entry_ids)
    if p >= 1.0 or uniform_draw(seed, uid) < p:
        return chosen
    return None
