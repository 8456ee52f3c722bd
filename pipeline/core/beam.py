"""Beam runner selection shared by every Beam stage.

``DirectRunner`` (the default) is mapped to Beam's in-process FnApiRunner explicitly: the
stock DirectRunner of recent Beam first tries to download a Prism binary, which is slow and
fails offline. ``--direct_running_mode`` / ``--direct_num_workers`` keep working because the
FnApiRunner reads them. Any other ``--runner`` (Dataflow, Flink, Spark, Portable) is passed
through untouched.

Per-worker state, the one idiom of every stage: a DoFn builds what is heavy (a model, an
automaton, an index) in ``DoFn.setup`` -- never in ``__init__``, which runs on the launcher --
from what travels in the DoFn itself (its config, paths, a small list such as the eval
hashes), and acquires it through an ``apache_beam.utils.shared.Shared`` handle so every
DoFn instance and thread of a worker process holding the handle shares one copy
(``pipeline.shards.clipscore.ReadAndScore``, ``pipeline.shards.transform.Decontaminate``, the
crawl's matcher). Values computed by the pipeline reach a DoFn as side inputs already in the
shape it needs (``KeptRanks``), so no DoFn caches on a side input. Outside Beam (the
download process pool) the same role is a ``functools.cache``'d builder keyed by a frozen
config, called lazily in the worker (``pipeline.shards.download.process_fetcher``).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

LOCAL_RUNNERS = {"directrunner", "direct", "fnapirunner", "inprocess"}


def runner_name(options: PipelineOptions) -> str:
    return options.view_as(StandardOptions).runner or "DirectRunner"


def is_local(options: PipelineOptions) -> bool:
    return runner_name(options).lower() in LOCAL_RUNNERS


def in_process_runner(options: PipelineOptions):
    """The FnApiRunner configured the way DirectRunner would configure it."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    return fn_runner.FnApiRunner(provision_info=info)


def make_pipeline(beam_args: list[str] | None) -> beam.Pipeline:
    """A Pipeline for ``beam_args`` (standard Beam options, e.g. ``--runner=FlinkRunner``)."""
    options = PipelineOptions(list(beam_args or []))
    if is_local(options):
        options.view_as(StandardOptions).runner = None
        return beam.Pipeline(runner=in_process_runner(options), options=options)
    return beam.Pipeline(options=options)
