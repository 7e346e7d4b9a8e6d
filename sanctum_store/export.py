"""Streaming exports: query rows to CSV or Parquet, a chunk at a time.

Rows come from a server-side cursor (``stream_results`` + ``yield_per``: psycopg's named cursor
on PostgreSQL; SQLite steps its cursor lazily anyway), become an Arrow table per chunk and are
appended to the file (one Parquet row group, or more CSV lines, per chunk), so an export of
any size needs the memory of one chunk. The Arrow schema is fixed up front from the query's
column types, so every chunk, the first one included, has the same column types whatever its
values (an all-NULL chunk stays a float column).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa

from sanctum_store import queries

FORMATS = ("csv", "parquet")
KINDS = ("runs", "series", "leaderboard")
CHUNK_ROWS = 10_000


def arrow_schema(query: sa.Select) -> pa.Schema:
    """The Arrow type of each column of ``query``, from its SQL type."""
    return pa.schema([(c.key, _arrow_type(c.type)) for c in query.selected_columns])


def _arrow_type(type_: sa.types.TypeEngine) -> pa.DataType:
    if isinstance(type_, sa.types.TypeDecorator):
        # IsoDateTime (naive or aware datetimes mixed) and TaggedJSON travel as text.
        return pa.string()
    if isinstance(type_, sa.Boolean):
        return pa.bool_()
    if isinstance(type_, sa.Integer):
        return pa.int64()
    if isinstance(type_, (sa.Float, sa.Numeric)):
        return pa.float64()
    if isinstance(type_, sa.DateTime):
        return pa.timestamp("us")
    return pa.string()


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return json.dumps(value, default=str)


def write(
    engine,
    query: sa.Select,
    out: str | Path,
    fmt: str = "csv",
    *,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Stream the rows of ``query`` into ``out`` as CSV (with a header) or Parquet; returns the
    number of rows written. ``progress(n)`` is called after each chunk of n rows."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    schema = arrow_schema(query)
    text_columns = [i for i, field in enumerate(schema) if pa.types.is_string(field.type)]
    written = 0
    writer = None
    try:
        with queries.read_connection(engine) as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(
                query
            )
            for rows in result.partitions(chunk_rows):
                columns = [list(column) for column in zip(*rows, strict=True)]
                for i in text_columns:
                    columns[i] = [_text(v) for v in columns[i]]
                table = pa.Table.from_arrays(
                    [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)],
                    schema=schema,
                )
                if writer is None:
                    writer = _open(out, fmt, schema)
                writer.write_table(table)
                written += len(rows)
                if progress is not None:
                    progress(len(rows))
        if writer is None:  # no rows: still a valid file with the columns
            writer = _open(out, fmt, schema)
            writer.write_table(schema.empty_table())
    finally:
        if writer is not None:
            writer.close()
    return written


def _open(out: str | Path, fmt: str, schema: pa.Schema):
    if fmt == "parquet":
        return pq.ParquetWriter(str(out), schema)
    return pa_csv.CSVWriter(str(out), schema)


def count(engine, query: sa.Select) -> int:
    """How many rows ``query`` returns (for a progress bar)."""
    counting = sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    with queries.read_connection(engine) as conn:
        return int(conn.execute(counting).scalar_one())


def query_for(
    kind: str,
    *,
    metric: str | None = None,
    x: str = "batch",
    limit: int | None = None,
    **filters,
) -> sa.Select:
    """The query behind ``sanctum-store export KIND``.

    ``runs``: :func:`queries.list_runs`' columns, newest first; ``series``: every value of
    ``metric`` (:func:`queries.series_select`); ``leaderboard``: :func:`queries.leaderboard`'s
    columns (takes ``reward_mode``, ``group_id`` and ``run_id`` filters only).
    """
    if kind == "runs":
        return queries.runs_select(limit=limit, **filters)
    if kind == "series":
        if not metric:
            raise ValueError("a series export needs a metric")
        query = queries.series_select(metric, x=x, **filters)
        return query if limit is None else query.limit(limit)
    if kind == "leaderboard":
        unknown = set(filters) - {"reward_mode", "group_id", "run_id"}
        if unknown:
            raise ValueError(f"the leaderboard cannot be filtered by {', '.join(sorted(unknown))}")
        return queries.leaderboard_select(limit=limit, **filters)
    raise ValueError(f"can export {', '.join(KINDS)}, not {kind!r}")
