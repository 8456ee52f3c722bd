"""`wit index` and its faiss indices: images/s of the embedding pass (JPEG read at its tar
offset, decode, centre crop, image + caption forward) on a shard written by `wit shards`'
writer, per model config; then, on a synthetic clustered set of unit vectors (the size at
which `wit index --kind auto` leaves exact search), build time, query time and recall@10
of each index kind against exact (flat) search.

  python bench/index_search.py --configs tiny,ViT-B-32 --images 128 --vectors 100000 --threads 2

Model weights are freshly initialised (speed does not depend on them). Prints the machine's
load average beside the numbers (timings on a shared machine move with it) and writes
--out/index_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clipscore import checkpoint_of, shard_jpegs  # noqa: E402  (bench/clipscore.py)


def embed_speed(configs: list[str], images: int, batch_size: int, device: str) -> list[dict]:
    from pipeline.browse.embed import IndexConfig, run_index
    from pipeline.shards.writer import write_shard

    jpegs, source = shard_jpegs(images)
    rows, stored = [], {}
    for i, data in enumerate(jpegs):
        key = f"{i:09d}"
        rows.append({"key": key, "uid": key, "url": f"https://x.org/{i}.jpg", "attempts": 1,
                     "caption": f"a picture of thing number {i}", "status": "success"})
        stored[key] = data
    results = []
    with tempfile.TemporaryDirectory() as folder:
        shards = Path(folder) / "shards"
        write_shard(str(shards), "00000", rows, stored)
        for config in configs:
            checkpoint = checkpoint_of(config, folder)
            out = Path(folder) / f"index-{config}"
            run_index(IndexConfig(str(shards), checkpoint, str(out), batch_size=batch_size,
                                  device=device))  # warm-up (first forward passes, page cache)
            import shutil
            shutil.rmtree(out)
            start, cpu = time.perf_counter(), time.process_time()
            info = run_index(IndexConfig(str(shards), checkpoint, str(out), batch_size=batch_size,
                                         device=device))
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            results.append({"config": config, "images": len(jpegs), "source": source,
                            "embed_images_per_s": info["embedding"]["images_per_second"],
                            "whole_run_s": round(wall, 2), "whole_run_cpu_s": round(cpu, 2),
                            "images_per_cpu_s_whole_run": round(len(jpegs) / cpu, 2),
                            "device": info["device"]})
            print(f"embed {config:>9}: {info['embedding']['images_per_second']:.1f} images/s "
                  f"({len(jpegs)} images, {info['device']}); whole `wit index` {wall:.1f} s wall, "
                  f"{cpu:.1f} CPU-s ({len(jpegs) / cpu:.1f} images per CPU-s)", flush=True)
    return results


def clustered(n: int, dim: int, seed: int, centres: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    middle = np.random.default_rng(12345).normal(size=(centres, dim)).astype(np.float32)
    x = middle[rng.integers(0, centres, n)] + 0.7 * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def index_speed(n: int, dim: int, queries: int, kinds: list[str]) -> list[dict]:
    from pipeline.browse.index_choice import (
        RERANK_FACTOR,
        build_index,
        choose_index,
        recall_at_k,
        rerank,
    )

    data, query = clustered(n, dim, 0), clustered(queries, dim, 1)
    results, exact = [], None
    for kind in ["flat", *[k for k in kinds if k != "flat"]]:
        spec = choose_index(n, dim, kind=kind)
        start = time.perf_counter()
        index = build_index(spec, dim, n, lambda: (data[i:i + 65536] for i in range(0, n, 65536)),
                            lambda size: data[np.linspace(0, n - 1, size).astype(int)])
        build = time.perf_counter() - start
        start = time.perf_counter()
        _, found = index.search(query, 10)
        per_query_ms = (time.perf_counter() - start) / queries * 1000
        if exact is None:
            exact = found
        recall = recall_at_k(exact, found, 10)
        reranked = None
        if kind == "ivfpq":  # as `wit browse` searches it: exact re-ranking of 10x candidates
            start = time.perf_counter()
            _, wide = index.search(query, 10 * RERANK_FACTOR)
            best = np.array([[i for i, _ in rerank(w, data, q, 10)] for w, q in zip(wide, query)])
            rerank_ms = (time.perf_counter() - start) / queries * 1000
            reranked = round(recall_at_k(exact, best, 10), 4)
            print(f"faiss {kind:>6} + exact re-rank of {10 * RERANK_FACTOR}: {rerank_ms:7.3f} ms/query, "
                  f"recall@10 {reranked:.4f}", flush=True)
        results.append({"recall_at_10_reranked": reranked,"kind": kind, "factory": spec.factory, "params": spec.params,
                        "vectors": n, "dim": dim, "build_s": round(build, 2),
                        "query_ms": round(per_query_ms, 3), "recall_at_10": round(recall, 4)})
        print(f"faiss {kind:>6} {spec.factory:>14}: build {build:7.2f} s, "
              f"{per_query_ms:7.3f} ms/query, recall@10 {recall:.4f}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="tiny,ViT-B-32")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--kinds", default="flat,hnsw,ivfpq", help="faiss kinds (flat always)")
    parser.add_argument("--out", default="/tmp/index-bench")
    args = parser.parse_args()

    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    os.environ.setdefault("WIT_PROGRESS", "0")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores, "
          f"{args.threads} threads", flush=True)
    report = {"load_average": load, "threads": args.threads,
              "embed": [] if args.skip_embed else embed_speed(args.configs.split(","), args.images,
                                                               args.batch_size, args.device),
              "faiss": index_speed(args.vectors, args.dim, args.queries, args.kinds.split(",")),
              "load_average_after": os.getloadavg()}
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*report["load_average_after"]))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "index_bench.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
