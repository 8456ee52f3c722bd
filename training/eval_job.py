"""`wit eval`'s job: load the checkpoint, run the requested evaluations (zero-shot,
linear probe, retrieval), write OUT/eval.json and print the summary table.

Torch and the model code are imported inside ``run``: the CLI reads this module's
``EvalOptions`` (its options) without paying for them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pipeline.core.cliargs import non_negative_int, output_dir, positive_float, positive_int
from pipeline.core.jobs import print_summary
from pipeline.core.options import option

# inverse regularisation strengths C swept on the validation split
PROBE_C = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def parse_c_values(text: str) -> list[float]:
    """An argparse type: comma-separated positive finite numbers."""
    values = [positive_float(v.strip()) for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated positive numbers")
    return values


@dataclass(frozen=True)
class EvalOptions:
    """Everything `wit eval` does; every field is one of its options, default and help
    included."""

    checkpoint: str = option(required=True, help="checkpoint.pt written by `wit train`")
    out: str = option(required=True, type=output_dir, help="output directory for eval.json")
    zeroshot: str | None = option(None, help="labelled set for zero-shot classification "
                                             "(folder per class, or CSV/Parquet with path,label)")
    classnames: str | None = option(
        None, help="display names of the --zeroshot classes: a .csv with columns label,name, or "
                   "a text file with one name per line in the order of the sorted labels "
                   "(default: DIR/classnames.txt or .csv of a folder set, else the labels with "
                   "'_' as a space)")
    templates: str | None = option(
        None, help="prompt templates, one per line with {} for the class name (default: 'a "
                   "photo of a {}.' and 7 more CLIP templates)")
    linear_probe: str | None = option(
        None, help="labelled set for the linear probe (split 60/20/20 into "
                   "train/validation/test, stratified)")
    probe_c: tuple[float, ...] = option(
        PROBE_C, type=parse_c_values,
        help="inverse regularisation strengths C swept on the validation split, "
             f"comma-separated (default: {','.join(f'{c:g}' for c in PROBE_C)})")
    retrieval: str | None = option(None, help="held-out shards (brace pattern, glob, directory) "
                                              "for image<->text Recall@1/5/10")
    retrieval_samples: int = option(1000, type=positive_int,
                                    help="the first N samples of --retrieval are used")
    benchmark: tuple[str, ...] = option(
        (), nargs="+", metavar="DIR",
        help="dataset folders of a zero-shot suite in CLIP_benchmark's/DataComp's webdataset "
             "format (classnames.txt, zeroshot_classification_templates.txt, test/*.tar; "
             "dataset_type.txt 'retrieval' for caption sets): zero-shot top-1/top-5 and mean "
             "per-class recall, or Recall@1/5/10, in one table with DataComp's average "
             "(OUT/benchmark.md, .csv, .json)")
    batch_size: int = option(256, type=positive_int, help="images per forward pass")
    seed: int = option(0, type=non_negative_int, help="seed of the linear-probe split")
    device: str = option("auto", help="cpu, cuda, cuda:N")


def run(opts: EvalOptions) -> dict[str, Any]:
    """The results written to OUT/eval.json (also printed as a table)."""
    import torch

    from pipeline.core import fsio
    from pipeline.core.errors import InputError
    from training import evaluate, shard_reading
    from training.clip.checkpoint import load_model

    if not (opts.zeroshot or opts.linear_probe or opts.retrieval or opts.benchmark):
        raise InputError("nothing to evaluate: give --zeroshot, --linear-probe, --retrieval "
                         "and/or --benchmark")
    from training.benchmark_suite import read_benchmark

    # every suite folder checked before the model is loaded
    suite = [read_benchmark(folder) for folder in opts.benchmark]
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if opts.device == "auto" else opts.device)
    model, tokenizer = load_model(opts.checkpoint, device)
    results: dict[str, Any] = {"checkpoint": opts.checkpoint}
    # a set given to both --zeroshot and --linear-probe is loaded and embedded once
    cached: dict[str, tuple] = {}

    def features(source: str) -> tuple:
        if source not in cached:
            names = opts.classnames if source == opts.zeroshot else None
            dataset = evaluate.load_labelled_set(source, names)
            cached[source] = (dataset, evaluate.labelled_features(model, dataset, device, opts.batch_size))
        return cached[source]

    if opts.zeroshot:
        dataset, feats = features(opts.zeroshot)
        templates = evaluate.read_templates(opts.templates) if opts.templates else evaluate.DEFAULT_TEMPLATES
        results["zeroshot"] = {"source": opts.zeroshot, **evaluate.zero_shot(
            model, tokenizer, dataset, device, templates, features=feats)}
    if opts.linear_probe:
        dataset, feats = features(opts.linear_probe)
        results["linear_probe"] = {"source": opts.linear_probe, **evaluate.linear_probe(
            feats.numpy(), dataset.labels, seed=opts.seed, cs=list(opts.probe_c))}
    if opts.retrieval:
        shards = shard_reading.resolve_shards(opts.retrieval)
        results["retrieval"] = {"source": opts.retrieval, **evaluate.retrieval(
            model, tokenizer, shards, device, opts.retrieval_samples, opts.batch_size)}
    tables = ""
    if suite:
        from training import benchmark_eval, benchmark_suite

        rows = []
        for bench in suite:
            metrics = benchmark_eval.run_benchmark(model, tokenizer, bench, device, opts.batch_size)
            rows.append(benchmark_suite.dataset_row(bench, metrics))
        paths = benchmark_suite.write_tables(opts.out, rows)
        results["benchmark"] = {"datasets": rows, "average": benchmark_suite.average(rows)}
        tables = (f"{benchmark_suite.markdown_table(rows)}wit eval: benchmark tables -> "
                  f"{', '.join(paths.values())}\n")
    path = fsio.join(opts.out, "eval.json")
    fsio.atomic_write_json(path, results)
    table = format_table(results)
    print_summary("".join(f"{part}\n" for part in (table, tables.rstrip("\n")) if part)
                  + f"wit eval: results -> {path}")
    return results


def format_table(results: dict) -> str:
    rows = []
    if "zeroshot" in results:
        z = results["zeroshot"]
        topk = next(k for k in z if k.startswith("top") and k != "top1")
        rows += [("zero-shot top-1", z["top1"]), (f"zero-shot {topk[:3]}-{topk[3:]}", z[topk]),
                 ("(chance)", z["chance"])]
    if "linear_probe" in results:
        p = results["linear_probe"]
        rows += [(f"linear probe (C={p['best_C']:g})", p["accuracy"]), ("(chance)", p["chance"])]
    if "retrieval" in results:
        r = results["retrieval"]
        rows += [(key.replace("_", " "), value) for key, value in r.items() if "R@" in key]
    if not rows:  # --benchmark alone: its own table
        return ""
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value:6.3f}" for name, value in rows)
