"""MetaCLIP balancing (pure; no Beam).

Entry ``e`` matched by ``count_e`` pairs gets ``p_e = t / max(count_e, t)``: entries seen at
most ``t`` times keep every pair, frequent ones are sampled down to about ``t`` pairs. A pair
that matched entries ``E`` is kept with probability ``1 - prod_{e in E} (1 - p_e)`` (kept if
any of its entries would keep it). The uniform draw is a hash of ``(seed, uid)`` instead of a
random generator, so the result does not depend on the runner, worker count or order.

An image with several texts (alt, title, data-image-title, ...) is balanced per text, as
MetaCLIP's indexing does (every text is its own entry in the inverted index): text ``i`` that
matched ``E_i`` is kept with probability ``1 - prod_{e in E_i} (1 - p_e)``, each text with
its own draw (:func:`text_draw_key`), and the image is kept with the texts that were kept,
if any.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

DEFAULT_T = 20_000


def entry_probability(count: int, t: int) -> float:
    """``p_e = t / max(count_e, t)`` (1.0 for an entry seen at most ``t`` times)."""
    if t <= 0:
        raise ValueError(f"t must be positive, got {t}")
    return t / max(count, t)


def keep_probability(probabilities: Iterable[float]) -> float:
    """``1 - prod(1 - p_e)``; 0.0 for a pair that matched nothing."""
    miss = 1.0
    for p in probabilities:
        if p >= 1.0:
            return 1.0
        miss *= 1.0 - p
    return 1.0 - miss


def uniform_draw(seed: int, uid: str) -> float:
    """A number in [0, 1) determined by ``(seed, uid)`` alone (first 64 bits of SHA-256)."""
    digest = hashlib.sha256(f"{seed}\x00{uid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def keep(uid: str, entry_ids: Iterable[int], counts: Mapping[int, int], t: int,
         seed: int) -> bool:
    """Whether the pair ``uid`` that matched ``entry_ids`` survives balancing."""
    p = keep_probability(entry_probability(counts.get(e, 0), t) for e in entry_ids)
    if p >= 1.0:
        return True
    return uniform_draw(seed, uid) < p


def text_draw_key(uid: str, index: int) -> str:
    """What the draw of text ``index`` of image ``uid`` hashes: ``uid`` for the first text
    (so a one-text image draws exactly as :func:`keep`), ``uid + "\\x00" + index`` after."""
    return uid if index == 0 else f"{uid}\x00{index}"


def keep_texts(uid: str, matched: Iterable[tuple[int, Iterable[int]]],
               counts: Mapping[int, int], t: int, seed: int) -> list[int]:
    """The indices of the texts of image ``uid`` that survive balancing; ``matched`` holds
    ``(text index, entry ids)`` for every text of the image that matched an entry."""
    return [index for index, entry_ids in matched
            if keep(text_draw_key(uid, index), entry_ids, counts, t, seed)]
