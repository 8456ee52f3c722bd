"""The shared argparse types refuse nonsense numbers at parse time."""

import argparse

import pytest

from pipeline.core.cliargs import (
    finite_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)


@pytest.mark.parametrize("parse, good, bad", [
    (positive_int, ["1", "20000"], ["0", "-1", "1.5", "x", ""]),
    (non_negative_int, ["0", "7"], ["-1", "nan"]),
    (positive_float, ["0.5", "3"], ["0", "-0.1", "nan", "inf"]),
    (finite_float, ["-2.5", "0", "30"], ["nan", "inf", "-inf", "abc"]),
    (probability, ["0", "0.25", "1"], ["-0.01", "1.01", "nan"]),
])
def test_numbers_checked_at_parse_time(parse, good, bad):
    for text in good:
        parse(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_usage_error_exit_2(capsys):
    parser = argparse.ArgumentParser(prog="wit x")
    parser.add_argument("--max-pages", type=positive_int)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--max-pages", "-1"])
    assert exc.value.code == 2
    assert "--max-pages" in capsys.readouterr().err
