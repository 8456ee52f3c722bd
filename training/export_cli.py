"""Export a checkpoint of `wit train` for other tools.

  wit export --checkpoint OUT/train/checkpoint.pt --format hf --out OUT/clip-hf

--format hf writes a Hugging Face transformers CLIPModel folder (config.json,
model.safetensors, tokenizer, preprocessor_config.json) that
transformers.CLIPModel.from_pretrained(DIR), AutoTokenizer.from_pretrained(DIR) and
CLIPProcessor.from_pretrained(DIR, backend="pil") load, with the same embeddings as `wit eval`
(needs transformers >= 5.21: the `hf` extra, `pip install 'webimagetext[hf]'`).
"""

from __future__ import annotations

import argparse

from pipeline.core.options import add_options, from_args
from training.export_job import ExportOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # every option, its type, default and help: ExportOptions' fields
    add_options(parser, ExportOptions)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from training import export_job

    export_job.run(from_args(ExportOptions, args))
    return 0
