"""Benchmark of the bundled CLIP trainer against open_clip, side by side in one run.

Measures training samples/s of the same model size and batch (default: ViT-B-32, batch 256,
bf16 autocast on GPU) for
  1. ours on synthetic in-device data (the compute ceiling),
  2. the shard loader alone (samples/s it can deliver with --workers processes),
  3. ours on real WebDataset shards through the loader,
  4. open_clip (``open_clip_torch`` installed with ``pip --target`` into its own cache folder,
     run in a child process on the same torch) on synthetic in-device data,
and the model FLOPs utilisation (MFU) against the card's bf16 dense peak. Prints one table
and the ratio ours/open_clip; ``--json PATH`` writes the numbers.

GPU (one short run):  python bench/train.py --shards 'OUT/shards/{00000..00009}.tar'
CPU smoke check:      python bench/train.py --device cpu --config tiny --batch-size 32 --steps 3

Without --shards it makes small shards itself (generated pictures through img2dataset on
loopback). On a GPU machine without internet, run ``--prepare --cache DIR`` beforehand where
PyPI is reachable and bring DIR along. PyPI's torchvision cannot load its operators beside a ``+cpu`` torch build;
open_clip imports ``torchvision.transforms`` only for its data transforms, which this
benchmark does not use, so the child then puts an import-only placeholder in its place and
says so (open_clip's model and loss code run unchanged).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training import data  # noqa: E402
from training.configs import ModelConfig, get_config  # noqa: E402
from training.loss import clip_loss  # noqa: E402
from training.model import CLIP  # noqa: E402
from training.optim import make_optimizer  # noqa: E402

OPEN_CLIP = "open_clip_torch==3.3.0"
# not timm: open_clip uses it only for timm towers and imports it optionally
OPEN_CLIP_DEPS = ["ftfy", "wcwidth", "regex", "huggingface_hub", "safetensors"]


def torchvision_requirement() -> str:
    """The torchvision release made for this torch (torch 2.N pairs with torchvision 0.N+15)."""
    major, minor = (int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    return f"torchvision==0.{minor + 15}.*" if major == 2 else "torchvision"
# bf16 dense peak TFLOP/s by card name (no sparsity)
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0,
               "4090": 165.0}


def flops_per_sample(cfg: ModelConfig) -> float:
    """Training FLOPs per image-text pair: 3x the forward (backward = 2x forward). Per token
    and layer a transformer does 24 w^2 (QKV, output, 4x MLP) + 4 n w (attention) FLOPs."""
    def tower(width: int, layers: int, tokens: int) -> float:
        return layers * tokens * (24 * width ** 2 + 4 * tokens * width)
    patches = (cfg.image_size // cfg.patch_size) ** 2
    vision = tower(cfg.vision_width, cfg.vision_layers, patches + 1)
    vision += 2 * patches * 3 * cfg.patch_size ** 2 * cfg.vision_width
    text = tower(cfg.text_width, cfg.text_layers, cfg.context_length)
    heads = 2 * (cfg.vision_width + cfg.text_width) * cfg.embed_dim
    return 3 * (vision + text + heads)


def peak_flops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    if override:
        return override * 1e12, name
    for key, tflops in PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12, name
    return None, name


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step, batches, steps: int, warmup: int, batch_size: int, device: torch.device) -> float:
    for _ in range(warmup):
        step(*next(batches))
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(*next(batches))
    _sync(device)
    return steps * batch_size / (time.perf_counter() - start)


def our_step(cfg: ModelConfig, device: torch.device, compile_model: bool):
    torch.manual_seed(0)
    model = CLIP(cfg, vocab_size=cfg.vocab_size).to(device).train()
    opt = make_optimizer(model, 5e-4, 0.2)
    fwd = torch.compile(model) if compile_model else model
    bf16 = device.type == "cuda"

    def step(images: torch.Tensor, tokens: torch.Tensor, *_: object) -> None:
        images = images.to(device, non_blocking=True)
        tokens = tokens.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = clip_loss(*fwd(images, tokens))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        model.clamp_logit_scale()
    return step


def synthetic_batches(cfg: ModelConfig, batch: int, device: torch.device):
    g = torch.Generator(device="cpu").manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8,
                           generator=g).to(device)
    tokens = torch.randint(3, cfg.vocab_size, (batch, cfg.context_length), generator=g).to(device)
    tokens[:, 0], tokens[:, -1] = 1, 2
    while True:
        yield images, tokens, {}


def make_bench_shards(cache: Path, n: int, size: int) -> str:
    from training.synthetic import make_shards, shape_dataset
    out = cache / f"shards-{n}-{size}"
    if not (out / "sizes.json").exists():
        with tempfile.TemporaryDirectory() as work:
            make_shards(shape_dataset(n, size=size), str(out), work, per_shard=max(1, n // 8),
                        image_size=size, processes=min(8, os.cpu_count() or 1))
    return str(out)


def loader_batches(shards: str, cfg: ModelConfig, batch: int, workers: int, device: torch.device):
    from training.tokenizer import train_tokenizer
    paths = data.resolve_shards(shards)
    tok = train_tokenizer(data.captions(paths, 5000), cfg.vocab_size)
    total = sum(data.shard_sizes(paths).values())
    stream = data.StreamConfig(shards=paths, batch_size=batch, image_size=cfg.image_size,
                               context_length=cfg.context_length,
                               steps_per_epoch=data.steps_per_epoch(total, batch),
                               shuffle_buffer=1000)
    return iter(data.make_loader(stream, tok, workers, pin_memory=device.type == "cuda")), tok


def ensure_open_clip(cache: Path) -> Path:
    """open_clip and its light dependencies in their own folder (pip --target, no deps, so
    pip never replaces torch); reused across runs."""
    site = cache / "open_clip-site"
    if not (site / "open_clip").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        str(site), OPEN_CLIP, *OPEN_CLIP_DEPS, torchvision_requirement()],
                       check=True)
    return site


OPEN_CLIP_CHILD = r'''
import json, sys, time, types, torch
args = json.loads(sys.argv[1])
note = ""
try:
    import torchvision  # noqa: F401
except Exception as exc:  # PyPI torchvision beside a +cpu torch: operators do not load
    note = f"torchvision unusable ({type(exc).__name__}); import-only placeholder"
    for name in [k for k in sys.modules if k.startswith("torchvision")]:
        del sys.modules[name]
    import importlib.abc, importlib.machinery
    class _Meta(type):
        def __getattr__(cls, attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return cls
    class _Placeholder(metaclass=_Meta):
        def __init__(self, *a, **k): raise RuntimeError("torchvision placeholder")
    class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name == "torchvision" or name.startswith("torchvision."):
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
        def create_module(self, spec):
            module = types.ModuleType(spec.name)
            module.__path__ = []
            def attribute(attr):
                if attr.startswith("__"):
                    raise AttributeError(attr)
                return _Placeholder
            module.__getattr__ = attribute
            return module
        def exec_module(self, module): pass
    sys.meta_path.insert(0, _Finder())
import open_clip
c = args["cfg"]
device = torch.device(args["device"])
torch.manual_seed(0)
model = open_clip.model.CLIP(
    embed_dim=c["embed_dim"],
    vision_cfg=dict(image_size=c["image_size"], patch_size=c["patch_size"], width=c["vision_width"],
                    layers=c["vision_layers"], head_width=c["vision_width"] // c["vision_heads"]),
    text_cfg=dict(context_length=c["context_length"], vocab_size=c["vocab_size"],
                  width=c["text_width"], heads=c["text_heads"], layers=c["text_layers"]),
).to(device).train()
loss_fn = open_clip.ClipLoss()
opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.2, betas=(0.9, 0.98), eps=1e-6)
if args["compile"]:
    model = torch.compile(model)
b, s = args["batch"], c["image_size"]
images = torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8).to(device)
tokens = torch.randint(3, c["vocab_size"], (b, c["context_length"])).to(device)
bf16 = device.type == "cuda"
def step():
    x = images.float().div(255)  # same uint8 input as ours, normalised on device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        image_features, text_features, logit_scale = model(x, tokens)[:3]
        loss = loss_fn(image_features, text_features, logit_scale)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
def sync():
    if device.type == "cuda": torch.cuda.synchronize(device)
for _ in range(args["warmup"]): step()
sync(); t = time.perf_counter()
for _ in range(args["steps"]): step()
sync()
print(json.dumps({"samples_per_s": args["steps"] * b / (time.perf_counter() - t),
                  "version": open_clip.__version__, "note": note}))
'''


def run_open_clip(site: Path, cfg: ModelConfig, args: argparse.Namespace, device: torch.device) -> dict:
    payload = json.dumps({"cfg": cfg.to_dict(), "device": str(device), "batch": args.batch_size,
                          "steps": args.steps, "warmup": args.warmup, "compile": args.compile})
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", OPEN_CLIP_CHILD, payload], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cuda, cpu (default: cuda when available)")
    p.add_argument("--config", default="ViT-B-32", help="model config (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=256, help="batch (default: %(default)s)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default: %(default)s)")
    p.add_argument("--shards", help="real shards for the loader runs (default: made here)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="loader worker processes (default: %(default)s)")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument("--peak-tflops", type=float, help="bf16 peak of the card for MFU")
    p.add_argument("--no-open-clip", action="store_true", help="skip the open_clip anchor")
    p.add_argument("--cache", default=os.path.expanduser("~/.cache/webimagetext/bench"),
                   help="folder for open_clip's install and generated shards (default: %(default)s)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--prepare", action="store_true",
                   help="only install open_clip and make the shards into --cache, then exit "
                        "(for a GPU machine without internet: prepare here, carry --cache)")
    args = p.parse_args()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    cfg = get_config(args.config)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if args.prepare:
        site = ensure_open_clip(cache)
        shards = args.shards or make_bench_shards(cache, n=max(4 * args.batch_size, 512),
                                                  size=max(64, cfg.image_size))
        print(f"prepared: open_clip in {site}, shards {shards}")
        return 0
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    peak, card = peak_flops(device, args.peak_tflops)
    fps = flops_per_sample(cfg)
    results: dict = {"device": card, "config": args.config, "batch": args.batch_size,
                     "steps": args.steps, "torch": torch.__version__,
                     "gflops_per_sample": fps / 1e9}

    ours = time_steps(our_step(cfg, device, args.compile), synthetic_batches(cfg, args.batch_size, device),
                      args.steps, args.warmup, args.batch_size, device)
    results["ours_synthetic"] = ours
    shards = args.shards or make_bench_shards(cache, n=max(4 * args.batch_size, 512),
                                              size=max(64, cfg.image_size))
    batches, _ = loader_batches(shards, cfg, args.batch_size, args.workers, device)
    results["loader_only"] = time_steps(lambda *b: None, batches, args.steps, args.warmup,
                                        args.batch_size, torch.device("cpu"))
    batches, _ = loader_batches(shards, cfg, args.batch_size, args.workers, device)
    results["ours_shards"] = time_steps(our_step(cfg, device, args.compile), batches, args.steps,
                                        args.warmup, args.batch_size, device)
    if not args.no_open_clip:
        try:
            results["open_clip"] = run_open_clip(ensure_open_clip(cache), cfg, args, device)
        except subprocess.CalledProcessError as exc:
            results["open_clip"] = {"error": f"install failed: {exc}"}
    if peak:
        results["mfu_ours_synthetic"] = ours * fps / peak
        results["mfu_ours_shards"] = results["ours_shards"] * fps / peak

    oc = results.get("open_clip", {})
    print(f"train benchmark: {args.config}, batch {args.batch_size}, {args.steps} steps, "
          f"{'bf16' if device.type == 'cuda' else 'fp32'} on {card}, torch {torch.__version__}")
    rows = [("ours, synthetic in-device data", ours),
            (f"loader alone ({args.workers} workers)", results["loader_only"]),
            ("ours, real shards via loader", results["ours_shards"])]
    if "samples_per_s" in oc:
        rows.append((f"open_clip {oc['version']}, synthetic", oc["samples_per_s"]))
    for name, value in rows:
        print(f"  {name:<38} {value:10.1f} samples/s")
    if "samples_per_s" in oc:
        print(f"  ratio ours/open_clip (synthetic)       {ours / oc['samples_per_s']:10.2f}")
        if oc.get("note"):
            print(f"  open_clip note: {oc['note']}")
    elif oc:
        print(f"  open_clip: not measured: {oc.get('error')}")
    print(f"  loader/compute ratio                   {results['loader_only'] / ours:10.2f}  "
          "(> 1: the loader is not the bottleneck)")
    if peak:
        print(f"  MFU ours synthetic / shards            {results['mfu_ours_synthetic']:10.1%} "
              f"/ {results['mfu_ours_shards']:.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
