"""Benchmark of the bundled CLIP trainer against open_clip, side by side in one run.

GPU run (any machine with a CUDA GPU; it needs no internet), step by step:

  1. On a machine where PyPI is reachable, once (about 17 MiB; nothing is installed into the
     venv):
       python bench/train.py --prepare --cache .cache/bench-train
     (`.cache/` is git-ignored: copy it to the GPU machine's checkout.) It pip-installs open_clip and the pure-Python
     packages the GPU image lacks (webdataset, braceexpand, ftfy, wcwidth) into
     .cache/bench-train/site with `--target`, and makes 1,024 real shards there with
     img2dataset (256 px JPEGs, as img2dataset writes for CLIP training).
  2. On the GPU machine, in the checkout, one command (its python3 needs CUDA torch; ~6 min
     at most, allow 8):
       PYTHONUNBUFFERED=1 python3 bench/train.py --cache .cache/bench-train --out OUT --compile
     Every phase runs in its own
     process under a time limit (--time-limit, default 360 s in all); a phase that fails or
     runs out of time is a row saying so, the others still run. It prints one table and writes
     OUT/train_bench.json (rewritten after every phase) and OUT/train_bench.txt (the table).
  3. Copy the table with the card's name into docs/benchmarks.md (training section).

Measures training samples/s of the same model size and batch (default: ViT-B-32, batch 256,
bf16 autocast on GPU) for
  1. ours on synthetic in-device data (the compute ceiling),
  2. open_clip (``open_clip_torch`` from --cache, on the same torch) on the same synthetic data,
  3. the shard loader alone (samples/s it delivers with --workers processes, pinned memory),
  4. ours on real WebDataset shards through the loader,
  5. with --compile: ours and open_clip under ``torch.compile`` (time permitting),
the ratio ours/open_clip and the model FLOPs utilisation (MFU) against the card's bf16 dense
peak (looked up from ``torch.cuda.get_device_name``; --peak-tflops overrides, also on CPU).

CPU smoke check (also exercises bf16 autocast and MFU on the CPU):
  python bench/train.py --device cpu --config tiny --batch-size 32 --steps 3 --warmup 1 \\
      --precision bf16 --peak-tflops 1 --out /tmp/train-bench

PyPI's torchvision cannot load its operators beside a ``+cpu`` torch build, and the venv has
none: open_clip imports ``torchvision.transforms`` only for its data transforms, which this
benchmark does not use, so where torchvision does not import the open_clip phase puts an
import-only placeholder in its place and says so (open_clip's model and loss code run
unchanged). The GPU image's own torchvision matches its torch and is used as is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
OPEN_CLIP = "open_clip_torch==3.3.0"
# Pure Python only, so that what --prepare installs here (Python 3.11) also runs on the GPU
# image (3.12). open_clip's other needs (regex, huggingface_hub, safetensors, torchvision) are
# in that image; the site folder goes at the *end* of sys.path so the image's own builds win.
SITE_PACKAGES = ["webdataset", "braceexpand", "ftfy", "wcwidth"]


def site_requirements() -> list[str]:
    """The packages above, pinned to the versions of this environment where installed (the
    trainer's data code is tested with those)."""
    from importlib.metadata import PackageNotFoundError, version
    pinned = []
    for name in SITE_PACKAGES:
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pinned.append(name)
    return pinned
DEFAULT_CACHE = ".cache/bench-train"
RESULT_PREFIX = "BENCH_RESULT "

# bf16 dense peak TFLOP/s (no sparsity) by a substring of the CUDA device name; the first
# match wins, so the more specific names come first ("A100" before "A10").
PEAK_TFLOPS = [("GH200", 989.0), ("H200 NVL", 835.0), ("H200", 989.0), ("H100 NVL", 835.0),
               ("H100 PCIe", 756.0), ("H100", 989.0), ("H800", 989.0), ("A100", 312.0),
               ("A800", 312.0), ("L40S", 362.0), ("L4", 121.0), ("A10", 125.0), ("4090", 165.0)]

# phase -> (default time limit in seconds on a GPU, row label)
PHASES = {
    "ours_synthetic": (90, "ours, synthetic in-device data"),
    "open_clip": (90, "open_clip, synthetic in-device data"),
    "loader_only": (90, "loader alone"),
    "ours_shards": (90, "ours, real shards via loader"),
    "ours_compiled": (150, "ours compiled, synthetic"),
    "open_clip_compiled": (150, "open_clip compiled, synthetic"),
}


# ---------------------------------------------------------------- pure helpers (tested)

def peak_tflops_for(name: str) -> float | None:
    for key, tflops in PEAK_TFLOPS:
        if key in name:
            return tflops
    return None


def flops_per_sample(cfg: Any) -> float:
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


def shard_image_size(image_size: int) -> int:
    """Shards store images a little larger than the model's input (256 px for 224, as
    img2dataset is run for CLIP), so the loader decodes, crops and resizes as in training."""
    return max(64, image_size * 8 // 7)


# ---------------------------------------------------------------- environment

def use_site(cache: Path) -> Path:
    """Append the prepared site folder (if any) to sys.path: the interpreter's own packages
    come first, the folder supplies only what is missing."""
    site = cache / "site"
    if site.is_dir() and str(site) not in sys.path:
        sys.path.append(str(site))
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return site


def prepare(cache: Path, cfg: Any, batch: int) -> tuple[Path, str]:
    site = cache / "site"
    if not (site / "open_clip").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-compile", "--target", str(site), OPEN_CLIP, *site_requirements()],
                       check=True)
    shards = make_bench_shards(cache, n=max(4 * batch, 512), size=shard_image_size(cfg.image_size))
    return site, shards


def bench_shards_path(cache: Path, n: int, size: int) -> Path:
    return cache / f"shards-{n}-{size}"


def make_bench_shards(cache: Path, n: int, size: int) -> str:
    out = bench_shards_path(cache, n, size)
    if not (out / "sizes.json").exists():
        from training.synthetic import make_shards, shape_dataset
        with tempfile.TemporaryDirectory() as work:
            make_shards(shape_dataset(n, size=size), str(out), work, per_shard=max(1, n // 8),
                        image_size=size, processes=min(8, os.cpu_count() or 1))
        for leftover in out.glob("*.parquet"):  # img2dataset's per-shard tables: not needed
            leftover.unlink()
    return str(out)


def device_of(args: argparse.Namespace) -> torch.device:
    if args.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(args.device)


def use_bf16(args: argparse.Namespace, device: torch.device) -> bool:
    return args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- one phase (child process)

def measure(step: Callable[..., Any], batches: Iterator[tuple], args: argparse.Namespace,
            device: torch.device) -> dict:
    """Untimed warmup steps (compilation, workers starting, buffers filling), then steps until
    --steps are done or --measure-seconds have passed; samples/s over the timed steps."""
    started = time.perf_counter()
    for _ in range(args.warmup):
        step(*next(batches))
    _sync(device)
    warmup_s = time.perf_counter() - started
    start, done = time.perf_counter(), 0
    while done < args.steps and (done == 0 or time.perf_counter() - start < args.measure_seconds):
        step(*next(batches))
        done += 1
    _sync(device)
    timed = time.perf_counter() - start
    out = {"samples_per_s": done * args.batch_size / timed, "timed_steps": done,
           "timed_s": round(timed, 3), "warmup_s": round(warmup_s, 3)}
    if device.type == "cuda":
        out["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
    return out


def synthetic_batches(cfg: Any, batch: int, device: torch.device) -> Iterator[tuple]:
    g = torch.Generator(device="cpu").manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8,
                           generator=g).to(device)
    tokens = torch.randint(3, cfg.vocab_size, (batch, cfg.context_length), generator=g).to(device)
    tokens[:, 0], tokens[:, -1] = 1, 2
    while True:
        yield images, tokens


def loader_batches(shards: str, cfg: Any, args: argparse.Namespace, device: torch.device
                   ) -> Iterator[tuple]:
    from training import batch_stream, shard_reading
    from training.clip.tokenizer import train_tokenizer
    paths = shard_reading.resolve_shards(shards)
    tok = train_tokenizer(shard_reading.captions(paths, 5000), cfg.vocab_size)
    total = sum(shard_reading.shard_sizes(paths).values())
    stream = batch_stream.StreamConfig(shards=paths, batch_size=args.batch_size, image_size=cfg.image_size,
                               context_length=cfg.context_length,
                               steps_per_epoch=batch_stream.steps_per_epoch(total, args.batch_size),
                               shuffle_buffer=1000)
    loader = batch_stream.make_loader(stream, tok, args.workers, pin_memory=device.type == "cuda")
    return ((images, tokens) for images, tokens, _ in loader)


class OurStep:
    """One training step of ours: uint8 images and tokens to the device, bf16 autocast (GPU or
    --precision bf16), symmetric loss, AdamW, clipping, temperature clamp."""

    def __init__(self, cfg: Any, device: torch.device, bf16: bool, compile_model: bool):
        from training.clip.model import CLIP
        from training.optim import make_optimizer
        torch.manual_seed(0)
        self.device, self.bf16 = device, bf16
        self.model = CLIP(cfg, vocab_size=cfg.vocab_size).to(device).train()
        self.opt = make_optimizer(self.model, 5e-4, 0.2)
        self.forward = torch.compile(self.model) if compile_model else self.model
        self.loss: torch.Tensor | None = None

    def __call__(self, images: torch.Tensor, tokens: torch.Tensor) -> None:
        from training.loss import clip_loss
        images = images.to(self.device, non_blocking=True)
        tokens = tokens.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = clip_loss(*self.forward(images, tokens))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.model.clamp_logit_scale()
        self.loss = loss.detach()


def import_open_clip() -> tuple[Any, str]:
    note = ""
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - missing, or PyPI's beside a +cpu torch
        note = f"torchvision unusable ({type(exc).__name__}); import-only placeholder"
        _install_torchvision_placeholder()
    try:
        import open_clip
    except ImportError as exc:
        raise RuntimeError(f"open_clip not importable ({exc}): run --prepare --cache DIR") from exc
    return open_clip, note


def _install_torchvision_placeholder() -> None:
    import importlib.abc
    import importlib.machinery
    import types

    for name in [k for k in sys.modules if k.startswith("torchvision")]:
        del sys.modules[name]

    class _Meta(type):
        def __getattr__(cls, attr: str) -> Any:
            if attr.startswith("__"):
                raise AttributeError(attr)
            return cls

    class _Placeholder(metaclass=_Meta):
        def __init__(self, *a: Any, **k: Any):
            raise RuntimeError("torchvision placeholder")

    class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            if name == "torchvision" or name.startswith("torchvision."):
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec: Any) -> Any:
            module = types.ModuleType(spec.name)
            module.__path__ = []

            def attribute(attr: str) -> Any:
                if attr.startswith("__"):
                    raise AttributeError(attr)
                return _Placeholder
            module.__getattr__ = attribute  # type: ignore[method-assign]
            return module

        def exec_module(self, module: Any) -> None:
            pass

    sys.meta_path.insert(0, _Finder())


class OpenClipStep:
    """The same step with open_clip's CLIP and ClipLoss (same sizes, optimizer, clipping)."""

    def __init__(self, cfg: Any, device: torch.device, bf16: bool, compile_model: bool):
        open_clip, self.note = import_open_clip()
        self.version = open_clip.__version__
        torch.manual_seed(0)
        self.device, self.bf16 = device, bf16
        self.model = open_clip.model.CLIP(
            embed_dim=cfg.embed_dim,
            vision_cfg=dict(image_size=cfg.image_size, patch_size=cfg.patch_size,
                            width=cfg.vision_width, layers=cfg.vision_layers,
                            head_width=cfg.vision_width // cfg.vision_heads),
            text_cfg=dict(context_length=cfg.context_length, vocab_size=cfg.vocab_size,
                          width=cfg.text_width, heads=cfg.text_heads, layers=cfg.text_layers),
        ).to(device).train()
        self.loss_fn = open_clip.ClipLoss()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=5e-4, weight_decay=0.2,
                                     betas=(0.9, 0.98), eps=1e-6)
        self.forward = torch.compile(self.model) if compile_model else self.model
        self.loss: torch.Tensor | None = None

    def __call__(self, images: torch.Tensor, tokens: torch.Tensor) -> None:
        x = images.to(self.device, non_blocking=True).float().div(255)  # same uint8 input
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            image_features, text_features, logit_scale = self.forward(x, tokens)[:3]
            loss = self.loss_fn(image_features, text_features, logit_scale)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        with torch.no_grad():  # as open_clip's training loop does after every step
            self.model.logit_scale.clamp_(0, math.log(100))
        self.loss = loss.detach()


def run_phase(name: str, args: argparse.Namespace) -> dict:
    from training.clip.configs import get_config
    cfg = get_config(args.config)
    device = device_of(args)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    bf16 = use_bf16(args, device)
    if name == "loader_only":
        return measure(lambda *b: None, loader_batches(args.shards, cfg, args, device), args,
                       torch.device("cpu"))
    compiled = name.endswith("_compiled")
    if name.startswith("open_clip"):
        step: OurStep | OpenClipStep = OpenClipStep(cfg, device, bf16, compiled)
    else:
        step = OurStep(cfg, device, bf16, compiled)
    batches = (loader_batches(args.shards, cfg, args, device) if name == "ours_shards"
               else synthetic_batches(cfg, args.batch_size, device))
    result = measure(step, batches, args, device)
    assert step.loss is not None
    result["final_loss"] = float(step.loss.float().item())
    if not torch.isfinite(step.loss.float()):
        raise RuntimeError(f"loss is {result['final_loss']} after {result['timed_steps']} steps")
    if isinstance(step, OpenClipStep):
        result.update(version=step.version, note=step.note)
    return result


# ---------------------------------------------------------------- the run (parent process)

def spawn_phase(name: str, argv: list[str], limit: float) -> dict:
    """Run one phase in its own process group; kill the group (DataLoader workers included)
    when it outlives ``limit`` seconds. stderr passes through; the result is stdout's last
    ``BENCH_RESULT`` line."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *argv,
                             "--phase", name], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"timed out after {limit:.0f} s", "wall_s": round(limit, 1)}
    wall = round(time.perf_counter() - started, 1)
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        return {"error": f"exit {proc.returncode} without a result (see its stderr above)",
                "wall_s": wall}
    return {**json.loads(lines[-1][len(RESULT_PREFIX):]), "wall_s": wall}


def phase_names(args: argparse.Namespace) -> list[str]:
    if args.phases:
        names = [n.strip() for n in args.phases.split(",") if n.strip()]
        unknown = sorted(set(names) - set(PHASES))
        if unknown:
            raise SystemExit(f"--phases: unknown {unknown}; choose from {sorted(PHASES)}")
        return names
    names = ["ours_synthetic"]
    if not args.no_open_clip:
        names.append("open_clip")
    names += ["loader_only", "ours_shards"]
    if args.compile:
        names.append("ours_compiled")
        if not args.no_open_clip:
            names.append("open_clip_compiled")
    return names


def format_table(results: dict, args: argparse.Namespace) -> str:
    phases = results["phases"]
    lines = [f"train benchmark: {results['config']}, batch {results['batch']}, "
             f"{results['precision']} on {results['device']}, torch {results['torch']}"]
    for name, result in phases.items():
        label = PHASES[name][1]
        if name == "loader_only":
            label += f" ({args.workers} workers)"
        if name.startswith("open_clip") and "version" in result:
            label = label.replace("open_clip", f"open_clip {result['version']}")
        if "samples_per_s" in result:
            mfu = result.get("mfu")
            lines.append(f"  {label:<44} {result['samples_per_s']:10.1f} samples/s"
                         + (f"   MFU {mfu:6.1%}" if mfu is not None else ""))
        else:
            lines.append(f"  {label:<44} {'-':>10}   {result.get('error', 'not run')}")
    for key, label in (("ratio_ours_open_clip", "ratio ours/open_clip (synthetic)"),
                       ("ratio_ours_open_clip_compiled", "ratio ours/open_clip (compiled)"),
                       ("ratio_loader_compute", "loader/compute (> 1: loader not the bottleneck)")):
        if key in results:
            lines.append(f"  {label:<44} {results[key]:10.2f}")
    notes = {r.get("note") for r in phases.values() if r.get("note")}
    lines += [f"  note: {n}" for n in sorted(notes)]
    if results.get("peak_tflops"):
        lines.append(f"  MFU against {results['peak_tflops']:g} TFLOP/s bf16 dense peak, "
                     f"{results['gflops_per_sample']:.4g} GFLOP per sample (3 x forward)")
    return "\n".join(lines)


def summarise(results: dict) -> None:
    phases = results["phases"]
    rate = {n: r["samples_per_s"] for n, r in phases.items() if "samples_per_s" in r}
    peak = results.get("peak_tflops")
    for name, result in phases.items():
        if peak and name != "loader_only" and "samples_per_s" in result:
            result["mfu"] = result["samples_per_s"] * results["gflops_per_sample"] * 1e9 / (peak * 1e12)
    for ours, theirs, key in (("ours_synthetic", "open_clip", "ratio_ours_open_clip"),
                              ("ours_compiled", "open_clip_compiled", "ratio_ours_open_clip_compiled"),
                              ("loader_only", "ours_synthetic", "ratio_loader_compute")):
        if ours in rate and theirs in rate:
            results[key] = rate[ours] / rate[theirs]


def main_run(args: argparse.Namespace, argv: list[str]) -> int:
    from training.clip.configs import get_config
    cfg = get_config(args.config)
    cache = Path(args.cache)
    device = device_of(args)
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or (peak_tflops_for(card) if device.type == "cuda" else None)
    results: dict = {
        "device": card, "config": args.config, "batch": args.batch_size,
        "precision": "bf16 autocast" if use_bf16(args, device) else "fp32",
        "torch": torch.__version__, "cuda": torch.version.cuda, "workers": args.workers,
        "cpus": os.cpu_count(), "gflops_per_sample": flops_per_sample(cfg) / 1e9,
        "peak_tflops": peak, "time_limit_s": args.time_limit, "phases": {}}
    if os.path.isdir("/dev/shm"):  # loader workers hand batches over through it
        results["dev_shm_gib"] = round(shutil.disk_usage("/dev/shm").total / 2 ** 30, 2)
    if device.type == "cuda" and peak is None:
        results["peak_note"] = f"no bf16 peak known for {card!r}: pass --peak-tflops for MFU"

    if not args.shards:
        path = bench_shards_path(cache, max(4 * args.batch_size, 512), shard_image_size(cfg.image_size))
        if not (path / "sizes.json").exists():
            try:
                make_bench_shards(cache, max(4 * args.batch_size, 512), shard_image_size(cfg.image_size))
            except ImportError as exc:
                print(f"cannot make shards here ({exc}): run --prepare --cache {cache} where "
                      "img2dataset is installed", file=sys.stderr)
        argv = [*argv, "--shards", str(path)]

    deadline = time.perf_counter() + args.time_limit
    for name in phase_names(args):
        remaining = deadline - time.perf_counter()
        limit = min(args.phase_limit or PHASES[name][0], remaining)
        if limit < 20:
            results["phases"][name] = {"error": "skipped: --time-limit reached"}
        else:
            print(f"== phase {name} (limit {limit:.0f} s)", file=sys.stderr, flush=True)
            results["phases"][name] = spawn_phase(name, argv, limit)
        summarise(results)
        if out is not None:  # after every phase: a run killed from outside keeps what it had
            (out / "train_bench.json").write_text(json.dumps(results, indent=1) + "\n")
    table = format_table(results, args)
    print(table)
    if out is not None:
        (out / "train_bench.txt").write_text(table + "\n")
        print(f"results -> {out / 'train_bench.json'}")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cuda, cpu (default: cuda when available)")
    p.add_argument("--config", default="ViT-B-32", help="model config (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=256, help="batch (default: %(default)s)")
    p.add_argument("--steps", type=int, default=50,
                   help="timed steps at most per phase (default: %(default)s)")
    p.add_argument("--measure-seconds", type=float, default=15.0,
                   help="stop timing a phase after this many seconds even before --steps "
                        "(default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default: %(default)s)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                   help="autocast (default: %(default)s = bf16 on GPU, fp32 on CPU; bf16 on "
                        "a CPU exercises the GPU code path)")
    p.add_argument("--shards", help="real shards for the loader phases (default: the prepared "
                                    "ones in --cache, made there if missing)")
    p.add_argument("--workers", type=int, default=max(1, min(12, (os.cpu_count() or 2) - 2)),
                   help="loader worker processes (default: %(default)s = CPUs - 2, at most 12)")
    p.add_argument("--compile", action="store_true",
                   help="also time ours and open_clip under torch.compile (last, time permitting)")
    p.add_argument("--peak-tflops", type=float,
                   help="bf16 peak of the device for MFU (default: looked up from the card's "
                        "name: " + ", ".join(f"{k} {v:g}" for k, v in PEAK_TFLOPS) + ")")
    p.add_argument("--no-open-clip", action="store_true", help="skip the open_clip anchor")
    p.add_argument("--phases", help="comma-separated phases to run, in this order (default: all "
                                    "of " + ", ".join(PHASES) + " that the other options ask for)")
    p.add_argument("--cache", default=str(REPO / DEFAULT_CACHE),
                   help="folder of the prepared open_clip install and shards (default: %(default)s)")
    p.add_argument("--out", help="folder for train_bench.json and train_bench.txt")
    p.add_argument("--time-limit", type=float, default=360.0,
                   help="seconds for all phases together (default: %(default)s)")
    p.add_argument("--phase-limit", type=float,
                   help="seconds per phase (default: 90, 150 for the compiled ones; never more "
                        "than what --time-limit leaves)")
    p.add_argument("--prepare", action="store_true",
                   help="only install open_clip and the packages the GPU image lacks into "
                        "--cache/site and make the shards there, then exit")
    p.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    use_site(Path(args.cache))
    if args.phase:
        try:
            result = run_phase(args.phase, args)
        except Exception as exc:  # noqa: BLE001 - reported as the phase's row
            import traceback
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    if args.prepare:
        from training.clip.configs import get_config
        site, shards = prepare(Path(args.cache), get_config(args.config), args.batch_size)
        size = sum(f.stat().st_size for f in Path(args.cache).rglob("*") if f.is_file())
        print(f"prepared {args.cache} ({size / 2 ** 20:.1f} MiB): packages in {site}, shards {shards}")
        return 0
    return main_run(args, argv)


if __name__ == "__main__":
    sys.exit(main())
