"""Artifacts of ``wit takedown`` in ``OUT/shards/``.

- ``removals.jsonl``: one JSON object per removed row, appended by every takedown run, in
  shard then key order: :data:`REMOVAL_FIELDS`. Hashes, keys and the rule, never image
  bytes or captions. A later ``--exclude OUT/shards/removals.jsonl`` reads it back as a
  takedown list (pipeline/core/takedown_list.py).
- ``manifest.json`` gains ``version`` (the dataset version: 1 as ``wit shards`` wrote it, +1
  per takedown that removed something) and ``takedowns`` (:data:`TAKEDOWN_KEYS` per run).
"""

from __future__ import annotations

from typing import Any

REMOVALS = "removals.jsonl"

REMOVAL_FIELDS = (
    "version",  # the dataset version this removal made
    "shard",  # the tar (``00000.tar``) whose row it was
    "key", "uid",
    "status_before",  # the row's status before the takedown (``success`` if it was in the tar)
    "url", "page_url",  # what --exclude refuses before fetching in later runs
    "sha256", "phash",  # of the downloaded bytes / the stored image (null if never fetched)
    "kind", "rule",  # the matching entry: its kind and its list line (``domain example.com``)
    "list",  # where the entry was read: ``FILE:LINE``
)

TAKEDOWN_KEYS = ("version", "lists", "matched", "removed", "removed_samples",
                 "shards_rewritten")


def removal_record(version: int, shard: str, row: dict[str, Any], kind: str, rule: str,
                   where: str) -> dict[str, Any]:
    """One line of removals.jsonl from the row as it was before the takedown."""
    return {"version": version, "shard": shard, "key": row["key"], "uid": row.get("uid"),
            "status_before": row["status"], "url": row.get("url") or None,
            "page_url": row.get("page_url"), "sha256": row.get("sha256"),
            "phash": row.get("phash"), "kind": kind, "rule": rule, "list": where}
