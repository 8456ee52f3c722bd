"""``wit``: the command line of webimagetext. Each subcommand lives in its stage's package
and exposes ``add_arguments(parser)`` and ``run(args, beam_args) -> int``; this module only
dispatches, importing nothing heavy until a subcommand is chosen.

Standard Beam pipeline options go after ``--``:
``wit queries --wiki dump.xml.bz2 --out out -- --runner=DataflowRunner --project=...``
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import NoReturn

from pipeline.core.errors import UsageError, user_message
from pipeline.core.offline import stay_offline

# subcommand -> (module, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "queries": ("queries.cli", "build the query list (metadata) from Wikipedia and WordNet"),
    "crawl": ("pipeline.crawl.cli", "extract, match and balance image-text candidates"),
    "shards": ("pipeline.shards.cli", "download, filter, dedup and write WebDataset shards"),
    "takedown": ("pipeline.takedown.cli", "remove listed samples from existing shards"),
    "train": ("training.train_cli", "train a CLIP model on WebDataset shards"),
    "eval": ("training.eval_cli", "zero-shot, linear-probe and retrieval evaluation"),
    "export": ("training.export_cli", "export a checkpoint as a transformers CLIPModel"),
    "index": ("pipeline.browse.index_cli", "embed and index the shards for search (faiss)"),
    "browse": ("pipeline.browse.browse_cli", "a local web app to search and inspect the shards"),
    "demo": ("pipeline.demo.cli", "run the whole system end to end on embedded inputs"),
}

BEAM_EPILOG = (
    "Standard Beam pipeline options go after '--', e.g. '-- --runner=DataflowRunner "
    "--project=P --region=R --temp_location=gs://B/tmp'. The default runner is Beam's "
    "in-process runner; '--direct_running_mode=multi_processing --direct_num_workers=N' "
    "uses N local processes."
)


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors (a bad option value, a missing option) as one line, like every other
    error of ``wit``, instead of the whole usage text: ``--help`` shows that."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wit",
        description="webimagetext: build CLIP-scale image-text datasets from the web "
        "and train CLIP models on them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n"
        + "\n".join(f"  {name:<9}{desc}" for name, (_, desc) in COMMANDS.items())
        + "\n\nRun 'wit COMMAND --help' for the options of a command.",
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND",
                        help="the stage to run (see below)")
    return parser


class _DropImportNoise(logging.Filter):
    """Beam logs a root-level warning about optional GCP clients on import; not actionable."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    """An argparse type: a logging level name, any case. argparse applies it to the default
    too, so a bad ``WIT_LOG_LEVEL`` is a usage error like a bad ``--log-level``."""
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a logging level (choose {', '.join(LOG_LEVELS)}; the default comes "
            "from WIT_LOG_LEVEL)")
    return level


def _split_beam_args(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    stay_offline()  # first: no library may phone home, here or in spawned workers
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _top_parser()
        if not argv or argv[0] in ("-h", "--help"):
            parser.print_help()
            return 0 if argv else 2
        parser.parse_args(argv[:1])  # prints "invalid choice" and exits 2
        return 2
    logging.getLogger().addFilter(_DropImportNoise())
    command, rest = argv[0], argv[1:]
    module_name, description = COMMANDS[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"wit {command}: not available yet in this version", file=sys.stderr)
            return 2
        raise
    parser = _OneLineParser(
        prog=f"wit {command}", description=(module.__doc__ or description).strip(),
        epilog=BEAM_EPILOG if getattr(module, "USES_BEAM", False) else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", type=_log_level,
                        default=os.environ.get("WIT_LOG_LEVEL", "WARNING"),
                        help="Python logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL "
                             "(default: %(default)s; env WIT_LOG_LEVEL)")
    module.add_arguments(parser)
    own, beam_args = _split_beam_args(rest)
    args = parser.parse_args(own)
    level = args.log_level
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":
        # Beam logs each worker exception with its traceback before re-raising it; the
        # CLI reports it once below (one line for user errors, the traceback otherwise).
        for name in ("apache_beam.runners.common", "apache_beam.runners.worker"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return int(module.run(args, beam_args) or 0)
    except KeyboardInterrupt:
        print(f"wit {command}: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:  # options that do not go together, a bad setting: as argparse's errors
        parser.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - the CLI boundary turns errors into one line
        message = user_message(exc)
        if message is None:
            raise
        print(f"wit {command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
