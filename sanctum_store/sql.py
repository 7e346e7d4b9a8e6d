"""Safe user SQL against a run archive: read-only, time-limited, row- and byte-capped.

Read-only holds by construction, in layers that each stop a write on their own:

1. A statement check: one statement, starting with SELECT, WITH or EXPLAIN (comments, quotes,
   PostgreSQL dollar quotes and E-strings are understood, so neither can hide a ``;``). On
   PostgreSQL it also refuses, by name, functions whose effects outlive or escape the query
   (advisory locks, backend signals, large objects, dblink, set_config, sequences, SQL run from
   a string): PG_REFUSED_FUNCTIONS.
2. The connection itself.
   SQLite: opened ``mode=ro`` with ``PRAGMA query_only``, no ATTACH slots, extension loading never
   enabled, and an authorizer that lets a statement read and call functions, nothing else.
   The driver also runs one statement per call.
   PostgreSQL: each query runs in ``SET TRANSACTION READ ONLY`` that is always rolled back, on a
   session whose default transaction is read-only too, sent with the extended protocol, which
   refuses several statements in one string.
3. PostgreSQL: the role. A superuser, or a role that may write any table of the archive's
   schema (or signal backends, or touch server files), is refused before any user SQL runs,
   unless the operator passes ``unsafe_writable_role``: a read-only transaction does not stop
   what such a role does through functions.

Bounds, whatever the query calls:

* Time. SQLite: a progress handler between VM steps, and sqlite_bounds, which keeps every single
  call and every straight run of calls short (the handler never runs inside them).
  PostgreSQL: ``statement_timeout``, and a client watchdog that cancels the query shortly after
  the deadline.
* Memory. Rows are fetched one at a time (PostgreSQL in single-row mode) and counted: the
  result stops at ``max_rows`` rows or ``max_bytes`` bytes, whichever comes first, and says
  which (``truncated_by``); a stopped PostgreSQL query is cancelled, not drained. SQLite also
  bounds each value and the columns of a row (sqlite_bounds), so one row holds at most 64 MiB
  before it is counted.
"""

from __future__ import annotations

import contextlib
import itertools
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

from sanctum_store import sqlite_bounds
from sanctum_store.db import sqlite_path
from sanctum_store.errors import QueryFailed, QueryInterrupted, QueryRefused, QueryRoleRefused


@dataclass(frozen=True, eq=False)  # eq=False: DataFrames have no single truth value to compare
class QueryResult:
    """What a user query returned: at most ``max_rows`` rows, and whether more were left.

    ``sql`` is the statement as it ran, without a closing semicolon."""

    frame: pd.DataFrame
    truncated: bool
    elapsed_s: float
    sql: str
    #: What stopped a truncated result: ROW_CAP or BYTE_CAP (None when nothing was left).
    truncated_by: str | None = None


ROW_CAP = "row cap"
BYTE_CAP = "byte cap"
#: The result bytes a query may hold in memory unless told otherwise.
DEFAULT_MAX_BYTES = 64 * 2**20
#: How long after the deadline the client itself cancels a PostgreSQL query.
_WATCHDOG_GRACE_S = 0.3


ALLOWED_KEYWORDS = ("SELECT", "WITH", "EXPLAIN")
SCHEMA_COLUMNS = ["object", "kind", "column", "type"]


def run_query(
    url: str,
    sql: str,
    *,
    timeout_s: float = 10.0,
    max_rows: int = 10_000,
    params: dict | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    unsafe_writable_role: bool = False,
) -> QueryResult:
    """Run one read-only statement against the archive at ``url`` and return its rows: at
    most ``max_rows`` rows holding at most ``max_bytes`` bytes, within ``timeout_s``.

    ``params`` bind ``:name`` placeholders; without params the SQL reaches the driver verbatim.
    With params, SQLAlchemy's ``text()`` rules apply: a literal colon before a word, even inside
    a string, must be written ``\\:``.

    On PostgreSQL the role must be SELECT-only (no superuser, no write on the archive's
    tables): QueryRoleRefused otherwise, unless ``unsafe_writable_role``.

    Raises QueryRefused (QueryRoleRefused), QueryInterrupted or QueryFailed (all SQLError).
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    if max_bytes < 1024:
        raise ValueError(f"max_bytes must be at least 1024, got {max_bytes}")
    engine = readonly_engine(url)
    _, statement = _check_statement(sql, engine.dialect.name)
    return _execute(
        engine,
        statement,
        timeout_s=timeout_s,
        max_rows=max_rows,
        params=params,
        max_bytes=max_bytes,
        unsafe_writable_role=unsafe_writable_role,
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
        sqlite_bounds.limit(conn)  # what one value, row, call and statement may cost
        return conn

    # NullPool: a fresh connection per query, so no handler or state outlives the query.
    return sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)


def _postgres_engine(url: sa.URL) -> sa.Engine:
    # prepare_threshold=0 prepares every statement, i.e. the extended query protocol, which
    # refuses a string holding several statements (psycopg sends unparameterised SQL in the
    # simple protocol otherwise). NullPool: nothing a query leaves in its session (a
    # session-level advisory lock, say) survives into the next query.
    if url.get_driver_name() != "psycopg":
        raise ValueError(
            f"user SQL on PostgreSQL runs through psycopg 3 (postgresql+psycopg://), not {url.get_driver_name()}"
        )
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"prepare_threshold": 0})

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
    timeout_s: float,
    max_rows: int,
    params: dict | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    unsafe_writable_role: bool = False,
) -> QueryResult:
    """Run ``statement`` with the connection-level guards only (tests call this directly to
    prove those guards hold without the statement check)."""
    start = time.monotonic()
    limits = _Limits(start + timeout_s, timeout_s, max_rows, max_bytes)
    driver_sql, driver_params = _driver_statement(engine.dialect, statement, params)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                frame, capped = _run_sqlite(conn, driver_sql, driver_params, limits)
            else:
                if not unsafe_writable_role:
                    _check_role(conn)
                frame, capped = _run_postgres(conn, driver_sql, driver_params, limits)
    except sa.exc.SQLAlchemyError as e:
        raise _failed(e) from _cause(e)
    return QueryResult(frame, capped is not None, time.monotonic() - start, statement, capped)


@dataclass(frozen=True)
class _Limits:
    deadline: float  # time.monotonic() value
    timeout_s: float
    max_rows: int
    max_bytes: int

    def interrupted(self) -> QueryInterrupted:
        return QueryInterrupted(f"query interrupted after {self.timeout_s:g} s")


def _driver_statement(dialect: sa.Dialect, statement: str, params: dict | None):
    """``(sql, params)`` as the driver takes them; without params the SQL is untouched."""
    if not params:
        return statement, None
    compiled = sa.text(statement).compile(dialect=dialect)
    try:
        values = compiled.construct_params(params)
    except sa.exc.InvalidRequestError as e:
        raise QueryFailed(str(e.args[0])) from e
    if compiled.positional:
        return compiled.string, tuple(values[name] for name in compiled.positiontup)
    return compiled.string, values


def _run_sqlite(conn, statement, params, limits):
    raw = conn.connection.driver_connection
    authorizer = _ReadOnlyAuthorizer()
    raw.set_authorizer(authorizer)
    guard = sqlite_bounds.CallGuard(limits.deadline)
    guard.install(raw)
    raw.set_progress_handler(
        lambda: time.monotonic() > limits.deadline, sqlite_bounds.SQLITE_PROGRESS_STEPS
    )
    cursor = raw.cursor()
    try:
        cursor.execute(statement, params or ())
        columns = [d[0] for d in cursor.description] if cursor.description else None
        return _collect(columns, cursor, limits)
    except MemoryError as e:  # SQLITE_NOMEM: also what SQLITE_LIMIT_VDBE_OP raises
        raise QueryFailed(
            "the statement is too large for the console (more than"
            f" {sqlite_bounds.SQLITE_MAX_PROGRAM} VM steps) or memory ran out"
        ) from e
    except sqlite3.Error as e:
        error = getattr(e, "sqlite_errorname", "")
        if authorizer.denied:
            raise QueryRefused(f"only reading is allowed; refused {authorizer.denied}") from e
        if error == "SQLITE_INTERRUPT" or guard.stopped == "interrupted":
            raise limits.interrupted() from e
        if error == "SQLITE_READONLY":
            raise QueryRefused(f"only reading is allowed; {e}") from e
        if error == "SQLITE_TOOBIG" or guard.stopped == "too big":
            raise QueryFailed(
                "a value or row would exceed the console's"
                f" {sqlite_bounds.SQLITE_MAX_VALUE_BYTES} bytes: string or blob too big"
            ) from e
        raise QueryFailed(str(e).strip()) from e
    finally:
        cursor.close()
        raw.set_progress_handler(None, 0)
        raw.set_authorizer(None)


def _run_postgres(conn, statement, params, limits):
    import psycopg

    raw = conn.connection.driver_connection
    try:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        _set_statement_timeout(conn, limits)
        with _watchdog(raw, limits), raw.cursor() as cursor:
            # Single-row mode: the server streams, the client holds one row at a time beyond
            # what it keeps, and a query stopped at a cap is cancelled rather than drained.
            rows = cursor.stream(statement, params)
            first = next(rows, None)  # the columns are known once the first row is in
            if first is None:  # psycopg forgets an empty stream's columns: ask for them again
                cursor.execute(f"SELECT * FROM (\n{statement}\n) AS _q LIMIT 0", params)
            columns = [d.name for d in cursor.description] if cursor.description else None
            stream = rows if first is None else itertools.chain([first], rows)
            try:
                return _collect(columns, stream, limits)
            finally:
                _close_stream(raw, rows)
    except psycopg.Error as e:
        sqlstate = getattr(e, "sqlstate", None)
        if sqlstate == "57014":  # query_canceled: statement_timeout or the watchdog
            raise limits.interrupted() from e
        if sqlstate in ("25006", "42501"):  # read_only_sql_transaction, insufficient_privilege
            raise QueryRefused(f"only reading is allowed; {str(e).strip()}") from e
        raise QueryFailed(str(e).strip()) from e
    finally:
        conn.rollback()


def _close_stream(raw, rows) -> None:
    """Stop a stream early: cancel the query so its remaining rows are never sent."""
    import psycopg

    if raw.info.transaction_status == psycopg.pq.TransactionStatus.ACTIVE:
        raw.cancel_safe(timeout=2)
    with contextlib.suppress(psycopg.Error):
        rows.close()


@contextlib.contextmanager
def _watchdog(raw, limits: _Limits):
    """Cancel the query from the client shortly after the deadline: statement_timeout is the
    server's clock, and a client slow to take rows (or a server slow to notice) must not
    stretch the limit."""
    delay = max(0.0, limits.deadline - time.monotonic()) + _WATCHDOG_GRACE_S
    timer = threading.Timer(delay, lambda: raw.cancel_safe(timeout=2))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()


def _set_statement_timeout(conn: sa.Connection, limits: _Limits) -> None:
    remaining = limits.deadline - time.monotonic()
    if remaining <= 0:
        raise limits.interrupted()
    # Never 0: a statement_timeout of 0 means no limit at all.
    ms = max(1, math.ceil(remaining * 1000))
    conn.execute(sa.select(sa.func.set_config("statement_timeout", str(ms), True)))


def _collect(columns, rows, limits: _Limits) -> tuple[pd.DataFrame, str | None]:
    """At most ``max_rows`` rows holding at most ``max_bytes``, and which cap stopped them
    (None when the result ended first). Rows are taken one at a time, so nothing beyond the
    kept rows and one more is ever in memory."""
    if columns is None:
        return pd.DataFrame(), None
    kept, size, capped = [], 0, None
    for row in rows:
        if time.monotonic() > limits.deadline + _WATCHDOG_GRACE_S:
            raise limits.interrupted()
        if len(kept) == limits.max_rows:
            capped = ROW_CAP
            break
        size += row_bytes(row)
        if size > limits.max_bytes:
            capped = BYTE_CAP
            break
        kept.append(tuple(row))
    return _frame(columns, kept), capped


def _frame(columns: list[str], rows: list[tuple]) -> pd.DataFrame:
    """The rows as a DataFrame, built column by column and emptying ``rows`` as it goes, so
    the Python values and their pandas copy never both hold the whole result."""
    if not rows:
        return pd.DataFrame(rows, columns=columns)
    data = [list(column) for column in zip(*rows, strict=True)]
    rows.clear()
    parts = []
    for i in range(len(data)):
        parts.append(pd.DataFrame({0: data[i]})[0])  # the constructor's type inference
        data[i] = None
    frame = pd.concat(parts, axis=1, ignore_index=True)
    frame.columns = columns
    return frame


def row_bytes(row) -> int:
    """What a fetched row costs in memory, from above (a non-ASCII str may take 4 bytes a
    character; containers such as PostgreSQL arrays and JSON are measured by their repr)."""
    size = 64
    for value in row:
        if isinstance(value, str):
            size += len(value) if value.isascii() else 4 * len(value)
        elif isinstance(value, bytes | bytearray | memoryview):
            size += len(value)
        elif isinstance(value, list | dict | tuple):
            size += len(repr(value))
        else:
            size += 32
    return size


def arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as Arrow and Parquet take it: every column of mixed Python types (SQLite has no
    fixed column types: ``SELECT 1 UNION ALL SELECT 'a'``) as text, repeated names numbered."""
    safe = frame
    for i in range(frame.shape[1]):  # by position: a result may repeat a column name
        column = frame.iloc[:, i]
        if column.dtype != object or len({type(v) for v in column if v is not None}) < 2:
            continue
        if safe is frame:
            safe = frame.copy(deep=False)
        safe.isetitem(i, column.map(lambda v: None if v is None else str(v)))
    names = [str(name) for name in frame.columns]
    if len(set(names)) < len(names):  # Parquet wants unique names: a, a -> a, a_2
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                names[i] = f"{name}_{seen[name]}"
        safe = safe.set_axis(names, axis=1)
    return safe


def _check_role(conn: sa.Connection) -> None:
    """Refuse a PostgreSQL role that is a superuser, may write a table of the archive's
    schema, or may signal backends or touch server files: a read-only transaction does not
    stop what such a role can do through functions."""
    user, superuser, writable, powers, schema = conn.execute(sa.text(_ROLE_CHECK)).one()
    conn.rollback()
    if superuser:
        why = "it is a superuser"
    elif writable:
        why = f"it may write tables of the archive ({writable})"
    elif powers:
        why = f"it is a member of {powers}"
    else:
        return
    schema = schema or "public"
    raise QueryRoleRefused(
        f"the SQL console will not run as role {user!r}: {why}; connect as a SELECT-only role"
        f" (CREATE ROLE reader LOGIN; GRANT USAGE ON SCHEMA {schema} TO reader;"
        f" GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO reader) or pass"
        " --unsafe-writable-role"
    )


_ROLE_CHECK = """
SELECT current_user, r.rolsuper,
  (SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c
   WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
     AND (has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
          OR has_any_column_privilege(c.oid, 'INSERT, UPDATE'))),
  (SELECT string_agg(g.rolname, ', ' ORDER BY g.rolname) FROM pg_roles g
   WHERE g.rolname IN ('pg_signal_backend', 'pg_read_server_files', 'pg_write_server_files',
                       'pg_execute_server_program')
     AND pg_has_role(g.oid, 'MEMBER')),
  current_schema()
FROM pg_roles r WHERE r.rolname = current_user
"""


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
    if dialect == "postgresql":
        _refuse_functions(sql, tokens)
    semicolons = [i for i, (s, e) in enumerate(tokens) if sql[s:e] == ";"]
    if not semicolons:
        return keyword, sql.strip()
    first_semicolon = semicolons[0]
    if any(sql[s:e] != ";" for s, e in tokens[first_semicolon:]):
        raise QueryRefused("only one statement may run at a time")
    return keyword, sql[: tokens[first_semicolon][0]].strip()


#: PostgreSQL functions the console refuses by name: they take locks that outlive a query or
#: that writers wait on, signal other sessions, reload the server's configuration, touch large
#: objects, server files or other databases, change settings beyond the transaction, advance
#: sequences, or run SQL given as a string (which would hide a name from this check).
PG_REFUSED_FUNCTIONS = frozenset(
    (  # noqa: SIM905 - a word list reads better than thirty quoted names
        "pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile pg_promote "
        "pg_switch_wal pg_log_backend_memory_contexts pg_notify set_config nextval setval "
        "pg_stat_file pg_export_snapshot txid_current pg_current_xact_id pg_wal_replay_pause "
        "pg_wal_replay_resume pg_sequence_last_value query_to_xml query_to_xmlschema "
        "query_to_xml_and_xmlschema cursor_to_xml cursor_to_xmlschema ts_stat "
        "pg_import_system_collations pg_copy_physical_replication_slot "
        "pg_copy_logical_replication_slot"
    ).split()
)
PG_REFUSED_PREFIXES = (
    "pg_advisory",
    "pg_try_advisory",
    "lo_",
    "dblink",
    "pg_stat_reset",
    "pg_replication_",
    "pg_create_",
    "pg_drop_",
    "pg_logical_",
    "pg_backup_",
    "pg_ls_",
    "pg_read_",
    "pg_file",
)


def _refuse_functions(sql: str, tokens: list[tuple[int, int]]) -> None:
    """QueryRefused if the statement calls a function of PG_REFUSED_FUNCTIONS or
    PG_REFUSED_PREFIXES, quoted or not, schema-qualified or not."""
    for (start, end), (next_start, next_end) in itertools.pairwise(tokens):
        if sql[next_start:next_end] != "(":
            continue
        name = sql[start:end]
        if name.startswith('"'):
            if sql[max(0, start - 2) : start].lower() == "u&":
                raise QueryRefused('U&"..." identifiers are not allowed in the console')
            name = name[1:-1].replace('""', '"')
        else:
            name = name.lower()
        if name in PG_REFUSED_FUNCTIONS or name.startswith(PG_REFUSED_PREFIXES):
            raise QueryRefused(
                f"{name}() is refused in the console: it has effects beyond reading"
                " (locks, signals, settings, sequences, server files or dynamic SQL)"
            )


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
