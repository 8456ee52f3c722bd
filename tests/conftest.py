"""Shared fixtures. Helpers the tests import (servers, input builders, sample data) live in
``tests/helpers/``. Real sample data lives in ../shared/data (see its README); tests that need
it skip with a reason when it is missing."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.data import shared_file

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WIT_PROGRESS", "0")


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
