"""Counts for ``manifest.json`` and the ``report.html`` dataset card, both computed by
streaming the final shard Parquets (fixed-size histograms: memory does not grow with the
dataset)."""

from __future__ import annotations

import base64
import html
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import fsspec
import numpy as np
import pyarrow.parquet as pq

from pipeline.core import fsio
from pipeline.core.licenses import normalize
from pipeline.shards.tario import read_tar_images
from schemas import status as st

SIDE_BINS = np.array([0, 64, 128, 200, 256, 384, 512, 768, 1024, 1536, 2048, 4096, 8192, 1 << 30])
CAPTION_BINS = np.array([0, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 1 << 30])
CLIP_BINS = np.round(np.linspace(-1, 1, 41), 2)  # clip_score, steps of 0.05
CLIP_FILTERED = st.filtered(st.CLIP_SCORE)
GUARDED = [st.filtered(r) for r in st.GUARDS]  # filtered:max_pixels, no dataset rule


# distinct licences / domains counted exactly; beyond, new ones go to OTHER (memory bound)
MAX_DISTINCT = 100_000
OTHER = "(other)"
NO_LICENSE = "(none)"
RAW_LICENSE = "(text, no known licence)"
TOP = 30


def _bounded_add(counter: Counter[str], key: str) -> None:
    counter[key if key in counter or len(counter) < MAX_DISTINCT else OTHER] += 1


def license_label(license_id: str | None) -> str:
    """The licence distribution's label of a sample: its SPDX id, or a bucket for no
    licence and for licence text that names no known licence."""
    if not license_id:
        return NO_LICENSE
    return license_id if normalize(license_id) == license_id else RAW_LICENSE


def source_domain(page_url: str | None, url: str | None) -> str:
    """The host of the page an image came from (of the image for URL lists), lower case,
    without ``www.``."""
    try:
        host = (urlsplit(page_url or url or "").hostname or "").lower()
    except ValueError:
        host = ""
    return (host[4:] if host.startswith("www.") else host) or "(unknown)"


def _parquets(folder: str) -> list[str]:
    return fsio.glob(folder, "*.parquet")


def summarize(folder: str) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    duplicates: Counter[str] = Counter()
    entries: Counter[int] = Counter()
    filtered_texts: Counter[str] = Counter()
    kept_texts = 0
    sizes: dict[str, int] = {}
    side_hist = np.zeros(len(SIDE_BINS) - 1, dtype=np.int64)
    caption_hist = np.zeros(len(CAPTION_BINS) - 1, dtype=np.int64)
    # CLIP scores of every scored row and of the kept ones
    clip_hist = {"scored": np.zeros(len(CLIP_BINS) - 1, dtype=np.int64),
                 "kept": np.zeros(len(CLIP_BINS) - 1, dtype=np.int64)}
    licenses: Counter[str] = Counter()
    domains: Counter[str] = Counter()
    columns = ["status", "error_message", "original_width", "original_height", "caption",
               "texts", "text_filter_reasons", "matched_entry_ids", "clip_score", "license",
               "page_url", "url"]
    for path in _parquets(folder):
        with fsspec.open(path, "rb") as f:
            present = set(pq.read_schema(f).names)
            f.seek(0)
            table = pq.read_table(f, columns=[c for c in columns if c in present]).to_pydict()
        for name in ("license", "page_url"):  # shards written before these columns
            table.setdefault(name, [None] * len(table["status"]))
        kept = 0
        scores = np.array([x for x in table["clip_score"] if x is not None], dtype=np.float64)
        clip_hist["scored"] += np.histogram(scores, CLIP_BINS)[0]
        for i, status in enumerate(table["status"]):
            filtered_texts.update(table["text_filter_reasons"][i] or ())
            if st.is_duplicate(status):
                duplicates[st.duplicate_kind(table["error_message"][i])] += 1
                status = st.DUPLICATE
            statuses[status] += 1
            if status == st.SUCCESS:
                kept += 1
                kept_texts += len(table["texts"][i] or ())
                side = min(table["original_width"][i] or 0, table["original_height"][i] or 0)
                side_hist += np.histogram([side], SIDE_BINS)[0]
                caption_hist += np.histogram([len(table["caption"][i])], CAPTION_BINS)[0]
                entries.update(table["matched_entry_ids"][i] or [])
                _bounded_add(licenses, license_label(table["license"][i]))
                _bounded_add(domains, source_domain(table["page_url"][i], table["url"][i]))
                if table["clip_score"][i] is not None:
                    clip_hist["kept"] += np.histogram([table["clip_score"][i]], CLIP_BINS)[0]
        sizes[path.rsplit("/", 1)[-1].replace(".parquet", ".tar")] = kept
    total = sum(statuses.values())
    failed = sum(n for s, n in statuses.items() if st.is_failed_download(s)) \
        + statuses[st.FAILED_TO_RESIZE] + sum(statuses[s] for s in st.DOWNLOAD_POLICY) \
        + statuses[st.HASH_MISMATCH] + statuses[st.REMOVED]  # --exclude: never in the funnel
    guarded = sum(statuses[s] for s in GUARDED)
    filtered = sum(v for k, v in statuses.items() if st.is_filtered(k)) - sum(
        statuses[s] for s in st.DOWNLOAD_POLICY) - statuses[CLIP_FILTERED] - guarded
    downloaded = total - failed
    after_filters = downloaded - filtered
    # the pixel guard counts only images the rules kept (transform.apply_filters), so it
    # comes after them in the funnel
    after_guard = after_filters - guarded
    after_decontamination = after_guard - statuses[st.CONTAMINATED]
    after_clip = after_decontamination - statuses[CLIP_FILTERED]
    after_exact = after_clip - duplicates[st.EXACT]
    return {
        "counts": {
            "candidates": total,
            "downloaded": downloaded,
            "after_filters": after_filters,
            "after_pixel_guard": after_guard,
            "after_decontamination": after_decontamination,
            "after_clip_filter": after_clip,
            "after_exact_dedup": after_exact,
            "kept": statuses[st.SUCCESS],
        },
        "statuses": dict(sorted(statuses.items())),
        "filtered": {st.filtered_reason(k): v for k, v in sorted(statuses.items())
                     if st.is_filtered(k)},
        "texts": {"kept": kept_texts, "filtered": dict(sorted(filtered_texts.items()))},
        "duplicates": dict(sorted(duplicates.items())),
        "histograms": {
            "shorter_side_bins": SIDE_BINS.tolist(), "shorter_side": side_hist.tolist(),
            "caption_chars_bins": CAPTION_BINS.tolist(), "caption_chars": caption_hist.tolist(),
            "clip_score_bins": CLIP_BINS.tolist(), "clip_score": clip_hist["scored"].tolist(),
            "clip_score_kept": clip_hist["kept"].tolist(),
        },
        "top_entries": entries.most_common(30),
        # kept samples by licence (SPDX id or bucket) and by source domain (top 30)
        "licenses": dict(sorted(licenses.items(), key=lambda kv: (-kv[1], kv[0]))),
        "source_domains": {"distinct": len(domains) - (OTHER in domains),
                           "top": sorted(domains.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]},
        "sizes": sizes,
    }


def _entry_names(candidates: str) -> dict[int, str]:
    """Entry names from the crawl's ``entry_counts.parquet`` beside the candidates, if any
    (none for a URL list: ``candidates`` is "")."""
    if not candidates:
        return {}
    folder = candidates if not candidates.endswith(".parquet") else candidates.rsplit("/", 1)[0]
    path = fsio.join(folder, "entry_counts.parquet")
    if not fsio.exists(path):
        return {}
    with fsspec.open(path, "rb") as f:
        table = pq.read_table(f, columns=["entry_id", "entry"]).to_pydict()
    return dict(zip(table["entry_id"], table["entry"]))


def bar_chart(title: str, labels: list[str], values: list[int]) -> str:
    """A horizontal bar chart as inline SVG: no plotting library to import or render with
    (matplotlib cost ~1.5 s per report), and the numbers stay readable as text."""
    row, label_width, bar_width = 18, 200, 420
    top = max(values, default=0) or 1
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{label_width + bar_width + 90}' "
             f"height='{row * len(labels) + 4}' role='img' aria-label='{html.escape(title)}' "
             "font-family='sans-serif' font-size='12'>"]
    for i, (label, value) in enumerate(zip(labels, values)):
        y, width = i * row + 2, round(bar_width * value / top, 1)
        parts.append(f"<text x='{label_width - 6}' y='{y + 13}' text-anchor='end'>"
                     f"{html.escape(label)}</text><rect x='{label_width}' y='{y + 2}' "
                     f"width='{width}' height='{row - 4}' fill='#4c78a8'/>"
                     f"<text x='{label_width + width + 4}' y='{y + 13}'>{value}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _plots(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, inline SVG) of the histograms (CLIP scores when scored) and the status
    breakdown."""
    plots = []
    hist = manifest["histograms"]
    for title, bins_key, values_key in (
            ("Shorter image side (original pixels), kept samples", "shorter_side_bins", "shorter_side"),
            ("Caption length (characters), kept samples", "caption_chars_bins", "caption_chars")):
        bins = hist[bins_key]
        labels = [f"{bins[i]}-" if i == len(bins) - 2 else f"{bins[i]}-{bins[i + 1]}"
                  for i in range(len(bins) - 1)]
        plots.append((title, bar_chart(title, labels, hist[values_key])))
    if any(hist.get("clip_score", [])):
        bins, scored, kept = hist["clip_score_bins"], hist["clip_score"], hist["clip_score_kept"]
        used = [i for i, v in enumerate(scored) if v]
        span = range(used[0], used[-1] + 1)  # the occupied range of [-1, 1]
        labels = [f"{bins[i]:.2f} to {bins[i + 1]:.2f}" for i in span]
        for title, values in (("CLIP score (image-caption cosine), scored samples", scored),
                              ("CLIP score, kept samples", kept)):
            plots.append((title, bar_chart(title, labels, [values[i] for i in span])))
    licenses = manifest.get("licenses") or {}
    if licenses:
        plots.append(("Licences of the kept samples", bar_chart(
            "Licence of every kept sample", list(licenses), list(licenses.values()))))
    domains = (manifest.get("source_domains") or {}).get("top") or []
    if domains:
        plots.append((f"Source domains of the kept samples (top {TOP} of "
                      f"{manifest['source_domains']['distinct']})", bar_chart(
                          "Source domains", [d for d, _ in domains], [n for _, n in domains])))
    statuses = manifest["statuses"]
    plots.append(("Status breakdown", bar_chart("Status of every candidate", list(statuses),
                                                list(statuses.values()))))
    return plots


def guard_note(manifest: dict[str, Any]) -> str:
    """What the pixel guard is, for the summary and the report."""
    limit = manifest.get("config", {}).get("filters", {}).get("max_pixels")
    bound = f"over {limit:,} pixels" if isinstance(limit, int) else "over --max-pixels"
    return (f"resource guard, not a DataComp rule: original images {bound}, dropped from the "
            "header before decoding; counted only where the rules kept the image")


def consent_counts(manifest: dict[str, Any]) -> dict[str, int]:
    """Images refused by each opt-out signal (robots.txt, X-Robots-Tag, TDMRep) and by the
    blocklist, every reason listed (0 included)."""
    filtered = manifest["filtered"]
    return {reason: filtered.get(reason, 0) for reason in (*st.OPT_OUT, st.BLOCKLIST)}


def consent_line(manifest: dict[str, Any]) -> str:
    """The summary's consent line (docs/consent.md)."""
    counts = consent_counts(manifest)
    opted = {r: counts[r] for r in st.OPT_OUT}
    fetch = manifest.get("config", {}).get("download", {}).get("fetch", {})
    ignored = [name for name, key in (("robots.txt", "respect_robots_txt"),
                                      ("TDMRep", "respect_tdmrep")) if fetch.get(key) is False]
    if fetch and not fetch.get("disallowed_header_directives"):
        ignored.append("X-Robots-Tag")
    note = f"; ignored by option: {', '.join(ignored)}" if ignored else ""
    files = (manifest.get("network") or {}).get("tdmrep") or {}
    fetched = sum(files.values())
    tdmrep = (f"; tdmrep.json fetched from {fetched} origin(s) ("
              + ", ".join(f"{k} {v}" for k, v in files.items() if v) + ")") if fetched else ""
    return (f"opt-out: {sum(opted.values())} image(s) refused"
            f" ({', '.join(f'{k} {v}' for k, v in opted.items())}){note}; blocklist: "
            f"{counts[st.BLOCKLIST]} image(s) refused (hashes only kept){tdmrep}")


def _consent_table(manifest: dict[str, Any]) -> list[str]:
    """The report's "Consent" section: every opt-out signal and the blocklist, with counts."""
    rows = ["<h2>Consent</h2>", "<p>Images refused because their site opted out (checked "
            "before the image body is read) or because they are on the --block-hashes list "
            "(never written; see docs/consent.md).</p>",
            "<table><tr><th>signal</th><th>images refused</th></tr>"]
    rows += [f"<tr><td>{html.escape(reason)}</td><td>{n}</td></tr>"
             for reason, n in consent_counts(manifest).items()]
    rows.append(f"<tr><td>{html.escape(consent_line(manifest))}</td><td></td></tr></table>")
    return rows


def _filter_table(manifest: dict[str, Any]) -> list[str]:
    """Images and texts dropped by each rule of the preset, and the pixel guard apart."""
    filtered, texts = manifest["filtered"], manifest["texts"]
    preset = manifest.get("config", {}).get("filters", {}).get("preset", "")
    rows = ["<h2>Filters</h2>",
            f"<p>--filter {html.escape(str(preset))}: the caption rules judge every text of "
            "an image; a failing text is dropped, the image is dropped only when no text "
            f"passes. Texts in the kept samples: {texts['kept']}.</p>",
            "<table><tr><th>rule</th><th>images dropped</th>"
            "<th>texts dropped (the image kept another)</th></tr>"]
    for reason in st.FILTER_RULES:
        rows.append(f"<tr><td>{reason}</td><td>{filtered.get(reason, 0)}</td>"
                    f"<td>{texts['filtered'].get(reason, 0)}</td></tr>")
    for reason in st.GUARDS:
        rows.append(f"<tr><td>{reason} ({html.escape(guard_note(manifest))})</td>"
                    f"<td>{filtered.get(reason, 0)}</td><td></td></tr>")
    allowed = manifest.get("config", {}).get("filters", {}).get("licenses")
    if allowed or filtered.get(st.LICENSE):
        rows.append(f"<tr><td>{st.LICENSE} (--licenses {html.escape(','.join(allowed or []))})"
                    f"</td><td>{filtered.get(st.LICENSE, 0)}</td><td></td></tr>")
    rows.append("</table>")
    return rows


def write_report(folder: str, manifest: dict[str, Any], candidates: str, samples: int,
                 encode_format: str = "jpg") -> None:
    names = _entry_names(candidates)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>webimagetext shards</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        ".grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{width:160px;margin:0}"
        ".grid img{width:160px;height:160px;object-fit:cover}"
        "figcaption{font-size:11px}</style></head><body>",
        "<h1>Dataset card: webimagetext shards</h1>",
        "<h2>Counts</h2><table>",
        *(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in manifest["counts"].items()),
        "</table>",
        f"<p>{manifest['shards']['count']} shards, {manifest['shards']['samples']} samples.</p>",
        *_filter_table(manifest),
        *_consent_table(manifest),
    ]
    for title, svg in _plots(manifest):
        parts.append(f"<h2>{html.escape(title)}</h2>{svg}")
    parts.append("<h2>Top matched entries (kept samples)</h2><table><tr><th>entry id</th>"
                 "<th>entry</th><th>samples</th></tr>")
    for entry_id, count in manifest["top_entries"]:
        parts.append(f"<tr><td>{entry_id}</td><td>{html.escape(names.get(entry_id, ''))}</td>"
                     f"<td>{count}</td></tr>")
    parts.append("</table><h2>Samples</h2><div class='grid'>")
    parts.extend(_sample_figures(folder, samples, encode_format))
    parts.append("</div><h2>Config</h2><pre>")
    import json

    parts.append(html.escape(json.dumps(manifest["config"], indent=2)))
    parts.append("</pre></body></html>")
    fsio.atomic_write_bytes(fsio.join(folder, "report.html"), "\n".join(parts).encode("utf-8"))


def _sample_figures(folder: str, samples: int, encode_format: str) -> list[str]:
    figures: list[str] = []
    for tar in fsio.glob(folder, "*.tar"):
        if len(figures) >= samples:
            break
        with fsspec.open(tar.replace(".tar", ".parquet"), "rb") as f:
            table = pq.read_table(f, columns=["key", "status", "caption"]).to_pydict()
        kept = [(k, c) for k, s, c in zip(table["key"], table["status"], table["caption"])
                if s == st.SUCCESS][: samples - len(figures)]
        images = read_tar_images(tar, encode_format, {k for k, _ in kept})
        for key, caption in kept:
            if key in images:
                data = base64.b64encode(images[key]).decode("ascii")
                mime = "jpeg" if encode_format == "jpg" else encode_format
                figures.append(f"<figure><img src='data:image/{mime};base64,{data}'>"
                               f"<figcaption>{html.escape(caption[:120])}</figcaption></figure>")
    return figures
