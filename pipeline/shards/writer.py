"""Writing one output shard: ``{shard}.tar`` (WebDataset), ``{shard}.parquet`` and
``{shard}_stats.json`` in img2dataset's layout, each to a temporary name renamed when
complete. Tar members carry fixed metadata (mtime 0, uid 0, mode 0444) and samples are in
key order, so the same samples always give byte-identical tars on any runner.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterable
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import fsio
from schemas import status as st
from schemas import validate
from schemas.shards import SAMPLES, samples_schema, shard_stats


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o444, 0, 0
    tar.addfile(info, io.BytesIO(data))


class DownloadShardWriter:
    """One download shard in img2dataset's layout (``{shard}.tar`` with ``key.{format}``,
    ``key.txt`` and ``key.json`` per stored image, ``{shard}.parquet`` with every row),
    written as rows arrive. Replaces img2dataset's ``WebDatasetSampleWriter``, whose import
    pulls webdataset and torch into every download worker. The shard counts as done only
    when the downloader writes its ``_stats.json`` after :meth:`close`."""

    def __init__(self, folder: str, name: str, schema: pa.Schema, encode_format: str,
                 buffer_rows: int = 100):
        fs, _, (root,) = fsspec.get_fs_token_paths(folder)
        fs.makedirs(root, exist_ok=True)
        self.encode_format, self.schema, self.buffer_rows = encode_format, schema, buffer_rows
        self._tar_file = fs.open(f"{root}/{name}.tar", "wb")
        self._tar = tarfile.open(fileobj=self._tar_file, mode="w", format=tarfile.USTAR_FORMAT)
        self._parquet_file = fs.open(f"{root}/{name}.parquet", "wb")
        self._parquet = pq.ParquetWriter(self._parquet_file, schema)
        self._rows: list[dict[str, Any]] = []

    def write(self, image: bytes | None, key: str, caption: str | None, row: dict[str, Any]) -> None:
        if image is not None:
            _tar_member(self._tar, f"{key}.{self.encode_format}", image)
            _tar_member(self._tar, f"{key}.txt", (caption or "").encode("utf-8"))
            _tar_member(self._tar, f"{key}.json", sample_json(row))
        self._rows.append(row)
        if len(self._rows) >= self.buffer_rows:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._parquet.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._parquet.close()
        self._parquet_file.close()
        self._tar.close()
        self._tar_file.close()


def _json_value(value: Any) -> Any:
    """A URL list's additional value JSON has no type for (bytes, dates, decimals)."""
    return bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value)


def sample_json(row: dict[str, Any]) -> bytes:
    return json.dumps(row, ensure_ascii=False, sort_keys=True, default=_json_value).encode("utf-8")


# Columns about what was dropped: error_message and duplicate_of are null for every stored
# sample, text_filter_reasons names texts the sample no longer holds ([] for most). The
# Parquet keeps them; a stored sample's KEY.json leaves them out (see stored_sample_json).
DROP_COLUMNS = frozenset({"error_message", "duplicate_of", "text_filter_reasons"})


def stored_sample_json(row: dict[str, Any], schema: pa.Schema) -> bytes:
    """A stored sample's ``KEY.json``: every column of ``schema`` but :data:`DROP_COLUMNS`,
    always present, a null string of :data:`SAMPLES` (``page_url``) as "" (as ``url`` and
    ``caption`` of a ``--urls`` row without one). Readers that infer types from the first
    samples (Hugging Face ``datasets``' webdataset loader reads 5 of the first tar) then see
    the same fields with the same types in every shard: a null or an empty list in those
    first samples would type a field as null, and a later value would fail to load. A URL
    list's additional columns are written as the list holds them."""
    out = {}
    for field in schema:
        if field.name in DROP_COLUMNS:
            continue
        value = row.get(field.name)
        if value is None and field.name in _SAMPLE_STRINGS:
            value = ""
        out[field.name] = value
    return sample_json(out)


_SAMPLE_STRINGS = frozenset(f.name for f in SAMPLES if pa.types.is_string(f.type))


def _atomic_path(path: str) -> str:
    parent, name = path.rsplit("/", 1)
    return f"{parent}/.tmp-{uuid.uuid4().hex}-{name}"


def write_shard(folder: str, name: str, rows: Iterable[dict[str, Any]],
                images: dict[str, bytes], encode_format: str = "jpg",
                extra: pa.Schema | None = None) -> dict[str, Any]:
    """Write the tar (kept samples: ``images`` by key), the Parquet (all ``rows``: the
    SAMPLES columns, then ``extra``, a URL list's additional columns) and the stats of one
    shard; returns the stats."""
    ordered = sorted(rows, key=lambda r: r["key"])
    fs, _, (root,) = fsspec.get_fs_token_paths(folder)
    fs.makedirs(root, exist_ok=True)
    tar_path, parquet_path = f"{root}/{name}.tar", f"{root}/{name}.parquet"
    tmp_tar, tmp_parquet = _atomic_path(tar_path), _atomic_path(parquet_path)
    schema = samples_schema(extra)
    with fs.open(tmp_tar, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for row in ordered:
            if row["status"] == st.SUCCESS:
                key = row["key"]
                _tar_member(tar, f"{key}.{encode_format}", images[key])
                _tar_member(tar, f"{key}.txt", row["caption"].encode("utf-8"))
                _tar_member(tar, f"{key}.json", stored_sample_json(row, schema))
    table = validate(pa.Table.from_pylist(ordered, schema=SAMPLES), SAMPLES, where=parquet_path)
    if extra:
        full = pa.Table.from_pylist(ordered, schema=extra)
        for field in extra:
            table = table.append_column(field, full.column(field.name))
    with fs.open(tmp_parquet, "wb") as f:
        pq.write_table(table, f)
    stats = shard_stats((r["status"] for r in ordered),
                        (reason for r in ordered for reason in r.get("text_filter_reasons") or ()))
    # rename the data first and the stats last: the stats file marks a complete shard
    fs.mv(tmp_tar, tar_path)
    fs.mv(tmp_parquet, parquet_path)
    fsio.atomic_write_json(fsio.join(folder, f"{name}_stats.json"), stats)
    return {"shard": name, **stats}
