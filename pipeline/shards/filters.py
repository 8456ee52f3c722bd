"""DataComp's "basic" filter (and LAION's byte minimum) as pure functions over a sample's
metadata, plus the ``--max-pixels`` resource guard, which is no DataComp rule.

DataComp's rule (``baselines/utils.py``, ``load_uids_with_basic_filter_helper``) keeps a
sample when ``len(caption.split()) > 2``, ``len(caption) > 5``, fastText lid.176 says ``en``,
the original's shorter side is >= 200 px and longer/shorter <= 3. Here the thresholds are
inclusive minimums, so ``> 2`` words is ``min_words=3`` and ``> 5`` characters
``min_chars=6``; the caption is counted as it is, unstripped, as DataComp does.

DataComp's samples have one caption; ours may have several texts (the crawl keeps an image's
alt, title, figcaption, ...; ``texts``, caption first). The caption rules (words, characters,
language) apply to **every** text: failing texts are dropped (their reasons recorded in
``text_filter_reasons``), the image is kept when at least one text passes, and its caption
becomes the first passing text. An image with no passing text is filtered with the first
text's reason.

Each ``*_reason`` function returns the reason (the suffix of ``filtered:<reason>``) of the
first rule a sample breaks, or None. The image rules come first, the pixel guard last, so that
``max_pixels`` counts exactly the images the dataset rules would have kept. Word and character
rules need no image, so the downloader applies them before it fetches anything (an image is
fetched when one of its texts passes them); the language rule runs in the Beam job (one model
per worker process, see language.py).

``--worldwide`` (MetaCLIP 2's downstream): no language rule (lid.176's label stays in the
``language`` column), and words are counted by :func:`caption_words` with ``scripts=True``, so
that captions in scripts written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Myanmar,
Tibetan) are not one "word" each.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from pipeline.core.cliargs import bounded, non_negative_int, positive_int
from pipeline.core.errors import InputError
from pipeline.core.licenses import parse_license_list
from pipeline.core.options import option
from pipeline.core.scripts import is_no_space_letter
from pipeline.shards.language import detect_language, parse_languages
from pipeline.shards.option_groups import FILTERS
from schemas import status as st


@dataclass(frozen=True)
class FilterConfig:
    preset: str = "datacomp-basic"
    min_words: int = 3
    min_chars: int = 6
    # lid.176 codes a caption may have; () = any language
    languages: tuple[str, ...] = ("en",)
    min_side: int = 200
    max_aspect: float | None = 3.0  # None = no rule
    # a resource guard, not a dataset rule: checked from the header before decoding
    max_pixels: int = 40_000_000
    # LAION's "< 5 KB" rule; DataComp's basic filter has none
    min_bytes: int = 0
    # --licenses: SPDX ids a sample's license must be one of; () = any licence, or none
    licenses: tuple[str, ...] = ()
    # --worldwide: words counted by caption_words(scripts=True) instead of str.split()
    script_words: bool = False


# The rules each preset sets; options given on the command line override them.
PRESETS: dict[str, FilterConfig] = {
    "datacomp-basic": FilterConfig(),
    "none": FilterConfig(preset="none", min_words=0, min_chars=0, languages=(), min_side=0,
                         max_aspect=None),
}
PRESET_RULES = ("min_words", "min_chars", "languages", "min_side", "max_aspect", "min_bytes")
# rules no preset sets, reported beside the preset's when an option changes them
SWITCHED_RULES = ("script_words",)


def from_preset(preset: str, **overrides: Any) -> FilterConfig:
    """The preset's rules with the given (non-None) overrides."""
    return replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})


def preset_changes(config: FilterConfig) -> dict[str, dict[str, Any]]:
    """Rules that differ from the config's preset: ``{rule: {"value": v, "preset": p}}``."""
    base, now = asdict(PRESETS[config.preset]), asdict(config)
    return {k: {"value": now[k], "preset": base[k]} for k in (*PRESET_RULES, *SWITCHED_RULES)
            if now[k] != base[k]}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(value) or "any"
    return "none" if value is None else str(value)


def describe_changes(changes: Mapping[str, Mapping[str, Any]]) -> str:
    """``min_words 1 (preset 3), languages any (preset en)``; also for changes read back
    from manifest.json (language lists as JSON arrays)."""
    return ", ".join(f"{k} {_show(c['value'])} (preset {_show(c['preset'])})"
                     for k, c in changes.items())


def _by_preset(rule: str) -> str:
    """``datacomp-basic: 3, none: 0``: a rule's value in each preset, for ``--help``."""
    return ", ".join(f"{name}: {_show(getattr(p, rule))}" for name, p in PRESETS.items())


def _languages(value: str) -> tuple[str, ...]:
    try:
        return parse_languages(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _licenses(value: str) -> tuple[str, ...]:
    try:
        return parse_license_list(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class FilterOptions:
    """The filter options of ``wit shards``: ``--filter`` picks a preset and each rule given
    overrides it; a rule left at None keeps the preset's value (PRESETS is their one source)."""

    preset: str = option(
        FilterConfig.preset, flag="--filter", choices=sorted(PRESETS), group=FILTERS,
        help="datacomp-basic: DataComp's basic filter exactly (caption words and characters, "
             "English by fastText lid.176, shorter side and aspect ratio of the image); none: "
             "no caption, language or image-size rule; the rules' values are below. The "
             "caption rules judge every text of an image: failing texts are dropped, the "
             "image is kept if one passes. Every preset adds the --max-pixels resource guard, "
             "which DataComp does not have; its drops are counted apart, as "
             "filtered:max_pixels")
    worldwide: bool = option(
        False, group=FILTERS,
        help="MetaCLIP 2's worldwide curation downstream (candidates of `wit crawl "
             "--worldwide`): no language rule, as --languages any (lid.176's label of each "
             "caption stays in the samples' language column), and --min-words counts words "
             "in scripts written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar, "
             "Tibetan) one per character, other text by whitespace as before; refused with "
             "--languages other than any")
    min_words: int | None = option(
        None, type=non_negative_int, group=FILTERS,
        help="words of each text, whitespace-split; with --worldwide each character of a "
             f"script written without spaces is a word ({_by_preset('min_words')})")
    min_chars: int | None = option(None, type=non_negative_int, group=FILTERS,
                                   help=f"characters of each text ({_by_preset('min_chars')})")
    languages: tuple[str, ...] | None = option(
        None, type=_languages, metavar="CODES", group=FILTERS,
        help="comma-separated fastText lid.176 language codes a text may have, e.g. en,de; "
             f"'any' for no language rule ({_by_preset('languages')})")
    min_side: int | None = option(
        None, type=non_negative_int, group=FILTERS,
        help=f"shorter side of the original image in pixels ({_by_preset('min_side')})")
    max_aspect: float | None = option(None, type=bounded(float, 1), group=FILTERS,
                                      help=f"longer/shorter side ({_by_preset('max_aspect')})")
    min_bytes: int | None = option(
        None, type=non_negative_int, group=FILTERS,
        help=f"downloaded bytes, LAION's rule is 5000 ({_by_preset('min_bytes')})")
    max_pixels: int = option(
        FilterConfig.max_pixels, type=positive_int, group=FILTERS,
        help="original pixel count, checked from the header before decoding: a resource guard "
             "in every preset, not a DataComp rule (DataComp keeps a 6179x8236 photo, this "
             "guard drops it); counted apart from the rules in the summary and report")

    licenses: tuple[str, ...] = option(
        (), type=_licenses, metavar="IDS", group=FILTERS,
        help="keep only samples whose license (the SPDX id their page's and image's licence "
             "signals name, image first: docs/consent.md) is one of these comma-separated "
             "ids, e.g. CC0-1.0,CC-PDM-1.0,CC-BY-4.0,CC-BY-SA-4.0; CC URLs and names are "
             "accepted too; the others get status filtered:license (default: every sample, "
             "whatever its licence)")

    def config(self) -> FilterConfig:
        """The preset's rules with the options given (``--worldwide``: any language, words
        counted by script)."""
        rules = {k: getattr(self, k) for k in PRESET_RULES}
        if self.worldwide:
            if rules["languages"]:
                raise InputError(
                    f"--worldwide keeps every language; --languages "
                    f"{','.join(rules['languages'])} contradicts it (leave it out)")
            rules["languages"] = ()
        return from_preset(self.preset, **rules, max_pixels=self.max_pixels,
                           licenses=self.licenses, script_words=self.worldwide or None)


def caption_words(text: str, scripts: bool = False) -> int:
    """The words of ``text`` for ``--min-words``: ``len(text.split())`` (DataComp's count),
    or with ``scripts`` (``--worldwide``) each whitespace-separated token that holds letters
    of a script written without spaces counts one word per such letter plus one per run of
    other characters that holds a letter or digit (``iPhoneの写真`` is 4 words, ``猫。`` 1);
    tokens without such letters count 1 as before. A character is a fair stand-in for a
    word in Chinese (words average under two characters) and Japanese; in Thai, Lao, Khmer,
    Myanmar and Tibetan it is a letter, so there ``--min-chars`` is the rule that binds."""
    if not scripts:
        return len(text.split())
    words = 0
    for token in text.split():
        if not any(is_no_space_letter(c) for c in token):
            words += 1
            continue
        run_has_word = False
        for char in token:
            if is_no_space_letter(char):
                words += 1 + run_has_word
                run_has_word = False
            elif char.isalnum():
                run_has_word = True
        words += run_has_word
    return words


def caption_reason(caption: str | None, config: FilterConfig) -> str | None:
    """The word and character rules on one text."""
    text = caption or ""
    if caption_words(text, config.script_words) < config.min_words:
        return st.CAPTION_WORDS
    if len(text) < config.min_chars:
        return st.CAPTION_CHARS
    return None


def language_reason(caption: str | None, config: FilterConfig) -> str | None:
    if config.languages and detect_language(caption or "") not in config.languages:
        return st.LANGUAGE
    return None


def text_reason(text: str | None, config: FilterConfig, language: bool = True) -> str | None:
    """The caption rules on one text: words, characters, then (unless ``language`` is
    False, as in the downloader) the language."""
    return caption_reason(text, config) or (language_reason(text, config) if language else None)


def sample_texts(sample: Mapping[str, Any]) -> list[str]:
    """The texts the caption rules judge: ``texts`` (caption first; null entries are no
    text), or the caption alone where a row has none."""
    texts = [t for t in sample.get("texts") or () if isinstance(t, str)]
    return texts or [sample.get("caption") or ""]


@dataclass(frozen=True)
class TextVerdict:
    """The caption rules over every text of one image."""

    kept: list[str]  # the passing texts, in order
    dropped: list[str]  # the reason of each failing text, in text order
    # why the image goes when no text passes: the first text's reason; None otherwise
    reason: str | None


def judge_texts(texts: list[str], config: FilterConfig, language: bool = True) -> TextVerdict:
    kept, dropped = [], []
    for text in texts or [""]:
        why = text_reason(text, config, language)
        if why is None:
            kept.append(text)
        else:
            dropped.append(why)
    return TextVerdict(kept, dropped, None if kept else (dropped[0] if dropped else None))


def image_reason(width: int | None, height: int | None, num_bytes: int | None,
                 config: FilterConfig) -> str | None:
    """Rules on the *original* image: its size in pixels and in bytes; the pixel guard last."""
    if not width or not height:
        return st.UNKNOWN_SIZE
    if min(width, height) < config.min_side:
        return st.MIN_SIDE
    aspect = max(width, height) / min(width, height)
    if config.max_aspect is not None and aspect > config.max_aspect:
        return st.ASPECT_RATIO
    if num_bytes is not None and num_bytes < config.min_bytes:
        return st.MIN_BYTES
    if width * height > config.max_pixels:
        return st.MAX_PIXELS
    return None


def filter_sample(sample: Mapping[str, Any], config: FilterConfig) -> tuple[dict[str, Any], str | None]:
    """Every rule on one downloaded sample: ``(updates, reason)``. ``reason`` is the first
    rule the sample breaks (None: kept). ``updates`` are the fields to set when at least one
    text passes: ``texts`` (the passing ones), ``caption`` (the first of them) and
    ``text_filter_reasons`` (the reasons of the dropped texts, after any recorded before, so
    that filtering twice changes nothing); empty when no text passes (the row keeps the texts
    it was judged on)."""
    verdict = judge_texts(sample_texts(sample), config)
    if not verdict.kept:
        return {}, verdict.reason
    updates = {"texts": verdict.kept, "caption": verdict.kept[0],
               "text_filter_reasons": [*(sample.get("text_filter_reasons") or ()),
                                       *verdict.dropped]}
    reason = image_reason(sample.get("original_width"), sample.get("original_height"),
                          sample.get("original_bytes"), config)
    if reason in (None, st.MAX_PIXELS) and license_reason(sample.get("license"), config):
        reason = st.LICENSE  # a rule: before the pixel guard, as the image rules
    return updates, reason


def license_reason(license_id: str | None, config: FilterConfig) -> str | None:
    """``--licenses``: the sample's ``license`` must be one of the listed ids."""
    if config.licenses and license_id not in config.licenses:
        return st.LICENSE
    return None


def filter_reason(sample: Mapping[str, Any], config: FilterConfig) -> str | None:
    """The first rule ``sample`` breaks (its texts judged as :func:`filter_sample` does)."""
    return filter_sample(sample, config)[1]


def download_reason(texts: list[str], config: FilterConfig) -> str | None:
    """The downloader's check before fetching: the first text's word/character reason when
    no text passes those rules (the language rule waits for the Beam job)."""
    return judge_texts(texts, config, language=False).reason
