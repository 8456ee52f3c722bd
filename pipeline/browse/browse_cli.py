"""A local web app to look inside a `wit shards` output: search images by text, by an
uploaded image or "more like this" (needs `wit index`), facets over every candidate row
(kept or dropped, with the reason), a page per sample (image, texts, entries, near-duplicate
group, provenance), the dataset report as the landing page, and a JSON API
(GET /api/search?q=TEXT&k=N). Read-only; binds the loopback address by default.

  wit index --shards OUT/shards --checkpoint OUT/train/checkpoint.pt --out OUT/index
  wit browse OUT            # then open http://127.0.0.1:8000/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.core.cliargs import bounded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="OUT",
                        help="output root of the pipeline (holding shards/), or a shards folder")
    parser.add_argument("--index", metavar="DIR", default=None,
                        help="the `wit index` output for search (default: OUT/index when it "
                             "holds an index, else no search)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only; "
                             "another address serves the dataset to the network)")
    parser.add_argument("--port", type=bounded(int, 0, 65535), default=8000,
                        help="port (default: %(default)s; 0 picks a free one)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:N or auto for the text/image encoder (default: "
                             "%(default)s)")


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from werkzeug.serving import make_server

    from pipeline.browse.app import create_app, is_loopback
    from pipeline.browse.dataset import Dataset
    from pipeline.browse.search import Searcher

    dataset = Dataset(args.root)
    index = args.index or (str(Path(args.root) / "index")
                           if (Path(args.root) / "index" / "index.json").is_file() else None)
    searcher = Searcher(index, args.device) if index else None
    if not is_loopback(args.host):
        print(f"wit browse: warning: listening on {args.host}: anyone who can reach it can "
              "read the dataset", file=sys.stderr)
    server = make_server(args.host, args.port, create_app(dataset, searcher), threaded=True)
    host, port = args.host, server.server_port
    what = (f"{searcher.info['count']} indexed samples" if searcher
            else "no index (search off: run `wit index`)")
    print(f"wit browse: {len(dataset.shards)} shards of {dataset.folder}, {what}", flush=True)
    print(f"wit browse: serving http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
