"""`wit eval`'s job: load the checkpoint, run the requested evaluations (zero-shot,
linear probe, retrieval), write OUT/eval.json and print the summary table.

Torch and the model code are imported inside ``run``: the CLI reads this module's
``EvalOptions`` for its defaults without paying for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EvalOptions:
    """Everything `wit eval` does; the CLI's defaults come from these fields."""
    checkpoint: str
    out: str
    zeroshot: str | None = None
    classnames: str | None = None
    templates: str | None = None
    linear_probe: str | None = None
    # inverse regularisation strengths C swept on the validation split
    probe_c: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    retrieval: str | None = None
    retrieval_samples: int = 1000
    batch_size: int = 256
    seed: int = 0
    device: str = "auto"


def run(opts: EvalOptions) -> dict[str, Any]:
    """The results written to OUT/eval.json (also printed as a table)."""
    import torch

    from pipeline.core import fsio
    from pipeline.core.errors import InputError
    from training import evaluate, shard_reading
    from training.clip.checkpoint import load_model

    if not (opts.zeroshot or opts.linear_probe or opts.retrieval):
        raise InputError("nothing to evaluate: give --zeroshot, --linear-probe and/or --retrieval")
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
    path = fsio.join(opts.out, "eval.json")
    fsio.atomic_write_json(path, results)
    print(format_table(results))
    print(f"wit eval: results -> {path}")
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
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value:6.3f}" for name, value in rows)
