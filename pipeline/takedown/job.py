"""``wit takedown`` end to end: read the lists, go through the shards one at a time
(memory: one shard), rewrite those a list matches, record every removal in
``removals.jsonl`` before its shard is replaced, then ``sizes.json``, ``manifest.json`` (a
new dataset version) and the sample grid of ``report.html``. Files of untouched shards are
never opened for writing: they stay byte-identical.

A run killed half-way leaves every shard either old or new (renames), and a rerun finishes
the job: removals already recorded are not recorded twice, and ``sizes.json`` is
reconciled with every shard's ``_stats.json`` at the end of each run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import fsspec

from pipeline.core import fsio
from pipeline.core.dataset_card import dataset_card
from pipeline.core.errors import InputError
from pipeline.core.jobs import remove_outputs
from pipeline.core.progress import Progress
from pipeline.core.takedown_list import KINDS, TakedownList, read_lists
from pipeline.takedown.shard_rewrite import Rewrite, rewrite_shard
from schemas import status as st
from schemas.takedown import REMOVALS


@dataclass
class Outcome:
    """What a takedown did (the summary and the manifest's ``takedowns`` entry)."""

    version: int
    rules: dict[str, int]
    matched: Counter[str] = field(default_factory=Counter)  # rows matched, by rule kind
    removed_samples: Counter[str] = field(default_factory=Counter)  # of them in the tars
    shards: list[str] = field(default_factory=list)
    shards_seen: int = 0
    dry_run: bool = False


def shard_stems(folder: str) -> list[str]:
    """The shards of a ``wit shards`` output folder (``00000``, ...), in order."""
    names = [p.rsplit("/", 1)[-1] for p in fsio.glob(folder, "*.parquet")]
    stems = sorted(n[: -len(".parquet")] for n in names if not n.startswith("."))
    if not stems:
        raise InputError(f"{folder}: no shard Parquet files (*.parquet): is it OUT/shards "
                         "of a 'wit shards' run?")
    return stems


def recorded_removals(path: str) -> set[tuple[str, str]]:
    """``(shard, key)`` of removals.jsonl's records (a crashed run's, not to be repeated)."""
    if not fsio.exists(path):
        return set()
    seen = set()
    with fsspec.open(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                    seen.add((record["shard"], record["key"]))
                except (ValueError, KeyError, TypeError) as exc:
                    raise InputError(f"{path}:{number}: not a removals record: {exc}") from None
    return seen


def _append(path: str, records: list[dict[str, Any]]) -> None:
    if records:
        with fsspec.open(path, "ab") as f:
            for record in records:
                f.write(json.dumps(record, sort_keys=True).encode("utf-8") + b"\n")


def _stats_of(folder: str, stems: list[str]) -> dict[str, dict[str, Any]]:
    return {s: fsio.read_json(fsio.join(folder, f"{s}_stats.json")) for s in stems
            if fsio.exists(fsio.join(folder, f"{s}_stats.json"))}


def reconcile_sizes(folder: str, stems: list[str]) -> dict[str, int] | None:
    """sizes.json as the shards' ``_stats.json`` say (``successes``); written and returned
    when it differed, None when it was right already."""
    path = fsio.join(folder, "sizes.json")
    old = fsio.read_json(path) if fsio.exists(path) else {}
    sizes = dict(old)
    for stem in stems:
        stats_path = fsio.join(folder, f"{stem}_stats.json")
        if fsio.exists(stats_path):
            sizes[f"{stem}.tar"] = int(fsio.read_json(stats_path)["successes"])
    if sizes == old:
        return None
    fsio.atomic_write_json(path, sizes)
    return sizes


def update_manifest(folder: str, stems: list[str], outcome: Outcome, lists: list[str],
                    sizes: dict[str, int]) -> None:
    """The manifest of the new version: statuses and kept counts from the shards' stats
    (the funnel of the original run stays: it says how the samples were chosen), the
    version and this takedown appended to ``takedowns``."""
    path = fsio.join(folder, "manifest.json")
    if not fsio.exists(path):
        return
    manifest = fsio.read_json(path)
    statuses: Counter[str] = Counter()
    for stats in _stats_of(folder, stems).values():
        statuses.update(stats.get("status_dict", {}))
        if stats.get("duplicates"):
            statuses[st.DUPLICATE] += stats["duplicates"]
    manifest["statuses"] = dict(sorted(statuses.items()))
    manifest.setdefault("counts", {})["kept"] = statuses[st.SUCCESS]
    manifest.setdefault("shards", {})["samples"] = sum(sizes.values())
    manifest["version"] = outcome.version
    manifest.setdefault("takedowns", []).append({
        "version": outcome.version,
        "lists": [_fingerprint(p) for p in lists],
        "matched": dict(outcome.matched),
        "removed": sum(outcome.matched.values()),
        "removed_samples": sum(outcome.removed_samples.values()),
        "shards_rewritten": len(outcome.shards),
    })
    fsio.atomic_write_json(path, manifest)
    card = fsio.join(folder, "README.md")
    if fsio.exists(card):  # the dataset card states the current version and size
        fsio.atomic_write_bytes(card, dataset_card(manifest).encode("utf-8"))


def _fingerprint(path: str) -> dict[str, Any]:
    with fsspec.open(path, "rb") as f:
        return {"path": path, "sha256": hashlib.sha256(f.read()).hexdigest()}


FIGURE = re.compile(r"<figure><img src='data:image/[a-z]+;base64,([A-Za-z0-9+/=]+)'>"
                    r"<figcaption>.*?</figcaption></figure>\n?", re.S)
DATA_URI = re.compile(r"data:image/[a-z+.-]+;base64,([A-Za-z0-9+/=]+)")


def scrub_report(folder: str, removed_images: set[str], version: int) -> bool:
    """Drop the removed images from report.html's sample grid (it embeds them) and say
    which version the card describes; True when the file changed."""
    path = fsio.join(folder, "report.html")
    if not removed_images or not fsio.exists(path):
        return False
    with fsspec.open(path, "rt", encoding="utf-8") as f:
        text = f.read()

    def _removed(payload: str) -> bool:
        return hashlib.sha256(payload.encode("ascii")).hexdigest() in removed_images

    def keep(match: re.Match[str]) -> str:
        return "" if _removed(match.group(1)) else match.group(0)

    scrubbed = FIGURE.sub(keep, text)
    # any other embedding of a removed image (should the card's layout change): emptied
    scrubbed = DATA_URI.sub(lambda m: "data:," if _removed(m.group(1)) else m.group(0), scrubbed)
    if scrubbed == text:
        return False
    note = (f"<p><b>Takedown:</b> dataset version {version}; samples taken down since the "
            "card was written are gone from the grid below, the counts are those of the "
            "original run (manifest.json has the current ones).</p>")
    scrubbed = scrubbed.replace("</h1>", "</h1>\n" + note, 1) if note not in scrubbed else scrubbed
    fsio.atomic_write_bytes(path, scrubbed.encode("utf-8"))
    return True


def run(folder: str, lists: list[str], dry_run: bool = False) -> Outcome:
    """Apply the takedown ``lists`` to the shards of ``folder`` (``OUT/shards``)."""
    takedown: TakedownList = read_lists(lists)  # a bad line fails before any shard is read
    stems = shard_stems(folder)
    if not dry_run:
        remove_outputs(folder, (".tmp-*",))  # what a killed run was writing
    manifest_path = fsio.join(folder, "manifest.json")
    version = (fsio.read_json(manifest_path).get("version", 1) if fsio.exists(manifest_path)
               else 1) + 1
    outcome = Outcome(version, takedown.counts(), dry_run=dry_run)
    removals = fsio.join(folder, REMOVALS)
    seen = recorded_removals(removals)
    removed_images: set[str] = set()
    progress = Progress("wit takedown", total=len(stems), unit="shard")
    for stem in stems:
        rewrite: Rewrite | None = rewrite_shard(folder, stem, takedown, version)
        outcome.shards_seen += 1
        progress.update()
        if rewrite is None:
            continue
        for record in rewrite.records:
            outcome.matched[record["kind"]] += 1
            if record["status_before"] == st.SUCCESS:
                outcome.removed_samples[record["kind"]] += 1
        outcome.shards.append(f"{stem}.tar")
        if dry_run:
            rewrite.discard()
            continue
        # recorded before the shard is replaced: a crash in between leaves a record of a
        # removal that the rerun then makes (and does not record again)
        _append(removals, [r for r in rewrite.records if (r["shard"], r["key"]) not in seen])
        rewrite.commit()
        removed_images |= rewrite.removed_images
    progress.close()
    if dry_run:
        return outcome
    sizes = reconcile_sizes(folder, stems)
    if outcome.shards or sizes is not None:
        current = fsio.read_json(fsio.join(folder, "sizes.json")) \
            if fsio.exists(fsio.join(folder, "sizes.json")) else {}
        update_manifest(folder, stems, outcome, lists, current)
        scrub_report(folder, removed_images, version)
    else:
        outcome.version -= 1  # nothing changed: still the version it was
    return outcome


def summary_text(outcome: Outcome, folder: str) -> str:
    removed, samples = sum(outcome.matched.values()), sum(outcome.removed_samples.values())
    head = "wit takedown (dry run, nothing written)" if outcome.dry_run else "wit takedown"
    version = f"; dataset version {outcome.version}" if not outcome.dry_run else ""
    lines = [f"{head}: {removed} row(s) matched, {samples} sample(s) removed from "
             f"{len(outcome.shards)} of {outcome.shards_seen} shard(s) under {folder}{version}",
             "  list entries: " + ", ".join(f"{k} {outcome.rules.get(k, 0)}" for k in KINDS),
             "  rows matched by kind: " + ", ".join(
                 f"{k} {outcome.matched.get(k, 0)} ({outcome.removed_samples.get(k, 0)} in the tars)"
                 for k in KINDS)]
    if outcome.shards:
        shown = ", ".join(outcome.shards[:10]) + (" ..." if len(outcome.shards) > 10 else "")
        lines.append(f"  shards rewritten: {shown}")
    if not outcome.dry_run and removed:
        lines.append(f"  recorded in {fsio.join(folder, REMOVALS)}")
    return "\n".join(lines)
