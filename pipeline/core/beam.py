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

Elements: a stage's NamedTuples are registered with :func:`register_tuple_coder`, so Beam
encodes them as plain tuples. Beam picks a registered coder only where it knows a
PCollection's element type: declare it with ``with_output_types`` on the producing transform
(``tuple[K, V]`` for a keyed one; string annotations are not read). :class:`MinOf` is ``min``
as a combiner that keeps the type (``CombinePerKey(min)`` types its output Any and pickles
its accumulators).
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.coders import Coder, FastPrimitivesCoder, NullableCoder, registry
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


# -- NamedTuple elements encoded as plain tuples --------------------------------------------
# Beam's default coder encodes plain tuples, lists, dicts, str, bytes, numbers and None itself
# and pickles anything else: a NamedTuple, with its class name, about 3-6x slower and with
# more bytes than the plain tuple of its fields.

_PLAIN = FastPrimitivesCoder()
_PRIMITIVES = (int, float, str, bytes, bool, type(None))
Convert = Callable[[Any], Any]


def _is_named_tuple(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields")


def _optional_of(hint: Any) -> Any:
    """X of ``X | None`` (or ``Optional[X]``), else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0]
    return None


@functools.cache
def _converters(hint: Any) -> tuple[Convert, Convert] | None:
    """(to plain, from plain) for values of type ``hint``; None when the value is plain as it
    is. Follows NamedTuples, ``X | None``, ``tuple[...]`` and ``list[X]``; any other type
    (dicts, Any) goes as it is."""
    if _is_named_tuple(hint):
        fields = [_converters(t) for t in typing.get_type_hints(hint).values()]
        return _per_item(fields, hint._make) if any(fields) else (tuple, hint._make)
    inner = _optional_of(hint)
    if inner is not None:
        optional = _converters(inner)
        if optional is None:
            return None
        to_plain, from_plain = optional
        return (lambda v: None if v is None else to_plain(v),
                lambda v: None if v is None else from_plain(v))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        each = _converters(args[0])
        if each is None:
            return None
        to_each, from_each = each
        return (lambda v: origin(to_each(x) for x in v),
                lambda v: origin(from_each(x) for x in v))
    if origin is tuple:
        items = [_converters(t) for t in args]
        return _per_item(items, tuple) if any(items) else None
    return None


def _per_item(items: list[tuple[Convert, Convert] | None],
              build: Callable[[Any], Any]) -> tuple[Convert, Convert]:
    """Converters of a fixed-length tuple whose i-th item converts with ``items[i]`` (None:
    as it is); ``build`` makes the decoded value (``tuple`` or a NamedTuple's ``_make``)."""
    return (lambda v: tuple(x if c is None else c[0](x) for c, x in zip(items, v)),
            lambda v: build(x if c is None else c[1](x) for c, x in zip(items, v)))


def _deterministic(hint: Any) -> bool:
    """Whether equal values of type ``hint`` always encode to the same bytes (no dicts)."""
    if hint in _PRIMITIVES:
        return True
    if _is_named_tuple(hint):
        return all(_deterministic(t) for t in typing.get_type_hints(hint).values())
    inner = _optional_of(hint)
    if inner is not None:
        return _deterministic(inner)
    if typing.get_origin(hint) in (list, tuple):
        return all(a is Ellipsis or _deterministic(a) for a in typing.get_args(hint))
    return False


class NamedTupleCoder(Coder):
    """A NamedTuple class's values as the plain tuples of their fields (nested NamedTuples
    too, found from the field annotations), with Beam's fast coder; decoded as the class."""

    def __init__(self, named: type):
        self.named = named
        converters = _converters(named)
        assert converters is not None, f"{named} is not a NamedTuple"
        self._to_plain, self._from_plain = converters

    @classmethod
    def from_type_hint(cls, typehint: Any, unused_registry: Any) -> Any:
        return cls(typehint)

    def encode(self, value: Any) -> bytes:
        return _PLAIN.encode(self._to_plain(value))

    def decode(self, encoded: bytes) -> Any:
        return self._from_plain(_PLAIN.decode(encoded))

    def is_deterministic(self) -> bool:
        return _deterministic(self.named)

    def to_type_hint(self) -> Any:
        return self.named

    def __reduce__(self) -> tuple[Any, ...]:
        return NamedTupleCoder, (self.named,)

    def __eq__(self, other: object) -> bool:
        return type(other) is NamedTupleCoder and other.named is self.named

    def __hash__(self) -> int:
        return hash(self.named)

    def __repr__(self) -> str:
        return f"NamedTupleCoder[{self.named.__name__}]"


def register_tuple_coder(*named: type) -> None:
    """Beam encodes these NamedTuple classes (where it knows an element's type) as plain
    tuples with :class:`NamedTupleCoder`."""
    for cls in named:
        assert _is_named_tuple(cls), f"{cls} is not a NamedTuple"
        registry.register_coder(cls, NamedTupleCoder)


class MinOf(beam.CombineFn):
    """``min`` of values of ``value_type``: the output is typed, so the steps after it get the
    type's coder, and the accumulator (the least value so far, None before any) travels with
    that coder."""

    def __init__(self, value_type: type):
        super().__init__()
        self.value_type = value_type
        self.with_input_types(value_type)
        self.with_output_types(value_type)

    def create_accumulator(self) -> Any:
        return None

    def add_input(self, least: Any, value: Any) -> Any:
        return value if least is None or value < least else least

    def merge_accumulators(self, accumulators: Any) -> Any:
        values = [a for a in accumulators if a is not None]
        return min(values) if values else None

    def extract_output(self, least: Any) -> Any:
        return least

    def get_accumulator_coder(self) -> Coder:
        return NullableCoder(registry.get_coder(self.value_type))
