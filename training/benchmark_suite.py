"""Standard zero-shot suites in the webdataset evaluation format that CLIP_benchmark and
DataComp publish theirs in: reading a dataset folder, the suite's averaging and the results
table. No torch here (``benchmark_eval.py`` runs the model).

One folder per dataset::

    DIR/classnames.txt                          one class name per line, label order
    DIR/zeroshot_classification_templates.txt   one prompt per line, {c} for the name
    DIR/dataset_type.txt                        optional: classification (default) | retrieval
    DIR/test/nshards.txt                        optional: N, the shards are test/{0..N-1}.tar
    DIR/test/*.tar                              samples: KEY.webp|png|jpg|jpeg + KEY.cls (the
                                                label, an integer) or KEY.txt (retrieval: the
                                                image's captions, one per line)

The averaging is DataComp's: each dataset has one main metric — top-1 accuracy, the mean
per-class recall for the sets DataComp scores so (Caltech-101, FGVC Aircraft, Flowers-102,
Pets), the mean of image→text and text→image Recall@1 for retrieval — and the suite's score
is the plain mean of the main metrics over the datasets.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import braceexpand
import fsspec

from pipeline.core import fsio
from pipeline.core.errors import InputError

CLASSNAMES = "classnames.txt"
TEMPLATES = "zeroshot_classification_templates.txt"
DATASET_TYPE = "dataset_type.txt"
SPLIT = "test"
KINDS = ("classification", "retrieval")
# image members in CLIP_benchmark's order of preference
IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")
# DataComp's tasks whose main metric is the mean per-class recall (its tasklist.yml)
MEAN_PER_CLASS_TASKS = frozenset({"vtab/caltech101", "fgvc_aircraft", "vtab/flowers", "vtab/pets"})
ACC1, MEAN_PER_CLASS, MEAN_R1 = "acc1", "mean_per_class_recall", "mean_recall@1"


@dataclass(frozen=True)
class BenchmarkSet:
    name: str  # the folder's name
    task: str  # DataComp's task key (``wds_vtab-pets_test`` -> ``vtab/pets``)
    kind: str  # classification | retrieval
    shards: tuple[str, ...]
    classnames: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()  # with {} for the class name (str.format)

    @property
    def main_metric(self) -> str:
        return main_metric(self.task, self.kind)


def task_key(folder_name: str) -> str:
    """DataComp's task key of a dataset folder: its downloads are ``wds_{task}_test`` with
    ``/`` written ``-`` (``wds_vtab-caltech101_test`` -> ``vtab/caltech101``); any other
    folder name is its own key."""
    name = folder_name
    if name.startswith("wds_") and name.endswith("_test"):
        name = name[len("wds_"):-len("_test")]
        for group in ("vtab", "retrieval", "fairness", "wilds", "misc"):
            if name.startswith(group + "-"):
                name = group + "/" + name[len(group) + 1:]
    return name


def main_metric(task: str, kind: str) -> str:
    if kind == "retrieval":
        return MEAN_R1
    return MEAN_PER_CLASS if task in MEAN_PER_CLASS_TASKS else ACC1


def _lines(path: str) -> list[str]:
    try:
        with fsspec.open(path, "rt", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def prompt_template(line: str, path: str) -> str:
    """A CLIP_benchmark template (``a photo of a {c}.``) as a ``str.format`` one with ``{}``;
    other braces are kept as text."""
    if "{c}" not in line:
        raise InputError(f"{path}: template {line!r} has no {{c}} for the class name")
    return line.replace("{", "{{").replace("}", "}}").replace("{{c}}", "{}")


def test_shards(folder: str) -> tuple[str, ...]:
    """``test/{0..N-1}.tar`` when ``test/nshards.txt`` says N (each must exist), else every
    ``test/*.tar`` in name order."""
    split = fsio.join(folder, SPLIT)
    count_file = fsio.join(split, "nshards.txt")
    if fsio.exists(count_file):
        text = " ".join(_lines(count_file))
        if not text.isdigit() or int(text) < 1:
            raise InputError(f"{count_file}: expected a positive shard count, found {text!r}")
        shards = [fsio.join(split, p) for p in braceexpand.braceexpand(f"{{0..{int(text) - 1}}}.tar")]
        missing = [s for s in shards if not fsio.exists(s)]
        if missing:
            raise InputError(f"{missing[0]}: missing ({count_file} says {text} shards)")
        return tuple(shards)
    # 2.tar before 10.tar: CLIP_benchmark numbers its shards without padding
    found = sorted(fsio.glob(split, "*.tar"), key=_shard_order)
    if not found:
        raise InputError(f"{folder}: no {SPLIT}/*.tar (the CLIP_benchmark/DataComp webdataset "
                         "layout: classnames.txt, zeroshot_classification_templates.txt, "
                         "test/*.tar)")
    return tuple(found)


def _shard_order(path: str) -> tuple[int, str]:
    stem = path.rsplit("/", 1)[-1][:-len(".tar")]
    return (int(stem) if stem.isdigit() else -1, stem)


def read_benchmark(folder: str) -> BenchmarkSet:
    """One dataset folder of the suite, its files checked (not its samples: those are
    streamed)."""
    folder = folder.rstrip("/")
    fs, _, (root,) = fsspec.get_fs_token_paths(folder)
    if not fs.isdir(root):
        raise InputError(f"{folder}: not a benchmark dataset folder")
    name = folder.rsplit("/", 1)[-1]
    kind_file = fsio.join(folder, DATASET_TYPE)
    kind = (_lines(kind_file) or ["classification"])[0].lower() if fsio.exists(kind_file) \
        else "classification"
    if kind not in KINDS:
        raise InputError(f"{kind_file}: dataset type {kind!r} is not supported "
                         f"(one of {', '.join(KINDS)})")
    shards = test_shards(folder)
    if kind == "retrieval":
        return BenchmarkSet(name, task_key(name), kind, shards)
    classnames = _lines(fsio.join(folder, CLASSNAMES))
    templates_file = fsio.join(folder, TEMPLATES)
    templates = [prompt_template(t, templates_file) for t in _lines(templates_file)]
    if not classnames:
        raise InputError(f"{fsio.join(folder, CLASSNAMES)}: no class names")
    if not templates:
        raise InputError(f"{templates_file}: no templates")
    return BenchmarkSet(name, task_key(name), kind, shards, tuple(classnames), tuple(templates))


# ---------------------------------------------------------------- samples

def _where(sample: dict[str, Any]) -> str:
    return f"{sample.get('__url__')}: sample {sample.get('__key__')}"


def sample_image(sample: dict[str, Any]) -> bytes:
    image = next((sample[e] for e in IMAGE_EXTS if e in sample), None)
    if image is None:
        raise InputError(f"{_where(sample)} has no image ({'/'.join(IMAGE_EXTS)})")
    return image


def sample_label(sample: dict[str, Any], classes: int) -> int:
    raw = sample.get("cls")
    if raw is None:
        raise InputError(f"{_where(sample)} has no cls (the class label)")
    text = raw.decode("utf-8", errors="replace").strip()
    if not text.lstrip("-").isdigit() or not 0 <= int(text) < classes:
        raise InputError(f"{_where(sample)}: cls {text[:20]!r} is not a class index "
                         f"0..{classes - 1}")
    return int(text)


def sample_captions(sample: dict[str, Any]) -> list[str]:
    raw = sample.get("txt")
    captions = [] if raw is None else [
        line.strip() for line in raw.decode("utf-8", errors="replace").splitlines() if line.strip()]
    if not captions:
        raise InputError(f"{_where(sample)} has no captions (txt, one per line)")
    return captions


# ---------------------------------------------------------------- averaging and tables

def dataset_row(bench: BenchmarkSet, metrics: dict[str, Any]) -> dict[str, Any]:
    """One dataset's line: the metrics DataComp reports and its main metric as ``score``."""
    row: dict[str, Any] = {"dataset": bench.name, "task": bench.task, "type": bench.kind,
                           "samples": metrics["n"]}
    if bench.kind == "classification":
        top5 = metrics.get("top5")
        row.update({ACC1: metrics["top1"], "acc5": top5 if len(bench.classnames) >= 5 else None,
                    MEAN_PER_CLASS: metrics[MEAN_PER_CLASS]})
    else:
        row.update({"image_to_text_R@1": metrics["image_to_text_R@1"],
                    "text_to_image_R@1": metrics["text_to_image_R@1"],
                    MEAN_R1: (metrics["image_to_text_R@1"] + metrics["text_to_image_R@1"]) / 2})
    row["main_metric"] = bench.main_metric
    row["score"] = row[bench.main_metric]
    return row


def average(rows: Sequence[dict[str, Any]]) -> float:
    """DataComp's average: the plain mean of every dataset's main metric."""
    return sum(r["score"] for r in rows) / len(rows)


COLUMNS = ("dataset", "type", "samples", ACC1, "acc5", MEAN_PER_CLASS, "image_to_text_R@1",
           "text_to_image_R@1", MEAN_R1, "main_metric", "score")


def _rows_with_average(rows: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from rows
    yield {"dataset": f"average ({len(rows)} datasets)", "main_metric": "mean of scores",
           "score": average(rows)}


def _show(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in _rows_with_average(rows):
        lines.append("| " + " | ".join(_show(row.get(c)).replace("|", "\\|") for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in _rows_with_average(rows):
        writer.writerow({c: _show(row.get(c)) for c in COLUMNS})
    return out.getvalue()


def write_tables(out: str, rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """``benchmark.md``, ``.csv`` and ``.json`` in ``out``, each renamed into place when
    complete; returns their paths."""
    paths = {ext: fsio.join(out, f"benchmark.{ext}") for ext in ("md", "csv", "json")}
    fsio.atomic_write_bytes(paths["md"], markdown_table(rows).encode("utf-8"))
    fsio.atomic_write_bytes(paths["csv"], csv_table(rows).encode("utf-8"))
    fsio.atomic_write_bytes(paths["json"], json.dumps(
        {"datasets": list(rows), "average": average(rows),
         "averaging": "DataComp: mean over datasets of each one's main metric"},
        indent=1).encode("utf-8"))
    return paths
