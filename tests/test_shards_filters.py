"""DataComp's basic filter at its boundaries, the language rule (fastText lid.176 from the
installed package), the caption rules on every text of an image, the pixel guard counted
apart from the rules, and the --filter / --languages options."""

from __future__ import annotations

import argparse

import pytest

from pipeline.core.errors import InputError
from pipeline.core.options import from_args
from pipeline.shards import cli as shards_cli
from pipeline.shards.filters import (
    FilterConfig,
    FilterOptions,
    caption_reason,
    caption_words,
    describe_changes,
    download_reason,
    filter_reason,
    filter_sample,
    from_preset,
    judge_texts,
    preset_changes,
    sample_texts,
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


def test_worldwide_word_count_per_script():
    # DataComp's count: whitespace words, whatever the script
    assert caption_words("アルメニア共和国") == 1 and caption_words("a red car") == 3
    # --worldwide: one word per letter of a no-space script, one per other run with a letter
    assert caption_words("アルメニア共和国", scripts=True) == 8
    assert caption_words("亚美尼亚共和国", scripts=True) == 7
    assert caption_words("สาธารณรัฐเบนิน", scripts=True) == len("สาธารณรัฐเบนิน")
    assert caption_words("iPhoneの写真", scripts=True) == 4
    assert caption_words("猫。", scripts=True) == 1  # punctuation is no word
    assert caption_words("猫 2024年", scripts=True) == 3
    assert caption_words("a red car", scripts=True) == 3  # Latin text: unchanged
    assert caption_words("고양이가 잔다", scripts=True) == 2  # Hangul is written with spaces
    assert caption_words("- - -", scripts=True) == 3 == caption_words("- - -")
    assert caption_words("", scripts=True) == 0


def test_worldwide_caption_rules():
    worldwide = from_preset("datacomp-basic", languages=(), script_words=True)
    assert caption_reason("猫", worldwide) == "caption_words"
    assert caption_reason("赤い猫", worldwide) == "caption_chars"  # 3 words, 3 characters
    assert caption_reason("赤い猫の写真です", worldwide) is None
    assert caption_reason("赤い猫の写真です", FilterConfig()) == "caption_words"
    assert judge_texts(["阿富汗伊斯兰共和国", ENGLISH_CAR], worldwide).dropped == []
    assert judge_texts(["阿富汗伊斯兰共和国"], FilterConfig(languages=())).reason == \
        "caption_words"


def test_cli_worldwide_switch():
    config = from_args(FilterOptions, _parse("--worldwide")).config()
    assert config.languages == () and config.script_words and config.min_words == 3
    assert preset_changes(config) == {"languages": {"value": (), "preset": ("en",)},
                                      "script_words": {"value": True, "preset": False}}
    assert describe_changes(preset_changes(config)) == \
        "languages any (preset en), script_words on (preset off)"
    assert from_args(FilterOptions, _parse("--worldwide", "--languages", "any")).config() \
        == config
    plain = from_args(FilterOptions, _parse()).config()
    assert plain.languages == ("en",) and not plain.script_words
    with pytest.raises(InputError, match="--worldwide keeps every language; --languages en,de"):
        from_args(FilterOptions, _parse("--worldwide", "--languages", "en,de")).config()
    # the work folder records the word rule (only when on: older folders stay valid)
    from pipeline.shards.download import DownloadConfig
    assert DownloadConfig(filters=config).flat()["caption_words"] == "scripts"
    assert "caption_words" not in DownloadConfig(filters=plain).flat()
    parser = argparse.ArgumentParser()
    shards_cli.add_arguments(parser)
    assert "--worldwide" in parser.format_help()


ENGLISH_CAR = "a red sports car parked in front of the house"


# -- F1: the caption rules judge every text of an image ------------------------------------

ENGLISH = "a red sports car parked in front of the house"
ITALIAN = "Una macchina rossa parcheggiata davanti alla vecchia casa"
MULTI = {**GOOD, "caption": ENGLISH, "texts": [ENGLISH, ITALIAN, "macchina", "a car"]}


def test_every_text_is_judged_and_failing_ones_dropped():
    verdict = judge_texts(MULTI["texts"], FilterConfig())
    assert verdict.kept == [ENGLISH] and verdict.reason is None
    # Italian sentence; one word; 5 characters (2 words) — in text order
    assert verdict.dropped == ["language", "caption_words", "caption_words"]
    updates, reason = filter_sample(MULTI, FilterConfig())
    assert reason is None
    assert updates == {"texts": [ENGLISH], "caption": ENGLISH,
                       "text_filter_reasons": ["language", "caption_words", "caption_words"]}
    assert judge_texts(["a b c", "red sports car"], FilterConfig()).dropped == ["caption_chars"]


def test_caption_is_the_first_passing_text():
    sample = {**GOOD, "caption": ITALIAN, "texts": [ITALIAN, "a b", ENGLISH, "a red car"]}
    updates, reason = filter_sample(sample, FilterConfig())
    assert reason is None and updates["caption"] == ENGLISH
    assert updates["texts"] == [ENGLISH, "a red car"]
    assert updates["text_filter_reasons"] == ["language", "caption_words"]
    assert apply_filters({**sample}, FilterConfig())["caption"] == ENGLISH
    # under en,it the Italian caption passes and stays first
    both = filter_sample(sample, FilterConfig(languages=("en", "it")))[0]
    assert both["caption"] == ITALIAN and both["text_filter_reasons"] == ["caption_words"]


def test_an_image_goes_only_when_no_text_passes_with_the_first_texts_reason():
    none_pass = {**GOOD, "caption": ITALIAN, "texts": [ITALIAN, "macchina"]}
    assert filter_sample(none_pass, FilterConfig()) == ({}, "language")
    record = apply_filters({**none_pass}, FilterConfig())
    assert record["status"] == "filtered:language"
    assert record["texts"] == [ITALIAN, "macchina"]  # judged texts stay on the dropped row
    assert record.get("text_filter_reasons") is None  # an image dropped whole: its status says why
    # the image rules run only on images with a passing text
    small = {**MULTI, "original_height": 100}
    updates, reason = filter_sample(small, FilterConfig())
    assert reason == "min_side" and updates["texts"] == [ENGLISH]


def test_downloader_fetches_when_any_text_passes_words_and_characters():
    config = FilterConfig()
    assert download_reason(["word", "a b c"], config) == "caption_words"  # first text's reason
    assert download_reason(["a b c", "word"], config) == "caption_chars"
    assert download_reason(["word", ENGLISH], config) is None
    assert download_reason([ITALIAN], config) is None  # language waits for the Beam job
    assert download_reason([], config) == "caption_words"


def test_sample_texts_fall_back_to_the_caption():
    assert sample_texts({"caption": "a red car", "texts": None}) == ["a red car"]
    assert sample_texts({"caption": "a red car", "texts": []}) == ["a red car"]
    assert sample_texts({"caption": "x", "texts": [None, "a red car"]}) == ["a red car"]
    assert sample_texts({"caption": None}) == [""]


def test_apply_filters_records_dropped_texts_and_is_idempotent():
    once = apply_filters({**MULTI}, FilterConfig())
    assert once["status"] == "success" and once["texts"] == [ENGLISH]
    assert once["text_filter_reasons"] == ["language", "caption_words", "caption_words"]
    assert apply_filters(once, FilterConfig()) == once
    # rows the download did not keep are left as they are
    failed = {**MULTI, "status": "failed_to_download"}
    assert apply_filters(failed, FilterConfig()) == failed


# -- F4: the pixel guard is no DataComp rule and is counted apart ----------------------------

BIG_PHOTO = {"status": "filtered:max_pixels", "caption": ENGLISH, "texts": [ENGLISH],
             "original_width": 6179, "original_height": 8236, "original_bytes": 9_000_000,
             "error_message": "6179x8236 = 50890244 pixels exceeds --max-pixels 40000000"}


def test_guard_counts_only_images_the_rules_keep():
    config = FilterConfig()
    # DataComp keeps a 6179x8236 photo with an English caption: the guard alone drops it
    assert filter_reason({**BIG_PHOTO, "status": "success"}, config) == "max_pixels"
    kept_by_rules = apply_filters({**BIG_PHOTO}, config)
    assert kept_by_rules["status"] == "filtered:max_pixels"
    assert kept_by_rules["error_message"] == BIG_PHOTO["error_message"]
    # a rule that drops the image too takes precedence: the guard is not what dropped it
    for change, reason in (({"texts": [ITALIAN], "caption": ITALIAN}, "language"),
                           ({"original_width": 30000, "original_height": 2000}, "aspect_ratio"),
                           ({"texts": ["word"], "caption": "word"}, "caption_words")):
        record = apply_filters({**BIG_PHOTO, **change}, config)
        assert record["status"] == f"filtered:{reason}", change
        assert record["error_message"] == f"basic filter: {reason}"
    # size unknown (Pillow refused the header outright): nothing to judge, the guard stays
    bomb = {**BIG_PHOTO, "original_width": None, "original_height": None}
    assert apply_filters(bomb, config) == bomb


def _row(key: str, status: str, texts: list[str], reasons: list[str] | None = None) -> dict:
    return {"key": key, "uid": f"u{key}", "url": f"http://127.0.0.2/{key}.jpg",
            "caption": texts[0], "texts": texts, "text_filter_reasons": reasons,
            "status": status, "attempts": 1, "original_width": 400, "original_height": 300}


def test_shard_stats_summary_and_report_count_texts_and_the_guard_apart(tmp_path):
    """Real shard files (writer.write_shard) read back by the manifest's summary, the printed
    summary and report.html: dropped texts counted by reason, max_pixels apart from the rules."""
    from pipeline.shards.job import summary_text
    from pipeline.shards.report import summarize, write_report
    from pipeline.shards.writer import write_shard

    rows = [_row("0", "success", [ENGLISH], ["language", "caption_words"]),
            _row("1", "success", [ENGLISH, "a red car"], []),
            _row("2", "filtered:min_side", [ENGLISH], ["language"]),
            _row("3", "filtered:language", [ITALIAN]),
            _row("4", "filtered:max_pixels", [ENGLISH]),
            _row("5", "failed_to_download", [ENGLISH])]
    images = {"0": b"jpeg0", "1": b"jpeg1"}
    stats = write_shard(str(tmp_path), "00000", rows, images)
    assert stats["filtered_texts"] == {"caption_words": 1, "language": 2}
    assert stats["filtered"] == 3  # the status group still holds every filtered row
    summary = summarize(str(tmp_path))
    assert summary["texts"] == {"kept": 3, "filtered": {"caption_words": 1, "language": 2}}
    assert summary["counts"] == {"candidates": 6, "downloaded": 5, "after_filters": 3,
                                 "after_pixel_guard": 2, "after_decontamination": 2,
                                 "after_clip_filter": 2, "after_exact_dedup": 2, "kept": 2}
    assert summary["filtered"] == {"language": 1, "max_pixels": 1, "min_side": 1}
    manifest = {**summary, "shards": {"count": 1, "samples": 2},
                "config": {"filters": {"preset": "datacomp-basic", "max_pixels": 40_000_000}}}
    text = summary_text(manifest, str(tmp_path))
    assert "filters (--filter datacomp-basic): 2 image(s) dropped (language 1, min_side 1); " \
           "3 text(s) dropped from images that kept another (caption_words 1, language 2)" in text
    assert "max_pixels: 1 image(s) dropped (resource guard, not a DataComp rule: original " \
           "images over 40,000,000 pixels" in text
    write_report(str(tmp_path), manifest, str(tmp_path / "candidates"), 0)
    report = (tmp_path / "report.html").read_text()
    assert "<tr><td>language</td><td>1</td><td>2</td></tr>" in report
    assert "<tr><td>caption_words</td><td>0</td><td>1</td></tr>" in report
    assert "<tr><td>max_pixels (resource guard, not a DataComp rule" in report
    assert "Texts in the kept samples: 3." in report


def test_demo_summary_lists_dropped_texts_and_the_guard_apart():
    from pipeline.demo.summary import rows

    shards = {"counts": {"candidates": 9, "downloaded": 9, "kept": 5}, "shards": {"count": 1},
              "filtered": {"language": 2, "max_pixels": 1},
              "texts": {"kept": 6, "filtered": {"caption_words": 3}}}
    found = rows({"queries": {}, "crawl": {}, "shards": shards, "train": [], "eval": {},
                  "timings": {}})
    assert ("shards", "filtered: language", "2") in found
    assert not any(what == "filtered: max_pixels" for _, what, _ in found)
    assert ("shards", "guard (not a DataComp rule): max_pixels", "1") in found
    assert ("shards", "texts dropped, image kept: caption_words", "3") in found
    # a guard that dropped nothing, and no dropped text, add no line (the demo's case)
    quiet = rows({"queries": {}, "crawl": {}, "timings": {}, "train": [], "eval": {},
                  "shards": {**shards, "filtered": {"language": 2}, "texts": {"kept": 7, "filtered": {}}}})
    assert not any("guard" in what or "texts dropped" in what for _, what, _ in quiet)


def test_a_work_folder_of_caption_only_downloads_is_refused(tmp_path):
    """Downloads made when the caption alone was judged skipped rows whose other texts pass:
    resuming them would lose those rows silently, so the work folder's settings differ."""
    from pipeline.core.errors import InputError
    from pipeline.shards.download import DownloadConfig
    from pipeline.shards.job import _check_work_config

    now = DownloadConfig().flat()
    assert now["caption_texts"] == "every"
    before = {k: v for k, v in now.items() if k != "caption_texts"}
    _check_work_config(str(tmp_path), {"inputs": [], "download": before})
    with pytest.raises(InputError, match="different download"):
        _check_work_config(str(tmp_path), {"inputs": [], "download": now})
