"""Benchmark: `wit shards` beside img2dataset alone, and faiss beside brute-force Hamming.

1. Download throughput. A loopback server (its own process, 127.0.0.2) serves real images
   (Debian openclipart-png, converted to JPEG, 300-900 px). The same candidates Parquet
   (ROWS rows, unique URLs) goes to
     img2dataset - img2dataset.download(), webdataset output, keep_ratio 256, same processes
                   and threads
     wit shards  - the whole stage: guarded download (robots.txt, SSRF guard, header pixel
                   bound, pHash) + the Beam job (filters, dedup, resharding) + report
   and we print images/s of each, the ratio, images/s per core, and the download phase of
   `wit shards` alone (from its per-shard _stats.json times).
2. Near-duplicate search: all pairs within 10 bits among N 64-bit hashes (random, with planted
   near copies): faiss IndexBinaryFlat range search vs numpy brute force (xor + popcount),
   the same pairs, time ratio.

Usage: python bench/shards.py [--rows 3000] [--processes 2] [--threads 32] [--hashes 100000]
       [--skip-download]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
OPENCLIPART = Path("/usr/share/openclipart/png")
HOST = "127.0.0.2"


def real_jpegs(count: int) -> list[bytes]:
    from PIL import Image

    found = []
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


def serve(images: list[bytes], queue) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/robots.txt":
                body, kind = b"User-agent: *\nAllow: /\n", "text/plain"
            else:
                body, kind = images[int(path.rsplit("/", 1)[-1].split(".")[0]) % len(images)], "image/jpeg"
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


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children); prints its phase logs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    for line in done.stderr.splitlines():
        if line.startswith("INFO pipeline.shards.job"):
            print("    phase:", line.split(": ", 1)[1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


IMG2DATASET = """
import sys
from img2dataset import download
if __name__ == "__main__":
    download(url_list=sys.argv[1], output_folder=sys.argv[2], input_format="parquet",
             url_col="url", caption_col="text", output_format="webdataset", image_size=256,
             resize_mode="keep_ratio", processes_count=int(sys.argv[3]),
             thread_count=int(sys.argv[4]), number_sample_per_shard=1000, timeout=10)
"""


def download_bench(rows: int, processes: int, threads: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from schemas.candidates import CANDIDATES

    images = real_jpegs(300)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    server = context.Process(target=serve, args=(images, queue), daemon=True)
    server.start()
    port = queue.get(timeout=60)
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WIT_PROGRESS="0")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "candidates"
            folder.mkdir()
            table = pa.Table.from_pylist([{
                "uid": f"u{i}", "url": f"http://{HOST}:{port}/img/{i}.jpg", "text": f"clip art number {i}",
                "page_url": None, "source": "urls", "matched_entry_ids": [i % 50]} for i in range(rows)],
                schema=CANDIDATES)
            pq.write_table(table, folder / "part-00000.parquet")
            script = Path(tmp) / "i2d.py"
            script.write_text(IMG2DATASET)
            i2d_wall, i2d_cpu = timed([sys.executable, str(script), str(folder / "part-00000.parquet"),
                                       str(Path(tmp) / "i2d"), str(processes), str(threads)], env)
            i2d_ok = sum(json.loads(p.read_text())["successes"] for p in (Path(tmp) / "i2d").glob("*_stats.json"))
            wit_wall, wit_cpu = timed([sys.executable, "-m", "pipeline.cli", "shards", "--candidates", str(folder),
                                       "--out", str(Path(tmp) / "wit"), "--allow-network", f"{HOST}/32",
                                       "--processes", str(processes), "--threads", str(threads),
                                       "--download-shard-size", "1000", "--min-side", "0",
                                       "--min-bytes", "0", "--near-dup-bits", "0", "--log-level", "INFO"], env)
            manifest = json.loads((Path(tmp) / "wit" / "shards" / "manifest.json").read_text())
            wit_ok = manifest["counts"]["downloaded"]
            stats = [json.loads(p.read_text()) for p in (Path(tmp) / "wit" / "shards" / "_work" / "round0").glob("*_stats.json")]
            download_wall = max(s["end_time"] for s in stats) - min(s["start_time"] for s in stats)
    finally:
        server.terminate()
    i2d_rate, wit_rate = i2d_ok / i2d_wall, wit_ok / wit_wall
    print(f"download: {rows} rows, {len(images)} distinct real JPEGs, {processes} processes x {threads} threads")
    print(f"  img2dataset alone : {i2d_ok} ok in {i2d_wall:.1f}s wall ({i2d_cpu:.1f} CPU s) = "
          f"{i2d_rate:.1f} images/s, {i2d_rate / processes:.1f}/s per core")
    print(f"  wit shards (all)  : {wit_ok} ok in {wit_wall:.1f}s wall ({wit_cpu:.1f} CPU s) = "
          f"{wit_rate:.1f} images/s, {wit_rate / processes:.1f}/s per core")
    print(f"  wit download phase: {download_wall:.1f}s = {wit_ok / download_wall:.1f} images/s "
          f"(ratio to img2dataset alone, download only: {(wit_ok / download_wall) / i2d_rate:.2f}x)")
    print(f"  ratio wit shards / img2dataset (whole stage): {wit_rate / i2d_rate:.2f}x")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--hashes", type=int, default=100_000, help="0 skips the hash benchmark")
    parser.add_argument("--skip-download", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    if args.skip_download:
        pass
    elif OPENCLIPART.is_dir():
        download_bench(args.rows, args.processes, args.threads)
    else:
        print(f"download: skipped, {OPENCLIPART} missing (apt-get install openclipart-png)")
    if args.hashes:
        hash_bench(args.hashes)


if __name__ == "__main__":
    main()
