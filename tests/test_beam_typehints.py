"""Every Beam job's graph passes Beam's pipeline type check on the installed Beam.

Beam checks the declared element types of every step when the graph is built (the
``pipeline_type_check`` option, on by default): a hint that disagrees with what a step
before it declares stops the job before it reads anything. Beam 2.78 changed the hint of
what (Co)GroupByKey produces from ``List`` to ``Iterable`` and broke a hint here that was
only true on older versions; this test builds the full graph of every job (queries, crawl,
shards) with the check on, so `make test-latest` and `make test-oldest` catch such a change
without running a pipeline. Graphs are built, never run: the gs:// paths are never read.
"""

from __future__ import annotations

import logging

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, TypeOptions
from helpers.jobs import every_job

JOBS = every_job("gs://wit-type-check")


@pytest.mark.parametrize("job", sorted(JOBS))
def test_every_job_graph_passes_the_pipeline_type_check(job, caplog):
    options = PipelineOptions(["--pipeline_type_check", "--type_check_additional=all"])
    assert options.view_as(TypeOptions).pipeline_type_check
    pipeline = beam.Pipeline(options=options)
    with caplog.at_level(logging.WARNING):
        JOBS[job](pipeline)  # raises TypeCheckError where two steps' hints disagree
    # a hint Beam cannot use is a warning on the user's stderr (2.78: a tuple of PCollections
    # as a composite's return annotation)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    steps = [t.full_label for t in pipeline.transforms_stack[0].parts]
    assert steps and all(label.startswith(("BuildQueries", "LanguageQueries", "Crawl",
                                           "BuildShards")) for label in steps)


def test_the_check_is_on_and_refuses_a_hint_that_disagrees():
    """The control: with the same options, a step declared to take a single value where
    GroupByKey produces an iterable of them is refused while the graph is built; the
    iterable hint the jobs use is accepted. (Hints are declared with ``with_input_types``:
    Beam before 2.78 ignores a function's string annotations, which ``from __future__
    import annotations`` makes of every hint in this project, 2.78 resolves them.)"""
    from collections.abc import Iterable

    pipeline = beam.Pipeline(options=PipelineOptions(["--pipeline_type_check"]))
    grouped = (pipeline | beam.Create([("a", 1)]).with_output_types(tuple[str, int])
               | beam.GroupByKey())
    grouped | "Iterable" >> beam.Map(lambda kv: sum(kv[1])).with_input_types(
        tuple[str, Iterable[int]])
    with pytest.raises(beam.typehints.decorators.TypeCheckError):
        grouped | "Single" >> beam.Map(lambda kv: kv[1]).with_input_types(tuple[str, int])
