"""Runs: the listing with each run's outcomes, cohort outcomes, pickers and look-ups.

Each run's outcomes (final and peak accuracy, mean reward, growth, progress) are stored on its
``runs`` row and kept current by the writer (:mod:`sanctum_store.summary`): these are plain
selects over ``runs``, whatever the size of the runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from sanctum_store.queries._base import (
    COHORT_ATTRIBUTES,
    OUTCOME_METRICS,
    RUNS,
    SNAPSHOTS,
    _epoch_seconds,
    _f,
    _frame,
    _run_conditions,
    read_connection,
)
from sanctum_store.status import status_expression

RUN_COLUMNS: dict[str, str] = {
    "run_id": "str",
    "task_name": "str",
    "reward_mode": "str",
    "group_id": "str",
    "status": "str",
    "first_seen": "datetime64[us]",
    "last_seen": "datetime64[us]",
    "duration_s": "float64",
    "snapshot_count": "int64",
    "batches_done": "Int64",
    "max_batches": "int64",
    "final_accuracy": "float64",
    "peak_accuracy": "float64",
    "mean_reward": "float64",
    "growth_ratio": "float64",
    "fossilized": "Int64",
    "pruned": "Int64",
    "fossilize_rate": "float64",
    "config_seed": "Int64",
    "config_lr": "float64",
}


def _run_columns() -> dict[str, sa.ColumnElement]:
    """The SQL of every RUN_COLUMNS column: the runs row's own columns, or arithmetic on them."""
    fossilized, pruned = RUNS.c.fossilized, RUNS.c.pruned
    return {
        "run_id": RUNS.c.run_id,
        "task_name": RUNS.c.task_name,
        "reward_mode": RUNS.c.reward_mode,
        "group_id": RUNS.c.group_id,
        "status": status_expression(RUNS),
        "first_seen": RUNS.c.first_seen,
        "last_seen": RUNS.c.last_seen,
        "duration_s": _epoch_seconds(RUNS.c.last_seen) - _epoch_seconds(RUNS.c.first_seen),
        "snapshot_count": RUNS.c.snapshot_count,
        "batches_done": RUNS.c.batches_done,
        "max_batches": RUNS.c.max_batches,
        "final_accuracy": RUNS.c.final_accuracy,
        "peak_accuracy": RUNS.c.peak_accuracy,
        "mean_reward": RUNS.c.mean_reward,
        "growth_ratio": RUNS.c.growth_ratio,
        "fossilized": fossilized,
        "pruned": pruned,
        "fossilize_rate": _f(fossilized) / sa.func.nullif(fossilized + pruned, 0),
        "config_seed": RUNS.c.config_seed,
        "config_lr": RUNS.c.config_lr,
    }


def runs_select(
    *,
    sort: str = "last_seen",
    descending: bool = True,
    limit: int | None = None,
    offset: int = 0,
    columns: Sequence[str] = tuple(RUN_COLUMNS),
    extra: Sequence[str] = (),
    **filters,
) -> sa.Select:
    """The per-run query behind :func:`list_runs` (and ``export runs``): ``columns`` (of
    RUN_COLUMNS) plus the runs columns named in ``extra``, filtered, sorted and paged as
    :func:`list_runs`."""
    conditions = _run_conditions(**filters)
    if sort not in RUN_COLUMNS:
        raise ValueError(f"cannot sort runs by {sort!r}; choose one of {', '.join(RUN_COLUMNS)}")
    computed = _run_columns()
    key = computed[sort]
    keys = (key.desc(), RUNS.c.id.desc()) if descending else (key.asc(), RUNS.c.id.asc())
    query = (
        sa.select(
            *(computed[name].label(name) for name in columns),
            *(RUNS.c[name] for name in extra if name not in columns),
        )
        .where(*conditions)
        .order_by(keys[0].nulls_last(), keys[1])
    )
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return query


def list_runs(
    engine,
    *,
    run_id: str | Sequence[str] | None = None,
    task: str | Sequence[str] | None = None,
    reward_mode: str | Sequence[str] | None = None,
    group_id: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    search: str | None = None,
    sort: str = "last_seen",
    descending: bool = True,
    limit: int | None = 100,
    offset: int = 0,
) -> pd.DataFrame:
    """One row per run matching the filters, sorted by ``sort`` (any column below; NULLs last)
    and paged by ``limit``/``offset``.

    Columns: ``run_id, task_name, reward_mode, group_id, status`` (effective: running /
    finished / failed / stale / crashed), ``first_seen, last_seen, duration_s,
    snapshot_count, batches_done, max_batches, final_accuracy, peak_accuracy, mean_reward,
    growth_ratio, fossilized, pruned, fossilize_rate, config_seed, config_lr``.

    Filters take a value or a list of values (``run_id``: those runs); ``since``/``until`` keep runs active in that
    window; ``search`` is a case-insensitive substring of run_id, task, reward mode or group.
    """
    query = runs_select(
        sort=sort,
        descending=descending,
        limit=limit,
        offset=offset,
        run_id=run_id,
        task=task,
        reward_mode=reward_mode,
        group_id=group_id,
        status=status,
        since=since,
        until=until,
        search=search,
    )
    with read_connection(engine) as conn:
        return _frame(conn, query, RUN_COLUMNS)


def count_runs(engine, **filters) -> int:
    """How many runs :func:`list_runs` would list with the same filters (no paging)."""
    query = sa.select(sa.func.count()).select_from(RUNS).where(*_run_conditions(**filters))
    with read_connection(engine) as conn:
        return int(conn.execute(query).scalar_one())


def run_outcomes(engine, **filters) -> pd.DataFrame:
    """One row per run: its outcomes and every attribute cohorts can be defined by.

    Columns: ``run_id``, :data:`OUTCOME_METRICS` (``final_accuracy, peak_accuracy,
    mean_reward, growth_ratio, fossilize_rate``), :data:`COHORT_ATTRIBUTES` (``reward_mode,
    group_id, task_name, status, config_*``). Takes the filters of :func:`list_runs`.
    """
    config = [name for name in COHORT_ATTRIBUTES if name.startswith("config_")]
    columns = ["run_id", *OUTCOME_METRICS, *COHORT_ATTRIBUTES[:4]]
    query = runs_select(sort="run_id", descending=False, columns=columns, extra=config, **filters)
    dtypes = {"run_id": "str", **{m: "float64" for m in OUTCOME_METRICS}}
    dtypes.update({a: RUN_COLUMNS.get(a, "str") for a in COHORT_ATTRIBUTES[:4]})
    for name in config:
        column_type = RUNS.c[name].type
        dtypes[name] = (
            "float64"
            if isinstance(column_type, sa.Double)
            else "Int64"
            if isinstance(column_type, sa.Integer)
            else "str"
        )
    with read_connection(engine) as conn:
        return _frame(conn, query, dtypes)


FACETS = ("reward_mode", "group_id", "task_name")


def run_facets(engine) -> dict[str, list[str]]:
    """The values runs take for each of :data:`FACETS` (filter choices), sorted."""
    out: dict[str, list[str]] = {}
    with read_connection(engine) as conn:
        for name in FACETS:
            column = RUNS.c[name]
            query = sa.select(column).where(column.is_not(None)).distinct().order_by(column)
            out[name] = [str(value) for value in conn.execute(query).scalars()]
    return out


SNAPSHOT_TIME_COLUMNS = {
    "snapshot_id": "int64",
    "captured_ts": "datetime64[us]",
    "current_batch": "int64",
    "current_epoch": "int64",
}


def snapshot_times(engine, run_id: str) -> pd.DataFrame:
    """A run's stored snapshots in time order. Columns: ``snapshot_id, captured_ts`` (UTC),
    ``current_batch, current_epoch``."""
    query = (
        sa.select(
            SNAPSHOTS.c.id.label("snapshot_id"),
            SNAPSHOTS.c.captured_ts,
            SNAPSHOTS.c.current_batch,
            SNAPSHOTS.c.current_epoch,
        )
        .join(RUNS, RUNS.c.id == SNAPSHOTS.c.run_pk)
        .where(RUNS.c.run_id == run_id)
        .order_by(SNAPSHOTS.c.captured_ts, SNAPSHOTS.c.id)
    )
    with read_connection(engine) as conn:
        return _frame(conn, query, SNAPSHOT_TIME_COLUMNS)


RUN_INDEX_COLUMNS = {
    "run_id": "str",
    "status": "str",
    "reward_mode": "str",
    "group_id": "str",
    "last_seen": "datetime64[us]",
}


def run_index(engine, *, limit: int | None = None, **filters) -> pd.DataFrame:
    """Runs by last sign of life, newest first, without their outcomes (cheap: for pickers
    and for scoping whole-archive questions to recent runs).

    Columns: ``run_id, status`` (effective), ``reward_mode, group_id, last_seen``. Takes the
    run filters of :func:`list_runs`.
    """
    query = (
        sa.select(
            RUNS.c.run_id,
            status_expression(RUNS).label("status"),
            RUNS.c.reward_mode,
            RUNS.c.group_id,
            RUNS.c.last_seen,
        )
        .where(*_run_conditions(**filters))
        .order_by(RUNS.c.last_seen.desc(), RUNS.c.id.desc())
        .limit(limit)
    )
    with read_connection(engine) as conn:
        return _frame(conn, query, RUN_INDEX_COLUMNS)
