"""The archive: save snapshots, load them back exactly, list runs."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

import pandas as pd
import sqlalchemy as sa

from sanctum_store import codec, db, migrate, reader, schema, summary
from sanctum_store.errors import RunNotFound, SnapshotInvalid, SnapshotNotFound
from sanctum_store.forms import to_utc, utcnow
from sanctum_store.labels import check_indexed_text
from sanctum_store.models import TABLES
from sanctum_store.persist import Persister
from sanctum_store.status import (
    ENDED,
    RunStatus,
    check_imported,
    imported_status,
    status_expression,
)

log = logging.getLogger(__name__)


class WriteItem(NamedTuple):
    """A snapshot ready to store (validated and normalized: make one with :meth:`of`), under
    which run, and when the writer saw it."""

    tree: dict
    run_id: str | None = None
    seen_at: datetime | None = None  # UTC; default: now
    group_id: str | None = None  # cohort label when the snapshot carries none

    @classmethod
    def of(
        cls,
        snapshot: Any,
        run_id: str | None = None,
        seen_at: datetime | None = None,
        group_id: str | None = None,
        *,
        how_to_name: str = "pass run_id= to save it",
    ) -> WriteItem:
        """Validate a snapshot (any accepted form) for storing: its tree (codec.normalize), a
        run id (``how_to_name`` says how to give one), and text the archive indexes within
        its limit. SnapshotInvalid names the field otherwise."""
        tree = codec.normalize(snapshot)
        if not (run_id or tree["run_id"]):
            raise SnapshotInvalid("run_id", f"snapshot has no run_id: {how_to_name}")
        check_indexed_text(tree, run_id, group_id)
        return cls(tree, run_id, seen_at, group_id)


#: Finite floats at the edges of what every database computes with (past 1e300, below
#: 1e-300), and integers past a double's exact range: suspects when a value is refused.
_EDGE = (1e300, 1e-300, 2**53)


def _suspects(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Paths of the extreme values in a snapshot tree (see :data:`_EDGE`), in tree order."""
    if isinstance(value, dict):
        for key, item in value.items():
            named = isinstance(key, str) and key.isidentifier()
            yield from _suspects(
                item, (f"{path}.{key}" if path else key) if named else f"{path}[{key!r}]"
            )
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _suspects(item, f"{path}[{i}]")
    elif type(value) is float and math.isfinite(value):
        if abs(value) >= _EDGE[0] or 0 < abs(value) < _EDGE[1]:
            yield path, value
    elif type(value) is int and abs(value) > _EDGE[2]:
        yield path, value


def refused_value(items: list[WriteItem], error: sa.exc.DBAPIError) -> SnapshotInvalid:
    """The SnapshotInvalid for a value the database refused: the first extreme value of the
    batch as its path (the database names none), the database's own one-line reason."""
    reason = str(getattr(error, "orig", None) or error).splitlines()[0]
    for position, item in enumerate(items):
        for path, value in _suspects(item.tree):
            where = path if len(items) == 1 else f"snapshot {position + 1} of the batch: {path}"
            return SnapshotInvalid(where, f"the database refused {value!r}: {reason}")
    where = "" if len(items) == 1 else "a snapshot of the batch"
    return SnapshotInvalid(where, f"the database refused a value: {reason}")


class _DryRun(Exception):
    """Rolls back a dry run's transaction."""


class Stored(NamedTuple):
    """What :meth:`Archive.store_batch` did with one snapshot: its id, and ``kind``:
    ``"new"``, ``"present"`` (exactly this snapshot was stored already: nothing written) or
    ``"same_moment"`` (stored beside another of the run's with the same ``captured_at`` but
    other content)."""

    snapshot_id: int
    kind: str


class Archive:
    """A run archive on SQLite (a path) or PostgreSQL (a SQLAlchemy URL).

    A fresh archive is created at the current schema; an archive at an older schema revision
    is refused with the command that upgrades it. Safe to share between threads: saves are
    serialized, reads use their own connections.
    """

    def __init__(self, url: str | None = None, *, create: bool = True):
        self.url = db.resolve_url(url)
        create = create and not db.is_read_only(self.url)
        # create=False never makes a file: a missing archive is an error, not a new one.
        db.check_location(self.url, create=create)
        self.engine = db.create_engine(self.url)
        self._write_engine = db.for_writing(self.engine)
        try:
            if create:
                migrate.ensure_schema(self._write_engine)
            else:
                migrate.check(self.engine)
        except BaseException:
            self.engine.dispose()  # closed cleanly: no -wal or -shm file left behind
            raise
        self._persister = Persister()
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------------
    # Writing
    # ----------------------------------------------------------------------------------------

    def save(self, snapshot: Any, run_id: str | None = None) -> int:
        """Store one snapshot in one transaction; returns its snapshot id.

        ``run_id`` defaults to the snapshot's own. Saving a snapshot already stored for the run
        (same ``captured_at`` and content; same content when it has none) returns the stored
        id and writes nothing; one with the ``captured_at`` of a stored one but other content
        is stored beside it. Invalid input raises :class:`SnapshotInvalid` and stores nothing,
        also when the database refuses one of its values.
        """
        return self.save_batch([WriteItem.of(snapshot, run_id)])[0]

    def save_batch(self, items: list[WriteItem]) -> list[int]:
        """Store snapshots (made by :meth:`WriteItem.of`) in one transaction; their ids."""
        return [stored.snapshot_id for stored in self.store_batch(items)]

    def store_batch(self, items: list[WriteItem], *, dry_run: bool = False) -> list[Stored]:
        """Store snapshots (made by :meth:`WriteItem.of`) in one transaction (the writer's
        path); what happened to each. A value the database refuses (SQLSTATE class 22, data
        exception) raises :class:`SnapshotInvalid` naming the field it suspects, and stores
        nothing of the batch. ``dry_run`` rolls the transaction back: nothing is stored,
        whatever happens."""
        try:
            try:
                return self._store_batch(items, dry_run)
            except sa.exc.IntegrityError:
                # What this archive remembers of a run is stale when another archive stored
                # some of the run since (it collides on a sequence or a record's key): the
                # failed transaction forgot it; once more, looking everything up.
                return self._store_batch(items, dry_run)
        except sa.exc.DataError as e:
            raise refused_value(items, e) from e

    def _store_batch(self, items: list[WriteItem], dry_run: bool) -> list[Stored]:
        out = []
        with self._lock:
            touched: dict[str, list] = {}
            try:
                with self._write_engine.begin() as conn:
                    for item in items:
                        rid = item.run_id or item.tree["run_id"]
                        snapshot_id, kind = self._persister.save(conn, item.tree, rid, item.seen_at)
                        out.append(Stored(snapshot_id, kind))
                        entry = touched.setdefault(rid, [None, 0])
                        entry[0] = item
                        entry[1] += 0 if kind == "present" else 1
                    for rid, (item, added) in touched.items():
                        state = self._persister.runs[rid]
                        self._persister.touch_run(
                            conn,
                            state,
                            item.tree,
                            added,
                            seen_at=item.seen_at,
                            group_id=item.group_id,
                        )
                        if state.seeds_due:  # the batches that ended; the running one waits
                            summary.refresh_seeds(
                                conn, [state.run_pk], before={state.run_pk: state.newest_batch}
                            )
                            state.seeds_due = False
                    if dry_run:
                        raise _DryRun
            except BaseException as e:
                self._persister.forget()  # remembered rows may have been rolled back
                if not isinstance(e, _DryRun):
                    raise
        return out

    @contextlib.contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A write transaction beside the training writer's path (saved experiments), taken
        in turn with the archive's saves."""
        with self._lock, self._write_engine.begin() as conn:
            yield conn

    def heartbeat(self, run_ids: list[str], at: datetime | None = None) -> None:
        """Record that the runs' writer is alive (without a snapshot)."""
        runs = TABLES["runs"]
        with self._lock, self._write_engine.begin() as conn:
            conn.execute(
                sa.update(runs)
                .where(runs.c.run_id.in_(run_ids))
                .values(heartbeat_at=to_utc(at) if at else utcnow())
            )

    def finish_run(
        self, run_id: str, status: str = RunStatus.FINISHED, at: datetime | None = None
    ) -> None:
        """Mark a run as ended (``finished``, or ``failed`` when training raised), then derive
        its seeds (:func:`summary.refresh_seeds`) so that questions about them find them ready."""
        if status not in ENDED:
            raise ValueError(f"a run ends as one of {', '.join(ENDED)}, not {status!r}")
        status = RunStatus(status).value
        runs = TABLES["runs"]
        now = to_utc(at) if at else utcnow()
        with self._lock:
            with self._write_engine.begin() as conn:
                pk = conn.execute(
                    sa.update(runs)
                    .where(runs.c.run_id == run_id)
                    .values(status=status, finished_at=now, heartbeat_at=now, last_seen=now)
                    .returning(runs.c.id)
                ).scalar()
            if pk is not None:
                self._derive_seeds(pk, run_id)

    def finish_import(self, run_id: str, status: str = "auto") -> str | None:
        """End an imported run as its snapshots say it was: ``status`` is one of
        :data:`status.IMPORTED`, or "auto" (:func:`status.imported_status` of its last snapshot:
        ``finished`` when it reached the last batch, else ``incomplete``). Its first and last
        seen are its snapshots' earliest and latest ``captured_at`` (all it stores, so a later
        import of more snapshots recomputes them), its heartbeat and end the latest; then its
        seeds are derived, as :meth:`finish_run` does. Returns the status stored (None: no
        such run)."""
        check_imported(status)
        runs, snapshots = TABLES["runs"], TABLES["snapshots"]
        with self._lock:
            with self._write_engine.begin() as conn:
                pk = conn.execute(sa.select(runs.c.id).where(runs.c.run_id == run_id)).scalar()
                if pk is None:
                    return None
                of_run = snapshots.c.run_pk == pk
                first, last = conn.execute(
                    sa.select(
                        sa.func.min(snapshots.c.captured_ts), sa.func.max(snapshots.c.captured_ts)
                    ).where(of_run)
                ).one()
                if first is None:
                    return None
                if status == "auto":
                    latest = conn.execute(
                        sa.select(snapshots.c.current_batch, snapshots.c.max_batches)
                        .where(of_run)
                        .order_by(snapshots.c.captured_ts.desc(), snapshots.c.id.desc())
                        .limit(1)
                    ).one()
                    status = imported_status(*latest)
                status = RunStatus(status).value
                conn.execute(
                    sa.update(runs)
                    .where(runs.c.id == pk)
                    .values(
                        status=status,
                        first_seen=first,
                        last_seen=last,
                        heartbeat_at=last,
                        finished_at=last,
                    )
                )
            self._derive_seeds(pk, run_id)
        return status

    def _derive_seeds(self, pk: int, run_id: str) -> None:
        """An ended run's seeds, every batch's (called holding the lock)."""
        try:
            with self._write_engine.begin() as conn:
                summary.refresh_seeds(conn, [pk])
        except sa.exc.DBAPIError as e:  # a cache: the first question about them fills it
            log.warning("could not derive the seeds of ended run %r: %s", run_id, e)

    def delete_run(self, run_id: str) -> None:
        """Delete a run and everything stored for it."""
        runs = TABLES["runs"]
        with self._lock, self._write_engine.begin() as conn:
            deleted = conn.execute(sa.delete(runs).where(runs.c.run_id == run_id)).rowcount
        self._persister.forget(run_id)
        if not deleted:
            raise RunNotFound(f"no run {run_id!r} in the archive")

    # ----------------------------------------------------------------------------------------
    # Reading
    # ----------------------------------------------------------------------------------------

    def _run_pk(self, conn: sa.Connection, run_id: str) -> int:
        runs = TABLES["runs"]
        pk = conn.execute(sa.select(runs.c.id).where(runs.c.run_id == run_id)).scalar()
        if pk is None:
            raise RunNotFound(f"no run {run_id!r} in the archive")
        return pk

    def snapshot_ids(self, run_id: str) -> list[int]:
        """The run's snapshot ids in time order."""
        snapshots = TABLES["snapshots"]
        with self.engine.connect() as conn:
            pk = self._run_pk(conn, run_id)
            query = (
                sa.select(snapshots.c.id)
                .where(snapshots.c.run_pk == pk)
                .order_by(snapshots.c.captured_ts, snapshots.c.id)
            )
            return list(conn.execute(query).scalars())

    def _resolve(self, conn: sa.Connection, run_id: str, at: int | datetime | None) -> int:
        snapshots = TABLES["snapshots"]
        pk = self._run_pk(conn, run_id)
        query = sa.select(snapshots.c.id).where(snapshots.c.run_pk == pk)
        if isinstance(at, bool):
            raise TypeError("at must be a snapshot id, a datetime or None")
        if isinstance(at, int):
            found = conn.execute(query.where(snapshots.c.id == at)).scalar()
            if found is None:
                raise SnapshotNotFound(f"run {run_id!r} has no snapshot {at}")
            return found
        if isinstance(at, datetime):
            query = query.where(snapshots.c.captured_ts <= to_utc(at))
        elif at is not None:
            raise TypeError("at must be a snapshot id, a datetime or None")
        found = conn.execute(
            query.order_by(snapshots.c.captured_ts.desc(), snapshots.c.id.desc()).limit(1)
        ).scalar()
        if found is None:
            raise SnapshotNotFound(
                f"run {run_id!r} has no snapshot" + (f" at or before {at}" if at else "")
            )
        return found

    def load_tree(self, run_id: str, at: int | datetime | None = None) -> dict:
        with self.engine.connect() as conn:
            return reader.load_tree(conn, self._resolve(conn, run_id, at))

    def load(self, run_id: str, at: int | datetime | None = None) -> schema.SanctumSnapshot:
        """The stored snapshot: ``at`` is a snapshot id, a datetime (the last snapshot at or
        before it) or None (the latest)."""
        return codec.to_schema(self.load_tree(run_id, at))

    def load_dict(self, run_id: str, at: int | datetime | None = None) -> dict:
        """:meth:`load` as a JSON-ready dict in ``dataclasses.asdict`` form, with every unknown
        field where it appeared."""
        return codec.to_json(self.load_tree(run_id, at))

    def runs(self, now: datetime | None = None) -> pd.DataFrame:
        """Every run, newest first: identity, cohort labels, status and progress.

        A running run's status comes from its heartbeat's age at ``now`` (default: the
        current time; a past or future moment asks what the listing said or will say then).
        """
        runs = TABLES["runs"]
        if now is not None:
            now = to_utc(now)
        query = sa.select(
            runs.c.run_id,
            runs.c.task_name,
            runs.c.reward_mode,
            runs.c.group_id,
            status_expression(runs, now).label("status"),
            runs.c.snapshot_count,
            runs.c.max_batches,
            runs.c.first_seen,
            runs.c.last_seen,
            runs.c.heartbeat_at,
            runs.c.finished_at,
            runs.c.writer,
        ).order_by(runs.c.last_seen.desc(), runs.c.id.desc())
        with self.engine.connect() as conn:
            return pd.DataFrame(
                conn.execute(query).mappings().all(), columns=list(query.selected_columns.keys())
            )

    # ----------------------------------------------------------------------------------------

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Archive({sa.make_url(self.url).render_as_string(hide_password=True)!r})"
