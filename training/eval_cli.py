"""Evaluate a CLIP checkpoint of `wit train`: zero-shot classification, a linear probe and
image<->text retrieval. Results go to OUT/eval.json and are printed as a table.

  wit eval --checkpoint OUT/train/checkpoint.pt --zeroshot DIGITS/labels.csv \\
      --linear-probe DIGITS/labels.csv --retrieval 'OUT/heldout/{00000..00001}.tar' --out OUT/eval

A labelled set is an image folder per class (DIR/CLASS/IMAGE) or a CSV/Parquet table with
columns path,label (paths relative to the table). Zero-shot prompts name each class by its
folder name/label with "_" read as a space (golden_retriever -> "golden retriever"), or by
--classnames / a classnames.txt or classnames.csv in the set's folder.
"""

from __future__ import annotations

import argparse

from pipeline.cliargs import non_negative_int, output_dir, positive_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--checkpoint", required=True, help="checkpoint.pt written by `wit train`")
    a("--out", required=True, type=output_dir, help="output directory for eval.json")
    a("--zeroshot", help="labelled set for zero-shot classification (folder per class, or "
                         "CSV/Parquet with path,label)")
    a("--classnames", help="display names of the --zeroshot classes: a .csv with columns "
                           "label,name, or a text file with one name per line in the order of the "
                           "sorted labels (default: DIR/classnames.txt or .csv of a folder set, "
                           "else the labels with '_' as a space)")
    a("--templates", help="prompt templates, one per line with {} for the class name "
                          "(default: 'a photo of a {}.' and 7 more CLIP templates)")
    a("--linear-probe", help="labelled set for the linear probe (split 60/20/20 into "
                             "train/validation/test, stratified)")
    a("--probe-c", default="0.001,0.01,0.1,1,10,100", type=_c_values,
      help="inverse regularisation strengths C swept on the validation split, comma-separated "
           "(default: %(default)s)")
    a("--retrieval", help="held-out shards (brace pattern, glob, directory) for "
                          "image<->text Recall@1/5/10")
    a("--retrieval-samples", type=positive_int, default=1000,
      help="the first N samples of --retrieval are used (default: %(default)s)")
    a("--batch-size", type=positive_int, default=256, help="images per forward pass (default: %(default)s)")
    a("--seed", type=non_negative_int, default=0, help="seed of the linear-probe split (default: %(default)s)")
    a("--device", default="auto", help="cpu, cuda, cuda:N (default: %(default)s)")


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    import torch

    from pipeline import fsio
    from pipeline.errors import InputError
    from training import evaluate, shard_reading

    if not (args.zeroshot or args.linear_probe or args.retrieval):
        raise InputError("nothing to evaluate: give --zeroshot, --linear-probe and/or --retrieval")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    model, tokenizer = evaluate.load_model(args.checkpoint, device)
    results: dict = {"checkpoint": args.checkpoint}
    cached: dict[str, tuple] = {}

    def features(source: str) -> tuple:
        if source not in cached:
            names = args.classnames if source == args.zeroshot else None
            dataset = evaluate.load_labelled_set(source, names)
            cached[source] = (dataset, evaluate.labelled_features(model, dataset, device, args.batch_size))
        return cached[source]

    if args.zeroshot:
        dataset, feats = features(args.zeroshot)
        templates = evaluate.read_templates(args.templates) if args.templates else evaluate.DEFAULT_TEMPLATES
        results["zeroshot"] = {"source": args.zeroshot, **evaluate.zero_shot(
            model, tokenizer, dataset, device, templates, features=feats)}
    if args.linear_probe:
        dataset, feats = features(args.linear_probe)
        results["linear_probe"] = {"source": args.linear_probe, **evaluate.linear_probe(
            feats.numpy(), dataset.labels, seed=args.seed, cs=args.probe_c)}
    if args.retrieval:
        shards = shard_reading.resolve_shards(args.retrieval)
        results["retrieval"] = {"source": args.retrieval, **evaluate.retrieval(
            model, tokenizer, shards, device, args.retrieval_samples, args.batch_size)}
    path = fsio.join(args.out, "eval.json")
    fsio.atomic_write_json(path, results)
    print(format_table(results))
    print(f"wit eval: results -> {path}")
    return 0


def _c_values(text: str) -> list[float]:
    """An argparse type: comma-separated positive finite numbers."""
    values = [positive_float(v.strip()) for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated positive numbers")
    return values


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
