"""MetaCLIP substring matching (pure; no Beam).

MetaCLIP (``metaclip/metaclip1/substr_matching.py``) pads the text with a space at both ends,
puts spaces around ``, . ; : ? ! ` `` and turns tabs, newlines and carriage returns into
spaces; entry ``e`` matches when ``" " + e + " "`` occurs in that string (case-sensitive).
:class:`Matcher` gives exactly those results with one Aho–Corasick pass over the text instead
of one ``in`` per entry; :func:`naive_match` is MetaCLIP's loop, kept as the reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import ahocorasick
import fsspec

from pipeline.core.errors import InputError

PUNCTS_TO_WRAP = (",", ".", ";", ":", "?", "!", "`")
CHARS_TO_SPACE = ("\t", "\n", "\r")


def spacing(text: str) -> str:
    """MetaCLIP's ``spacing``: the string entries are searched in."""
    spaced = f" {text} "
    for punct in PUNCTS_TO_WRAP:
        spaced = spaced.replace(punct, f" {punct} ")
    for char in CHARS_TO_SPACE:
        spaced = spaced.replace(char, " ")
    return spaced


def naive_match(text: str, metadata: Sequence[str]) -> list[int]:
    """Reference implementation: MetaCLIP's per-entry ``in`` scan, O(len(metadata))."""
    spaced = spacing(text)
    return [i for i, entry in enumerate(metadata) if f" {entry} " in spaced]


class Matcher:
    """An Aho–Corasick automaton over ``" " + entry + " "`` for every entry.

    Building it for 500,000 entries takes seconds and hundreds of MB, so build it once per
    worker (``DoFn.setup``), never per element.
    """

    def __init__(self, metadata: Iterable[str]):
        ids_by_key: dict[str, list[int]] = {}
        n = 0
        for entry_id, entry in enumerate(metadata):
            key = self.key_of(entry)
            if key is not None:
                ids_by_key.setdefault(key, []).append(entry_id)
            n = entry_id + 1
        self.size = n
        self.automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
        for key, ids in ids_by_key.items():
            # duplicate entries share one key; the value carries all their ids
            self.automaton.add_word(key, ids[0] if len(ids) == 1 else tuple(ids))
        self.empty = not ids_by_key
        if not self.empty:
            self.automaton.make_automaton()

    @staticmethod
    def key_of(entry: str) -> str | None:
        """The string an entry is found as in a spaced text (None: never matched):
        MetaCLIP 1 wraps every entry in spaces."""
        return f" {entry} "

    def match(self, text: str) -> list[int]:
        """Sorted ids of the entries that occur in ``text`` (MetaCLIP semantics)."""
        if self.empty:
            return []
        found: set[int] = set()
        for _, value in self.automaton.iter(spacing(text)):
            if isinstance(value, int):
                found.add(value)
            else:
                found.update(value)
        return sorted(found)


def load_metadata(path: str) -> list[str]:
    """Read ``metadata.json`` (a JSON list of strings; index = entry id) from any fsspec path,
    with a one-line error naming the file when it is missing or not that shape."""
    import json

    try:
        with fsspec.open(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: metadata file not found (run `wit queries` first)") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON file: {exc}") from exc
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of strings, got {type(data).__name__}")
    for i, entry in enumerate(data):
        if not isinstance(entry, str):
            raise InputError(f"{path}: entry {i} is {type(entry).__name__}, expected a string")
    return data
