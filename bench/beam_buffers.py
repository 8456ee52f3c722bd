"""What crosses each shuffle of an in-process Beam run, and how much memory it holds.

Beam's in-process FnApiRunner keeps every grouped PCollection in a ``GroupingBuffer`` until
the consuming stage runs: its values *decoded* (Python objects, one list per key), so a
value's in-memory cost is its Python objects' size, often 5-20x its encoded bytes. Every
other PCollection between stages (a side input, a fusion break) waits in a ``ListBuffer``
as encoded bytes. :func:`install` patches both to tally, per buffer (named by its element
coder), the elements (for a list buffer: chunks of encoded elements), their encoded bytes
and an estimate of the decoded values' size (a deep ``sys.getsizeof`` of every 64th value); :func:`report` returns the tallies,
largest first. Used by ``bench/scale.py --buffers``; measuring only, never in the stages.
"""

from __future__ import annotations

import sys
from typing import Any

SAMPLE_EVERY = 64
_tallies: dict[int, dict[str, Any]] = {}
_originals: dict[str, Any] = {}


def deep_size(value: Any, seen: set[int] | None = None) -> int:
    """Bytes of ``value`` and everything it holds (containers followed, shared objects once)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        size += sum(deep_size(v, seen) for v in value)
    return size


def _tally(buffer: Any, kind: str, coder: Any) -> dict[str, Any]:
    found = _tallies.get(id(buffer))
    if found is None:
        found = _tallies[id(buffer)] = {"kind": kind, "coder": repr(coder)[:160], "elements": 0,
                                        "encoded_bytes": 0, "sampled": 0, "sampled_bytes": 0}
    return found


def install() -> None:
    from apache_beam.coders.coder_impl import create_InputStream
    from apache_beam.runners.portability.fn_api_runner import execution

    if _originals:
        return
    grouping_append = _originals["group"] = execution.GroupingBuffer.append
    list_append = _originals["list"] = execution.ListBuffer.append

    def counted_grouping(self, elements_data: bytes) -> None:
        tally = _tally(self, "group", self._pre_grouped_coder)
        tally["encoded_bytes"] += len(elements_data)
        stream = create_InputStream(elements_data)
        impl = self._pre_grouped_coder.get_impl()
        while stream.size() > 0:
            value = impl.decode_from_stream(stream, True).value
            if tally["elements"] % SAMPLE_EVERY == 0:
                tally["sampled"] += 1
                tally["sampled_bytes"] += deep_size(value[1])
            tally["elements"] += 1
        grouping_append(self, elements_data)

    def counted_list(self, element: bytes) -> None:
        tally = _tally(self, "list", getattr(self, "_coder_impl", None))
        tally["encoded_bytes"] += len(element)
        tally["elements"] += 1
        list_append(self, element)

    execution.GroupingBuffer.append = counted_grouping
    execution.ListBuffer.append = counted_list


def uninstall() -> None:
    """Beam's buffers as they were, the tallies cleared."""
    from apache_beam.runners.portability.fn_api_runner import execution

    if _originals:
        execution.GroupingBuffer.append = _originals.pop("group")
        execution.ListBuffer.append = _originals.pop("list")
    _tallies.clear()


def report() -> list[dict[str, Any]]:
    rows = []
    for tally in _tallies.values():
        row = {k: tally[k] for k in ("kind", "coder", "elements", "encoded_bytes")}
        if tally["sampled"]:  # decoded values held by a GroupingBuffer (keys not counted)
            row["decoded_bytes_est"] = int(tally["sampled_bytes"] / tally["sampled"]
                                           * tally["elements"])
        rows.append(row)
    return sorted(rows, key=lambda r: -max(r["encoded_bytes"], r.get("decoded_bytes_est", 0)))
