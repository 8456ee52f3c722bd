"""Read-only access to a ``wit shards`` output (and its ``wit index``) for the browser: rows
by (shard, key), images straight out of the tars by offset, near-duplicate groups, facet
scans, the mapping rows of index ids. Shard names from requests are looked up in the
listing made at start; keys are looked up in Parquets and tar offset indices, never used as
paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.browse.facets import BASE_COLUMNS, FacetResult, count_facets, extra_facet_columns
from pipeline.browse.shard_listing import list_shards
from pipeline.browse.tar_offsets import Member, image_offsets, read_member
from pipeline.core.errors import InputError
from schemas import status as st
from schemas.index import MAPPING_ROW_GROUP

BATCH_ROWS = 8192


def shards_folder(out: str | Path) -> Path:
    """OUT/shards, or OUT itself when it is a shards folder."""
    root = Path(out)
    return root / "shards" if (root / "shards").is_dir() else root


class Dataset:
    def __init__(self, out: str | Path):
        self.root = Path(out)
        self.folder = shards_folder(out)
        self.shards = list_shards(self.folder)
        schema = pq.read_schema(self.shards[next(iter(self.shards))].with_suffix(".parquet"))
        self.columns = schema.names
        self.extra = extra_facet_columns(schema)
        self.entry_names = self._entry_names()
        self._offsets = lru_cache(maxsize=16)(self._load_offsets)
        self._facets = lru_cache(maxsize=32)(self._count)

    def _entry_names(self) -> dict[int, str]:
        """Query entry names from the crawl's entry_counts.parquet (OUT/candidates), if any."""
        path = self.root / "candidates" / "entry_counts.parquet"
        if not path.is_file():
            return {}
        table = pq.read_table(path, columns=["entry_id", "entry"]).to_pydict()
        return dict(zip(table["entry_id"], table["entry"]))

    def manifest(self) -> dict[str, Any]:
        path = self.folder / "manifest.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def report_html(self) -> bytes | None:
        path = self.folder / "report.html"
        return path.read_bytes() if path.is_file() else None

    def base(self, shard: str) -> Path:
        """The listed shard's path without suffix; KeyError for a name not in the listing."""
        return self.shards[shard]

    def row(self, shard: str, key: str) -> dict[str, Any] | None:
        """Every column of one row, or None."""
        table = pq.read_table(self.base(shard).with_suffix(".parquet"), filters=[("key", "=", key)])
        rows = table.to_pylist()
        return rows[0] if rows else None

    def _load_offsets(self, shard: str) -> dict[str, Member]:
        tar = self.base(shard).with_suffix(".tar")
        return image_offsets(str(tar)) if tar.is_file() else {}

    def image(self, shard: str, key: str) -> tuple[bytes, str] | None:
        """(image bytes, format) of a kept sample, read at its offset in the tar."""
        member = self._offsets(shard).get(key)
        if member is None:
            return None
        data = read_member(str(self.base(shard).with_suffix(".tar")), member.offset, member.size)
        return data, member.image_format

    def has_image(self, shard: str, key: str) -> bool:
        return key in self._offsets(shard)

    def duplicate_group(self, row: dict[str, Any]) -> tuple[str | None, list[tuple[str, str, str]]]:
        """(the kept copy's key, [(shard, key, status)] of every row in its group, the kept
        copy first). A row that is neither kept nor a duplicate has no group."""
        status = row["status"]
        if st.is_duplicate(status):
            keeper = status[len(st.DUPLICATE_PREFIX):]
        elif status == st.SUCCESS:
            keeper = row["key"]
        else:
            return None, []
        members: list[tuple[str, str, str]] = []
        wanted = st.duplicate_of(keeper)
        for shard, base in self.shards.items():
            table = pq.read_table(base.with_suffix(".parquet"), columns=["key", "status"],
                                  filters=[("status", "in", [wanted, st.SUCCESS])]).to_pydict()
            for key, s in zip(table["key"], table["status"]):
                if s == wanted:
                    members.append((shard, key, s))
                elif key == keeper:
                    members.insert(0, (shard, key, s))
        return keeper, members if len(members) > 1 else []

    def _batches(self) -> Iterator[tuple[str, dict[str, list[Any]]]]:
        columns = [c for c in BASE_COLUMNS if c in self.columns] + self.extra
        for shard, base in self.shards.items():
            parquet = pq.ParquetFile(base.with_suffix(".parquet"))
            present = [c for c in columns if c in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=present):
                yield shard, batch.to_pydict()

    def _count(self, selected: tuple[tuple[str, str], ...], offset: int, limit: int) -> FacetResult:
        return count_facets(self._batches(), self.extra, dict(selected), offset, limit)

    def facets(self, selected: dict[str, str], offset: int = 0, limit: int = 50) -> FacetResult:
        """Facet counts and a page of matching rows over every row of every shard (one
        streaming pass; the last results are cached: the data is read-only)."""
        return self._facets(tuple(sorted(selected.items())), offset, limit)


class Mapping:
    """``mapping.parquet`` of ``wit index``: rows by index id, one row group at a time."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise InputError(f"{path}: no mapping.parquet (run `wit index` first)")
        self.file = pq.ParquetFile(path)
        self.path = path
        self._group = lru_cache(maxsize=64)(self._read_group)

    def _read_group(self, group: int) -> dict[str, list[Any]]:
        return self.file.read_row_group(group, columns=[
            "index_id", "shard", "key", "url", "caption", "status", "clip_score"]).to_pydict()

    def rows(self, ids: list[int]) -> list[dict[str, Any]]:
        """The mapping rows of ``ids`` (index ids), in that order."""
        out = []
        for i in ids:
            group = self._group(i // MAPPING_ROW_GROUP)
            j = i - i // MAPPING_ROW_GROUP * MAPPING_ROW_GROUP
            if group["index_id"][j] != i:
                raise InputError(f"{self.path}: row {i} is not index id {i}: not written by "
                                 "`wit index`")
            out.append({name: values[j] for name, values in group.items()})
        return out

    def find(self, shard: str, key: str) -> int | None:
        """The index id of (shard, key), or None (rows are sorted, so row-group statistics
        skip most of the file)."""
        table = pq.read_table(self.path, columns=["index_id"],
                              filters=[("shard", "=", shard), ("key", "=", key)])
        ids = table.column("index_id").to_pylist()
        return ids[0] if ids else None
