"""The writer's hot statements as driver SQL: built once per dialect, table and key set, run
through ``exec_driver_sql`` without SQLAlchemy's per-statement machinery (compiling, cache
keys, type adaptation of every column).

Values go through SQLAlchemy's own bind processors only where a column's type needs one (JSON,
datetimes, booleans): the codec has already made every other value what the driver takes
(``int``, ``float``, ``str``, ``bytes`` or ``None``). Everything here runs in the caller's
transaction.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

#: Bound parameters per statement: SQLite's limit (32,766 since 3.32) and PostgreSQL's (65,535)
#: leave room; a multi-row statement is cut into chunks below it.
_MAX_PARAMETERS = 30_000

_PROCESSED = (TypeDecorator, sa.DateTime, sa.Boolean, sa.JSON)

_BUILT: dict[tuple, tuple[str, tuple[str, ...], list]] = {}  # (sql, its columns, processors)


def _processors(conn: Connection, table: sa.Table, keys: Sequence[str]) -> list:
    """(position, processor) of the columns whose values the driver cannot take as they are."""
    dialect = conn.dialect
    out = []
    for position, key in enumerate(keys):
        type_ = table.c[key].type
        if isinstance(type_, _PROCESSED):
            processor = type_.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                out.append((position, processor))
    return out


def _built(conn: Connection, table: sa.Table, kind: tuple, keys: tuple, make) -> tuple:
    """A statement of ``kind`` for these columns, built once: ``make(quote, marker)`` gives
    its SQL and the order its parameters are bound in."""
    cache_key = (conn.dialect.name, table.name, keys, *kind)
    entry = _BUILT.get(cache_key)
    if entry is None:
        sql, order = make(conn.dialect.identifier_preparer.quote, _marker(conn))
        entry = _BUILT[cache_key] = (sql, order, _processors(conn, table, order))
    return entry


def _marker(conn: Connection) -> str:
    """The driver's positional parameter marker."""
    return "?" if conn.dialect.name == "sqlite" else "%s"


def _bound(rows: list[dict], order: tuple[str, ...], processors: list) -> list[tuple]:
    """Each row's values in ``order``, in the driver's form."""
    get = operator.itemgetter(*order)
    values = [(get(row),) for row in rows] if len(order) == 1 else [get(row) for row in rows]
    if not processors:
        return values
    out = []
    for row_values in values:
        row_values = list(row_values)
        for position, processor in processors:
            row_values[position] = processor(row_values[position])
        out.append(tuple(row_values))
    return out


def insert_rows(conn: Connection, table: sa.Table, rows: list[dict]) -> None:
    """Insert many rows (all with the same keys) in one driver ``executemany``, their values
    passed by position (the drivers bind a tuple faster than they look names up in a dict)."""
    if not rows:
        return
    keys = tuple(rows[0])

    def make(quote, marker):
        columns = ", ".join(map(quote, keys))
        values = ", ".join([marker] * len(keys))
        return f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({values})", keys

    sql, order, processors = _built(conn, table, ("insert",), keys, make)
    conn.exec_driver_sql(sql, _bound(rows, order, processors))


def insert_returning(
    conn: Connection,
    table: sa.Table,
    rows: list[dict],
    returning: Sequence[str],
    *,
    unless: Sequence[str] = (),
) -> list[tuple]:
    """Insert rows (all with the same keys) in multi-row statements and return the
    ``returning`` columns of each row inserted, in no particular order (return a key column to
    match them). ``unless``: the columns of a unique constraint; a row that would repeat one is
    skipped (``ON CONFLICT DO NOTHING``) and returns nothing."""
    if not rows:
        return []
    keys = tuple(rows[0])

    def make(quote, marker):
        columns = ", ".join(map(quote, keys))
        conflict = f" ON CONFLICT ({', '.join(map(quote, unless))}) DO NOTHING" if unless else ""
        tail = f"{conflict} RETURNING {', '.join(map(quote, returning))}"
        # {} stands for the rows' value tuples, as many as a chunk has
        return f"INSERT INTO {quote(table.name)} ({columns}) VALUES {{}}{tail}", keys

    kind = ("returning", tuple(returning), tuple(unless))
    sql, order, processors = _built(conn, table, kind, keys, make)
    one = "(" + ", ".join([_marker(conn)] * len(keys)) + ")"
    per_statement = max(1, _MAX_PARAMETERS // len(keys))
    out: list[tuple] = []
    for start in range(0, len(rows), per_statement):
        chunk = _bound(rows[start : start + per_statement], order, processors)
        statement = sql.format(", ".join([one] * len(chunk)))
        parameters = tuple(value for row_values in chunk for value in row_values)
        out.extend(tuple(r) for r in conn.exec_driver_sql(statement, parameters))
    return out


def update_rows(conn: Connection, table: sa.Table, rows: list[dict], where: Sequence[str]) -> None:
    """Update rows (all with the same keys) in one driver ``executemany``: each row's
    ``where`` columns name the row, its other columns are set."""
    if not rows:
        return
    keys = tuple(rows[0])

    def make(quote, marker):
        order = tuple(k for k in keys if k not in where) + tuple(where)
        assignments = ", ".join(f"{quote(k)} = {marker}" for k in order[: len(keys) - len(where)])
        condition = " AND ".join(f"{quote(k)} = {marker}" for k in where)
        return f"UPDATE {quote(table.name)} SET {assignments} WHERE {condition}", order

    sql, order, processors = _built(conn, table, ("update", tuple(where)), keys, make)
    conn.exec_driver_sql(sql, _bound(rows, order, processors))
