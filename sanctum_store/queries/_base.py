"""What every query module shares: the tables, run filters, connections and typed frames."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from sanctum_store import metrics
from sanctum_store.expressions import (
    as_bigint,
    as_double,
    epoch_seconds,
    flag,
    floor_int,
    greatest,
    growth,
    trained,
)
from sanctum_store.forms import to_utc
from sanctum_store.models import TABLES
from sanctum_store.status import status_expression

RUNS, SNAPSHOTS, ENVS, TAMIYO = (
    TABLES["runs"],
    TABLES["snapshots"],
    TABLES["env_states"],
    TABLES["tamiyo_states"],
)
SEEDS, BEST = TABLES["seed_states"], TABLES["best_runs"]
DECISIONS, ALTERNATIVES = TABLES["decisions"], TABLES["decision_alternatives"]
ACTIONS, BLUEPRINTS, EVENTS = TABLES["action_counts"], TABLES["blueprint_counts"], TABLES["events"]
CF_CONFIGS, SHAPLEY = TABLES["counterfactual_configs"], TABLES["shapley_estimates"]
SEED_LIVES, SEED_VISITS = TABLES["seed_lives"], TABLES["seed_visits"]

# The shared SQL building blocks (sanctum_store.expressions) under the short names the query
# modules use.
_epoch_seconds, _floor, _f, _i = epoch_seconds, floor_int, as_double, as_bigint
_greatest, _flag, _growth, _trained = greatest, flag, growth, trained

#: Run-level outcomes of :func:`run_outcomes`, for :mod:`sanctum_store.stats`.
#: Their directions, reward dependence and curves are declared in :mod:`sanctum_store.metrics`.
OUTCOME_METRICS = tuple(metrics.OUTCOMES)
#: Run attributes cohorts can be defined by (``cohort=`` / ``attribute=`` arguments).
COHORT_ATTRIBUTES = (
    "reward_mode",
    "group_id",
    "task_name",
    "status",
    *(
        c.name
        for c in RUNS.columns
        if c.name.startswith("config_") and c.name not in ("config_entropy_anneal", "config_extra")
    ),
)


def _engine(source: Any) -> sa.Engine:
    engine = getattr(source, "engine", source)
    if not isinstance(engine, sa.Engine):
        raise TypeError(
            f"expected an Engine or an object with .engine, got {type(source).__name__}"
        )
    return engine


@contextlib.contextmanager
def read_connection(source: Any) -> Iterator[sa.Connection]:
    """A connection for these queries, from an Engine or anything with ``.engine``.

    On PostgreSQL its transaction runs without JIT compilation: the correlated per-run
    subqueries look expensive to the planner, which then spends a second compiling what runs in
    milliseconds."""
    with _engine(source).connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL jit = off")
        yield conn


def _utc(moment: datetime | str | None) -> datetime | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return to_utc(moment)


def _one_or_many(column, value) -> sa.ColumnElement | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        return column == value
    return column.in_(list(value))


def _run_conditions(
    *,
    run_id: str | Sequence[str] | None = None,
    task: str | Sequence[str] | None = None,
    reward_mode: str | Sequence[str] | None = None,
    group_id: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    search: str | None = None,
) -> list[sa.ColumnElement]:
    """WHERE conditions on ``runs`` for the run filters every cross-run function accepts."""
    conditions = [
        _one_or_many(RUNS.c.run_id, run_id),
        _one_or_many(RUNS.c.task_name, task),
        _one_or_many(RUNS.c.reward_mode, reward_mode),
        _one_or_many(RUNS.c.group_id, group_id),
        _one_or_many(status_expression(RUNS), status),
    ]
    if since is not None:
        conditions.append(RUNS.c.last_seen >= _utc(since))
    if until is not None:
        conditions.append(RUNS.c.first_seen <= _utc(until))
    if search:
        conditions.append(
            sa.or_(
                *(
                    RUNS.c[name].icontains(search, autoescape=True)
                    for name in ("run_id", "task_name", "reward_mode", "group_id")
                )
            )
        )
    return [c for c in conditions if c is not None]


def _cohort(attribute: str) -> sa.ColumnElement:
    if attribute not in COHORT_ATTRIBUTES:
        raise ValueError(
            f"unknown cohort attribute {attribute!r}; choose one of {', '.join(COHORT_ATTRIBUTES)}"
        )
    return status_expression(RUNS) if attribute == "status" else RUNS.c[attribute]


def _frame(conn: sa.Connection, query, dtypes: dict[str, str]) -> pd.DataFrame:
    result = conn.execute(query)
    columns = list(result.keys())
    # Plain tuples: pandas probes Row objects for attributes, 6x slower.
    return _typed(pd.DataFrame([tuple(row) for row in result.all()], columns=columns), dtypes)


def _typed(df: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """Give every column its documented dtype, so both backends (and empty results) agree."""
    out = {}
    for name, dtype in dtypes.items():
        column = df[name] if name in df else pd.Series([None] * len(df), dtype=object)
        if dtype.startswith("datetime"):
            out[name] = pd.to_datetime(column).astype(dtype)
        elif dtype == "float64":
            out[name] = pd.to_numeric(column.astype(object), errors="coerce").astype("float64")
        elif dtype == "object":
            out[name] = column.astype(object)
        else:
            out[name] = column.astype(dtype)
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)))


def _seed_scope(cohort: str | None, filters: dict) -> tuple[list, sa.ColumnElement | None]:
    return _run_conditions(**filters), None if cohort is None else _cohort(cohort)


def _with_cohort(dtypes: dict[str, str], cohort: str | None) -> dict[str, str]:
    return dtypes if cohort is None else {"cohort": "object", **dtypes}
