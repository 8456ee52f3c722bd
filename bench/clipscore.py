"""Throughput of CLIP-score filtering (`wit shards --clip-filter`): images/s of the scorer
that the Beam job runs per worker (JPEG decode, centre crop, image and caption forward,
cosine), on real images re-encoded as the shards store them (256 px JPEG).

  python bench/clipscore.py --configs tiny,small,ViT-B-32 --images 256 --threads 2

The weights are freshly initialised (speed does not depend on them) and saved as a checkpoint
of `wit train`'s format, so the scorer loads it exactly as the pipeline does. Images:
OpenClipart PNGs (Debian's openclipart-png) flattened on white, else generated shapes.
Prints a table and writes --out/clipscore_bench.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image  # noqa: E402

OPENCLIPART = Path("/usr/share/openclipart/png")


def shard_jpegs(count: int, side: int = 256) -> tuple[list[bytes], str]:
    paths = sorted(OPENCLIPART.rglob("*.png"))[: count * 2] if OPENCLIPART.is_dir() else []
    images: list[Image.Image] = []
    for path in paths:
        with Image.open(path) as im:
            rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.split()[-1])
        images.append(flat)
        if len(images) == count:
            break
    source = "openclipart-png"
    if len(images) < count:
        from training.synthetic import shape_dataset
        images += [im for im, _ in shape_dataset(count - len(images), size=side)]
        source = "openclipart-png + generated shapes" if paths else "generated shapes"
    out = []
    for im in images:
        im.thumbnail((side, side))
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=95)
        out.append(buffer.getvalue())
    return out, source


def checkpoint_of(config: str, folder: str) -> str:
    from training.clip.checkpoint import save_checkpoint
    from training.clip.configs import get_config
    from training.clip.model import CLIP
    from training.clip.tokenizer import train_tokenizer

    cfg = get_config(config)
    tokenizer = train_tokenizer(["a photo of a cat", "a drawing of a dog"] * 50, vocab_size=cfg.vocab_size)
    model = CLIP(cfg, tokenizer.vocab_size, tokenizer.eot_id)
    path = os.path.join(folder, f"{config}.pt")
    save_checkpoint(path, {"model": model.state_dict(), "model_config": cfg.to_dict(),
                           "tokenizer": tokenizer.to_json()})
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="tiny,small,ViT-B-32")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="/tmp/clipscore-bench")
    args = parser.parse_args()

    import torch

    from pipeline.shards.clipscore import ClipScorer

    torch.set_num_threads(args.threads)
    jpegs, source = shard_jpegs(args.images)
    captions = [f"a picture of thing number {i}" for i in range(len(jpegs))]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for config in args.configs.split(","):
            scorer = ClipScorer(checkpoint_of(config, folder), args.device)
            scorer.scores(jpegs[: args.batch_size], captions[: args.batch_size])  # warm-up
            started, cpu = time.perf_counter(), time.process_time()
            for i in range(0, len(jpegs), args.batch_size):
                scorer.scores(jpegs[i:i + args.batch_size], captions[i:i + args.batch_size])
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            # per CPU-second too: on a shared machine wall time mostly measures the others
            rows.append({"config": config, "images": len(jpegs), "seconds": round(seconds, 3),
                         "cpu_seconds": round(cpu, 3), "images_per_s": round(len(jpegs) / seconds, 1),
                         "images_per_cpu_s": round(len(jpegs) / cpu, 1)})
            print(f"  {config:<10} {rows[-1]['images_per_s']:>8.1f} images/s, "
                  f"{rows[-1]['images_per_cpu_s']:>7.1f} per CPU-s "
                  f"({len(jpegs)} images in {seconds:.2f} s)", flush=True)
    result = {"rows": rows, "source": source, "batch_size": args.batch_size,
              "threads": args.threads, "device": args.device, "cpus": os.cpu_count(),
              "load_average": os.getloadavg(), "torch": torch.__version__}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "clipscore_bench.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"load average {result['load_average']}, {args.threads} threads, {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
