"""The demo's chain: prerequisites -> inputs -> mini-web -> queries -> crawl -> shards ->
train -> eval -> report, each stage called through its public ``wit`` entry point."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pipeline.core.cliargs import bounded, output_dir, positive_int
from pipeline.core.errors import InputError, WitError
from pipeline.core.options import option
from pipeline.core.progress import Progress
from pipeline.demo import heldout, miniweb, report, summary
from pipeline.demo.inputs import wikipedia_sample

# Thresholds for the 106-article sample (the CLI defaults are for a full Wikipedia).
SAMPLE_QUERY_ARGS = ["--min-count", "20", "--min-pmi", "12", "--min-bigram-count", "5",
                     "--min-inlinks", "3"]
# Thousands of clip-art images instead of billions of web images: balance at t=300 instead of
# 20,000; clip art is small (median shorter side ~170 px) and captions can be one keyword.
SAMPLE_CRAWL_ARGS = ["--t", "300", "--delay", "0", "--concurrency", "4", "--max-depth", "2"]
# no per-host limits against our own loopback mini-web (one host, 7,678 images)
SAMPLE_SHARDS_ARGS = ["--min-side", "32", "--min-bytes", "500", "--min-words", "1",
                      "--min-chars", "3", "--image-size", "128", "--samples-per-shard", "1000",
                      "--download-shard-size", "1000", "--threads", "16", "--processes", "2",
                      "--max-connections-per-host", "0", "--max-requests-per-second-per-host",
                      "0"]
APT_HINT = "apt-get install openclipart-png openclipart-svg wordnet-base wordnet-sense-index"


@dataclass
class DemoConfig:
    """The demo's settings; the fields declared with ``option`` are ``wit demo``'s command
    line, defaults included. Paths may be given as strings."""

    # a string default, so that the command line checks it like a given --out
    out: Path = option("out", metavar="DIR", type=output_dir, help="output root")
    cache: Path | None = option(None, metavar="DIR",
                                help="where prepared inputs are kept between runs "
                                     "(default: $WIT_CACHE or ~/.cache/webimagetext/demo)")
    wiki: str | None = option(None, metavar="DUMP",
                              help="use this dump instead of the gensim sample")
    images: int = option(8000, type=positive_int,
                         help="OpenClipart images on the mini-web, at most all ~7,700 not held "
                              "out")
    heldout_per_class: int = option(30, type=positive_int,
                                    help="held-out images per evaluation class")
    steps: int = option(2000, type=positive_int, help="training steps of the tiny CLIP")
    batch_size: int = option(64, type=positive_int, help="training batch size")
    # a fixed port keeps the URLs, hence uids, balancing draws and shards, the same every run
    port: int = option(18765, type=bounded(int, 0, 65535),
                       help="port of the mini-web on 127.0.0.1; fixed so that reruns give the "
                            "same shards, 0 = any free port")
    openclipart: Path = option(miniweb.OPENCLIPART, metavar="DIR",
                               help="OpenClipart root with png/ and svg/")
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the command line gives strings (an empty --cache: the default); the chain joins paths
        self.out = Path(self.out)
        self.cache = Path(self.cache) if self.cache else None
        self.openclipart = Path(self.openclipart)


def check_prerequisites(config: DemoConfig) -> None:
    """Everything the demo needs, checked before any stage runs; one error lists it all."""
    from queries.wordnet import locate

    problems = []
    for sub, package in (("png", "openclipart-png"), ("svg", "openclipart-svg")):
        if not (config.openclipart / sub).is_dir():
            problems.append(f"{config.openclipart / sub} is missing (Debian package {package})")
    if not miniweb.port_free(config.port):
        problems.append(f"127.0.0.1:{config.port} is in use (pass --port N; 0 = any free port,"
                        " then URLs and so the shards differ between runs)")
    try:
        locate()
    except InputError as exc:
        problems.append(str(exc))
    if problems:
        who = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
        raise WitError("missing prerequisites, nothing was run: " + "; ".join(problems)
                       + f". Install them with: {who}{APT_HINT}"
                       " (WordNet alternatively: python -m nltk.downloader wordnet)")


def _stage(config: DemoConfig, name: str, detail: str, work: Callable[[], int | None]) -> None:
    print(f"== {name}: {detail}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    code = work()
    config.timings[name] = time.perf_counter() - start
    if code:
        raise WitError(f"stage {name} failed (exit {code}); outputs so far under "
                       f"{config.out}")


def run_demo(config: DemoConfig, beam_args: list[str], stdout: TextIO) -> int:
    from pipeline.cli import main as wit

    check_prerequisites(config)
    out, demo = config.out, config.out / "demo"
    # `wit train` refuses to overwrite a checkpoint and `wit shards` to resume downloads of
    # other candidates (other settings, or other URLs with --port 0). A previous demo's
    # downloads and training run in this OUT are dropped; when OUT was not made by the demo
    # nothing is deleted (and the stage says what is in the way).
    marker = demo / "MADE_BY_WIT_DEMO"
    if marker.is_file():
        for stale in (out / "shards" / "_work", out / "train"):
            if stale.is_dir():
                shutil.rmtree(stale)
    demo.mkdir(parents=True, exist_ok=True)
    marker.write_text("OUT was written by `wit demo`; a rerun replaces OUT/shards/_work and OUT/train\n")
    from queries.wordnet import cache_dir
    cache = config.cache or cache_dir() / "demo"
    wiki: list[str] = []

    def inputs() -> None:
        wiki.append(config.wiki or str(wikipedia_sample(cache)))
        print(f"   wiki: {wiki[0]}", file=sys.stderr)

    _stage(config, "inputs", "Wikipedia sample (gensim wheel), WordNet", inputs)

    site = demo / "site"
    pages: list[int] = []

    def build_web() -> None:
        progress = Progress("reading OpenClipart SVG metadata", unit="images")
        items = []
        for item in miniweb.clip_arts(config.openclipart):
            items.append(item)
            progress.update()
        progress.close()
        parts = heldout.split(items, config.images, config.heldout_per_class)
        if site.exists():
            shutil.rmtree(site)
        if (demo / "heldout").exists():
            shutil.rmtree(demo / "heldout")
        pages.append(miniweb.write_site(parts.web, site))
        counts = heldout.write_heldout(parts.heldout, demo / "heldout", config.openclipart)
        print(f"   {len(parts.web)} images on {pages[0]} pages; held out "
              f"{len(parts.heldout)} in {len(counts)} classes: "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)

    _stage(config, "mini-web", f"{config.images} OpenClipart images -> HTML pages", build_web)
    _stage(config, "queries", "thresholds for the sample: " + " ".join(SAMPLE_QUERY_ARGS),
           lambda: wit(["queries", "--wiki", wiki[0], "--out", str(out), *SAMPLE_QUERY_ARGS,
                        "--", *beam_args]))
    with miniweb.MiniWeb(site, config.openclipart / "png", config.port) as web:
        print(f"   mini-web served at {web.url} (stopped after the shards stage)",
              file=sys.stderr)
        crawl_args = [*SAMPLE_CRAWL_ARGS, "--max-pages", str(pages[0] + 10)]
        _stage(config, "crawl", f"--seeds {web.url} --allow-network 127.0.0.1/32 "
               + " ".join(crawl_args),
               lambda: wit(["crawl", "--seeds", web.url, "--allow-network", "127.0.0.1/32",
                            "--metadata", str(out / "queries" / "metadata.json"),
                            "--out", str(out), *crawl_args, "--", *beam_args]))
        _stage(config, "shards", "--allow-network 127.0.0.1/32 --eval-images <held-out> "
               + " ".join(SAMPLE_SHARDS_ARGS),
               lambda: wit(["shards", "--candidates", str(out / "candidates"), "--out",
                            str(out), "--allow-network", "127.0.0.1/32", "--eval-images",
                            str(demo / "heldout" / "zeroshot"), *SAMPLE_SHARDS_ARGS,
                            "--", *beam_args]))
    train_args = ["--config", "tiny", "--steps", str(config.steps), "--batch-size",
                  str(config.batch_size), "--log-every", "10", "--workers", "1"]
    _stage(config, "train", " ".join(train_args),
           lambda: wit(["train", "--shards", str(out / "shards"), "--out", str(out / "train"),
                        *train_args]))
    _stage(config, "eval", "zero-shot on the held-out classes, retrieval on held-out pairs",
           lambda: wit(["eval", "--checkpoint", str(out / "train" / "checkpoint.pt"),
                        "--zeroshot", str(demo / "heldout" / "zeroshot"),
                        "--retrieval", str(demo / "heldout" / "retrieval"),
                        "--out", str(out / "eval")]))
    facts = summary.collect(out, config.timings)
    _stage(config, "report", str(demo / "report.html"),
           lambda: report.write_report(out, demo / "report.html", facts))
    print(summary.table(facts), file=stdout, flush=True)
    return 0
