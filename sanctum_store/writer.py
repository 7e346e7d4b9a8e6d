"""Recording a live training run: a writer thread beside the training loop.

:class:`SnapshotWriter` takes snapshots from the training thread and returns at once; one
background thread owns the archive's only write connection, drains a bounded queue and stores
several snapshots per transaction. Nothing it does can raise into the training loop: a full
queue applies a policy (block up to a timeout, or drop the oldest), storage errors are retried
with backoff, a snapshot that cannot be stored is logged with its field path and skipped.

:func:`record` polls a snapshot source (esper's ``SanctumBackend.get_snapshot`` or
``get_all_snapshots``) every few seconds and writes what it returns.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa

from sanctum_store import codec, db, schema
from sanctum_store.archive import Archive, Stored, WriteItem
from sanctum_store.errors import ArchiveUnavailable, SnapshotInvalid

log = logging.getLogger(__name__)

_SNAPSHOT_FIELDS = frozenset(f.name for f in codec.class_info(schema.SanctumSnapshot).fields)


@dataclass(frozen=True)
class WriterStats:
    """A writer's counters. ``lag_seconds`` is the age of the oldest snapshot still queued.

    Every snapshot handed over ends in exactly one of ``written`` (stored by this writer),
    ``duplicates`` (exactly a snapshot the run already stores: nothing to add), ``dropped``
    (never tried: queue full, or closed) and ``failed`` (refused, or its archive lost).
    ``same_moment`` counts the written snapshots whose ``captured_at`` equals one the run
    already stored with other content (stored beside it). ``reconnects``: connections
    opened afresh after a storage error. ``archive_lost`` says what happened when the SQLite
    file the writer opened was deleted or replaced under it (from then on nothing is stored).
    """

    written: int
    dropped: int
    retried: int
    failed: int
    queue_depth: int
    lag_seconds: float
    alive: bool
    last_error: str | None
    duplicates: int = 0
    same_moment: int = 0
    reconnects: int = 0
    archive_lost: str | None = None


class _Queued(NamedTuple):
    snapshot: Any
    run_id: str | None
    seen_at: datetime | None
    group_id: str | None
    queued_at: float


#: PostgreSQL errors worth retrying, by SQLSTATE (class or code): connection exceptions,
#: transaction rollbacks (deadlock, serialization), insufficient resources, operator
#: intervention (shutdown, restart), system errors, lock not available. Any other server error
#: (a value too large for an index, say) fails the same way on every try.
_PG_TRANSIENT = ("08", "40", "53", "57", "58", "55P03")


def is_transient(error: BaseException) -> bool:
    """Storage errors worth retrying: locks, busy databases, lost or refused connections."""
    if isinstance(error, ArchiveUnavailable):
        # Refused while opening: worth retrying if the database's own refusal was.
        return error.__cause__ is not None and is_transient(error.__cause__)
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    # psycopg maps some permanent errors (program_limit_exceeded) to OperationalError too;
    # retrying those would block every later snapshot behind one that can never be stored.
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(_PG_TRANSIENT)
    return isinstance(
        error,
        (
            sa.exc.OperationalError,
            sa.exc.InterfaceError,
            sa.exc.TimeoutError,
            ConnectionError,
            TimeoutError,
        ),
    )


class SnapshotWriter:
    """Persist snapshots from a live training loop without slowing it down.

    ``write()`` hands a snapshot over and returns at once; the caller promises not to mutate
    it afterwards. With ``copy=True`` the writer takes its own copy of each snapshot on a
    thread of its own, right away (never behind database work), and the caller may mutate the
    snapshot again once :meth:`copied` returns; the training thread never pays for the copy.
    When the queue is full, ``on_full="block"`` waits up to ``block_timeout`` seconds and then
    drops the new snapshot, ``on_full="drop_oldest"`` drops the oldest queued one; either way
    it is counted in ``stats.dropped`` and logged, never raised. If the process dies, at most
    the snapshots still in memory are lost: ``queue_size`` queued plus ``batch_size`` in flight.
    """

    def __init__(
        self,
        db: str | None = None,
        run_id: str | None = None,
        *,
        queue_size: int = 256,
        on_full: Literal["block", "drop_oldest"] = "block",
        block_timeout: float = 1.0,
        batch_size: int = 16,
        copy: bool = False,
        heartbeat_every: float = 15.0,
        retry_backoff: tuple[float, float] = (0.05, 5.0),
        clock: Callable[[], datetime] | None = None,
    ):
        if on_full not in ("block", "drop_oldest"):
            raise ValueError(f"on_full must be 'block' or 'drop_oldest', got {on_full!r}")
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be at least 1")
        self.db = db
        self.run_id = run_id
        self.queue_size = queue_size
        self.on_full = on_full
        self.block_timeout = block_timeout
        self.batch_size = batch_size
        self.copy = copy
        self.heartbeat_every = heartbeat_every
        self.retry_backoff = retry_backoff
        self._clock = clock

        self._queue: deque[_Queued] = deque()  # ready to store (copied, when copy=True)
        self._uncopied: deque[_Queued] = deque()  # copy=True: handed over, not copied yet
        self._copying = False
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closing = False
        self._abandon = threading.Event()  # close() gave up waiting: stop retrying
        self._archive: Archive | None = None
        self._file: tuple[str, tuple[int, int]] | None = None  # SQLite file, (device, inode)
        self._lost: str | None = None
        self._runs: set[str] = set()
        self._written = self._dropped = self._retried = self._failed = 0
        self._duplicates = self._same_moment = self._reconnects = 0
        self._last_error: str | None = None
        self._last_warning: dict[str, float] = {}

        self._thread = threading.Thread(target=self._run, name="sanctum-writer", daemon=True)
        self._thread.start()
        self._copier: threading.Thread | None = None
        if copy:
            self._copier = threading.Thread(
                target=self._take_copies, name="sanctum-writer-copy", daemon=True
            )
            self._copier.start()
        atexit.register(_flush_at_exit, weakref.ref(self))

    # ----------------------------------------------------------------------------------------
    # The training thread's side
    # ----------------------------------------------------------------------------------------

    def write(
        self,
        snapshot: Any,
        *,
        run_id: str | None = None,
        at: datetime | None = None,
        group_id: str | None = None,
    ) -> bool:
        """Queue a snapshot; returns False if it was dropped. Never raises.

        ``run_id`` overrides the writer's and the snapshot's own; ``at`` is the time the
        archive records as the run's last sign of life (default: now).
        """
        try:
            if at is None and self._clock is not None:
                at = self._clock()
            item = _Queued(snapshot, run_id or self.run_id, at, group_id, time.monotonic())
            with self._cond:
                if self._closing:
                    self._dropped += 1
                    self._warn("closed", "writer is closed: snapshot dropped")
                    return False
                if self._held() >= self.queue_size:
                    if self.on_full == "drop_oldest":
                        (self._queue or self._uncopied).popleft()
                        self._dropped += 1
                        self._warn("full", "queue full: dropped the oldest queued snapshot")
                    elif (
                        not self._cond.wait_for(
                            lambda: self._held() < self.queue_size or self._closing,
                            timeout=self.block_timeout,
                        )
                        or self._closing
                    ):
                        self._dropped += 1
                        self._warn("full", f"queue full for {self.block_timeout} s: dropped")
                        return False
                (self._uncopied if self.copy else self._queue).append(item)
                self._cond.notify_all()
            return True
        except Exception as e:  # the training loop must never see the archive's problems
            self._last_error = f"write: {e!r}"
            log.exception("sanctum writer: could not queue a snapshot")
            return False

    def _held(self) -> int:
        return len(self._queue) + len(self._uncopied)

    def copied(self, timeout: float | None = None) -> bool:
        """Wait until the writer has its own copy of every snapshot handed over so far (with
        ``copy=True``; at once otherwise): from then on the caller may mutate them. False on
        timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (
                    (not self._uncopied and not self._copying)
                    or self._copier is None
                    or not self._copier.is_alive()
                ),
                timeout=timeout,
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is stored (or given up); False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (
                    (not self._held() and not self._in_flight and not self._copying)
                    or not self._thread.is_alive()
                ),
                timeout=timeout,
            )

    def close(self, timeout: float | None = 30.0, *, finish: bool = True) -> WriterStats:
        """Store what is queued (waiting up to ``timeout``), stop the thread, and mark the
        runs written as finished (``finish=False`` leaves their status alone)."""
        with self._cond:
            if self._closing:
                return self.stats
            self._closing = True
            self._cond.notify_all()
        if not self.flush(timeout):
            self._abandon.set()
            with self._cond:
                lost = self._held()
                self._queue.clear()
                self._uncopied.clear()
                self._dropped += lost
                self._cond.notify_all()
            log.error("sanctum writer: closed with %d snapshots not stored", lost)
        self._thread.join(timeout=5.0 if timeout is None else max(timeout, 5.0))
        if finish and self._archive is not None and self._lost is None:
            at = self._clock() if self._clock else None
            for run_id in sorted(self._runs):
                try:
                    self._archive.finish_run(run_id, at=at)
                except Exception as e:
                    self._last_error = f"finish: {e!r}"
                    log.warning("sanctum writer: could not mark run %s finished: %s", run_id, e)
        if self._archive is not None:
            self._archive.close()
        return self.stats

    @property
    def stats(self) -> WriterStats:
        with self._cond:
            oldest = self._queue[0] if self._queue else (self._uncopied or [None])[0]
            return WriterStats(
                written=self._written,
                dropped=self._dropped,
                retried=self._retried,
                failed=self._failed,
                queue_depth=self._held(),
                lag_seconds=time.monotonic() - oldest.queued_at if oldest else 0.0,
                alive=self._thread.is_alive(),
                last_error=self._last_error,
                duplicates=self._duplicates,
                same_moment=self._same_moment,
                reconnects=self._reconnects,
                archive_lost=self._lost,
            )

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close()

    def _warn(self, kind: str, message: str) -> None:
        # Rate-limited per kind: a full queue can drop thousands of snapshots a minute.
        now = time.monotonic()
        if now - self._last_warning.get(kind, -1e9) > 10.0:
            self._last_warning[kind] = now
            log.warning(
                "sanctum writer: %s (so far: %d dropped, %d failed)",
                message,
                self._dropped,
                self._failed,
            )

    # ----------------------------------------------------------------------------------------
    # The copier thread's side (copy=True)
    # ----------------------------------------------------------------------------------------

    def _take_copies(self) -> None:
        """Copy each snapshot handed over as soon as it arrives: its tree (codec.normalize
        builds new containers, of immutable values) is the writer's own copy."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._uncopied or self._closing)
                if not self._uncopied:
                    return
                queued = self._uncopied.popleft()
                self._copying = True
            item = self._item(queued)
            with self._cond:
                self._copying = False
                if item is not None and self._abandon.is_set():
                    self._dropped += 1  # close() gave up while this copy was being taken
                elif item is not None:
                    self._queue.append(queued._replace(snapshot=item))
                self._cond.notify_all()

    # ----------------------------------------------------------------------------------------
    # The writer thread's side
    # ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:  # open now, while the training loop makes its first snapshot
            self._open()
        except Exception:  # the first store retries it, and counts and logs what fails
            log.debug("sanctum writer: opening the archive at start failed", exc_info=True)
        last_beat = time.monotonic()
        while True:
            try:
                with self._cond:
                    self._cond.wait_for(
                        lambda: (
                            self._queue
                            or (self._closing and not self._uncopied and not self._copying)
                        ),
                        timeout=self.heartbeat_every,
                    )
                    if not self._queue:
                        if self._closing and not self._uncopied and not self._copying:
                            return
                        batch = []
                    else:
                        batch = [
                            self._queue.popleft()
                            for _ in range(min(self.batch_size, len(self._queue)))
                        ]
                        self._in_flight = len(batch)
                        self._cond.notify_all()  # room in the queue for a blocked write()
                if batch:
                    self._store(batch)
                    last_beat = time.monotonic()
                elif time.monotonic() - last_beat >= self.heartbeat_every:
                    self._heartbeat()
                    last_beat = time.monotonic()
            except BaseException as e:  # never die silently: log, count, go on
                self._last_error = f"writer thread: {e!r}"
                log.exception("sanctum writer: unexpected error; continuing")
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _item(self, queued: _Queued) -> WriteItem | None:
        """The snapshot validated for storing (None: refused, counted and logged)."""
        if isinstance(queued.snapshot, WriteItem):  # copied already
            return queued.snapshot
        try:
            return WriteItem.of(queued.snapshot, queued.run_id, queued.seen_at, queued.group_id)
        except SnapshotInvalid as e:
            self._refuse(f"snapshot refused: {e}")
        except Exception as e:
            self._refuse(f"snapshot refused: cannot read it: {e!r}")
        return None

    def _store(self, batch: list[_Queued]) -> None:
        items = [item for item in map(self._item, batch) if item is not None]
        if items:
            self._commit(items)

    def _refuse(self, message: str, n: int = 1) -> None:
        with self._cond:
            self._failed += n
        self._last_error = message
        log.error("sanctum writer: %s", message)

    def _commit(self, items: list[WriteItem]) -> None:
        delay, max_delay = self.retry_backoff
        conflicts = 0
        while True:
            try:
                if self._archive_lost():  # before opening: that would make a new file there
                    return self._refuse_lost(items)
                archive = self._open()
                outcomes = archive.store_batch(items)
                if self._archive_lost():  # gone during the commit: stored nowhere it was given
                    return self._refuse_lost(items)
            except Exception as e:
                if not isinstance(e, SnapshotInvalid):
                    self._reconnect()  # a connection that failed once may never recover
                if isinstance(e, sa.exc.IntegrityError) and conflicts < 2:
                    conflicts += 1  # another writer raced us on the same run: retry cold
                    continue
                if not is_transient(e):
                    if len(items) > 1:
                        for item in items:  # find the one that cannot be stored
                            self._commit([item])
                        return
                    self._refuse(
                        f"snapshot of run {items[0].run_id or items[0].tree['run_id']!r} "
                        f"could not be stored: {e}"
                    )
                    return
                with self._cond:
                    self._retried += 1
                self._last_error = f"retrying: {e}"
                first = str(e).splitlines()[0]
                self._warn("retry", f"storage error, retrying in {delay:.2f} s: {first}")
                if self._abandon.wait(delay):
                    with self._cond:  # close() gave up waiting for the database
                        self._dropped += len(items)
                    return
                delay = min(delay * 2, max_delay)
                continue
            self._count(items, outcomes)
            return

    def _count(self, items: list[WriteItem], outcomes: list[Stored]) -> None:
        same_moment = []
        with self._cond:
            for item, outcome in zip(items, outcomes, strict=True):
                if outcome.kind == "present":
                    self._duplicates += 1
                else:
                    self._written += 1
                    if outcome.kind == "same_moment":
                        self._same_moment += 1
                        same_moment.append(item)
        for item in items:
            self._runs.add(item.run_id or item.tree["run_id"])
        for item in same_moment:
            self._warn(
                "same_moment",
                f"run {item.run_id or item.tree['run_id']!r} already had another snapshot "
                f"captured at {item.tree['captured_at']!r}: both stored "
                f"({self._same_moment} so far)",
            )

    def _open(self) -> Archive:
        # Opened on the writer thread, so an unreachable database at start-up is just one
        # more error to retry, never an exception in the training loop's constructor call.
        if self._archive is None:
            archive = Archive(self.db)
            path = db.sqlite_path(archive.url) if db.is_sqlite(archive.url) else None
            if path is not None and self._file is None:
                st = os.stat(path)
                self._file = (str(path), (st.st_dev, st.st_ino))
            self._archive = archive
        return self._archive

    def _reconnect(self) -> None:
        """Drop the archive's connections: the next attempt opens them afresh (a SQLite file
        opened read-only stays read-only on that connection, whatever its mode becomes)."""
        if self._archive is not None:
            try:
                self._archive.close()
            except Exception:  # pragma: no cover - disposing a broken pool
                log.debug("sanctum writer: closing the archive failed", exc_info=True)
            self._archive = None
            with self._cond:
                self._reconnects += 1

    def _archive_lost(self) -> bool:
        """Whether the SQLite file the writer opened is gone from its path or was replaced
        there by another (the inode changed): its snapshots would be stored nowhere anyone can
        open, or in an archive it was not given."""
        if self._lost is not None:
            return True
        if self._file is None:
            return False
        path, identity = self._file
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._lost = f"archive file {path} was deleted while the writer was using it"
        else:
            if (st.st_dev, st.st_ino) == identity:
                return False
            self._lost = f"archive file {path} was replaced by another file"
        log.error("sanctum writer: %s: storing nothing more (stats.archive_lost)", self._lost)
        return True

    def _refuse_lost(self, items: list[WriteItem]) -> None:
        with self._cond:
            self._failed += len(items)
        self._last_error = f"{self._lost}: {len(items)} snapshot(s) not stored"
        self._warn("lost", self._last_error)

    def _heartbeat(self) -> None:
        if self._archive is None or not self._runs or self._lost is not None:
            return
        try:
            self._archive.heartbeat(sorted(self._runs), at=self._clock() if self._clock else None)
        except Exception as e:
            self._last_error = f"heartbeat: {e!r}"
            self._warn("heartbeat", f"heartbeat failed: {e}")
            self._reconnect()


def _flush_at_exit(ref: weakref.ref) -> None:
    writer = ref()
    if writer is not None and not writer._closing:
        writer.flush(timeout=10.0)


# --------------------------------------------------------------------------------------------
# Recording from esper-style training in one line
# --------------------------------------------------------------------------------------------


def _is_groups(result: Any) -> bool:
    """``{group_id: snapshot}`` (esper's get_all_snapshots) rather than one dict snapshot."""
    return isinstance(result, Mapping) and bool(result) and not (_SNAPSHOT_FIELDS & set(result))


class Recorder:
    """Polls a snapshot source on its own thread and writes what it returns; see :func:`record`."""

    def __init__(
        self, source: Callable[[], Any], db: str | None, every: float, run_id: str | None, **kwargs
    ):
        self.source = source
        self.every = every
        self.run_id = run_id
        self.writer = SnapshotWriter(db, **kwargs)
        self.polls = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sanctum-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.poll()
            if self._stop.wait(self.every):
                return

    def poll(self) -> None:
        """Take one reading of the source now."""
        try:
            result = self.source()
        except Exception as e:
            self.errors += 1
            log.warning("sanctum recorder: the snapshot source raised %r", e)
            return
        self.polls += 1
        if result is None:
            return
        if _is_groups(result):
            for group, snapshot in result.items():
                self.writer.write(
                    snapshot, run_id=self._group_run_id(group, snapshot), group_id=str(group)
                )
        else:
            self.writer.write(result, run_id=self.run_id)

    def _group_run_id(self, group: Any, snapshot: Any) -> str:
        if self.run_id:
            return f"{self.run_id}-{group}"
        own = (
            snapshot.get("run_id")
            if isinstance(snapshot, Mapping)
            else getattr(snapshot, "run_id", "")
        )
        return f"{own}-{group}" if own else str(group)

    @property
    def stats(self) -> WriterStats:
        return self.writer.stats

    def stop(self, timeout: float | None = 30.0, *, finish: bool = True) -> WriterStats:
        """Take a last reading, store everything, mark the runs finished."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self.poll()
        return self.writer.close(timeout, finish=finish)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def record(
    source: Callable[[], Any],
    db: str | None = None,
    every: float = 5.0,
    *,
    run_id: str | None = None,
    **writer_options: Any,
) -> Recorder:
    """Record a training run in one line: poll ``source`` every ``every`` seconds.

    ``source`` returns one snapshot, or a dict ``{group_id: snapshot}`` like esper's
    ``SanctumBackend.get_all_snapshots()``, each group then stored as its own run (named by
    its snapshot's run_id and the group, e.g. ``run-7-A``). Call ``stop()`` when training
    ends. Options are :class:`SnapshotWriter`'s.
    """
    return Recorder(source, db, every, run_id, **writer_options)


__all__ = ["Recorder", "SnapshotWriter", "WriterStats", "record"]
