"""Shared fixtures. Real sample data lives in ../shared/data (see its README); tests that
need it skip with a reason when it is missing."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WIT_PROGRESS", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WIT_SHARED_DATA", REPO.parent / "shared" / "data"))


@contextlib.contextmanager
def loopback_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (a free port) in a thread; yields ``http://127.0.0.1:P``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def shared_file(relative: str) -> Path:
    """A file from ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"sample data {path} not present (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def wiki_sample() -> Path:
    return shared_file("wikipedia/enwiki-sample-pages-articles.xml.bz2")


@pytest.fixture(scope="module")
def beam_temp_files(tmp_path_factory) -> Iterator[None]:
    """Beam's stager and job service leave temporary folders behind: keep them in pytest's
    temporary folder instead of the system's."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("beam_tmp"))
    yield
    tempfile.tempdir = saved
