"""The single source of truth for the columns of every artifact webimagetext writes.

Every stage imports its schemas from here; nothing else defines column names or types.
``validate`` checks a table (or a Parquet file) against one of them and names the file and
the column when something is wrong.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.candidates import CANDIDATES, ENTRY_COUNTS, LANGUAGE_ENTRY_COUNTS
from schemas.queries import METADATA
from schemas.shards import SAMPLES
from schemas.training import TRAIN_LOG

__all__ = [
    "CANDIDATES",
    "ENTRY_COUNTS",
    "LANGUAGE_ENTRY_COUNTS",
    "METADATA",
    "REGISTRY",
    "SAMPLES",
    "SchemaError",
    "TRAIN_LOG",
    "read_validated",
    "validate",
]

# artifact name -> schema; documented in docs/architecture.md.
REGISTRY: dict[str, pa.Schema] = {
    "queries/metadata.parquet": METADATA,
    "candidates/part-*.parquet": CANDIDATES,
    "candidates/entry_counts.parquet": ENTRY_COUNTS,
    "candidates/language_entry_counts.parquet": LANGUAGE_ENTRY_COUNTS,
    "shards/*.parquet": SAMPLES,
    "train/log.jsonl": TRAIN_LOG,
}


class SchemaError(ValueError):
    """A table does not have the columns or types its artifact requires."""


def validate(table: pa.Table, schema: pa.Schema, where: str = "<table>") -> pa.Table:
    """Return ``table`` with exactly ``schema``'s columns, in order and cast to its types.

    Extra columns are dropped; a missing column, a null in a non-nullable column or a type
    that cannot be cast raises :class:`SchemaError` naming ``where`` and the column.
    """
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            raise SchemaError(f"{where}: missing column {field.name!r} (has {table.column_names})")
        column = table.column(field.name)
        if not field.nullable and column.null_count:
            raise SchemaError(f"{where}: column {field.name!r} has {column.null_count} null(s)")
        try:
            column = column.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(
                f"{where}: column {field.name!r} is {column.type}, expected {field.type}: {exc}"
            ) from exc
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def read_validated(path: str, schema: pa.Schema, filesystem=None) -> pa.Table:
    """Read a Parquet file (local or fsspec path) and validate it against ``schema``."""
    try:
        table = pq.read_table(path, filesystem=filesystem)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SchemaError(f"{path}: not a readable Parquet file: {exc}") from exc
    return validate(table, schema, where=path)
