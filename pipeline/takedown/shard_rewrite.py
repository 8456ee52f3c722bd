"""One shard through a takedown: which of its rows a list matches (pure), the row left in
the Parquet in place of a removed one (pure), and the rewrite itself: a new tar without the
removed samples' members, the Parquet with the rows marked ``removed``, the new
``_stats.json``, each written to a temporary name; :meth:`Rewrite.commit` renames them over
the old files (tar, Parquet, then stats: the order ``wit shards`` writes them in)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import fsio
from pipeline.core.takedown_list import Rule, TakedownList
from pipeline.takedown.tar_filter import filter_tar, member_data
from schemas import status as st
from schemas.shards import shard_stats
from schemas.takedown import removal_record

# what a removed row keeps: enough to count it and to refuse the image again, nothing of
# what it showed or said (url, captions, page) -- removals.jsonl keeps the URLs, apart
KEPT_COLUMNS = frozenset({"key", "uid", "status", "error_message", "sha256", "phash",
                          "attempts"})
TEXT_MEMBERS = (".txt", ".json")


def matched_rows(rows: Iterable[dict[str, Any]], takedown: TakedownList) -> dict[str, Rule]:
    """``{key: rule}`` of the rows the list matches; rows already removed are left alone
    (so a second run of the same list removes nothing more)."""
    hits = {}
    for row in rows:
        if row["status"] == st.REMOVED:
            continue
        rule = takedown.match(row.get("url"), row.get("page_url"), row.get("sha256"),
                              row.get("phash"))
        if rule is not None:
            hits[row["key"]] = rule
    return hits


def removed_row(row: dict[str, Any], rule: Rule, schema: pa.Schema) -> dict[str, Any]:
    """The Parquet row left for a removed sample: status ``removed``, the rule in
    ``error_message``, its key, uid and hashes; every other column null ("" where the schema
    allows no null)."""
    out: dict[str, Any] = {}
    for f in schema:
        if f.name in KEPT_COLUMNS:
            out[f.name] = row.get(f.name)
        elif f.nullable:
            out[f.name] = None
        else:
            out[f.name] = "" if pa.types.is_string(f.type) else row.get(f.name)
    out["status"] = st.REMOVED
    out["error_message"] = st.removed_message(rule.kind, rule.where, rule.line)
    return out


def _temp(path: str) -> str:
    parent, name = path.rsplit("/", 1)
    return f"{parent}/.tmp-{uuid.uuid4().hex}-{name}"


@dataclass
class Rewrite:
    """A shard rewritten under temporary names, not yet in place."""

    folder: str
    stem: str
    records: list[dict[str, Any]]
    stats: dict[str, Any]
    dropped_members: int
    temps: dict[str, str] = field(default_factory=dict)  # final path -> temporary path
    # sha256 of the base64 text of every removed image (report.html embeds images so)
    removed_images: set[str] = field(default_factory=set)

    def commit(self) -> None:
        fs, _, _ = fsspec.get_fs_token_paths(self.folder)
        for final, temp in self.temps.items():  # tar first, then Parquet
            fs.mv(temp, final)
        fsio.atomic_write_json(fsio.join(self.folder, f"{self.stem}_stats.json"), self.stats)

    def discard(self) -> None:
        fs, _, _ = fsspec.get_fs_token_paths(self.folder)
        for temp in self.temps.values():
            if fs.exists(temp):
                fs.rm(temp)


def rewrite_shard(folder: str, stem: str, takedown: TakedownList, version: int) -> Rewrite | None:
    """The rewrite of shard ``stem`` (``00000``) of ``folder``, or None when the list
    matches none of its rows (nothing is written then)."""
    parquet_path, tar_path = fsio.join(folder, f"{stem}.parquet"), fsio.join(folder, f"{stem}.tar")
    with fsspec.open(parquet_path, "rb") as f:
        table = pq.read_table(f)
    rows = table.to_pylist()
    hits = matched_rows(rows, takedown)
    if not hits:
        return None
    new_rows = [removed_row(r, hits[r["key"]], table.schema) if r["key"] in hits else r
                for r in rows]
    records = [removal_record(version, f"{stem}.tar", r, hits[r["key"]].kind,
                              hits[r["key"]].line, hits[r["key"]].where)
               for r in rows if r["key"] in hits]
    stats = shard_stats((r["status"] for r in new_rows),
                        (x for r in new_rows for x in r.get("text_filter_reasons") or ()))
    rewrite = Rewrite(folder, stem, records, stats, 0)

    def note_image(member: str, raw: bytes) -> None:
        if not member.endswith(TEXT_MEMBERS):
            text = base64.b64encode(member_data(raw))
            rewrite.removed_images.add(hashlib.sha256(text).hexdigest())

    try:
        rewrite.temps[tar_path] = _temp(tar_path)
        with fsspec.open(tar_path, "rb") as src, fsspec.open(rewrite.temps[tar_path], "wb") as dst:
            rewrite.dropped_members = filter_tar(src, dst, tar_path, hits.__contains__, note_image)
        rewrite.temps[parquet_path] = _temp(parquet_path)
        with fsspec.open(rewrite.temps[parquet_path], "wb") as f:
            pq.write_table(pa.Table.from_pylist(new_rows, schema=table.schema), f)
    except BaseException:
        rewrite.discard()
        raise
    return rewrite
