"""Benchmark: `wit shards` beside img2dataset alone, and faiss beside brute-force Hamming.

The whole table for docs/benchmarks.md, in one command (run it on a quiet machine):

    python bench/shards.py --rows 3000 --repeat 3 --hashes 0

(`--quick`: 600 rows, one round, no hash benchmark — a check that everything runs.)

1. Download throughput. A loopback server (its own process, 127.0.0.2) serves the "web"
   mix (default; `--mix jpegs` gives the old input alone):
     - 40 % of the rows: 300 real images (Debian openclipart-png, converted to JPEG,
       300-900 px), URLs unique but the images repeat (the bench's first input);
     - 57 %: distinct images, never repeated: JPEG photos (generated: smooth colour fields,
       texture and noise, each from its own seed) and PNG clip art (openclipart-png pictures
       scaled; generated drawings when the package is missing), longest side log-uniform
       from 200 to 4,000 px;
     - 3 %: distinct JPEG photos of 5,000 x 4,200 px, over the pixel limit (--max-pixels
       20,000,000 for `wit shards`, max_image_area for img2dataset).
   Generated files are cached under .cache/bench-shards/. The same candidates Parquet goes to
     img2dataset - img2dataset.download(), webdataset output, keep_ratio 256, same processes
                   and threads
     wit shards  - the whole stage: guarded download (robots.txt, SSRF guard, header pixel
                   bound, pHash) + the Beam job (filters, dedup, resharding) + report
   alternately --repeat times, the order rotating (a shared machine's load changes between
   runs); before each run it waits (--quiet-below, --quiet-wait) until the 1-minute load
   average is under 1 and records it. Printed: wall and CPU seconds of each
   run, the download phase of `wit shards` alone (first shard start -> last shard end, from
   its _stats.json), the ratios (wall, images per CPU-second, download phase), and the mean
   SSIM of our 256-px images against img2dataset's for the same URLs.
2. Near-duplicate search: all pairs within 10 bits among N 64-bit hashes (random, with planted
   near copies): faiss IndexBinaryFlat range search vs numpy brute force (xor + popcount),
   the same pairs, time ratio.

Per-host limits (`--host-limits`): the bench's rows all live on one host, so `wit shards`
runs with its per-host limits on but above what 2 x 32 threads reach (`above`, the default:
every request still goes through the shared host table), which measures their cost when no
host is over them; `--baseline-repo` of a checkout from before the limits runs alongside
(without those options) to show the difference directly.

Usage: python bench/shards.py [--rows 3000] [--processes 2] [--threads 32] [--repeat 3]
       [--mix web|jpegs] [--quick] [--baseline-repo DIR] [--hashes 100000] [--skip-download]
       [--host-limits above|default|off]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import run_timed

REPO = Path(__file__).resolve().parents[1]
OPENCLIPART = Path("/usr/share/openclipart/png")
HOST = "127.0.0.2"


def real_jpegs(count: int) -> list[bytes]:
    from PIL import Image

    found: list[bytes] = []
    for path in sorted(OPENCLIPART.rglob("*.png")):
        if len(found) >= count:
            break
        if not 20_000 < path.stat().st_size < 400_000:
            continue
        with Image.open(path) as image:
            if not (300 <= min(image.size) and max(image.size) <= 900):
                continue
            rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.split()[-1])
        buffer = io.BytesIO()
        background.save(buffer, "JPEG", quality=90)
        found.append(buffer.getvalue())
    return found


CACHE = REPO / ".cache" / "bench-shards"
OVER_LIMIT = (5000, 4200)
MAX_PIXELS = 20_000_000


def photo(seed: int, size: tuple[int, int]):
    """A distinct photo-like picture: random colour fields at octaves of scale, stronger the
    coarser (natural images' ~1/f spectrum), plus a little sensor noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
    for divisor, weight in ((48, 0.35), (12, 0.2), (3, 0.1)):
        small = (max(2, size[0] // divisor), max(2, size[1] // divisor))
        octave = Image.fromarray(rng.integers(0, 256, (small[1], small[0], 3), dtype=np.uint8))
        image = Image.blend(image, octave.resize(size, Image.Resampling.BICUBIC), weight)
    return Image.blend(image, Image.effect_noise(size, 30).convert("RGB"), 0.04)


def clip_art(index: int, path: Path | None, longest: int):
    from PIL import Image, ImageDraw

    if path is not None:
        with Image.open(path) as opened:
            image = opened.convert("RGBA")
        scale = longest / max(image.size)
        return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                            Image.Resampling.LANCZOS)
    image = Image.new("RGBA", (longest, longest * 3 // 4), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for k in range(12):  # flat shapes, as in clip art
        x, y = (index * 37 + k * 101) % image.width, (index * 53 + k * 71) % image.height
        draw.ellipse((x, y, x + longest // 4, y + longest // 5), fill=((index * 29 + k * 40) % 256, k * 20, 200, 255))
    return image


def web_files(count: int) -> list[Path]:
    """``count`` distinct web-like files (cached): 95 % photos and clip art, 200-4000 px,
    5 % of the distinct ones over the pixel limit."""
    import random

    CACHE.mkdir(parents=True, exist_ok=True)
    arts = sorted(p for p in OPENCLIPART.rglob("*.png") if p.stat().st_size > 10_000) if OPENCLIPART.is_dir() else []
    random.Random(1).shuffle(arts)
    files: list[Path] = []
    for i in range(count):
        rng = random.Random(i)
        longest = round(200 * 20 ** rng.random())  # log-uniform 200..4000
        kind = "over" if i % 19 == 7 else ("photo" if i % 2 else "art")
        path = CACHE / f"{i:05d}-{kind}.{'png' if kind == 'art' else 'jpg'}"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            if kind == "art":
                clip_art(i, arts[i % len(arts)] if arts else None, longest).save(tmp, "PNG", compress_level=6)
            else:
                ratio = rng.choice([4 / 3, 3 / 2, 1.0, 3 / 4, 16 / 9])
                size = OVER_LIMIT if kind == "over" else (
                    (longest, max(1, round(longest / ratio))) if ratio >= 1 else (max(1, round(longest * ratio)), longest))
                photo(i, size).save(tmp, "JPEG", quality=rng.choice([80, 85, 90]))
            tmp.rename(path)
        files.append(path)
    return files


def serve(jpegs: list[bytes], files: list[str], queue) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # as real web servers do (nginx: tcp_nodelay): with Nagle, a kept-alive
        # connection stalls ~40 ms per response on the client's delayed ACK
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            number = path.rsplit("/", 1)[-1].split(".")[0]
            if path == "/robots.txt":
                body, kind = b"User-agent: *\nAllow: /\n", "text/plain"
            elif not number.isdigit():  # /.well-known/tdmrep.json and the like: none here
                self.send_error(404)
                return
            elif path.startswith("/web/"):
                name = files[int(number)]
                with open(name, "rb") as f:
                    body = f.read()
                kind = "image/png" if name.endswith(".png") else "image/jpeg"
            else:
                body, kind = jpegs[int(number) % len(jpegs)], "image/jpeg"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    queue.put(server.server_address[1])
    server.serve_forever()


def candidate_urls(rows: int, port: int, mix: str, distinct: int) -> list[str]:
    """The URL of each row: with the web mix, 40 % today's JPEGs and 60 % distinct files,
    interleaved in a fixed order."""
    import random

    if mix == "jpegs":
        return [f"http://{HOST}:{port}/img/{i}.jpg" for i in range(rows)]
    kinds = ["web"] * distinct + ["jpeg"] * (rows - distinct)
    random.Random(0).shuffle(kinds)
    urls, web = [], 0
    for i, kind in enumerate(kinds):
        if kind == "web":
            urls.append(f"http://{HOST}:{port}/web/{web}.img")
            web += 1
        else:
            urls.append(f"http://{HOST}:{port}/img/{i}.jpg")
    return urls


def timed(command: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children); prints its phase logs."""
    wall, cpu, done = run_timed(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, cwd=cwd)
    if done.returncode:
        sys.exit(f"{command[1]} failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    for line in done.stderr.splitlines():
        if line.startswith("INFO pipeline.shards.job"):
            print("    phase:", line.split(": ", 1)[1])
    return wall, cpu


IMG2DATASET = """
import sys
from img2dataset import download
if __name__ == "__main__":
    download(url_list=sys.argv[1], output_folder=sys.argv[2], input_format="parquet",
             url_col="url", caption_col="text", output_format="webdataset", image_size=256,
             resize_mode="keep_ratio", processes_count=int(sys.argv[3]),
             thread_count=int(sys.argv[4]), number_sample_per_shard=1000, timeout=10,
             max_image_area=float(sys.argv[5]))
"""


def tar_images(folder: Path) -> dict[str, bytes]:
    """url -> stored image bytes of every sample in the tars of ``folder``."""
    import tarfile

    found: dict[str, bytes] = {}
    for path in sorted(folder.glob("*.tar")):
        with tarfile.open(path) as tar:
            members: dict[str, dict[str, bytes]] = {}
            for member in tar:
                if member.isfile():
                    key, _, ext = member.name.rpartition(".")
                    members.setdefault(key, {})[ext] = tar.extractfile(member).read()  # type: ignore[union-attr]
        for parts in members.values():
            if "jpg" in parts and "json" in parts:
                found[json.loads(parts["json"])["url"]] = parts["jpg"]
    return found


def ssim(a, b) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) of two
    8-bit images, averaged over channels; sizes that differ by rounding are cropped alike."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    x, y = a[:h, :w].astype(np.float64), b[:h, :w].astype(np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for ch in range(x.shape[2]):
        p, q = x[..., ch], y[..., ch]
        mp, mq = gaussian_filter(p, 1.5), gaussian_filter(q, 1.5)
        vp, vq = gaussian_filter(p * p, 1.5) - mp * mp, gaussian_filter(q * q, 1.5) - mq * mq
        cov = gaussian_filter(p * q, 1.5) - mp * mq
        scores.append(((2 * mp * mq + c1) * (2 * cov + c2)) / ((mp * mp + mq * mq + c1) * (vp + vq + c2)))
    return float(np.mean(scores))


def compare_images(i2d_out: Path, wit_out: Path, limit: int = 500) -> tuple[float, float, int, int]:
    """(mean SSIM, lowest SSIM, images compared, size mismatches) of our 256-px images
    against img2dataset's for the same URLs (the first ``limit`` URLs in order)."""
    import numpy as np
    from PIL import Image

    ours, theirs = tar_images(wit_out / "shards"), tar_images(i2d_out)
    scores, mismatched = [], 0
    for url in sorted(set(ours) & set(theirs))[:limit]:
        a = np.asarray(Image.open(io.BytesIO(ours[url])).convert("RGB"))
        b = np.asarray(Image.open(io.BytesIO(theirs[url])).convert("RGB"))
        mismatched += a.shape != b.shape
        scores.append(ssim(a, b))
    return (float(np.mean(scores)) if scores else float("nan"), min(scores, default=float("nan")),
            len(scores), mismatched)


def host_limit_args(limits: str, processes: int, threads: int) -> list[str]:
    """`wit shards`'s per-host limits for the bench's one host: ``above`` -- on, but above
    anything 2 x 32 threads can reach (every request still takes and returns a lease in the
    shared host table: this measures the limits' cost when no host is over them); ``default``
    -- the stage's defaults (the one host is then far over them: not a fair race with
    img2dataset); ``off`` -- 0, no limits."""
    if limits == "above":
        return ["--max-connections-per-host", str(processes * threads),
                "--max-requests-per-second-per-host", "1000000"]
    if limits == "off":
        return ["--max-connections-per-host", "0", "--max-requests-per-second-per-host", "0"]
    return []


def download_bench(rows: int, processes: int, threads: int, repeat: int, mix: str,
                   baseline: Path | None = None, quiet_below: float = 1.0,
                   quiet_wait: float = 300, limits: str = "above") -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from schemas.candidates import CANDIDATES

    images = real_jpegs(300)
    distinct = rows * 6 // 10 if mix == "web" else 0
    started = time.perf_counter()
    files = [str(p) for p in web_files(distinct)]
    if files:
        print(f"  web mix: {distinct} distinct files ready in {time.perf_counter() - started:.0f}s "
              f"({sum(os.path.getsize(f) for f in files) / 1e6:.0f} MB, cached in {CACHE})")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    server = context.Process(target=serve, args=(images, files, queue), daemon=True)
    server.start()
    port = queue.get(timeout=60)
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WIT_PROGRESS="0")
    runs: list[dict] = []
    quality: tuple[float, float, int, int] | None = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "candidates"
            folder.mkdir()
            urls = candidate_urls(rows, port, mix, distinct)
            table = pa.Table.from_pylist([{
                "uid": f"u{i}", "url": url, "text": f"clip art number {i}",
                "page_url": None, "source": "urls", "matched_entry_ids": [i % 50]} for i, url in enumerate(urls)],
                schema=CANDIDATES)
            pq.write_table(table, folder / "part-00000.parquet")
            script = Path(tmp) / "i2d.py"
            script.write_text(IMG2DATASET)
            wit = [sys.executable, "-m", "pipeline.cli", "shards", "--candidates", str(folder),
                   "--allow-network", f"{HOST}/32", "--processes", str(processes), "--threads",
                   str(threads), "--download-shard-size", "1000", "--min-side", "0", "--min-bytes",
                   "0", "--near-dup-bits", "0", "--max-pixels", str(MAX_PIXELS), "--log-level", "INFO"]
            commands = {
                "i2d": lambda out: timed([sys.executable, str(script), str(folder / "part-00000.parquet"),
                                          str(out), str(processes), str(threads), str(MAX_PIXELS)], env),
                # the per-host limit options exist in this checkout, maybe not in --baseline-repo's
                "wit": lambda out: timed([*wit, *host_limit_args(limits, processes, threads),
                                          "--out", str(out)], env, cwd=REPO),
            }
            if baseline:
                commands["baseline"] = lambda out: timed([*wit, "--out", str(out)],
                                                         dict(env, PYTHONPATH=str(baseline)), cwd=baseline)
            # they alternate, and the order rotates, so a change of load on a shared machine
            # (or a cold file cache for whoever runs first) hits each alike
            for attempt in range(repeat):
                names = list(commands)
                names = names[attempt % len(names):] + names[:attempt % len(names)]
                timing, loads = {}, {}
                for name in names:
                    loads[name] = wait_for_quiet(quiet_below, quiet_wait)
                    print(f"  ({name}, load average {loads[name]:.1f})", flush=True)
                    timing[name] = commands[name](Path(tmp) / f"{name}{attempt}")
                i2d_out, wit_out = Path(tmp) / f"i2d{attempt}", Path(tmp) / f"wit{attempt}"
                if quality is None:
                    quality = compare_images(i2d_out, wit_out)
                i2d_ok = sum(json.loads(p.read_text())["successes"] for p in i2d_out.glob("*_stats.json"))
                stats = [json.loads(p.read_text()) for p in (wit_out / "shards" / "_work" / "round0").glob("*_stats.json")]
                runs.append({"loads": loads, "i2d_ok": i2d_ok, "i2d_wall": timing["i2d"][0], "i2d_cpu": timing["i2d"][1],
                             "wit_ok": sum(s["successes"] for s in stats), "wit_wall": timing["wit"][0],
                             "wit_cpu": timing["wit"][1], "baseline_wall": timing.get("baseline", (None, None))[0],
                             "baseline_cpu": timing.get("baseline", (None, None))[1],
                             "download_wall": max(s["end_time"] for s in stats) - min(s["start_time"] for s in stats)})
                report_run(attempt, runs[-1], processes)
                for name in names:
                    subprocess.run(["rm", "-rf", str(Path(tmp) / f"{name}{attempt}")], check=True)
    finally:
        server.terminate()
    summary(runs, rows, mix, distinct, len(images), processes, threads, quality, baseline)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def summary(runs: list[dict], rows: int, mix: str, distinct: int, jpegs: int, processes: int,
            threads: int, quality: tuple[float, float, int, int] | None, baseline: Path | None) -> None:
    """The table for docs/benchmarks.md: one column per round, then the ratios."""
    inputs = (f"{rows - distinct} rows of {jpegs} real JPEGs + {distinct} distinct web-like files "
              f"(JPEG photos, PNG clip art, 200-4000 px, 1 in 19 over {MAX_PIXELS:,} pixels)"
              if mix == "web" else f"{rows} rows of {jpegs} real JPEGs")
    print(f"\ndownload: {inputs}; {processes} processes x {threads} threads; {len(runs)} alternating round(s)")
    head = "| run | " + " | ".join(f"round {i + 1}" for i in range(len(runs))) + " |"
    print(head)
    print("|---|" + "---:|" * len(runs))

    def row(label: str, cell) -> None:
        print(f"| {label} | " + " | ".join(cell(r) for r in runs) + " |")

    row("load average before img2dataset / wit", lambda r: f"{r['loads']['i2d']:.1f} / {r['loads']['wit']:.1f}")
    row("img2dataset alone: ok images, wall s / CPU s",
        lambda r: f"{r['i2d_ok']}, {r['i2d_wall']:.1f} / {r['i2d_cpu']:.1f}")
    row("`wit shards` whole stage: ok images, wall s / CPU s",
        lambda r: f"{r['wit_ok']}, {r['wit_wall']:.1f} / {r['wit_cpu']:.1f}")
    row("— its download phase, wall s", lambda r: f"{r['download_wall']:.1f}")
    if baseline:
        row("`wit shards` baseline checkout, wall s / CPU s",
            lambda r: f"{r['baseline_wall']:.1f} / {r['baseline_cpu']:.1f}")
    ratios = {
        "wall": lambda r: (r["wit_ok"] / r["wit_wall"]) / (r["i2d_ok"] / r["i2d_wall"]),
        "cpu": lambda r: (r["wit_ok"] / r["wit_cpu"]) / (r["i2d_ok"] / r["i2d_cpu"]),
        "download": lambda r: (r["wit_ok"] / r["download_wall"]) / (r["i2d_ok"] / r["i2d_wall"]),
    }
    row("**ratio wit / img2dataset, images/s (goal ≥ 1.0×)**", lambda r: f"**{ratios['wall'](r):.2f}×**")
    row("**ratio, images per CPU-second (goal ≥ 1.2×)**", lambda r: f"**{ratios['cpu'](r):.2f}×**")
    row("**ratio, download phase alone (goal ≥ 1.3×)**", lambda r: f"**{ratios['download'](r):.2f}×**")
    print("medians over rounds: " + ", ".join(f"{k} {median([f(r) for r in runs]):.2f}×" for k, f in ratios.items()))
    best_i2d, best_wit = min(runs, key=lambda r: r["i2d_wall"]), min(runs, key=lambda r: r["wit_wall"])
    print(f"best of each (wall): {(best_wit['wit_ok'] / best_wit['wit_wall']) / (best_i2d['i2d_ok'] / best_i2d['i2d_wall']):.2f}×")
    if quality:
        mean, low, count, mismatched = quality
        print(f"output quality: mean SSIM of our 256-px images vs img2dataset's, same URLs: {mean:.4f} "
              f"(lowest {low:.4f}, {count} images, {mismatched} differ in size by rounding; goal ≥ 0.98)")


def report_run(attempt: int, run: dict, processes: int) -> None:
    i2d_rate, wit_rate = run["i2d_ok"] / run["i2d_wall"], run["wit_ok"] / run["wit_wall"]
    print(f"run {attempt + 1}:")
    print(f"  img2dataset alone : {run['i2d_ok']} ok in {run['i2d_wall']:.1f}s wall ({run['i2d_cpu']:.1f} CPU s) = "
          f"{i2d_rate:.1f} images/s, {i2d_rate / processes:.1f}/s per core")
    print(f"  wit shards (all)  : {run['wit_ok']} ok in {run['wit_wall']:.1f}s wall ({run['wit_cpu']:.1f} CPU s) = "
          f"{wit_rate:.1f} images/s, {wit_rate / processes:.1f}/s per core")
    print(f"  wit download phase: {run['download_wall']:.1f}s = {run['wit_ok'] / run['download_wall']:.1f} "
          f"images/s (ratio to img2dataset alone, download only: "
          f"{(run['wit_ok'] / run['download_wall']) / i2d_rate:.2f}x)")
    if run["baseline_wall"]:
        print(f"  baseline checkout : {run['baseline_wall']:.1f}s wall ({run['baseline_cpu']:.1f} CPU s) = "
              f"{run['i2d_wall'] / run['baseline_wall']:.2f}x img2dataset")
    print(f"  ratio wit shards / img2dataset (whole stage): {wit_rate / i2d_rate:.2f}x", flush=True)


def hash_bench(count: int, bits: int = 10) -> None:
    import numpy as np

    from pipeline.shards.dedup import brute_force_pairs, faiss_pairs

    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**62, count, dtype=np.uint64) << np.uint64(2) | rng.integers(0, 4, count, dtype=np.uint64)
    planted = count // 100
    for i in range(planted):  # near copies at 0..bits flipped bits
        flips = rng.choice(64, size=rng.integers(0, bits + 1), replace=False)
        hashes[count - 1 - i] = hashes[i] ^ np.uint64(sum(1 << int(f) for f in flips))
    start = time.perf_counter()
    fast = faiss_pairs(hashes, bits)
    faiss_s = time.perf_counter() - start
    start = time.perf_counter()
    slow = brute_force_pairs(hashes, bits)
    brute_s = time.perf_counter() - start
    assert fast == slow, "faiss and brute force disagree"
    print(f"near-dup search: {count} hashes, pairs within {bits} bits: {len(fast)} (equal results)")
    print(f"  faiss IndexBinaryFlat range search: {faiss_s:.2f}s")
    print(f"  numpy brute force (xor+popcount)  : {brute_s:.2f}s")
    print(f"  ratio brute / faiss: {brute_s / faiss_s:.1f}x")


def wait_for_quiet(below: float, limit_s: float) -> float:
    """Wait (up to ``limit_s``) until the 1-minute load average is under ``below``; returns it.
    A run's own load decays slowly (about 2 minutes from 10 to 1 on 2 cores), so without the
    wait the next run would start on a machine that looks busy, though nothing else runs."""
    deadline = time.monotonic() + limit_s
    while os.getloadavg()[0] >= below and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3,
                        help="alternating img2dataset / wit runs; best of each and the median ratio")
    parser.add_argument("--baseline-repo", type=Path, default=None,
                        help="another checkout (e.g. `git archive` of an older commit) whose "
                        "`wit shards` joins the alternation, to measure a change in the same run")
    parser.add_argument("--hashes", type=int, default=100_000, help="0 skips the hash benchmark")
    parser.add_argument("--mix", choices=("web", "jpegs"), default="web",
                        help="web: real JPEGs + distinct web-like photos and clip art (default); "
                        "jpegs: the real JPEGs alone")
    parser.add_argument("--quick", action="store_true",
                        help="600 rows, one round, no hash benchmark: checks that it all runs")
    parser.add_argument("--skip-download", action="store_true")
    parser.add_argument("--quiet-below", type=float, default=1.0,
                        help="before each run, wait until the 1-minute load average is below "
                        "this (default %(default)s; the load is recorded either way)")
    parser.add_argument("--quiet-wait", type=float, default=300,
                        help="wait at most this many seconds for it (default %(default)s)")
    parser.add_argument("--host-limits", choices=("above", "default", "off"), default="above",
                        help="`wit shards`'s per-host limits for the bench's one host: above "
                        "what the bench reaches (default: their cost when no host is over "
                        "them), the stage's defaults, or off")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat, args.hashes = 600, 1, 0
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    if args.skip_download:
        pass
    elif OPENCLIPART.is_dir():
        download_bench(args.rows, args.processes, args.threads, args.repeat, args.mix, args.baseline_repo,
                       quiet_below=args.quiet_below, quiet_wait=args.quiet_wait,
                       limits=args.host_limits)
    else:
        print(f"download: skipped, {OPENCLIPART} missing (apt-get install openclipart-png)")
    if args.hashes:
        hash_bench(args.hashes)


if __name__ == "__main__":
    main()
