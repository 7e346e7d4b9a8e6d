"""Alembic, configured in code: create, check and upgrade an archive's schema.

The revisions live in the repository's ``migrations/`` folder, which the wheel ships as
``sanctum_store.migrations``, so upgrades work from an installed package.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from sanctum_store import db, summary
from sanctum_store.errors import ArchiveOutdated, ArchiveTooNew, ArchiveUnavailable

# Any fixed 64-bit number: serializes concurrent migrations on one PostgreSQL database.
_PG_LOCK_KEY = 0x53414E4354554D


def _script_location() -> str:
    return str(resources.files("sanctum_store.migrations"))


def alembic_config(connection: Connection | None = None, target_metadata=None) -> Config:
    config = Config()
    config.set_main_option("script_location", _script_location())
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = target_metadata
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _lock(connection: Connection) -> None:
    """Hold the database's migration lock for the rest of the transaction."""
    if connection.dialect.name == "postgresql":
        db.advisory_xact_lock(connection, _PG_LOCK_KEY, "the schema migration")
    # SQLite: the transaction began with BEGIN IMMEDIATE and already holds the write lock.


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade the archive to ``revision``; returns (revision before, revision after).

    Safe when several processes open a fresh archive at once: the migration runs under the
    database's write lock and re-reads the revision once it holds it.
    """
    db.use_wal(engine)
    with db.for_writing(engine).begin() as connection:
        _lock(connection)
        before = current_revision(connection)
        if before not in (None, *known_revisions()):
            raise ArchiveTooNew(
                f"archive is at schema revision {before}, unknown to sanctum-store "
                f"(head {head_revision()}): upgrade sanctum-store"
            )
        command.upgrade(alembic_config(connection), revision)
        after = current_revision(connection)
        if before is not None and after == head_revision():
            summary.derive_seeds(connection)  # what questions would otherwise derive each time
    return before, after


def _state(engine: Engine) -> tuple[str | None, list[str]]:
    """(schema revision, the database's tables): its first connection, whose refusal is an
    :class:`ArchiveUnavailable` naming the archive."""
    try:  # a reading transaction, even on a writer's engine: it must not wait for the lock
        with engine.execution_options(sqlite_begin="DEFERRED").connect() as connection:
            revision = current_revision(connection)
            tables = [] if revision else sorted(sa.inspect(connection).get_table_names())
    except sa.exc.DBAPIError as e:
        raise db.unavailable(engine.url, e) from e  # the cause tells a writer to retry
    return revision, tables


def foreign_tables(engine: Engine) -> list[str]:
    """The tables of a database that is not a sanctum-store archive (no schema revision);
    empty for an archive or an empty database."""
    return _state(engine)[1]


def check(engine: Engine, *, where: str | None = None) -> str:
    """The archive's revision; raises ArchiveOutdated / ArchiveTooNew if it is not head, and
    ArchiveUnavailable if it is no archive at all (empty, or another program's database).
    ``where``: the archive's URL for messages (default: the engine's)."""
    revision, tables = _state(engine)
    head = head_revision()
    if revision == head:
        return revision
    where = db.display(where or engine.url)
    if revision is None and tables:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise ArchiveUnavailable(
            f"{where} is not a sanctum-store archive: it holds tables of its own ({shown})"
        )
    if revision is None:
        raise ArchiveUnavailable(
            f"no archive at {where} yet: it is an empty database (create one with "
            "sanctum-store demo or db upgrade)"
        )
    if revision in known_revisions():
        raise ArchiveOutdated(
            f"archive {where} is at schema revision {revision}, this sanctum-store needs "
            f"{head}: run `sanctum-store db upgrade --db {where}`"
        )
    raise ArchiveTooNew(
        f"{where} was written by a newer sanctum-store: its schema revision {revision} is "
        f"unknown to this one (which knows up to {head}): upgrade sanctum-store"
    )


def ensure_schema(engine: Engine) -> None:
    """Create a fresh archive at head; refuse (with the command to run) an outdated one, and
    another program's database."""
    revision, tables = _state(engine)
    if revision is None and not tables:
        upgrade(engine)
        return
    check(engine)


def backup_sqlite(url: str) -> Path | None:
    """Copy a SQLite archive aside before a migration; returns the copy's path."""
    path = db.sqlite_path(url) if db.is_sqlite(url) else None
    if path is None or not path.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.bak-{stamp}")
    source = sa.create_engine(f"sqlite:///{path}")
    # The SQLite backup API copies a consistent image even with a WAL and other readers.
    with source.connect() as connection:
        raw = connection.connection.dbapi_connection
        import sqlite3

        with sqlite3.connect(target) as destination:
            raw.backup(destination)
    source.dispose()
    if not target.exists():
        shutil.copy2(path, target)
    return target
