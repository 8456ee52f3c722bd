"""Issue item 3: no stage contacts a host it was not asked to. A real ``wit shards`` run on a
loopback input, with ``NO_ALBUMENTATIONS_UPDATE`` removed from its environment, under an
audit hook (a ``sitecustomize`` on ``PYTHONPATH``, so the launcher and every worker process
load it) that records every ``getaddrinfo`` and ``connect`` and refuses any that is not
loopback. The hook is shown to catch albumentations' update check when nothing turns it
off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.shards import TRUSTED, Server, served_rows, write_candidates

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]

AUDIT = '''
import ipaddress, os, sys

_LOG = os.environ.get("WIT_TEST_NET_LOG")


def _loopback(host):
    if host is None or host in ("localhost", b"localhost", "", b""):
        return True
    try:
        text = host.decode() if isinstance(host, bytes) else str(host)
        return ipaddress.ip_address(text.split("%")[0]).is_loopback
    except ValueError:
        return False  # a name other than localhost: DNS, another host


def _hook(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    else:
        return
    kind = "loopback" if _loopback(host) else "other"
    with open(f"{_LOG}.{kind}", "a") as f:
        f.write(f"{os.getpid()} {event} {host!r}\\n")
    if kind == "other":
        raise OSError("test: a non-loopback host was contacted")


if _LOG:
    sys.addaudithook(_hook)
'''


def audited_env(tmp: Path) -> tuple[dict[str, str], Path]:
    (tmp / "audit").mkdir()
    (tmp / "audit" / "sitecustomize.py").write_text(AUDIT)
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(tmp / "audit"), str(REPO), env.get("PYTHONPATH", "")) if p)
    env["WIT_TEST_NET_LOG"] = str(tmp / "net")
    return env, tmp / "net"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_the_audit_catches_albumentations_update_check(tmp_path: Path) -> None:
    env, log = audited_env(tmp_path)
    subprocess.run([sys.executable, "-c", "import albumentations"], env=env, check=True,
                   capture_output=True, timeout=120)
    assert any("getaddrinfo" in line for line in lines(Path(f"{log}.other")))


def test_wit_shards_contacts_only_the_hosts_it_downloads_from(tmp_path: Path) -> None:
    env, log = audited_env(tmp_path)
    server = Server()
    try:
        candidates = write_candidates(tmp_path / "candidates", served_rows(server, 3))
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "shards", "--candidates", str(candidates),
             "--out", str(tmp_path / "out"), "--allow-network", TRUSTED, "--processes", "2",
             "--download-shard-size", "3", "--samples-per-shard", "10"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        _, stderr = proc.communicate(timeout=300)
    finally:
        server.close()
    assert proc.returncode == 0, stderr
    assert lines(Path(f"{log}.other")) == []
    assert "albumentations" not in stderr.lower()
    # the hook ran in the download workers: they connected to the image server
    workers = {line.split()[0] for line in lines(Path(f"{log}.loopback"))
               if f"'{server.host}'" in line and "connect" in line}
    assert workers and str(proc.pid) not in workers
    assert sum(server.hits.values()) > 0
