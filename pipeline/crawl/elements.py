"""The elements the crawl pipeline carries between its steps (:mod:`pipeline.crawl.transform`),
named after their shape.

A NamedTuple is not a plain ``tuple`` to Beam's default coder, which pickles it (class name
and all: about 6x slower and 70% more bytes than the plain tuple); they are registered with
``pipeline.core.beam.register_tuple_coder`` to travel as plain tuples (the nested Pair and
TextMatch too), and the crawl's transforms declare their output types so Beam uses it."""

from __future__ import annotations

from typing import NamedTuple

from pipeline.core.beam import register_tuple_coder
from pipeline.crawl.pairs import Pair


class TextMatch(NamedTuple):
    """Text ``text_index`` of an image and the ids of the metadata entries it contains;
    with ``--worldwide``, ``language`` is the metadata language the text was routed to (the
    ids index that language's query list), else ``""``."""

    text_index: int
    entry_ids: tuple[int, ...]
    language: str = ""


class MatchedPair(NamedTuple):
    """A pair that matched: its uid, the pair, and a TextMatch for each text that matched
    (in text order; texts that matched nothing are left out)."""

    uid: str
    pair: Pair
    matches: tuple[TextMatch, ...]


class FirstCopy(NamedTuple):
    """Dedup state of one uid: its first copy by (source, page_url, url) and how many
    copies were seen (``first`` is None only in an empty accumulator)."""

    first: MatchedPair | None
    copies: int


register_tuple_coder(MatchedPair, FirstCopy)
