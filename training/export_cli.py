"""Export a checkpoint of `wit train` for other tools.

  wit export --checkpoint OUT/train/checkpoint.pt --format hf --out OUT/clip-hf

--format hf writes a Hugging Face transformers CLIPModel folder (config.json,
model.safetensors, tokenizer, preprocessor_config.json) that
transformers.CLIPModel.from_pretrained(DIR) and AutoTokenizer.from_pretrained(DIR) load, with
the same embeddings as `wit eval` (needs `pip install transformers`, the `hf` extra).
"""

from __future__ import annotations

import argparse

from pipeline.core.cliargs import output_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--checkpoint", required=True, help="checkpoint.pt written by `wit train`")
    a("--format", default="hf", choices=["hf"],
      help="hf: a transformers CLIPModel folder (default: %(default)s)")
    a("--out", required=True, type=output_dir, help="output folder (must not exist; local path)")


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.core.errors import InputError
    from training.clip.checkpoint import load_model

    try:
        import transformers  # noqa: F401

        from training.export_hf import export_hf
    except ImportError as exc:
        raise InputError(f"--format hf needs transformers: pip install 'webimagetext[hf]' ({exc})") from exc
    if "://" in args.out:
        raise InputError(f"--out {args.out}: export writes a local folder")
    model, tokenizer = load_model(args.checkpoint)
    export_hf(model, tokenizer, args.out)
    print(f"wit export: transformers CLIPModel -> {args.out}")
    return 0
