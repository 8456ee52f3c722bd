"""Word segmentation for languages written without spaces between words (MetaCLIP 2 builds
their unigrams and bigrams from segmented text). Pluggable: :func:`register` a factory for a
language; the built-in ones use offline segmenters that ship their dictionaries inside their
wheels (the ``worldwide`` extra): jieba (zh), Janome (ja), PyThaiNLP's newmm (th). Other
no-space languages (lo, km, my, bo, dz) fall back to ICU's word breaker when PyICU is
installed, and are refused with a clear error otherwise.

A segmenter is built once per process (the dictionaries take seconds and tens of MB to load)
and maps a run of text without whitespace to its words; whitespace still separates runs."""

from __future__ import annotations

import functools
from collections.abc import Callable

from pipeline.core.errors import InputError

Segmenter = Callable[[str], list[str]]

# languages whose words are not separated by spaces (MetaCLIP 2's no_space_languages, merged)
NO_SPACE_LANGUAGES = frozenset({"bo", "dz", "ja", "km", "lo", "my", "th", "zh"})


def _jieba() -> Segmenter:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()  # its own instance: the bundled dictionary, loaded once
    tokenizer.initialize()
    return lambda text: tokenizer.lcut(text, HMM=True)


def _janome() -> Segmenter:
    from janome.tokenizer import Tokenizer

    tokenizer = Tokenizer(wakati=True)
    return lambda text: [str(token) for token in tokenizer.tokenize(text)]


def _pythainlp() -> Segmenter:
    from pythainlp.tokenize import word_tokenize

    return lambda text: word_tokenize(text, engine="newmm", keep_whitespace=False)


def _icu(language: str) -> Segmenter:
    import icu  # PyICU

    breaker = icu.BreakIterator.createWordInstance(icu.Locale(language))

    def segment(text: str) -> list[str]:
        breaker.setText(text)
        words, start = [], breaker.first()
        for end in breaker:
            words.append(text[start:end])
            start = end
        return words
    return segment


_FACTORIES: dict[str, Callable[[], Segmenter]] = {"zh": _jieba, "ja": _janome, "th": _pythainlp}


def register(language: str, factory: Callable[[], Segmenter]) -> None:
    """Use ``factory()`` to build the segmenter of ``language`` (replacing a built-in one)."""
    _FACTORIES[language] = factory
    segmenter_for.cache_clear()


@functools.cache
def segmenter_for(language: str) -> Segmenter | None:
    """The segmenter of ``language`` (built once per process), or None for a language
    written with spaces. A no-space language without an installed segmenter is an error
    saying what to install."""
    if language not in NO_SPACE_LANGUAGES and language not in _FACTORIES:
        return None
    factory = _FACTORIES.get(language)
    if factory is not None:
        try:
            return factory()
        except ImportError as exc:
            raise InputError(f"no word segmenter for {language!r}: {exc} (pip install "
                             "'webimagetext[worldwide]')") from exc
    try:
        return _icu(language)
    except ImportError as exc:
        raise InputError(f"no word segmenter for {language!r}: register one "
                         "(queries.segment.register) or install PyICU for ICU's word "
                         "breaker") from exc


def segment(text: str, language: str) -> str:
    """``text`` with its words separated by single spaces, so the space-based tokenizer
    (:mod:`queries.tokenize`) counts them; unchanged for languages written with spaces."""
    segmenter = segmenter_for(language)
    if segmenter is None:
        return text
    lines = []
    for line in text.split("\n"):  # line ends break bigrams: keep them
        words = [w for run in line.split() for w in segmenter(run) if w.strip()]
        lines.append(" ".join(words))
    return "\n".join(lines)
