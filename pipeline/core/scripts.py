"""Scripts written without spaces between words, shared by the crawl's worldwide matching
(such a character needs no word boundary) and the shards' word count (``--worldwide``)."""

from __future__ import annotations

# (first, last) code points of the letters of scripts written without spaces between words
NO_SPACE_LETTERS = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2EBEF),
    (0xF900, 0xFAFF), (0x2E80, 0x2FFF),  # CJK ideographs, radicals, description characters
    (0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF),
    (0x0F00, 0x0FFF),  # Thai, Lao, Myanmar, Khmer, Tibetan
    # kana (Hiragana, Katakana, their extensions and half-width forms): MetaCLIP 2's ranges
    # leave them out; Japanese is written without spaces (docs/crawl.md)
    (0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F),
)


def is_no_space_letter(char: str) -> bool:
    """Whether ``char`` is a letter of a script written without spaces between words."""
    code = ord(char)
    return any(first <= code <= last for first, last in NO_SPACE_LETTERS)
