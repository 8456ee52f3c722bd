"""The coders a Beam graph gives its PCollections, as the runner will see them."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
from apache_beam.coders import Coder
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners import pipeline_context

from pipeline.core.beam import NamedTupleCoder


def pcollection_coders(pipeline: beam.Pipeline) -> dict[str, Coder]:
    """{label of the producing transform (without the root's prefix): coder} of every
    primitive's output, from the pipeline's runner API form."""
    components = pipeline.to_runner_api().components
    context = pipeline_context.PipelineContext(components)
    coders = {}
    for transform in components.transforms.values():
        if transform.subtransforms:
            continue
        for pcoll in transform.outputs.values():
            coder_id = components.pcollections[pcoll].coder_id
            coders[transform.unique_name] = context.coders.get_by_id(coder_id)
    return coders


def named_tuples_in(coder: Coder) -> Iterator[type]:
    """The NamedTuple classes the coder or its components encode as plain tuples."""
    if isinstance(coder, NamedTupleCoder):
        yield coder.named
    for component in coder._get_component_coders():
        yield from named_tuples_in(component)


def accumulator_coder(pipeline: beam.Pipeline, label: str) -> Coder:
    """The accumulator coder of the combine transform ``label`` (its full name)."""
    components = pipeline.to_runner_api().components
    [transform] = [t for t in components.transforms.values() if t.unique_name == label]
    payload = beam_runner_api_pb2.CombinePayload.FromString(transform.spec.payload)
    return pipeline_context.PipelineContext(components).coders.get_by_id(
        payload.accumulator_coder_id)
