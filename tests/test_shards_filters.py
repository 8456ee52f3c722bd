"""DataComp's basic filter at its boundaries, the language rule (fastText lid.176 from the
installed package) and the --filter / --languages options."""

from __future__ import annotations

import argparse

import pytest

from pipeline.shards import cli as shards_cli
from pipeline.shards.filters import (
    FilterConfig,
    caption_reason,
    describe_changes,
    filter_reason,
    from_preset,
    preset_changes,
)
from pipeline.shards.language import detect_language, parse_languages
from pipeline.shards.transform import apply_filters

GOOD = {"status": "success", "original_width": 400, "original_height": 300,
        "original_bytes": 9000}
GERMAN = "Ein kleiner Hund spielt im Garten mit einem roten Ball"


def test_words_boundary_is_datacomp_more_than_two():
    config = FilterConfig()
    assert caption_reason("red sports", config) == "caption_words"  # 2 words
    assert caption_reason("red sports car", config) is None  # 3 words
    assert caption_reason("red\tsports\n", config) == "caption_words"  # str.split() words


def test_chars_boundary_is_datacomp_more_than_five():
    config = FilterConfig()
    assert caption_reason("a b c", config) == "caption_chars"  # 5 characters
    assert caption_reason("a b cd", config) is None  # 6 characters
    # counted unstripped, as DataComp's len(text)
    assert caption_reason(" a b c", config) is None
    assert caption_reason(None, config) == "caption_words"


def test_german_caption_is_filtered_under_en_and_kept_under_en_de():
    assert detect_language(GERMAN) == "de"
    assert detect_language("A small dog plays in the garden with a red ball") == "en"
    german = {**GOOD, "caption": GERMAN}
    assert filter_reason(german, FilterConfig()) == "language"
    assert apply_filters(german, FilterConfig())["status"] == "filtered:language"
    assert filter_reason(german, FilterConfig(languages=("en", "de"))) is None
    assert apply_filters(german, FilterConfig(languages=("en", "de")))["status"] == "success"
    assert filter_reason(german, FilterConfig(languages=())) is None  # --languages any


def test_line_breaks_are_spaces_for_language_id():
    assert detect_language("A small dog plays\nin the garden\nwith a red ball") == "en"


def test_image_rules_are_datacomp_inclusive():
    config = FilterConfig()
    ok = {**GOOD, "caption": "a red sports car"}
    assert filter_reason({**ok, "original_width": 600, "original_height": 200}, config) is None
    assert filter_reason({**ok, "original_width": 601, "original_height": 200},
                         config) == "aspect_ratio"
    assert filter_reason({**ok, "original_height": 199}, config) == "min_side"
    assert filter_reason({**ok, "original_bytes": 10}, config) is None  # no byte rule
    assert filter_reason({**ok, "original_bytes": 10}, FilterConfig(min_bytes=5000)) == "min_bytes"


def test_presets_and_recorded_changes():
    assert preset_changes(from_preset("datacomp-basic")) == {}
    relaxed = from_preset("datacomp-basic", min_words=1, languages=(), min_side=None)
    assert relaxed.min_side == 200 and relaxed.min_chars == 6
    assert preset_changes(relaxed) == {"min_words": {"value": 1, "preset": 3},
                                       "languages": {"value": (), "preset": ("en",)}}
    assert describe_changes(preset_changes(relaxed)) == \
        "min_words 1 (preset 3), languages any (preset en)"
    none = from_preset("none")
    assert filter_reason({**GOOD, "caption": "x", "original_width": 9000,
                          "original_height": 20}, none) is None


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    shards_cli.add_arguments(parser)
    return parser.parse_args(["--candidates", "c", "--out", "o", *argv])


def test_cli_languages_option():
    assert _parse().languages is None and _parse().preset == "datacomp-basic"
    assert _parse("--languages", "en,de").languages == ("en", "de")
    assert _parse("--languages", "any").languages == ()
    assert parse_languages(" EN , de,en") == ("en", "de")
    for bad in ("", "en;de", "e", "any,en"):
        with pytest.raises(ValueError):
            parse_languages(bad)
    with pytest.raises(SystemExit):
        _parse("--languages", "en;de")
    with pytest.raises(SystemExit):
        _parse("--min-words", "-1")
