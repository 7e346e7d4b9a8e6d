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
import copy as copylib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa

from sanctum_store import codec, schema
from sanctum_store.archive import Archive, WriteItem
from sanctum_store.errors import ArchiveUnavailable, SnapshotInvalid

log = logging.getLogger(__name__)

_SNAPSHOT_FIELDS = frozenset(f.name for f in codec.class_info(schema.SanctumSnapshot).fields)


@dataclass(frozen=True)
class WriterStats:
    """A writer's counters. ``lag_seconds`` is the age of the oldest snapshot still queued."""

    written: int
    dropped: int
    retried: int
    failed: int
    queue_depth: int
    lag_seconds: float
    alive: bool
    last_error: str | None


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
    it afterwards (pass ``copy=True`` to have it deep-copied first). When the queue is full,
    ``on_full="block"`` waits up to ``block_timeout`` seconds and then drops the new
    snapshot, ``on_full="drop_oldest"`` drops the oldest queued one; either way it is counted
    in ``stats.dropped`` and logged, never raised. If the process dies, at most the snapshots
    still in memory are lost: ``queue_size`` queued plus ``batch_size`` in flight.
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

        self._queue: deque[_Queued] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closing = False
        self._abandon = threading.Event()  # close() gave up waiting: stop retrying
        self._archive: Archive | None = None
        self._runs: set[str] = set()
        self._written = self._dropped = self._retried = self._failed = 0
        self._last_error: str | None = None
        self._last_warning = 0.0

        self._thread = threading.Thread(target=self._run, name="sanctum-writer", daemon=True)
        self._thread.start()
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
            if self.copy:
                snapshot = copylib.deepcopy(snapshot)
            if at is None and self._clock is not None:
                at = self._clock()
            item = _Queued(snapshot, run_id or self.run_id, at, group_id, time.monotonic())
            with self._cond:
                if self._closing:
                    self._dropped += 1
                    self._warn("writer is closed: snapshot dropped")
                    return False
                if len(self._queue) >= self.queue_size:
                    if self.on_full == "drop_oldest":
                        self._queue.popleft()
                        self._dropped += 1
                        self._warn("queue full: dropped the oldest queued snapshot")
                    elif (
                        not self._cond.wait_for(
                            lambda: len(self._queue) < self.queue_size or self._closing,
                            timeout=self.block_timeout,
                        )
                        or self._closing
                    ):
                        self._dropped += 1
                        self._warn(f"queue full for {self.block_timeout} s: snapshot dropped")
                        return False
                self._queue.append(item)
                self._cond.notify_all()
            return True
        except Exception as e:  # the training loop must never see the archive's problems
            self._last_error = f"write: {e!r}"
            log.exception("sanctum writer: could not queue a snapshot")
            return False

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is stored (or given up); False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (not self._queue and not self._in_flight) or not self._thread.is_alive(),
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
                lost = len(self._queue)
                self._queue.clear()
                self._dropped += lost
                self._cond.notify_all()
            log.error("sanctum writer: closed with %d snapshots not stored", lost)
        self._thread.join(timeout=5.0 if timeout is None else max(timeout, 5.0))
        if finish and self._archive is not None:
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
            lag = time.monotonic() - self._queue[0].queued_at if self._queue else 0.0
            return WriterStats(
                written=self._written,
                dropped=self._dropped,
                retried=self._retried,
                failed=self._failed,
                queue_depth=len(self._queue),
                lag_seconds=lag,
                alive=self._thread.is_alive(),
                last_error=self._last_error,
            )

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close()

    def _warn(self, message: str) -> None:
        # Rate-limited: a full queue can drop thousands of snapshots a minute.
        now = time.monotonic()
        if now - self._last_warning > 10.0:
            self._last_warning = now
            log.warning("sanctum writer: %s (dropped so far: %d)", message, self._dropped)

    # ----------------------------------------------------------------------------------------
    # The writer thread's side
    # ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        last_beat = time.monotonic()
        while True:
            try:
                with self._cond:
                    self._cond.wait_for(
                        lambda: self._queue or self._closing, timeout=self.heartbeat_every
                    )
                    if not self._queue:
                        if self._closing:
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

    def _store(self, batch: list[_Queued]) -> None:
        items = []
        for queued in batch:
            try:
                item = WriteItem.of(queued.snapshot, queued.run_id, queued.seen_at, queued.group_id)
            except SnapshotInvalid as e:
                self._refuse(f"snapshot refused: {e}")
                continue
            except Exception as e:
                self._refuse(f"snapshot refused: cannot read it: {e!r}")
                continue
            items.append(item)
        if items:
            self._commit(items)

    def _refuse(self, message: str) -> None:
        with self._cond:
            self._failed += 1
        self._last_error = message
        log.error("sanctum writer: %s", message)

    def _commit(self, items: list[WriteItem]) -> None:
        delay, max_delay = self.retry_backoff
        conflicts = 0
        while True:
            try:
                archive = self._open()
                archive.save_batch(items)
            except Exception as e:
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
                self._warn(f"storage error, retrying in {delay:.2f} s: {str(e).splitlines()[0]}")
                if self._abandon.wait(delay):
                    with self._cond:  # close() gave up waiting for the database
                        self._dropped += len(items)
                    return
                delay = min(delay * 2, max_delay)
                continue
            with self._cond:
                self._written += len(items)
            for item in items:
                self._runs.add(item.run_id or item.tree["run_id"])
            return

    def _open(self) -> Archive:
        # Opened on the writer thread, so an unreachable database at start-up is just one
        # more error to retry, never an exception in the training loop's constructor call.
        if self._archive is None:
            self._archive = Archive(self.db)
        return self._archive

    def _heartbeat(self) -> None:
        if self._archive is None or not self._runs:
            return
        try:
            self._archive.heartbeat(sorted(self._runs), at=self._clock() if self._clock else None)
        except Exception as e:
            self._last_error = f"heartbeat: {e!r}"
            self._warn(f"heartbeat failed: {e}")


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
