"""File helpers over fsspec, so every path may be local, gs://, s3://, ... ."""

from __future__ import annotations

import json
import uuid
from typing import Any

import fsspec

from pipeline.core.errors import InputError

GLOB_CHARS = set("*?[")


def expand(patterns: list[str], what: str = "input") -> list[str]:
    """Expand globs into a sorted, de-duplicated list of paths; error if a pattern matches
    nothing. Paths keep their protocol (``gs://...``)."""
    paths: list[str] = []
    for pattern in patterns:
        fs, _, found = fsspec.get_fs_token_paths(pattern)
        if not GLOB_CHARS & set(pattern):
            found = [p for p in found if fs.exists(p)]
        if not found:
            raise InputError(f"{pattern}: no such {what} file")
        paths.extend(_with_protocol(fs, path) for path in found)
    return sorted(set(paths))


def glob(folder: str, pattern: str) -> list[str]:
    """Sorted paths matching ``pattern`` inside ``folder`` (none if it does not exist), with
    the protocol kept: fsspec's own glob drops ``s3://``, and ``fsspec.open`` would then read
    such a path as a local file."""
    fs, _, (root,) = fsspec.get_fs_token_paths(folder)
    if not fs.exists(root):
        return []
    return sorted(_with_protocol(fs, path) for path in fs.glob(f"{root}/{pattern}"))


def _with_protocol(fs: fsspec.AbstractFileSystem, path: str) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def makedirs(path: str) -> None:
    fs, _, (root,) = fsspec.get_fs_token_paths(path)
    fs.makedirs(root, exist_ok=True)


def exists(path: str) -> bool:
    fs, _, (p,) = fsspec.get_fs_token_paths(path)
    return fs.exists(p)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write to a temporary name beside ``path`` and rename it into place, so a crash never
    leaves a file that looks complete."""
    fs, _, (target,) = fsspec.get_fs_token_paths(path)
    parent = target.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{target.rsplit('/', 1)[-1]}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, target)


def atomic_write_json(path: str, obj: Any, indent: int | None = 2) -> None:
    text = json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def read_json(path: str) -> Any:
    with fsspec.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)
