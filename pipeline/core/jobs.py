"""What every stage's ``job.py`` shares: clearing an earlier run's outputs, the package
versions recorded in its stats, and where its summary goes (stdout, for every stage;
progress and notices go to stderr)."""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterable
from importlib import metadata as importlib_metadata

import fsspec


def remove_outputs(folder: str, patterns: Iterable[str]) -> None:
    """Delete the files of ``folder`` matching ``patterns`` (globs), so a run that fails
    never leaves an earlier run's outputs looking like its own result."""
    fs, _, (root,) = fsspec.get_fs_token_paths(folder)
    if not fs.exists(root):
        return
    for pattern in patterns:
        for path in fs.glob(f"{root}/{pattern}"):
            fs.rm(path)


def versions(packages: Iterable[str], *, python: bool = False,
             missing: str | None = None) -> dict[str, str]:
    """Installed versions of ``packages``; one not installed is ``missing``, or left out
    when ``missing`` is None. ``python``: the interpreter's version first."""
    found = {"python": platform.python_version()} if python else {}
    for package in packages:
        try:
            found[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            if missing is not None:
                found[package] = missing
    return found


def print_summary(text: str) -> None:
    """A stage's closing summary, on stdout for every stage."""
    print(text, file=sys.stdout, flush=True)
