"""CPU cost of the per-host limits on the download path, in CPU seconds (not wall time: it
holds on a machine shared with other work).

A loopback server in a process of its own (127.0.0.2, every path one small JPEG, keep-alive)
and, in this process, one download shard of ``--rows`` rows of that one host through
:class:`pipeline.shards.download.GuardedDownloader` with a shared host table, run with the
limits ``above`` (on, but above what ``--threads`` threads reach: every request takes and
returns a lease, as ``bench/shards.py --host-limits above``) and ``off`` (0: no limits),
after a warm-up run of each, alternated ``--repeat`` times (the order rotating). Printed:
this process's CPU seconds (every thread) per run, the requests that waited for their
host's turn (none should: no host is over its limits), and with ``--profile`` the limiter's
CPU (cProfile of every download thread's CPU clock: the gate around each request and the
dispatcher's hints with all they call, the dispatcher's own loop). ``--gate``: the gate
alone, no network.

    python bench/host_limits_cpu.py --rows 3000 --repeat 3 [--profile]
    python bench/host_limits_cpu.py --gate --repeat 3      # the gate alone
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOST = "127.0.0.2"


def serve(port_out, image: bytes) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = image if self.path != "/robots.txt" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer((HOST, 0), Handler)
    httpd.daemon_threads = True
    port_out.put(httpd.server_address[1])
    httpd.serve_forever()


def small_jpeg() -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def shard_file(folder: Path, rows: int, port: int) -> str:
    import pyarrow as pa

    from pipeline.shards.reader import format_key

    table = pa.table({
        "key": [format_key(i) for i in range(rows)], "uid": [f"u{i}" for i in range(rows)],
        "page_url": [None] * rows, "source": ["bench"] * rows,
        "matched_entry_ids": [[] for _ in range(rows)],
        "texts": [[f"a photo of thing number {i}"] for i in range(rows)],
        "caption": [f"a photo of thing number {i}" for i in range(rows)],
        "url": [f"http://{HOST}:{port}/img/{i}.jpg" for i in range(rows)]},
        schema=pa.schema([("key", pa.string()), ("uid", pa.string()), ("page_url", pa.string()),
                          ("source", pa.string()), ("matched_entry_ids", pa.list_(pa.string())),
                          ("texts", pa.list_(pa.string())), ("caption", pa.string()),
                          ("url", pa.string())]))
    path = folder / "00000.arrow"
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, table.schema) as writer:
        writer.write_table(table)
    return str(path)


def run_once(limits: str, rows: int, port: int, threads: int, profile: bool) -> tuple[float, dict]:
    from pipeline.core.net import FetchConfig
    from pipeline.core.net.hosts import shared_table_path
    from pipeline.shards.download import DownloadConfig, GuardedDownloader, process_fetcher
    from pipeline.shards.filters import FilterConfig
    from pipeline.shards.imaging import ResizeConfig

    on = limits == "above"
    fetch = FetchConfig(allowed_networks=("127.0.0.0/29",),
                        # as bench/shards.py's `above` for 2 processes: 2 x --threads
                        max_connections_per_host=2 * threads if on else 0,
                        max_requests_per_second_per_host=1e6 if on else 0)
    config = DownloadConfig(fetch=fetch, thread_count=threads, resize=ResizeConfig(image_size=64),
                            filters=FilterConfig(preset="none", min_words=0, min_chars=0,
                                                 languages=(), min_side=0, max_aspect=None))
    table = shared_table_path()
    profiles: list[cProfile.Profile] = []
    local = threading.local()

    def start_profile(*_args: object) -> None:  # every thread that runs: its own profiler
        if not hasattr(local, "p"):
            local.p = cProfile.Profile(time.thread_time)  # CPU time of this thread
            profiles.append(local.p)
            local.p.enable()

    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            path = shard_file(folder, rows, port)
            downloader = GuardedDownloader(config, str(folder / "out"), table)
            process_fetcher.cache_clear()
            if profile:
                threading.setprofile(start_profile)
                start_profile()
            cpu = time.process_time()
            downloader.download_shard(0, path)
            cpu = time.process_time() - cpu
            hosts = json.loads((folder / "out" / "00000_stats.json").read_text())["network"]["hosts"]
            threading.setprofile(None)  # type: ignore[arg-type]
            for p in profiles:
                p.disable()
    finally:
        os.remove(table)
    shares: dict = {"waited": hosts["waited"], "wait_s": hosts["wait_seconds"]}
    if profile and profiles:
        shares = {}
        stats = pstats.Stats(profiles[0])
        for p in profiles[1:]:
            stats.add(p)
        # the limiter's CPU: the gate around each request and the dispatcher's hints with
        # everything they call (locks, fcntl, clocks), the dispatcher's own loop
        wanted = {"gate": "ct", "ready_in": "ct", "polite_map": "tt"}
        for (file, _, name), (_, _, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
            if "net/hosts.py" in file and name in wanted:
                shares[name] = shares.get(name, 0.0) + (ct if wanted[name] == "ct" else tt)
        shares = {"waited": hosts["waited"], "wait_s": hosts["wait_seconds"],
                  "limiter CPU s": round(sum(shares.values()), 3),
                  **{k: round(v, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}}
    return cpu, shares


def gate_only(requests: int, threads: int) -> tuple[float, dict]:
    """CPU µs per :meth:`HostLimiter.gate` of one host with the limits above (no network):
    ``requests`` gates from ``threads`` threads through a shared table."""
    from pipeline.core.net.hosts import HostLimiter, HostLimits, HostTable, shared_table_path

    limits = HostLimits(max_connections=64, max_rate=1e6)
    path = shared_table_path()
    limiter = HostLimiter(limits, HostTable(limits.max_connections, path))

    def work() -> None:
        for _ in range(requests // threads):
            with limiter.gate("http://one.test/a.jpg"):
                pass

    workers = [threading.Thread(target=work) for _ in range(threads)]
    cpu = time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    cpu = time.process_time() - cpu
    limiter.table.close()
    os.remove(path)
    return 1e6 * cpu / requests, limiter.counts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000, help="rows of the one download shard")
    parser.add_argument("--threads", type=int, default=32, help="download threads")
    parser.add_argument("--repeat", type=int, default=3, help="alternations of above / off")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile every thread: the time spent in hosts.py (slows the run)")
    parser.add_argument("--gate", action="store_true",
                        help="only the gate: 40,000 requests of one host from 4 threads, no "
                             "network (CPU us per request)")
    args = parser.parse_args()
    if args.gate:
        runs = [gate_only(40000, 4) for _ in range(args.repeat)]
        for us, counts in runs:
            print(f"gate: {us:.1f} CPU us per request, {counts['waited']} waited")
        print(f"median: {statistics.median(us for us, _ in runs):.1f} CPU us per request")
        return
    ports: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(ports, small_jpeg()), daemon=True)
    server.start()
    port = ports.get(timeout=30)
    try:
        cpu: dict[str, list[float]] = {"above": [], "off": []}
        for limits in ("above", "off"):  # warm-up (imports, the process-wide threads): not counted
            run_once(limits, min(args.rows, 200), port, args.threads, False)
        for n in range(args.repeat):
            for limits in (("above", "off") if n % 2 == 0 else ("off", "above")):
                seconds, shares = run_once(limits, args.rows, port, args.threads, args.profile)
                cpu[limits].append(seconds)
                print(f"{limits:5s}: {seconds:.2f} CPU s for {args.rows} rows "
                      f"({1e6 * seconds / args.rows:.0f} CPU us/row) {shares}", flush=True)
        above, off = statistics.median(cpu["above"]), statistics.median(cpu["off"])
        print(f"median: above {above:.2f} CPU s, off {off:.2f} CPU s: "
              f"limits cost {100 * (above - off) / off:+.1f} % CPU, "
              f"{1e6 * (above - off) / args.rows:+.0f} CPU us/row")
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
