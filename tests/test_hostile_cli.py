"""Hostile command lines, through the real `wit` command: `--out` pointing at a regular file
(every stage and the demo), nonsense numbers (every numeric option of every stage is
validated at parse time), and a `wit shards` launcher killed with SIGKILL (its download
workers must die with it) or left with a failed download shard (non-zero exit naming it)."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.shards import TRUSTED, Server, real_images, send, to_jpeg, write_candidates

from pipeline.cli import COMMANDS, _OneLineParser
from pipeline.cli import main as wit_main
from pipeline.core import cliargs

WIT = [sys.executable, "-m", "pipeline.cli"]


def wit(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "WIT_PROGRESS": "0", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([*WIT, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess, *names: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- --out is a file


def stage_args(tmp: Path) -> dict[str, list[str]]:
    """Each stage with its other required options (inputs need not be valid: --out is
    checked first, when the command line is parsed)."""
    missing = str(tmp / "missing")
    return {
        "queries": ["--wiki", missing],
        "crawl": ["--metadata", missing, "--warc", missing],
        "shards": ["--candidates", missing],
        "train": ["--shards", missing],
        "eval": ["--checkpoint", missing, "--retrieval", missing],
        "demo": [],
        "export": ["--checkpoint", missing],
    }


@pytest.mark.integration
def test_out_pointing_at_a_file_is_one_line_error_in_every_command(tmp_path):
    regular = tmp_path / "results.txt"
    regular.write_text("an earlier run's notes\n")
    for stage, args in stage_args(tmp_path).items():
        for out in (regular, regular / "sub"):
            result = wit(stage, *args, "--out", str(out))
            assert result.returncode == 2, (stage, result.stderr)
            line = one_line_error(result, f"wit {stage}", "--out", str(regular))
            assert "is a file, not a folder" in line or "which is a file" in line, line
    assert regular.read_text() == "an earlier run's notes\n"  # untouched


# ---------------------------------------------------------------- numbers


# (stage, option, bad value): the issue's cases first, then one or more per stage
BAD_NUMBERS = [
    ("queries", "--max-entries", "0"), ("queries", "--max-entries", "-1"),
    ("queries", "--min-pmi", "nan"), ("crawl", "--max-page-bytes", "-1"),
    ("crawl", "--max-pages", "-1"),
    ("queries", "--min-count", "-3"), ("queries", "--min-views", "ten"),
    ("crawl", "--timeout", "inf"), ("crawl", "--delay", "-0.5"), ("crawl", "--t", "0"),
    ("crawl", "--concurrency", "0"), ("crawl", "--num-shards", "-2"),
    ("shards", "--processes", "0"), ("shards", "--threads", "-4"),
    ("shards", "--timeout", "nan"), ("shards", "--encode-quality", "101"),
    ("shards", "--near-dup-bits", "65"), ("shards", "--max-aspect", "0.5"),
    ("shards", "--download-shard-size", "0"), ("shards", "--max-bytes", "-1"),
    ("train", "--batch-size", "0"), ("train", "--lr", "nan"), ("train", "--lr", "-1e-3"),
    ("train", "--steps", "-5"), ("train", "--workers", "-1"), ("train", "--grad-clip", "inf"),
    ("train", "--checkpoint-every", "0"), ("train", "--log-every", "0"),
    ("eval", "--batch-size", "0"), ("eval", "--retrieval-samples", "-1"),
    ("eval", "--probe-c", "0.1,nan"), ("eval", "--probe-c", "1,-2"),
    ("demo", "--steps", "0"), ("demo", "--port", "70000"), ("demo", "--images", "1.5"),
]


@pytest.mark.integration
def test_the_issues_nonsense_numbers_are_usage_errors_via_the_real_command(tmp_path):
    args = stage_args(tmp_path)
    for stage, option, value in BAD_NUMBERS[:5]:
        result = wit(stage, *args[stage], "--out", str(tmp_path / "o"), option, value)
        assert result.returncode == 2, (stage, option, value, result.stderr)
        one_line_error(result, f"wit {stage}", option, value)
    assert not (tmp_path / "o").exists()  # nothing ran


@pytest.mark.parametrize("stage, option, value", BAD_NUMBERS)
def test_every_stage_refuses_nonsense_numbers(stage, option, value, tmp_path, capsys):
    args = stage_args(tmp_path)[stage]
    with pytest.raises(SystemExit) as exit_info:
        wit_main([stage, *args, "--out", str(tmp_path / "o"), f"{option}={value}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    bad_part = value.split(",")[-1]  # lists name the bad element
    assert len(err) == 1 and option in err[0] and bad_part in err[0], err


def _parser(stage: str) -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=f"wit {stage}")
    importlib.import_module(COMMANDS[stage][0]).add_arguments(parser)
    return parser


@pytest.mark.parametrize("stage", list(COMMANDS))
@pytest.mark.integration
def test_every_numeric_option_uses_a_validated_type(stage):
    """Stays fixed: an option added later with a bare ``type=int``/``float`` fails here."""
    for action in _parser(stage)._actions:
        name = "/".join(action.option_strings)
        assert action.type not in (int, float), f"wit {stage} {name}: use pipeline.core.cliargs"
        if action.dest == "out":
            assert action.type is cliargs.output_dir, f"wit {stage} --out: use output_dir"


# ---------------------------------------------------------------- wit shards workers


def children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def shards_command(candidates: Path, out: Path) -> list[str]:
    return [*WIT, "shards", "--candidates", str(candidates), "--out", str(out),
            "--allow-network", TRUSTED, "--processes", "2", "--threads", "1",
            "--download-shard-size", "2", "--image-size", "64", "--timeout", "30"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.integration
def test_killed_launcher_takes_its_download_workers_with_it(tmp_path):
    server = Server()
    images = real_images(2)
    release = threading.Event()

    def slow(h, body=to_jpeg(images[0][1])):
        release.wait(60)  # downloads are in flight when the launcher is killed
        send(h, 200, body)

    rows = []
    for i in range(6):
        server.routes[f"/img/{i}.jpg"] = slow
        rows.append({"url": server.url(f"/img/{i}.jpg"), "text": f"a slow picture {i}"})
    candidates = write_candidates(tmp_path / "candidates", rows)
    env = {**os.environ, "WIT_PROGRESS": "0", "NO_ALBUMENTATIONS_UPDATE": "1"}
    launcher = subprocess.Popen(shards_command(candidates, tmp_path / "out"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and image_hits(server) < 2:
            time.sleep(0.1)
        workers = {pid for pid in children(launcher.pid) if alive(pid)}
        assert len(workers) >= 2 and image_hits(server) >= 2  # downloading
        os.kill(launcher.pid, signal.SIGKILL)  # the launcher only, not its process group
        launcher.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not [pid for pid in workers if alive(pid)], "download workers outlived the launcher"
    finally:
        try:
            os.killpg(launcher.pid, signal.SIGKILL)  # whatever is left, if the test failed
        except ProcessLookupError:
            pass
        release.set()
        server.close()


def image_hits(server: Server) -> int:
    return sum(n for path, n in server.hits.items() if path.startswith("/img/"))


@pytest.mark.integration
def test_a_shard_left_undone_fails_the_run_naming_it(tmp_path):
    server = Server()
    rows = []
    for i, (name, image) in enumerate(real_images(4)):
        server.routes[f"/img/{i}.jpg"] = to_jpeg(image)
        rows.append({"url": server.url(f"/img/{i}.jpg"), "text": f"a picture of {name}"})
    candidates = write_candidates(tmp_path / "candidates", rows)
    out = tmp_path / "out"
    # download shard 00001's tar cannot be written: a folder has its name
    (out / "shards" / "_work" / "round0" / "00001.tar").mkdir(parents=True)
    try:
        result = subprocess.run(shards_command(candidates, out), capture_output=True, text=True,
                                env={**os.environ, "WIT_PROGRESS": "0",
                                     "NO_ALBUMENTATIONS_UPDATE": "1"}, timeout=240)
    finally:
        server.close()
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wit shards: error:") and "00001" in last and "00000" not in last
    assert (out / "shards" / "_work" / "round0" / "00000_stats.json").exists()  # the good one
    assert not (out / "shards" / "manifest.json").exists()
