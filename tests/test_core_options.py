"""pipeline.core.options: config dataclasses generate the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from pipeline.core.cliargs import positive_int
from pipeline.core.options import add_options, from_args, option, option_fields


@dataclass(frozen=True)
class Fetch:
    timeout: float = option(10.0, type=float, help="seconds per request")
    respect_robots_txt: bool = option(True, flag="--ignore-robots-txt",
                                      help="do not fetch robots.txt")


@dataclass(frozen=True)
class Job:
    inputs: tuple[str, ...] = option(required=True, nargs="+", help="input files")
    max_pages: int = option(100, type=positive_int, group="crawl", help="pages per site")
    networks: tuple[str, ...] = option((), append=True, metavar="CIDR", group="crawl",
                                       help="trusted network; repeatable")
    mode: str = option("fast", choices=("fast", "slow"), help="how")
    verbose: bool = option(False, help="say more")
    steps: int | None = option(None, type=positive_int, exclusive="length", help="steps")
    samples: int | None = option(None, type=positive_int, exclusive="length", help="samples")
    fetch: Fetch = field(default_factory=Fetch)  # not an option: filled by the caller


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser, Job, Fetch, groups={"crawl": "the crawler"})
    return parser.parse_args(argv)


def test_defaults_come_from_the_dataclass_and_round_trip():
    args = parse(["--inputs", "a.warc", "b.warc"])
    job = from_args(Job, args, fetch=from_args(Fetch, args))
    assert job == Job(inputs=("a.warc", "b.warc"))
    assert job.fetch == Fetch()


def test_every_kind_of_option_is_parsed_into_the_config():
    args = parse(["--inputs", "x", "--max-pages", "7", "--networks", "10.0.0.0/8",
                  "--networks", "10.1.0.0/16", "--mode", "slow", "--verbose", "--steps", "3",
                  "--timeout", "2.5", "--ignore-robots-txt"])
    job = from_args(Job, args, fetch=from_args(Fetch, args))
    assert job == Job(inputs=("x",), max_pages=7, networks=("10.0.0.0/8", "10.1.0.0/16"),
                      mode="slow", verbose=True, steps=3, fetch=Fetch(2.5, False))


def test_validation_exclusivity_and_required_options_are_enforced():
    with pytest.raises(SystemExit):
        parse(["--inputs", "x", "--max-pages", "0"])
    with pytest.raises(SystemExit):
        parse(["--inputs", "x", "--steps", "1", "--samples", "2"])
    with pytest.raises(SystemExit):
        parse([])
    with pytest.raises(SystemExit):
        parse(["--inputs", "x", "--mode", "medium"])


def test_help_shows_each_default_once_and_the_groups():
    parser = argparse.ArgumentParser()
    add_options(parser, Job, Fetch, groups={"crawl": "the crawler"})
    text = parser.format_help()
    assert "pages per site (default: 100)" in text
    assert "how (default: fast)" in text
    assert "the crawler" in text
    assert "say more (default" not in text  # a switch has nothing to show


def test_a_flag_declared_twice_is_refused():
    @dataclass(frozen=True)
    class Other:
        timeout: float = option(1.0, type=float, help="another timeout")

    with pytest.raises(ValueError, match="--timeout"):
        add_options(argparse.ArgumentParser(), Fetch, Other)


def test_plain_fields_are_not_options():
    assert [f.name for f, _ in option_fields(Job)] == [
        "inputs", "max_pages", "networks", "mode", "verbose", "steps", "samples"]


def test_zero_and_one_defaults_are_shown_although_they_equal_false_and_true():
    @dataclass(frozen=True)
    class Numbers:
        seed: int = option(0, type=positive_int, help="a seed")
        retries: int = option(1, type=positive_int, help="tries")
        delay: float = option(1.0, type=float, help="seconds")

    parser = argparse.ArgumentParser()
    add_options(parser, Numbers)
    text = " ".join(parser.format_help().split())
    assert "a seed (default: 0)" in text
    assert "tries (default: 1)" in text
    assert "seconds (default: 1.0)" in text
