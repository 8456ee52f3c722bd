"""`wit export`'s job: load a checkpoint of `wit train`, write it in another format and
print the summary.

Torch, transformers and the model code are imported inside ``run``: the CLI reads this
module's ``ExportOptions`` (its options) without paying for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.cliargs import output_dir
from pipeline.core.jobs import print_summary
from pipeline.core.options import option


@dataclass(frozen=True)
class ExportOptions:
    """Everything `wit export` does; every field is one of its options."""

    checkpoint: str = option(required=True, help="checkpoint.pt written by `wit train`")
    format: str = option("hf", choices=("hf",),
                         help="hf: a transformers CLIPModel folder (default: %(default)s)")
    out: str = option(required=True, type=output_dir,
                      help="output folder (must not exist; local path)")


def run(opts: ExportOptions) -> str:
    """Export ``opts.checkpoint`` to ``opts.out`` (a transformers CLIPModel folder), print
    the summary and return the folder."""
    from pipeline.core.errors import InputError
    from training.clip.checkpoint import load_model

    try:
        import transformers

        from training.export_hf import check_transformers_version, export_hf
    except ImportError as exc:
        raise InputError(f"--format hf needs transformers: pip install 'webimagetext[hf]' ({exc})") from exc
    check_transformers_version(transformers.__version__)
    if "://" in opts.out:
        raise InputError(f"--out {opts.out}: export writes a local folder")
    model, tokenizer = load_model(opts.checkpoint)
    export_hf(model, tokenizer, opts.out)
    print_summary(f"wit export: transformers CLIPModel -> {opts.out}")
    return opts.out
