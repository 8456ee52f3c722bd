"""The CLIP-score filter's settings and ``wit shards`` options, apart from
:mod:`pipeline.shards.clipscore` so that parsing the command line imports neither Beam nor
torch."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.cliargs import bounded, positive_int
from pipeline.core.options import option
from pipeline.shards.option_groups import CLIP


@dataclass(frozen=True)
class ClipFilterConfig:
    # "" (the command line without --clip-filter): no CLIP filter, the job gets clip=None
    checkpoint: str = option(
        "", flag="--clip-filter", metavar="CHECKPOINT", group=CLIP,
        help="checkpoint of `wit train`: store each sample's image-caption cosine similarity "
             "as clip_score (Parquet and .json) and filter with the options below "
             "(default: off)")
    min_score: float | None = option(
        None, flag="--min-clip-score", type=bounded(float, -1, 1), metavar="S", group=CLIP,
        help="drop samples whose clip_score < S, as filtered:clip_score (default: none)")
    top_fraction: float | None = option(
        None, flag="--clip-top-fraction", type=bounded(float, 0, 1, low_open=True),
        metavar="F", group=CLIP,
        help="keep only the best fraction F by clip_score of the samples left after the basic "
             "filters and decontamination (ties kept) (default: all)")
    batch_size: int = option(64, flag="--clip-batch-size", type=positive_int,
                             metavar="CLIP_BATCH_SIZE", group=CLIP,
                             help="images per forward pass")
    device: str = option("cpu", flag="--clip-device", metavar="CLIP_DEVICE", group=CLIP,
                         help="cpu, cuda, cuda:N or auto for the scoring model")
