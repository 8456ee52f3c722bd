"""`wit shards` options come from the config dataclasses: the command line's defaults are the
configs' own, every option lands in a config, and the parsed line builds the stage's config."""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict

import pytest

from pipeline.core.errors import InputError
from pipeline.core.options import option_fields
from pipeline.shards import cli
from pipeline.shards.clip_options import ClipFilterConfig
from pipeline.shards.download import DownloadConfig
from pipeline.shards.filters import PRESETS, FilterConfig
from pipeline.shards.job import ShardsOptions, transform_config


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(["--candidates", "c", "--out", "o", *argv])


def test_the_command_line_defaults_are_the_configs_defaults():
    built = cli.options_from_args(parse())
    default = ShardsOptions(candidates="c", out="o")
    assert built.download.flat() == DownloadConfig().flat()
    assert built.filters == FilterConfig() == PRESETS["datacomp-basic"]
    assert built.processes == default.processes == (os.cpu_count() or 1)
    assert transform_config(built) == transform_config(default)
    assert {k: v for k, v in asdict(built).items() if k != "download"} == \
        {k: v for k, v in asdict(default).items() if k != "download"}


def test_every_option_is_a_config_field_with_help():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    fields = {f.name for cls in cli.CONFIGS for f, _ in option_fields(cls)}
    actions = [a for a in parser._actions if a.dest != "help"]
    assert {a.dest for a in actions} == fields
    assert all(a.help for a in actions)


def test_contamination_bits_follow_near_dup_bits_unless_given():
    assert ShardsOptions(candidates="c", out="o", near_dup_bits=4).contamination_bits == 4
    assert cli.options_from_args(parse("--near-dup-bits", "4")).contamination_bits == 4
    given = cli.options_from_args(parse("--near-dup-bits", "4", "--contamination-bits", "0"))
    assert (given.near_dup_bits, given.contamination_bits) == (4, 0)


def test_options_reach_every_config(capsys):
    built = cli.options_from_args(parse(
        "--filter", "none", "--min-words", "2", "--max-pixels", "1000", "--threads", "3",
        "--allow-network", "10.0.0.0/8", "--ignore-robots-txt", "--image-size", "64",
        "--eval-images", "a", "b", "--clip-filter", "ck.pt", "--clip-top-fraction", "0.5"))
    assert built.filters == FilterConfig(preset="none", min_words=2, min_chars=0, languages=(),
                                         min_side=0, max_aspect=None, max_pixels=1000)
    assert built.download.resize.max_pixels == 1000 and built.download.resize.image_size == 64
    fetch = built.download.fetch
    assert (fetch.connections_per_host, fetch.allowed_networks, fetch.respect_robots_txt) == \
        (3, ("10.0.0.0/8",), False)
    assert built.eval_images == ("a", "b")
    assert built.clip == ClipFilterConfig("ck.pt", top_fraction=0.5)
    assert "--filter none changed: min_words 2 (preset 0)" in capsys.readouterr().err


def test_clip_rules_without_a_checkpoint_are_refused():
    assert cli.options_from_args(parse()).clip is None
    with pytest.raises(InputError, match="need --clip-filter"):
        cli.options_from_args(parse("--min-clip-score", "0.2"))
