"""OUT/demo/report.html: one self-contained page (every image inlined as a data: URI) with
the demo's summary, the dataset card of ``wit shards``, the training curve from
``train/log.jsonl`` and the evaluation tables from ``eval/eval.json``."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Any

from pipeline.core import fsio
from pipeline.demo.summary import rows

STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 1em}"
         "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
         "padding:2px 6px;text-align:left}.grid{display:flex;flex-wrap:wrap;gap:8px}"
         ".grid figure{width:160px;margin:0}.grid img{width:160px;height:160px;"
         "object-fit:cover}figcaption{font-size:11px}section.card{border-top:2px solid #444}")

# After load, record on <body> how many images the browser decoded (a headless check reads it).
LOAD_CHECK = ("<script>window.addEventListener('load',function(){var i=document.images,n=0;"
              "for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0)n++;}"
              "document.body.dataset.imagesTotal=i.length;document.body.dataset.imagesDecoded=n;"
              "});</script>")


def training_curve(log: list[dict[str, Any]]) -> str:
    """The loss (and samples/s) per logged step as a base64 PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    ax.plot([row["step"] for row in log], [row["loss"] for row in log], color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("contrastive loss", color="tab:blue")
    speed = ax.twinx()
    speed.plot([row["step"] for row in log], [row.get("samples_per_s", 0) for row in log],
               color="tab:orange", alpha=0.5)
    speed.set_ylabel("samples/s", color="tab:orange")
    ax.set_title("training (tiny CLIP, CPU)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                    for row in body)
    return f"<table><tr>{head}</tr>{cells}</table>"


def dataset_card(out: Path) -> str:
    """The body of OUT/shards/report.html (already self-contained), headings demoted."""
    path = out / "shards" / "report.html"
    if not path.is_file():
        return "<p>(no dataset card: OUT/shards/report.html is missing)</p>"
    text = path.read_text(encoding="utf-8")
    match = re.search(r"<body>(.*)</body>", text, re.S)
    body = match.group(1) if match else text
    body = re.sub(r"<(/?)h2>", r"<\1h3>", body)
    return re.sub(r"<(/?)h1>", r"<\1h2>", body)


def render(out: Path, facts: dict[str, Any]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<title>webimagetext demo report</title>", f"<style>{STYLE}</style></head><body>",
             "<h1>webimagetext demo</h1>",
             "<p>Wikipedia sample + WordNet &rarr; queries &rarr; crawl of an OpenClipart "
             "mini-web on 127.0.0.1 &rarr; shards &rarr; tiny CLIP trained on CPU &rarr; "
             "zero-shot classification of held-out OpenClipart categories and retrieval.</p>",
             "<h2 id='summary'>Summary</h2>",
             _table(["stage", "what", "value"], [list(r) for r in rows(facts)])]
    if facts["train"]:
        parts += ["<h2 id='training'>Training curve</h2>",
                  f"<img id='training-curve' alt='training curve' "
                  f"src='data:image/png;base64,{training_curve(facts['train'])}'>"]
    zs = facts["eval"].get("zeroshot")
    if zs:
        parts += ["<h2 id='evaluation'>Zero-shot classification (held-out classes)</h2>",
                  _table(["metric", "value", "chance"],
                         [["top-1", f"{zs['top1']:.3f}", f"{zs['chance']:.3f}"],
                          ["top-5", f"{zs['top5']:.3f}",
                           f"{min(1.0, 5 * zs['chance']):.3f}"]]),
                  _table(["class", "top-1"],
                         [[k, f"{v:.3f}"] for k, v in sorted(zs["per_class"].items())])]
    ret = facts["eval"].get("retrieval")
    if ret:
        parts += [f"<h2>Retrieval (held-out pairs, n={ret['n']})</h2>",
                  _table(["direction", "R@1", "R@5", "R@10"],
                         [[d.replace("_", " "), *(f"{ret[f'{d}_R@{k}']:.3f}" for k in (1, 5, 10))]
                          for d in ("image_to_text", "text_to_image")])]
    parts += ["<section class='card' id='dataset-card'>", dataset_card(out), "</section>",
              LOAD_CHECK, "</body></html>"]
    return "\n".join(parts)


def write_report(out: Path, target: Path, facts: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fsio.atomic_write_bytes(str(target), render(out, facts).encode("utf-8"))
