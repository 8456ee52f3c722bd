"""The shards a browse or index run may touch: the ``{name}.tar`` + ``{name}.parquet`` pairs
of the shards folder, listed once. A shard name from a request is only ever looked up in
this listing, never joined onto a path."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.core.errors import InputError

SHARD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def list_shards(folder: str | Path) -> dict[str, Path]:
    """``{shard name: folder/name}`` (add ``.tar``/``.parquet``) of every shard Parquet of a
    local ``wit shards`` output folder, sorted by name; an :class:`InputError` when there is
    none."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (the shards folder of `wit shards`, OUT/shards)")
    shards = {p.stem: p.with_suffix("") for p in sorted(root.glob("*.parquet"))
              if SHARD_NAME.match(p.stem)}
    if not shards:
        raise InputError(f"{root}: no shard Parquets ({{shard}}.parquet): not a `wit shards` "
                         "output folder")
    return shards
