"""Embed every kept sample of `wit shards`' output with a CLIP checkpoint and index it for
`wit browse`: image and caption embeddings (batched, CPU or GPU, resumable after a kill),
a faiss index of the image embeddings chosen by size (exact flat, HNSW or IVF-PQ; the
choice and its parameters printed and written to index.json) and mapping.parquet (index id
-> shard, key, url, caption, texts, status, entries, CLIP score, the image's tar offset).

  wit index --shards OUT/shards --checkpoint OUT/train/checkpoint.pt --out OUT/index
"""

from __future__ import annotations

import argparse
import json

from pipeline.core.options import add_options, from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pipeline.browse.embed import IndexConfig

    add_options(parser, IndexConfig)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.browse.embed import IndexConfig, run_index

    config = from_args(IndexConfig, args)
    info = run_index(config)
    emb = info["embedding"]
    print(f"wit index: {info['count']} samples indexed from {len(info['shards'])} shards "
          f"({emb['embedded_this_run']} embedded in this run, {emb['skipped']} skipped) "
          f"on {info['device']}: {emb['images_per_second'] or '-'} images/s")
    print(f"wit index: faiss {info['kind']} ({info['params']['factory']}), parameters "
          f"{json.dumps(info['params'])}, built in {info['build_seconds']:.2f}s, dim {info['dim']}")
    print(f"wit index: wrote {config.out}/index.json, image.faiss, image.npy, text.npy, "
          "mapping.parquet")
    return 0
