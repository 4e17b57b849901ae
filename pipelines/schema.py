"""The one document schema of cptcorpus.

Every stage reads and writes Parquet with these columns (DESIGN.md "Columns"). A stage may add
statistics columns of its own; unknown columns pass through untouched, so a stage can be pointed at
any Parquet of documents that has at least ``id`` and ``text``.
"""

from __future__ import annotations

import pyarrow as pa

#: Columns every non-extract stage needs in its input.
REQUIRED_COLUMNS = ("id", "text")

#: Column name of the reason a document was rejected, in ``<stage>/rejected/``.
REJECT_REASON = "reject_reason"

DOCUMENT_FIELDS: list[pa.Field] = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("text", pa.string()),
    pa.field("url", pa.string()),
    pa.field("domain", pa.string()),
    pa.field("warc_record_id", pa.string()),
    pa.field("warc_date", pa.string()),
    pa.field("source_file", pa.string()),
    pa.field("snapshot", pa.string()),
    pa.field("lang", pa.string()),
    pa.field("lang_score", pa.float32()),
    pa.field("edu_score", pa.float32()),
    pa.field("stem_score", pa.float32()),
    pa.field("toxic_score", pa.float32()),
    pa.field("dup_cluster_id", pa.string()),
    pa.field("dup_cluster_size", pa.int32()),
    pa.field("token_count", pa.int64()),
]

DOCUMENT_SCHEMA = pa.schema(DOCUMENT_FIELDS)
FIELD_BY_NAME = {f.name: f for f in DOCUMENT_FIELDS}

#: Columns written by extract (the rest are added by later stages).
EXTRACT_COLUMNS = ("id", "text", "url", "domain", "warc_record_id", "warc_date", "source_file", "snapshot")

EXTRACT_SCHEMA = pa.schema([FIELD_BY_NAME[c] for c in EXTRACT_COLUMNS])
EXTRACT_REJECTED_SCHEMA = EXTRACT_SCHEMA.append(pa.field(REJECT_REASON, pa.string()))


class SchemaError(ValueError):
    """An input table lacks a required column or has it with the wrong type."""


def check_input_schema(schema: pa.Schema, source: str) -> None:
    """Fail before any work starts when a document input cannot be processed."""
    for name in REQUIRED_COLUMNS:
        idx = schema.get_field_index(name)
        if idx < 0:
            raise SchemaError(
                f"{source}: missing required column {name!r} (found columns: {', '.join(schema.names)}); "
                f"every stage after extract needs at least {', '.join(REQUIRED_COLUMNS)}"
            )
        typ = schema.field(idx).type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            raise SchemaError(f"{source}: column {name!r} has type {typ}, expected string")


def with_column(table: pa.Table, name: str, values: pa.Array | list) -> pa.Table:
    """Set ``name`` to ``values`` (typed from DOCUMENT_SCHEMA when known), replacing any existing column."""
    field = FIELD_BY_NAME.get(name)
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(
        values, type=field.type if field else None
    )
    if field is not None and array.type != field.type:
        array = array.cast(field.type)
    idx = table.schema.get_field_index(name)
    if idx >= 0:
        return table.set_column(idx, name, array)
    return table.append_column(name, array)
