"""A run's status: the one vocabulary the writer, queries, CLI, pages and charts share."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

import sqlalchemy as sa

from sanctum_store.forms import utcnow

#: A running run whose writer has not been heard from for this long reads as ``stale``...
STALE_AFTER = timedelta(minutes=2)
#: ...and as ``crashed`` after this long.
CRASHED_AFTER = timedelta(minutes=30)


class RunStatus(enum.StrEnum):
    """What a run is doing. ``running``, ``finished`` and ``failed`` are stored (by the writer
    and ``finish_run``); ``incomplete`` is stored by an import whose dump ended before the run's
    last batch (see :func:`imported_status`) and, like every stored status but ``running``,
    never ages; ``stale`` and ``crashed`` are read from a running run's heartbeat."""

    RUNNING = "running"
    FINISHED = "finished"
    INCOMPLETE = "incomplete"
    STALE = "stale"
    CRASHED = "crashed"
    FAILED = "failed"

    @property
    def label(self) -> str:
        """How pages and charts show it."""
        return _LABELS[self]


_LABELS = {
    RunStatus.RUNNING: "● running",
    RunStatus.FINISHED: "✓ finished",
    RunStatus.INCOMPLETE: "◐ incomplete (import ended early)",
    RunStatus.STALE: "◌ stale (no heartbeat)",
    RunStatus.CRASHED: "✗ crashed",
    RunStatus.FAILED: "✗ failed",
}

#: Every status, in the order pages and the CLI offer them.
STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus)

#: What finish_run may store.
ENDED = (RunStatus.FINISHED.value, RunStatus.FAILED.value)

#: What an import may store (``import --status``; "auto" is :func:`imported_status`).
IMPORTED = (RunStatus.FINISHED.value, RunStatus.INCOMPLETE.value, RunStatus.FAILED.value)


def check_imported(status: str) -> str:
    """``status`` if an import may end runs with it ("auto" or one of :data:`IMPORTED`)."""
    if status != "auto" and status not in IMPORTED:
        raise ValueError(f"an import ends a run as auto or {', '.join(IMPORTED)}, not {status!r}")
    return status


def imported_status(current_batch: int | None, max_batches: int | None) -> RunStatus:
    """An imported run's status from its last snapshot (the latest ``captured_at``): ``finished``
    when that snapshot reached the run's last batch (``current_batch >= max_batches``, with
    ``max_batches`` known, i.e. above 0), else ``incomplete``. esper's final snapshots show
    ``current_batch == max_batches`` (batch 6 of 6 in the 4-env fixture)."""
    if max_batches and current_batch is not None and current_batch >= max_batches:
        return RunStatus.FINISHED
    return RunStatus.INCOMPLETE


def label(status: str) -> str:
    """A stored or derived status as shown (an unknown one as it is)."""
    try:
        return RunStatus(status).label
    except ValueError:
        return status


def status_expression(runs: sa.Table, now: datetime | None = None) -> sa.ColumnElement[str]:
    """SQL for a run's status: as stored once ended, else from its heartbeat's age."""
    now = now or utcnow()
    heartbeat = sa.func.coalesce(runs.c.heartbeat_at, runs.c.last_seen)
    return sa.case(
        (runs.c.status != RunStatus.RUNNING.value, runs.c.status),
        (heartbeat < now - CRASHED_AFTER, sa.literal(RunStatus.CRASHED.value)),
        (heartbeat < now - STALE_AFTER, sa.literal(RunStatus.STALE.value)),
        else_=sa.literal(RunStatus.RUNNING.value),
    )
