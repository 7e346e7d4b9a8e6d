"""What makes a run's outcome untrustworthy as evidence: the confounder ledger.

esper's own plans treat a run as confounded when its training was disturbed by something other
than the change under test: the governor rolled an env back, gradients went NaN or Inf, the
policy's entropy collapsed, an anomaly detector fired, or the run did not end as it should.
Everything here is read from what the archive holds; nothing is derived or written.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from sanctum_store.queries._base import (
    ENVS,
    EVENTS,
    RUNS,
    SNAPSHOTS,
    TAMIYO,
    _frame,
    _run_conditions,
    read_connection,
)
from sanctum_store.status import RunStatus, status_expression

#: Event types that say training was disturbed. ``*_DETECTED`` events are anomaly detectors'
#: except those that report progress (:data:`BENIGN_DETECTED`).
ANOMALY_EVENTS = ("GRADIENT_ANOMALY", "GOVERNOR_PANIC")
BENIGN_DETECTED = ("IMPROVEMENT_DETECTED", "PLATEAU_DETECTED")
ROLLBACK_EVENTS = ("GOVERNOR_ROLLBACK",)
#: Statuses whose outcome is not a finished run's: the run is still training (its outcome is
#: not final yet), stopped, or its stream ended early.
CONFOUNDING_STATUSES = (
    RunStatus.RUNNING,
    RunStatus.CRASHED,
    RunStatus.FAILED,
    RunStatus.INCOMPLETE,
    RunStatus.STALE,
)

CONFOUNDER_COLUMNS = {"run_id": "str", "reason": "str"}


def _reasons(where: list) -> list[sa.Select]:
    """One select of ``(run_id, reason)`` per kind of confounder."""
    run = sa.select(RUNS.c.id).where(*where).scalar_subquery()
    in_scope = RUNS.c.id.in_(run) if where else sa.true()
    per_snapshot = sa.join(TAMIYO, SNAPSHOTS, SNAPSHOTS.c.id == TAMIYO.c.snapshot_id)

    def tamiyo(reason: str, condition) -> sa.Select:
        return (
            sa.select(RUNS.c.run_id, sa.literal(reason).label("reason"))
            .select_from(per_snapshot.join(RUNS, RUNS.c.id == SNAPSHOTS.c.run_pk))
            .where(in_scope, condition)
            .distinct()
        )

    def latch(column) -> sa.ColumnElement:  # a head's latch set: {"slot": true, ...}
        text = sa.cast(column, sa.Text)
        return sa.or_(text.like("%: true,%"), text.like("%: true}%"))

    event_type = EVENTS.c.event_type
    anomaly = sa.or_(
        event_type.in_(ANOMALY_EVENTS),
        sa.and_(event_type.like("%\\_DETECTED", escape="\\"), event_type.not_in(BENIGN_DETECTED)),
    )
    status = status_expression(RUNS)
    return [
        sa.select(RUNS.c.run_id, sa.literal("governor rollback").label("reason"))
        .select_from(ENVS.join(RUNS, RUNS.c.id == ENVS.c.run_pk))
        .where(in_scope, ENVS.c.rolled_back.is_(True))
        .distinct(),
        sa.select(RUNS.c.run_id, sa.literal("governor rollback").label("reason"))
        .select_from(EVENTS.join(RUNS, RUNS.c.id == EVENTS.c.run_pk))
        .where(in_scope, event_type.in_(ROLLBACK_EVENTS))
        .distinct(),
        tamiyo(
            "NaN gradients", sa.or_(TAMIYO.c.nan_grad_count > 0, latch(TAMIYO.c.head_nan_latch))
        ),
        tamiyo(
            "Inf gradients", sa.or_(TAMIYO.c.inf_grad_count > 0, latch(TAMIYO.c.head_inf_latch))
        ),
        tamiyo("entropy collapse", TAMIYO.c.entropy_collapsed.is_(True)),
        sa.select(RUNS.c.run_id, ("anomaly event " + event_type).label("reason"))
        .select_from(EVENTS.join(RUNS, RUNS.c.id == EVENTS.c.run_pk))
        .where(in_scope, anomaly)
        .distinct(),
        sa.select(RUNS.c.run_id, ("status " + status).label("reason")).where(
            *where, status.in_([s.value for s in CONFOUNDING_STATUSES])
        ),
    ]


def run_confounders(source, **filters) -> pd.DataFrame:
    """The confounder ledger of the runs matching ``filters`` (the run filters of
    :func:`~sanctum_store.queries.list_runs`): one row per run and reason, ordered by run and
    reason. Columns: ``run_id, reason`` (``governor rollback``, ``NaN gradients``, ``Inf
    gradients``, ``entropy collapse``, ``anomaly event <TYPE>``, ``status <status>``: running,
    crashed, failed, incomplete or stale). A run
    with no row is clean as far as the archive can tell."""
    where = _run_conditions(**filters)
    query = sa.union(*_reasons(where)).subquery("reasons")
    ordered = sa.select(query.c.run_id, query.c.reason).order_by(query.c.run_id, query.c.reason)
    with read_connection(source) as conn:
        return _frame(conn, ordered, CONFOUNDER_COLUMNS)
