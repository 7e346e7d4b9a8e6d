"""Safe user SQL against a run archive: read-only, time-limited, row-capped.

Read-only holds by construction, in layers that each stop a write on their own:

1. A statement check: one statement, starting with SELECT, WITH or EXPLAIN (comments, quotes,
   PostgreSQL dollar quotes and E-strings are understood, so neither can hide a ``;``).
2. The connection itself.
   SQLite: opened ``mode=ro`` with ``PRAGMA query_only``, no ATTACH slots, extension loading never
   enabled, and an authorizer that lets a statement read and call functions, nothing else.
   The driver also runs one statement per call.
   PostgreSQL: each query runs in ``SET TRANSACTION READ ONLY`` that is always rolled back, on a
   session whose default transaction is read-only too. SELECT/WITH go through a server-side cursor
   (``DECLARE ... CURSOR FOR``), which accepts a single plain query only, and every statement is
   sent with the extended protocol, which refuses several statements in one string.

The time limit is a progress handler (SQLite) or ``statement_timeout`` (PostgreSQL); the row cap
fetches at most ``max_rows + 1`` rows so a huge result is never materialised.

A least-privileged database role is still the right home for a shared console: a superuser's
read-only transaction can read server files (``pg_read_file``) or signal other backends.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from sanctum_store.db import sqlite_path
from sanctum_store.errors import QueryFailed, QueryInterrupted, QueryRefused


@dataclass(frozen=True, eq=False)  # eq=False: DataFrames have no single truth value to compare
class QueryResult:
    """What a user query returned: at most ``max_rows`` rows, and whether more were left.

    ``sql`` is the statement as it ran, without a closing semicolon."""

    frame: pd.DataFrame
    truncated: bool
    elapsed_s: float
    sql: str


ALLOWED_KEYWORDS = ("SELECT", "WITH", "EXPLAIN")
SCHEMA_COLUMNS = ["object", "kind", "column", "type"]


def run_query(
    url: str,
    sql: str,
    *,
    timeout_s: float = 10.0,
    max_rows: int = 10_000,
    params: dict | None = None,
) -> QueryResult:
    """Run one read-only statement against the archive at ``url`` and return its rows.

    ``params`` bind ``:name`` placeholders; without params the SQL reaches the driver verbatim.
    With params, SQLAlchemy's ``text()`` rules apply: a literal colon before a word, even inside
    a string, must be written ``\\:``.

    Raises QueryRefused, QueryInterrupted or QueryFailed (all SQLError).
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    engine = readonly_engine(url)
    keyword, statement = _check_statement(sql, engine.dialect.name)
    return _execute(
        engine,
        statement,
        # DECLARE CURSOR takes SELECT/WITH only; an EXPLAIN's output is a short plan anyway.
        stream=keyword != "EXPLAIN",
        timeout_s=timeout_s,
        max_rows=max_rows,
        params=params,
    )


def schema_overview(url: str) -> pd.DataFrame:
    """Every table and view with its columns: ``object, kind (table|view), column, type``.

    On PostgreSQL only the current schema (first of the search_path) is listed.
    """
    engine = readonly_engine(url)
    rows = []
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            objects = [("table", name) for name in sorted(inspector.get_table_names())]
            objects += [("view", name) for name in sorted(inspector.get_view_names())]
            for kind, name in objects:
                for column in inspector.get_columns(name):
                    type_name = _type_name(column["type"], engine.dialect)
                    rows.append((name, kind, column["name"], type_name))
            conn.rollback()
    except sa.exc.SQLAlchemyError as e:
        raise _failed(e) from _cause(e)
    return pd.DataFrame(rows, columns=SCHEMA_COLUMNS)


def dispose_readonly_engines() -> None:
    """Forget the cached read-only engines (tests; after an archive is replaced)."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


# --- engines ----------------------------------------------------------------------------------

_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def readonly_engine(url: str) -> sa.Engine:
    """The archive's read-only engine (one per URL): what user SQL runs on."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _createreadonly_engine(url)
        return engine


def _createreadonly_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        return _postgres_engine(parsed)
    raise ValueError(f"user SQL runs on SQLite or PostgreSQL archives, not {backend}")


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    path = sqlite_path(url)
    if path is None:
        raise ValueError(f"a read-only SQLite archive needs a file path, got {url}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        # mode=ro also means a missing archive is an error rather than a new empty file.
        # Extension loading stays off: sqlite3 disables it and nothing here turns it on.
        conn = sqlite3.connect(uri, uri=True)
        conn.execute("PRAGMA query_only = 1")
        # A read-only connection may still ATTACH, and ATTACH creates a missing file.
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        return conn

    # NullPool: a fresh connection per query, so no handler or state outlives the query.
    return sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)


def _postgres_engine(url: sa.URL) -> sa.Engine:
    # prepare_threshold=0 prepares every statement, i.e. the extended query protocol, which
    # refuses a string holding several statements (psycopg sends unparameterised SQL in the
    # simple protocol otherwise). NullPool: nothing a query leaves in its session (a
    # session-level advisory lock, say) survives into the next query.
    connect_args = {"prepare_threshold": 0} if url.get_driver_name() == "psycopg" else {}
    engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)

    @sa.event.listens_for(engine, "connect")
    def _read_only_session(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        # Should a COMMIT ever slip through, the next transaction is read-only all the same.
        cursor.execute("SET default_transaction_read_only = on")
        # The statement check reads quotes the standard way; make the server agree.
        cursor.execute("SET standard_conforming_strings = on")
        cursor.close()
        dbapi_connection.commit()

    return engine


# --- execution --------------------------------------------------------------------------------


def _execute(
    engine: sa.Engine,
    statement: str,
    *,
    stream: bool,
    timeout_s: float,
    max_rows: int,
    params: dict | None,
) -> QueryResult:
    """Run ``statement`` with the connection-level guards only (tests call this directly to
    prove those guards hold without the statement check)."""
    start = time.monotonic()
    limits = _Limits(deadline=start + timeout_s, timeout_s=timeout_s, max_rows=max_rows)
    run = _run_sqlite if engine.dialect.name == "sqlite" else _run_postgres
    try:
        with engine.connect() as conn:
            frame, truncated = run(conn, statement, params, stream=stream, limits=limits)
    except sa.exc.SQLAlchemyError as e:
        raise _failed(e) from _cause(e)
    return QueryResult(frame, truncated, time.monotonic() - start, statement)


@dataclass(frozen=True)
class _Limits:
    deadline: float  # time.monotonic() value
    timeout_s: float
    max_rows: int

    def interrupted(self) -> QueryInterrupted:
        return QueryInterrupted(f"query interrupted after {self.timeout_s:g} s")


def _run_sqlite(conn, statement, params, *, stream, limits):
    raw = conn.connection.driver_connection
    authorizer = _ReadOnlyAuthorizer()
    raw.set_authorizer(authorizer)
    raw.set_progress_handler(lambda: time.monotonic() > limits.deadline, 1000)
    try:
        return _collect(_open(conn, statement, params, stream=stream), limits.max_rows)
    except sa.exc.DBAPIError as e:
        error = getattr(e.orig, "sqlite_errorname", "")
        if authorizer.denied:
            raise QueryRefused(f"only reading is allowed; refused {authorizer.denied}") from e.orig
        if error == "SQLITE_INTERRUPT":
            raise limits.interrupted() from e.orig
        if error == "SQLITE_READONLY":
            raise QueryRefused(f"only reading is allowed; {e.orig}") from e.orig
        raise
    finally:
        raw.set_progress_handler(None, 0)
        raw.set_authorizer(None)


def _run_postgres(conn, statement, params, *, stream, limits):
    try:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        _set_statement_timeout(conn, limits)
        result = _open(conn, statement, params, stream=stream)
        if stream:
            # DECLARE and the first FETCH each had the full limit; the rest gets what is left.
            _set_statement_timeout(conn, limits)
        return _collect(result, limits.max_rows)
    except sa.exc.DBAPIError as e:
        sqlstate = getattr(e.orig, "sqlstate", None)
        if sqlstate == "57014":  # query_canceled: statement_timeout fired
            raise limits.interrupted() from e.orig
        if sqlstate == "25006":  # read_only_sql_transaction
            raise QueryRefused(f"only reading is allowed; {e.orig}") from e.orig
        raise
    finally:
        conn.rollback()


def _set_statement_timeout(conn: sa.Connection, limits: _Limits) -> None:
    remaining = limits.deadline - time.monotonic()
    if remaining <= 0:
        raise limits.interrupted()
    # Never 0: a statement_timeout of 0 means no limit at all.
    ms = max(1, math.ceil(remaining * 1000))
    conn.execute(sa.select(sa.func.set_config("statement_timeout", str(ms), True)))


def _open(conn: sa.Connection, statement: str, params: dict | None, *, stream: bool):
    # max_row_buffer=1: SQLAlchemy fetches no rows ahead of what _collect asks for.
    options = {"stream_results": True, "max_row_buffer": 1} if stream else {}
    if params:
        return conn.execute(sa.text(statement), params, execution_options=options)
    # no_parameters: the SQL goes to the driver untouched (psycopg then leaves % alone).
    return conn.exec_driver_sql(statement, execution_options={**options, "no_parameters": True})


def _collect(result: sa.CursorResult, max_rows: int) -> tuple[pd.DataFrame, bool]:
    try:
        if not result.returns_rows:
            return pd.DataFrame(), False
        columns = list(result.keys())
        rows = [tuple(row) for row in result.fetchmany(max_rows + 1)]
    finally:
        result.close()
    truncated = len(rows) > max_rows
    return pd.DataFrame(rows[:max_rows], columns=columns), truncated


class _ReadOnlyAuthorizer:
    """SQLite authorizer: allow reading, functions and recursion; deny everything else.

    The authorizer runs when a statement is prepared, so a denied statement never starts."""

    _ALLOWED = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})
    # Table-valued pragma functions (pragma_table_info('runs')) report as PRAGMA actions.
    _READ_PRAGMAS = frozenset(
        {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"}
    )

    def __init__(self) -> None:
        self.denied: str | None = None

    def __call__(self, action: int, arg1, arg2, _db, _source) -> int:
        if action in self._ALLOWED:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() != "load_extension":
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in self._READ_PRAGMAS:
            return sqlite3.SQLITE_OK
        # SQLite asks this when a connection first uses an eponymous virtual table (json_each,
        # pragma_table_info). sqlite_master cannot change here: the file is open read-only, and
        # writable_schema is a PRAGMA this authorizer refuses.
        if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
            return sqlite3.SQLITE_OK
        if self.denied is None:
            self.denied = self._describe(action, arg1, arg2)
        return sqlite3.SQLITE_DENY

    @staticmethod
    def _describe(action: int, arg1: str | None, arg2: str | None) -> str:
        if arg1 in ("sqlite_master", "sqlite_temp_master"):
            return "a schema change"  # CREATE/DROP ask to write the schema table first
        name = _SQLITE_ACTIONS.get(action, f"action {action}")
        detail = arg2 if action in (sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_ALTER_TABLE) else arg1
        return f"{name} {detail}" if detail else name


# Authorizer action codes by name, for the refusal message ("INSERT runs", "ATTACH b.db").
_SQLITE_ACTIONS = {
    getattr(sqlite3, f"SQLITE_{name}"): name.replace("_", " ")
    for name in (  # noqa: SIM905 - a word list reads better than thirty quoted names
        "ALTER_TABLE ANALYZE ATTACH CREATE_INDEX CREATE_TABLE CREATE_TEMP_INDEX CREATE_TEMP_TABLE "
        "CREATE_TEMP_TRIGGER CREATE_TEMP_VIEW CREATE_TRIGGER CREATE_VIEW CREATE_VTABLE DELETE "
        "DETACH DROP_INDEX DROP_TABLE DROP_TEMP_INDEX DROP_TEMP_TABLE DROP_TEMP_TRIGGER "
        "DROP_TEMP_VIEW DROP_TRIGGER DROP_VIEW DROP_VTABLE FUNCTION INSERT PRAGMA REINDEX "
        "SAVEPOINT TRANSACTION UPDATE"
    ).split()
}


def _cause(e: sa.exc.SQLAlchemyError) -> BaseException:
    """The driver's exception behind a SQLAlchemy error, else the error itself."""
    return getattr(e, "orig", None) or e


def _failed(e: sa.exc.SQLAlchemyError) -> QueryFailed:
    cause = _cause(e)
    if isinstance(cause, sa.exc.SQLAlchemyError) and cause.args:
        # Its str() appends a link to the SQLAlchemy docs, which is noise in a console.
        return QueryFailed(str(cause.args[0]))
    return QueryFailed(str(cause).strip())


def _type_name(type_: sa.types.TypeEngine, dialect: sa.Dialect) -> str:
    try:
        return type_.compile(dialect=dialect)
    except sa.exc.SQLAlchemyError:  # e.g. NullType for a SQLite column with no declared type
        return ""


# --- the statement check ----------------------------------------------------------------------


def _check_statement(sql: str, dialect: str) -> tuple[str, str]:
    """``(keyword, statement)`` for a single SELECT/WITH/EXPLAIN; else raise QueryRefused.

    ``statement`` is ``sql`` without its closing semicolon and whatever comments follow it.
    """
    tokens = list(_tokens(sql, dialect))
    if not tokens:
        raise QueryRefused("no statement to run")
    start, end = tokens[0]
    first = sql[start:end]
    keyword = first.upper()
    if keyword not in ALLOWED_KEYWORDS:
        shown = keyword if first[0].isalpha() else repr(first[:20])
        raise QueryRefused(f"only SELECT, WITH or EXPLAIN statements may run; got {shown}")
    semicolons = [i for i, (s, e) in enumerate(tokens) if sql[s:e] == ";"]
    if not semicolons:
        return keyword, sql.strip()
    first_semicolon = semicolons[0]
    if any(sql[s:e] != ";" for s, e in tokens[first_semicolon:]):
        raise QueryRefused("only one statement may run at a time")
    return keyword, sql[: tokens[first_semicolon][0]].strip()


def _tokens(sql: str, dialect: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of every token that is not whitespace or a comment, lexed the way
    ``dialect`` ("sqlite" or "postgresql") lexes quotes and comments. Only the boundaries
    matter: a quoted string or identifier is one token, ``;`` is a token of its own."""
    postgres = dialect == "postgresql"
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in _WHITESPACE:
            i += 1
            continue
        if sql.startswith("--", i):
            i = _line_comment_end(sql, i, newlines="\n\r" if postgres else "\n")
            continue
        if sql.startswith("/*", i):
            # PostgreSQL block comments nest; SQLite's end at the first */.
            i = _block_comment_end(sql, i, nested=postgres)
            continue
        start = i
        if c in "'\"" or (c == "`" and not postgres):
            i = _quoted_end(sql, i)
        elif c == "[" and not postgres:  # SQLite's [identifier]
            close = sql.find("]", i + 1)
            i = n if close < 0 else close + 1
        elif c == "$" and postgres and (tag := _dollar_tag(sql, i)):
            close = sql.find(tag, i + len(tag))
            i = n if close < 0 else close + len(tag)
        elif _is_word_char(c):
            # "$" continues an identifier, but after a number it opens a dollar quote.
            identifier = not "0" <= c <= "9"
            while i < n and (_is_word_char(sql[i]) or (identifier and sql[i] == "$")):
                i += 1
            # E'...' takes backslash escapes; so does 1e'...' (PostgreSQL < 15 lexes 1, e'...').
            if postgres and _E_PREFIX.fullmatch(sql, start, i) and sql.startswith("'", i):
                i = _quoted_end(sql, i, backslash_escapes=True)
        else:
            i += 1
        yield start, i


_E_PREFIX = re.compile(r"[0-9]*[eE]")
_WHITESPACE = " \t\n\v\f\r"


def _is_word_char(c: str) -> bool:
    # Both lexers take any non-ASCII character, even a space or a digit, as part of an
    # identifier; so must this check, or "\u00a0e'...'" would read as an E-string.
    return c == "_" or (c.isalnum() if c.isascii() else True)


def _quoted_end(sql: str, i: int, *, backslash_escapes: bool = False) -> int:
    """End of the quoted run opening at ``sql[i]``; a doubled quote stays inside."""
    quote_char = sql[i]
    j, n = i + 1, len(sql)
    while j < n:
        if backslash_escapes and sql[j] == "\\":
            j += 2
        elif sql[j] == quote_char:
            if not sql.startswith(quote_char, j + 1):
                return j + 1
            j += 2
        else:
            j += 1
    return n


def _line_comment_end(sql: str, i: int, *, newlines: str) -> int:
    """PostgreSQL ends a -- comment at \\n or \\r, SQLite at \\n only."""
    ends = [j for j in (sql.find(c, i) for c in newlines) if j >= 0]
    return min(ends) + 1 if ends else len(sql)


def _block_comment_end(sql: str, i: int, *, nested: bool) -> int:
    depth, j, n = 1, i + 2, len(sql)
    while j < n:
        if nested and sql.startswith("/*", j):
            depth += 1
            j += 2
        elif sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    return n


def _dollar_tag(sql: str, i: int) -> str | None:
    """The ``$tag$`` opening a PostgreSQL dollar quote at ``sql[i]``, or None (``$1``)."""
    j = i + 1
    while j < len(sql) and _is_word_char(sql[j]):
        j += 1
    tag = sql[i + 1 : j]
    if j < len(sql) and sql[j] == "$" and not (tag and "0" <= tag[0] <= "9"):
        return sql[i : j + 1]
    return None
