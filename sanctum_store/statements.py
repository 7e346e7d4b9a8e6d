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
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

#: Bound parameters per statement: SQLite's limit (32,766 since 3.32) and PostgreSQL's (65,535)
#: leave room; a multi-row statement is cut into chunks below it.
_MAX_PARAMETERS = 30_000

_PROCESSED = (TypeDecorator, sa.DateTime, sa.Boolean, sa.JSON)

_BUILT: dict[tuple, tuple[str, list]] = {}


def _processors(conn: Connection, table: sa.Table, keys: Sequence[str]) -> list:
    """(position, key, processor) of the columns whose values the driver cannot take as they are."""
    dialect = conn.dialect
    out = []
    for position, key in enumerate(keys):
        type_ = table.c[key].type
        if isinstance(type_, _PROCESSED):
            processor = type_.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                out.append((position, key, processor))
    return out


def _names(conn: Connection, table: sa.Table, keys: Iterable[str]) -> tuple[str, str]:
    quote = conn.dialect.identifier_preparer.quote
    return quote(table.name), ", ".join(quote(k) for k in keys)


def insert_rows(conn: Connection, table: sa.Table, rows: list[dict]) -> None:
    """Insert many rows (all with the same keys) in one driver ``executemany``, their values
    passed by position (the drivers bind a tuple faster than they look names up in a dict).
    Consumes the dicts (their values become the driver's)."""
    if not rows:
        return
    keys = tuple(rows[0])
    dialect = conn.dialect.name
    entry = _BUILT.get((dialect, table.name, keys))
    if entry is None:
        marker = "?" if dialect == "sqlite" else "%s"
        name, columns = _names(conn, table, keys)
        sql = f"INSERT INTO {name} ({columns}) VALUES ({', '.join([marker] * len(keys))})"
        entry = _BUILT[(dialect, table.name, keys)] = (sql, _processors(conn, table, keys))
    sql, processors = entry
    for row in rows if processors else ():
        for _, key, processor in processors:
            row[key] = processor(row[key])
    values = operator.itemgetter(*keys)
    if len(keys) == 1:
        conn.exec_driver_sql(sql, [(values(row),) for row in rows])
    else:
        conn.exec_driver_sql(sql, [values(row) for row in rows])


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
    dialect = conn.dialect.name
    marker = "?" if dialect == "sqlite" else "%s"
    cache_key = (dialect, table.name, keys, tuple(returning), tuple(unless), "returning")
    entry = _BUILT.get(cache_key)
    if entry is None:
        name, columns = _names(conn, table, keys)
        quote = conn.dialect.identifier_preparer.quote
        conflict = f" ON CONFLICT ({', '.join(map(quote, unless))}) DO NOTHING" if unless else ""
        tail = f"{conflict} RETURNING {', '.join(map(quote, returning))}"
        sql = f"INSERT INTO {name} ({columns}) VALUES {{}}{tail}"
        entry = _BUILT[cache_key] = (sql, _processors(conn, table, keys))
    sql, processors = entry
    one = "(" + ", ".join([marker] * len(keys)) + ")"
    per_statement = max(1, _MAX_PARAMETERS // len(keys))
    out: list[tuple] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        parameters = []
        for row in chunk:
            values = [row[k] for k in keys]
            for position, _, processor in processors:
                values[position] = processor(values[position])
            parameters.extend(values)
        statement = sql.format(", ".join([one] * len(chunk)))
        out.extend(tuple(r) for r in conn.exec_driver_sql(statement, tuple(parameters)))
    return out


def update_rows(conn: Connection, table: sa.Table, rows: list[dict], where: Sequence[str]) -> None:
    """Update rows (all with the same keys) in one driver ``executemany``: each row's
    ``where`` columns name the row, its other columns are set."""
    if not rows:
        return
    keys = tuple(rows[0])
    dialect = conn.dialect.name
    cache_key = (dialect, table.name, keys, tuple(where), "update")
    entry = _BUILT.get(cache_key)
    if entry is None:
        marker = "?" if dialect == "sqlite" else "%s"
        quote = conn.dialect.identifier_preparer.quote
        order = [k for k in keys if k not in where] + list(where)
        assignments = ", ".join(f"{quote(k)} = {marker}" for k in order[: len(keys) - len(where)])
        condition = " AND ".join(f"{quote(k)} = {marker}" for k in where)
        sql = f"UPDATE {quote(table.name)} SET {assignments} WHERE {condition}"
        entry = _BUILT[cache_key] = (sql, (order, _processors(conn, table, order)))
    sql, (order, processors) = entry
    parameters = []
    for row in rows:
        values = [row[k] for k in order]
        for position, _, processor in processors:
            values[position] = processor(values[position])
        parameters.append(tuple(values))
    conn.exec_driver_sql(sql, parameters)
