"""Engines: resolving the archive location, SQLite pragmas, PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

DEFAULT_PATH = "sanctum.db"
ENV_VAR = "SANCTUM_DB"

#: How long a SQLite connection waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def resolve_url(db: str | None = None) -> str:
    """The archive's SQLAlchemy URL: ``db`` (path or URL), else ``$SANCTUM_DB``, else
    ``./sanctum.db``. A plain path becomes an absolute ``sqlite:///`` URL."""
    location = db or os.environ.get(ENV_VAR) or DEFAULT_PATH
    if "://" in location:
        return location
    return f"sqlite:///{Path(location).expanduser().resolve()}"


def is_sqlite(url: str | sa.URL) -> bool:
    return sa.make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str | sa.URL) -> Path | None:
    """The database file of a SQLite URL (None for in-memory)."""
    database = sa.make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def create_engine(url: str, **kwargs) -> Engine:
    """An engine for the archive, with the backend's settings applied once per connection.

    SQLite: WAL journal, foreign keys on, a busy timeout, ``synchronous=NORMAL`` (safe with
    WAL). Reads begin deferred transactions, which never block writers; engines made with
    :func:`for_writing` begin with ``BEGIN IMMEDIATE`` and take the write lock up front, so two
    writers queue on the busy timeout instead of failing on a lock upgrade.
    PostgreSQL (psycopg 3): connections are checked before use, so a restarted server costs
    one retry, not an error; statements are planned for their parameters each time rather
    than as psycopg's prepared generic plans, which a table planned before its first ANALYZE
    (a new archive, autovacuum off) would keep for the life of the writer's connection, its
    lookups slowing down as the run grows.
    """
    url = resolve_url(url)
    if not is_sqlite(url):
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("connect_args", {"prepare_threshold": None})
        return sa.create_engine(url, **kwargs)

    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        **kwargs,
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if path is not None:
            _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _use_wal(cursor) -> None:
    """Switch the database file to WAL (a no-op once it is: the mode is kept in the file).

    When several processes open a fresh file at once, SQLite refuses the switch with "database
    is locked" at once, without waiting on the busy timeout; wait and retry, as the busy
    handler would have.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def for_writing(engine: Engine) -> Engine:
    """The same engine (and pool), with transactions that take SQLite's write lock at BEGIN."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")
