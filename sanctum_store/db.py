"""Engines: resolving the archive location, SQLite pragmas, PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sanctum_store.errors import ArchiveUnavailable, LockTimeout

DEFAULT_PATH = "sanctum.db"
ENV_VAR = "SANCTUM_DB"

#: How long a SQLite connection waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


#: URL schemes that mean PostgreSQL through psycopg 3, the driver sanctum-store installs.
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
#: What the first bytes of every SQLite database file are.
_SQLITE_HEADER = b"SQLite format 3\x00"
URL_HELP = "a file path, sqlite:///PATH or postgresql+psycopg://USER@HOST/DATABASE"


def resolve_url(db: str | None = None) -> str:
    """The archive's SQLAlchemy URL: ``db`` (path or URL), else ``$SANCTUM_DB``, else
    ``./sanctum.db``. A plain path becomes an absolute ``sqlite:///`` URL; ``postgresql://``
    (and ``postgres://``) mean psycopg 3."""
    location = db or os.environ.get(ENV_VAR) or DEFAULT_PATH
    for scheme in _POSTGRES_SCHEMES:
        if location.startswith(scheme):
            return "postgresql+psycopg://" + location[len(scheme) :]
    if "://" in location:
        return location
    return f"sqlite:///{Path(location).expanduser().resolve()}"


def display(url: str | sa.URL) -> str:
    """Where an archive is, for messages: the file of a SQLite URL, else the URL without its
    password."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return str(url)
    path = sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
    return str(path) if path else parsed.render_as_string(hide_password=True)


def check_location(url: str, *, create: bool) -> None:
    """Refuse, in one line naming it, a location that cannot hold an archive: not a URL, a
    database sanctum-store does not speak or whose driver is not installed, a directory, a
    file that is not SQLite, or (unless ``create``) a SQLite file that does not exist. Touches
    nothing: a refused location is left as it was."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ArchiveUnavailable(f"{url!r} is not a database URL: use {URL_HELP}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ArchiveUnavailable(
            f"{display(parsed)}: sanctum-store archives are SQLite or PostgreSQL, not "
            f"{backend!r}: use {URL_HELP}"
        )
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, sa.exc.NoSuchModuleError):
        raise ArchiveUnavailable(
            f"{display(parsed)}: the driver {parsed.drivername!r} is not installed: use "
            "postgresql+psycopg:// (pip install 'sanctum-store[postgres]')"
        ) from None
    path = sqlite_path(parsed) if backend == "sqlite" else None
    if path is None:
        return
    if path.is_dir():
        raise ArchiveUnavailable(f"{path} is a directory, not an archive")
    if not path.exists():
        if create:
            return
        raise ArchiveUnavailable(
            f"no archive at {path} (create one with sanctum-store demo or db upgrade)"
        )
    try:
        with path.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as e:
        raise ArchiveUnavailable(f"{path} cannot be read: {e.strerror}") from None
    if header and header != _SQLITE_HEADER:
        raise ArchiveUnavailable(f"{path} is not an archive: it is not a SQLite database file")


@contextlib.contextmanager
def as_found(url: str) -> Iterator[None]:
    """Leave a SQLite archive's folder as it was: a read-only connection to a WAL archive makes
    its ``-wal`` and ``-shm`` files but may not remove them when it closes, so if they were not
    there before, a brief ordinary connection (the last to close removes them) tidies up."""
    path = sqlite_path(url) if is_sqlite(url) else None
    sidecars = [Path(f"{path}-wal"), Path(f"{path}-shm")] if path else []
    before = [p.exists() for p in sidecars]
    try:
        yield
    finally:
        if path and not any(before) and any(p.exists() for p in sidecars):
            with contextlib.suppress(sqlite3.Error):
                connection = sqlite3.connect(path)
                connection.execute("PRAGMA schema_version")  # opens the WAL, then closes it
                connection.close()


def unavailable(url: str | sa.URL, error: sa.exc.DBAPIError) -> ArchiveUnavailable:
    """A driver's refusal to connect, as one line naming the archive."""
    reason = str(error.orig or error).strip().splitlines()[0]
    return ArchiveUnavailable(f"cannot open the archive at {display(url)}: {reason}")


def is_sqlite(url: str | sa.URL) -> bool:
    return sa.make_url(url).get_backend_name() == "sqlite"


def is_read_only(url: str | sa.URL) -> bool:
    """A SQLite URL that asks to open its archive read-only (``?mode=ro``)."""
    parsed = sa.make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.query.get("mode") == "ro"


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
    options = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    if is_read_only(url):
        # Opened read-only (mode=ro): never written, never created, whatever the file allows.
        uri = f"file:{quote(str(path))}?mode=ro"
        engine = sa.create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, **options), **kwargs
        )
    else:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args=options, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def use_wal(engine: Engine) -> None:
    """Switch a SQLite archive's file to WAL, where readers never block the writer (a no-op
    once it is: the mode is kept in the file). Done when an archive is created or upgraded,
    never on merely opening one: opening another program's database must not change it.

    When several processes open a fresh file at once, SQLite refuses the switch with "database
    is locked" at once, without waiting on the busy timeout; wait and retry, as the busy
    handler would have.
    """
    if engine.dialect.name != "sqlite" or sqlite_path(engine.url) is None:
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    # The driver connection itself: outside any transaction, where the mode can change.
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        while True:
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    finally:
        connection.close()


def for_writing(engine: Engine) -> Engine:
    """The same engine (and pool), with transactions that take SQLite's write lock at BEGIN."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


#: How long a PostgreSQL advisory lock is waited for before the holder is named in an error.
LOCK_WAIT_S = 600.0


def advisory_xact_lock(
    connection: sa.Connection, key: int, what: str, *, wait_s: float = LOCK_WAIT_S
) -> None:
    """Hold PostgreSQL advisory lock ``key`` for the rest of the transaction, waiting at most
    ``wait_s`` seconds: whoever holds it past that is named in a LockTimeout (a session that
    never lets go must not leave the caller waiting forever)."""
    deadline = time.monotonic() + wait_s
    pause = 0.05
    while True:
        taken = connection.execute(sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
        if taken.scalar():
            return
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"{what} waited {wait_s:g} s for its lock, held by {_holder(connection, key)}"
            )
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def _holder(connection: sa.Connection, key: int) -> str:
    """Who holds advisory lock ``key``: role, pid, application and since when."""
    row = connection.execute(
        sa.text(
            "SELECT a.pid, a.usename, a.application_name, a.xact_start FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
            " AND l.granted AND l.database = (SELECT oid FROM pg_database"
            " WHERE datname = current_database())"
            " AND ((l.classid::bigint << 32) | l.objid::bigint) = :key LIMIT 1"
        ),
        {"key": key},
    ).first()
    if row is None:
        return "another session (gone now)"
    pid, user, app, since = row
    return f"role {user!r}, pid {pid}" + (f", {app!r}" if app else "") + f", since {since}"
