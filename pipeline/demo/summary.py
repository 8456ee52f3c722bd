"""The demo's facts, read back from what each stage wrote, and the final summary table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.shards.filters import describe_changes
from schemas import status as st


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else {}


def collect(out: Path, timings: dict[str, float]) -> dict[str, Any]:
    log_path = out / "train" / "log.jsonl"
    log = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()] \
        if log_path.is_file() else []
    return {"queries": _json(out / "queries" / "stats.json"),
            "crawl": _json(out / "candidates" / "stats.json"),
            "shards": _json(out / "shards" / "manifest.json"),
            "train": [row for row in log if "loss" in row],
            "eval": _json(out / "eval" / "eval.json"), "timings": dict(timings)}


def rows(facts: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(section, what, value) rows of the summary, shared by the console and report.html."""
    out: list[tuple[str, str, str]] = []
    for source, n in facts["queries"].get("entries_per_source", {}).items():
        out.append(("queries", f"entries from {source}", f"{n.get('kept', 0):,}"))
    changed = _query_threshold_changes(facts["queries"].get("thresholds", {}))
    if changed:
        out.append(("queries", "thresholds changed for the sample", changed))
    for source, n in facts["crawl"].get("sources", {}).items():
        out.append(("crawl", f"{source}: images / matched / kept",
                    f"{n.get('images', 0):,} / {n.get('matched', 0):,} / {n.get('kept', 0):,}"))
    shards = facts["shards"]
    counts = shards.get("counts", {})
    config = shards.get("config", {})
    if config.get("filters"):
        changes = config.get("filter_changes", {})
        out.append(("shards", f"filter {config['filters'].get('preset', '?')}",
                    f"changed: {describe_changes(changes)}" if changes else "as published"))
    out.append(("shards", "candidates / downloaded",
                f"{counts.get('candidates', 0):,} / {counts.get('downloaded', 0):,}"))
    for reason, n in sorted(shards.get("filtered", {}).items()):
        if reason not in st.GUARDS:
            out.append(("shards", f"filtered: {reason}", f"{n:,}"))
    for reason, n in sorted(shards.get("texts", {}).get("filtered", {}).items()):
        out.append(("shards", f"texts dropped, image kept: {reason}", f"{n:,}"))
    for reason in st.GUARDS:  # a resource guard, no DataComp rule: apart, and only when it acted
        if shards.get("filtered", {}).get(reason):
            out.append(("shards", f"guard (not a DataComp rule): {reason}",
                        f"{shards['filtered'][reason]:,}"))
    dups = shards.get("duplicates", {})
    out.append(("shards", "duplicates exact / near",
                f"{dups.get(st.EXACT, 0):,} / {dups.get(st.NEAR, 0):,}"))
    out.append(("shards", "contaminated (near an eval image)",
                f"{shards.get('statuses', {}).get(st.CONTAMINATED, 0):,}"))
    out.append(("shards", "written", f"{counts.get('kept', 0):,} in "
                f"{shards.get('shards', {}).get('count', '?')} shard(s)"))
    log = facts["train"]
    if log:
        last = log[-1]
        speeds = [row.get("samples_per_s", 0.0) for row in log]
        out.append(("train", "steps / samples", f"{last['step']:,} / {last.get('samples', 0):,}"))
        out.append(("train", "samples/s (mean)", f"{sum(speeds) / len(speeds):,.0f}"))
        out.append(("train", "loss first -> final", f"{log[0]['loss']:.3f} -> {last['loss']:.3f}"))
    zs = facts["eval"].get("zeroshot", {})
    if zs:
        out.append(("eval", f"zero-shot top-1 ({zs['classes']} held-out classes, n={zs['n']})",
                    f"{zs['top1']:.3f} (chance {zs['chance']:.3f})"))
        k = min(5, zs["classes"])
        out.append(("eval", f"zero-shot top-{k}",
                    f"{zs['top5']:.3f} (chance {min(1.0, k * zs['chance']):.3f})"))
    ret = facts["eval"].get("retrieval", {})
    if ret:
        chance = 1 / max(1, ret["n"])
        for direction in ("image_to_text", "text_to_image"):
            out.append(("eval", f"retrieval {direction.replace('_', ' ')} R@1 / R@5 "
                        f"(n={ret['n']})",
                        f"{ret[direction + '_R@1']:.3f} / {ret[direction + '_R@5']:.3f} "
                        f"(chance {chance:.3f} / {5 * chance:.3f})"))
    total = sum(facts["timings"].values())
    out.append(("time", "stages (s)", ", ".join(f"{k} {v:.0f}"
                                                for k, v in facts["timings"].items())))
    out.append(("time", "total", f"{total:.0f} s ({total / 60:.1f} min)"))
    return out


def _query_threshold_changes(thresholds: dict[str, Any]) -> str:
    """``min_count 20 (default 100), ...``: the thresholds that differ from the CLI's
    defaults (MetaCLIP's, for a full Wikipedia)."""
    from queries.transform import QueryConfig

    defaults = QueryConfig()
    return ", ".join(f"{k} {v:g} (default {getattr(defaults, k):g})"
                     for k, v in thresholds.items()
                     if isinstance(v, (int, float)) and v != getattr(defaults, k, v))


def table(facts: dict[str, Any]) -> str:
    lines = ["", "demo summary"]
    width = max(len(what) for _, what, _ in rows(facts))
    section = ""
    for sec, what, value in rows(facts):
        lines.append(f"  {sec if sec != section else '':<8}{what:<{width}}  {value}")
        section = sec
    return "\n".join(lines)
