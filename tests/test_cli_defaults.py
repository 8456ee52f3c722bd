"""Each stage's command line is generated from its config dataclass: parsing only the required
options gives exactly the config's defaults, and ``--help`` states every default."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from pipeline.browse.embed import IndexConfig
from pipeline.cli import COMMANDS
from pipeline.core.options import from_args
from pipeline.crawl.cli import config_from_args
from pipeline.crawl.live_crawler import CrawlerOptions
from pipeline.crawl.transform import CrawlConfig
from pipeline.demo.chain import DemoConfig
from queries.transform import QueryConfig
from training.eval_job import EvalOptions
from training.export_job import ExportOptions
from training.train_options import TrainOptions

STAGES = ("queries", "crawl", "train", "eval", "export", "demo", "index", "browse")


def parse(stage: str, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"wit {stage}")
    importlib.import_module(COMMANDS[stage][0]).add_arguments(parser)
    return parser.parse_args(list(argv))


def test_required_options_alone_give_the_configs_defaults(tmp_path: Path):
    out = str(tmp_path / "out")
    args = parse("queries", "--out", out)
    assert from_args(QueryConfig, args) == QueryConfig(out=out)

    warc = tmp_path / "a.warc"
    warc.write_bytes(b"")
    crawl = config_from_args(parse("crawl", "--metadata", "m.json", "--out", out,
                                   "--warc", str(warc)))
    assert crawl == CrawlConfig(metadata="m.json", out=f"{out}/candidates", warc=(str(warc),))
    assert crawl.crawler == CrawlerOptions()

    assert (from_args(TrainOptions, parse("train", "--shards", "s", "--out", out))
            == TrainOptions(shards="s", out=out))
    assert (from_args(EvalOptions, parse("eval", "--checkpoint", "c.pt", "--out", out))
            == EvalOptions(checkpoint="c.pt", out=out))
    assert (from_args(ExportOptions, parse("export", "--checkpoint", "c.pt", "--out", out))
            == ExportOptions(checkpoint="c.pt", out=out))
    assert from_args(DemoConfig, parse("demo")) == DemoConfig()
    assert (from_args(IndexConfig, parse("index", "--shards", "s", "--checkpoint", "c.pt", "--out", out))
            == IndexConfig(shards="s", checkpoint="c.pt", out=out))


def test_the_crawlers_page_cap_follows_the_one_option(tmp_path: Path):
    warc = tmp_path / "a.warc"
    warc.write_bytes(b"")
    config = config_from_args(parse("crawl", "--metadata", "m.json", "--out", str(tmp_path),
                                    "--warc", str(warc), "--max-page-bytes", "1234",
                                    "--offsite", "--allow-network", "127.0.0.1"))
    assert config.max_page_bytes == config.crawler.max_page_bytes == 1234
    assert not config.crawler.same_site
    assert config.crawler.allowed_networks == ("127.0.0.1/32",)


@pytest.mark.parametrize("stage", (*STAGES, "shards"))
def test_help_states_every_default(stage: str):
    parser = argparse.ArgumentParser(prog=f"wit {stage}")
    importlib.import_module(COMMANDS[stage][0]).add_arguments(parser)
    for action in parser._actions:
        if action.help is argparse.SUPPRESS or action.dest == "help" or action.required:
            continue
        if action.default in (None, [], ()) or isinstance(action.default, bool):
            continue  # nothing to state, or explained in words
        assert "default" in action.help, f"wit {stage} {action.option_strings[0]}"
