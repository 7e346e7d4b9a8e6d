"""Cross-run questions answered in SQL, returned as tidy DataFrames.

Every function takes an :class:`~sqlalchemy.engine.Engine` (or anything with ``.engine``, such
as an :class:`~sanctum_store.Archive`), aggregates inside the database with Core ``select()``
and returns a DataFrame whose columns its docstring lists, with the same dtypes on SQLite and
PostgreSQL. Names that pick a column (metrics, cohort attributes, sort keys) are checked against
whitelists of real columns; user values only ever reach the database as bound parameters.

Definitions (they matter when comparing runs):

* **Trained env**: an env row whose ``current_epoch > 0``. At each batch end esper resets every
  env (accuracy 0, no seeds) while the snapshot keeps the last epoch number, so those rows carry
  defaults, not measurements; env metrics skip them.
* **Final snapshot** of a run: its latest snapshot with a trained env. **final_accuracy**,
  **mean_reward** (env ``cumulative_reward``: the episode's return so far) and
  **growth_ratio** (``(host_params + fossilized_params) / host_params``, 1 when host_params is 0)
  are means over that snapshot's trained envs.
* **peak_accuracy**: the best accuracy any env of the run reached: the largest of any
  snapshot's env ``best_accuracy`` (an env's running maximum), best-run ``peak_accuracy`` and
  the final snapshot's env ``host_accuracy``.
* **batches_done, fossilized, pruned**: ``current_batch`` and the cumulative counters of the
  run's latest snapshot; **fossilize_rate** = fossilized / (fossilized + pruned).
* **Position** (``x="batch"``): ``current_batch + epoch / max_epochs``; a snapshot's epoch is
  its largest env epoch (0 right after a batch-end reset, though the snapshot still shows the
  last one), an env value's epoch is its env's (:func:`run_series` puts a snapshot's envs at the
  snapshot's position). ``x="epoch"`` is the same position in epochs (``current_batch *
  max_epochs + epoch``); ``x="time"`` is seconds since the run's first snapshot.
* **A seed** is one occupant of a slot: the consecutive observations (snapshots in time order)
  of one ``(run, batch, env, slot)`` holding the same blueprint, starting anew when the
  blueprint changes or the stage goes backwards (a slot re-germinated after a prune). Dormant
  slots hold no seed. Snapshots are samples, so a seed that lived and died between two snapshots
  is missed, and a stage counts as reached when the seed was seen in it or in a later stage.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy import stats as sps
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from sanctum_store.archive import status_expression
from sanctum_store.models import Base

_T = Base.metadata.tables
RUNS, SNAPSHOTS, ENVS, TAMIYO = _T["runs"], _T["snapshots"], _T["env_states"], _T["tamiyo_states"]
SEEDS, BEST = _T["seed_states"], _T["best_runs"]
DECISIONS, ALTERNATIVES = _T["decisions"], _T["decision_alternatives"]
ACTIONS, BLUEPRINTS, EVENTS = _T["action_counts"], _T["blueprint_counts"], _T["events"]
CF_CONFIGS, SHAPLEY = _T["counterfactual_configs"], _T["shapley_estimates"]
# Aliases are built once: aliasing a wide table proxies every column, which costs milliseconds.
_LATEST, _FINAL, _LAST = (SNAPSHOTS.alias(name) for name in ("latest", "final", "last"))

#: Seed stages in lifecycle order (rank 1..5); the stages of a pruned seed come after.
STAGES = ("GERMINATED", "TRAINING", "BLENDING", "HOLDING", "FOSSILIZED")
PRUNED_STAGES = ("PRUNED", "EMBARGOED", "RESETTING")

#: Run-level outcomes of :func:`run_outcomes`, for :mod:`sanctum_store.stats`.
OUTCOME_METRICS = (
    "final_accuracy",
    "peak_accuracy",
    "mean_reward",
    "growth_ratio",
    "fossilize_rate",
)
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

# ---------------------------------------------------------------------------------------------
# SQL helpers
# ---------------------------------------------------------------------------------------------


class _epoch_seconds(FunctionElement):
    """Seconds since 1970 of a naive UTC DateTime column, as a double."""

    type = sa.Double()
    inherit_cache = True
    name = "epoch_seconds"


@compiles(_epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element, compiler, **kw):
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(_epoch_seconds, "postgresql")
def _epoch_seconds_pg(element, compiler, **kw):
    return (
        f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS DOUBLE PRECISION)"
    )


class _floor(FunctionElement):
    """floor() as an integer (SQLite's floor() needs a build option, CAST truncates there)."""

    type = sa.BigInteger()
    inherit_cache = True
    name = "floor_int"


@compiles(_floor, "sqlite")
def _floor_sqlite(element, compiler, **kw):
    x = compiler.process(element.clauses, **kw)
    return f"(CAST({x} AS INTEGER) - (CASE WHEN {x} < CAST({x} AS INTEGER) THEN 1 ELSE 0 END))"


@compiles(_floor, "postgresql")
def _floor_pg(element, compiler, **kw):
    return f"CAST(floor({compiler.process(element.clauses, **kw)}) AS BIGINT)"


def _f(expr) -> sa.ColumnElement:
    """As a double (PostgreSQL's avg/sum of integers are numeric, i.e. Decimal)."""
    return sa.cast(expr, sa.Double)


def _i(expr) -> sa.ColumnElement:
    return sa.cast(expr, sa.BigInteger)


def _greatest(a, b) -> sa.ColumnElement:
    """The larger of two values, ignoring NULL (GREATEST differs between the backends)."""
    return sa.case((sa.or_(b.is_(None), a >= b), a), else_=b)


def _flag(condition) -> sa.ColumnElement:
    return sa.case((condition, 1), else_=0)


def _growth(envs) -> sa.ColumnElement:
    return sa.case(
        (
            envs.c.host_params > 0,
            _f(envs.c.host_params + envs.c.fossilized_params) / envs.c.host_params,
        ),
        else_=1.0,
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
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


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


def _trained(snapshots) -> sa.ColumnElement:
    """The snapshot has an env that has run an epoch (not a batch-end reset)."""
    return sa.exists().where(ENVS.c.snapshot_id == snapshots.c.id, ENVS.c.current_epoch > 0)


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


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------

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


def _run_only_columns() -> dict[str, sa.ColumnElement]:
    """list_runs columns computed from the runs row alone (cheap to sort and page on)."""
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
        "max_batches": RUNS.c.max_batches,
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
    plain = _run_only_columns()

    def ordered(query: sa.Select, key: sa.ColumnElement) -> sa.Select:
        keys = (key.desc(), RUNS.c.id.desc()) if descending else (key.asc(), RUNS.c.id.asc())
        return query.order_by(keys[0].nulls_last(), keys[1])

    page = sa.select(RUNS.c.id.label("run_pk")).where(*conditions)
    paged_inside = sort in plain and limit is not None
    if paged_inside:
        # Sorting by a runs column: page first, then look at the page's runs only.
        page = ordered(page, plain[sort]).limit(limit).offset(offset)
    page = page.subquery("page")
    pk = page.c.run_pk

    def newest(snapshots, *where) -> sa.ScalarSelect:
        return (
            sa.select(snapshots.c.id)
            .where(snapshots.c.run_pk == pk, *where)
            .order_by(snapshots.c.captured_ts.desc(), snapshots.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    # Per run, each a seek on an index (ix_snapshots_run_pk_captured_ts,
    # ix_env_states_run_pk_best_accuracy, best_runs' run_pk + record_key); correlated subqueries
    # beat joins to grouped subqueries here, on both backends.
    picked = sa.select(
        pk,
        newest(_LATEST).label("last_id"),
        newest(_FINAL, _trained(_FINAL)).label("final_id"),
        sa.select(sa.func.max(ENVS.c.best_accuracy))
        .where(ENVS.c.run_pk == pk)
        .scalar_subquery()
        .label("env_peak"),
        sa.select(sa.func.max(BEST.c.peak_accuracy))
        .where(BEST.c.run_pk == pk)
        .scalar_subquery()
        .label("record_peak"),
    )
    # MATERIALIZED: each run's picks are computed once, not inlined into every column using them.
    picked = picked.cte("picked").prefix_with("MATERIALIZED")

    def final(aggregate) -> sa.ScalarSelect:
        """``aggregate`` over the trained envs of the run's final snapshot."""
        return (
            sa.select(aggregate)
            .where(ENVS.c.snapshot_id == picked.c.final_id, ENVS.c.current_epoch > 0)
            .scalar_subquery()
        )

    last = _LAST
    fossilized, pruned = last.c.cumulative_fossilized, last.c.cumulative_pruned
    computed = {
        **plain,
        "batches_done": last.c.current_batch,
        "final_accuracy": final(_f(sa.func.avg(ENVS.c.host_accuracy))),
        "peak_accuracy": _greatest(
            _greatest(picked.c.env_peak, picked.c.record_peak),
            final(sa.func.max(ENVS.c.host_accuracy)),
        ),
        "mean_reward": final(_f(sa.func.avg(ENVS.c.cumulative_reward))),
        "growth_ratio": final(_f(sa.func.avg(_growth(ENVS)))),
        "fossilized": fossilized,
        "pruned": pruned,
        "fossilize_rate": _f(fossilized) / sa.func.nullif(fossilized + pruned, 0),
    }
    query = (
        sa.select(
            *(computed[name].label(name) for name in columns),
            *(RUNS.c[name] for name in extra if name not in columns),
        )
        .select_from(RUNS)
        .join(picked, picked.c.run_pk == RUNS.c.id)
        .outerjoin(last, last.c.id == picked.c.last_id)
    )
    query = ordered(query, computed[sort])
    if limit is not None and not paged_inside:
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


# ---------------------------------------------------------------------------------------------
# Series
# ---------------------------------------------------------------------------------------------

_STRUCTURAL = {"id", "run_pk", "snapshot_id", "env_key", "position", "env_id", "event_log_start"}


def _numeric_columns(table: sa.Table) -> list[str]:
    return [
        c.name
        for c in table.columns
        if isinstance(c.type, (sa.Double, sa.Integer))
        and c.name not in _STRUCTURAL
        and not c.name.endswith(("_id", "_sid", "_start", "_len"))
    ]


def _series_metrics() -> dict[str, tuple[str, str]]:
    metrics: dict[str, tuple[str, str]] = {}
    sources = (("env", ENVS), ("tamiyo", TAMIYO), ("snapshot", SNAPSHOTS))
    for source, table in sources:
        names = _numeric_columns(table) + (["growth_ratio"] if source == "env" else [])
        for name in names:
            metrics[f"{source}.{name}"] = (source, name)
            metrics.setdefault(name, (source, name))
    return dict(sorted(metrics.items()))


#: Metrics :func:`run_series` / :func:`cohort_curves` plot: name -> (source, column). Sources:
#: ``env`` (per env, averaged across envs), ``tamiyo`` and ``snapshot`` (one value per
#: snapshot). A name several sources share means the first of env, tamiyo, snapshot; qualify it
#: (``"snapshot.current_epoch"``) to pick another.
SERIES_METRICS: dict[str, tuple[str, str]] = _series_metrics()
X_AXES = ("batch", "epoch", "time")


def _metric(name: str) -> tuple[str, sa.ColumnElement]:
    if name not in SERIES_METRICS:
        raise ValueError(f"unknown metric {name!r}: see queries.SERIES_METRICS for the choices")
    source, column = SERIES_METRICS[name]
    if source == "env":
        return source, _growth(ENVS) if column == "growth_ratio" else ENVS.c[column]
    return source, (TAMIYO if source == "tamiyo" else SNAPSHOTS).c[column]


def _position(x: str, epoch: sa.ColumnElement) -> sa.ColumnElement:
    """x of a snapshot (SNAPSHOTS) whose epoch within its batch is ``epoch``."""
    s = SNAPSHOTS.c
    if x == "batch":
        fraction = sa.func.coalesce(_f(epoch) / sa.func.nullif(_f(s.max_epochs), 0), 0.0)
        return _f(s.current_batch) + fraction
    if x == "epoch":
        return _f(s.current_batch * s.max_epochs + epoch)
    if x == "time":
        return _epoch_seconds(s.captured_ts)
    raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")


def _epoch_in_batch() -> sa.ColumnElement:
    """The snapshot's epoch within its batch: its largest env epoch (0 after a batch-end reset,
    where the snapshot itself still shows the last epoch); its own epoch when it has no envs."""
    newest = sa.select(sa.func.max(ENVS.c.current_epoch)).where(
        ENVS.c.snapshot_id == SNAPSHOTS.c.id
    )
    return sa.func.coalesce(newest.scalar_subquery(), SNAPSHOTS.c.current_epoch)


def _metric_rows(source: str, value: sa.ColumnElement, x: str, where: list) -> sa.Select:
    """(snapshot_id, run_pk, x, env, value) of the metric, NULL values left out.

    An env value sits at its env's own position (its epoch); a snapshot's position is the
    largest of its envs' (envs of one snapshot may be an epoch apart)."""
    s = SNAPSHOTS.c
    if source == "env":
        return (
            sa.select(
                s.id.label("snapshot_id"),
                s.run_pk,
                _position(x, ENVS.c.current_epoch).label("x"),
                ENVS.c.env_key.label("env"),
                _f(value).label("value"),
            )
            .join_from(SNAPSHOTS, ENVS, ENVS.c.snapshot_id == s.id)
            .where(*where, ENVS.c.current_epoch > 0, value.is_not(None))
        )
    query = sa.select(
        s.id.label("snapshot_id"),
        s.run_pk,
        _position(x, _epoch_in_batch()).label("x"),
        sa.literal(None, sa.BigInteger).label("env"),
        _f(value).label("value"),
    ).select_from(SNAPSHOTS)
    if source == "tamiyo":
        query = query.join(TAMIYO, TAMIYO.c.snapshot_id == s.id)
    return query.where(*where, value.is_not(None))


SERIES_COLUMNS = {
    "env": "str",
    "x": "float64",
    "value": "float64",
    "std": "float64",
    "n": "int64",
    "snapshot_id": "int64",
}


def run_series(
    engine,
    run_id: str,
    metric: str,
    *,
    x: str = "batch",
    per_env: bool = False,
    max_points: int = 2000,
) -> pd.DataFrame:
    """One run's metric against ``x`` ("batch", "epoch" or "time"; see the module docstring).

    Columns: ``env`` ("mean", or the env key when ``per_env``), ``x``, ``value``, ``std``
    (sample std across envs, for a band; NaN for per-env rows and one-value snapshots), ``n``
    (values averaged), ``snapshot_id``. An env metric's "mean" series averages each snapshot's
    trained envs; a tamiyo or snapshot metric has one value per snapshot, in the "mean" series.
    Each series is downsampled to at most ``max_points`` by :func:`downsample_indices`.
    Raises ValueError for a metric not in :data:`SERIES_METRICS`.
    """
    source, value = _metric(metric)
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    run_pk = sa.select(RUNS.c.id).where(RUNS.c.run_id == run_id).scalar_subquery()
    where = [SNAPSHOTS.c.run_pk == run_pk]
    numbers = {"snapshot_id": "int64", "x": "float64", "value": "float64"}
    with read_connection(engine) as conn:
        per = None
        if source == "env" and per_env:
            rows = _metric_rows(source, value, x, where).subquery()
            query = sa.select(rows.c.snapshot_id, rows.c.x, rows.c.value, rows.c.env)
            per = _frame(conn, query, {**numbers, "env": "str"})
            # Every env of a snapshot at the snapshot's position, in line with the mean.
            per["x"] = per.groupby("snapshot_id")["x"].transform("max")
            grouped = per.groupby("snapshot_id", sort=False)
            mean = grouped.agg(
                x=("x", "first"), value=("value", "mean"), std=("value", "std"), n=("value", "size")
            ).reset_index()
        elif source == "env":
            mean = _frame(
                conn, _env_means(value, x, where), {**numbers, "square": "float64", "n": "int64"}
            )
            n = mean["n"].to_numpy(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                variance = np.clip(mean["square"] - mean["value"] ** 2, 0, None) * n / (n - 1)
            mean = mean.assign(std=np.sqrt(variance).where(n > 1)).drop(columns="square")
        else:
            rows = _metric_rows(source, value, x, where).subquery()
            query = sa.select(rows.c.snapshot_id, rows.c.x, rows.c.value)
            mean = _frame(conn, query, numbers).assign(std=math.nan, n=1)
        origin = 0.0
        if x == "time":
            first = sa.select(sa.func.min(_epoch_seconds(SNAPSHOTS.c.captured_ts))).where(*where)
            origin = conn.execute(first).scalar() or 0.0
    mean = mean.assign(env="mean", x=mean["x"] - origin)
    parts = [_downsampled(mean, max_points)]
    if per is not None:
        per = per.assign(std=math.nan, n=1, x=per["x"] - origin)
        parts += [_downsampled(group, max_points) for _, group in per.groupby("env", sort=True)]
    parts = [p for p in parts if len(p)]
    return _typed(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(), SERIES_COLUMNS)


def _env_means(value: sa.ColumnElement, x: str, where: list) -> sa.Select:
    """Per snapshot: x, the mean of an env metric over trained envs, its mean square, count."""
    s = SNAPSHOTS.c
    return (
        sa.select(
            s.id.label("snapshot_id"),
            _position(x, sa.func.max(ENVS.c.current_epoch)).label("x"),
            _f(sa.func.avg(value)).label("value"),
            _f(sa.func.avg(value * value)).label("square"),
            sa.func.count(value).label("n"),
        )
        .join_from(SNAPSHOTS, ENVS, ENVS.c.snapshot_id == s.id)
        .where(*where, ENVS.c.current_epoch > 0, value.is_not(None))
        # Grouping by the primary key lets PostgreSQL read the snapshot's other columns too.
        .group_by(s.id)
    )


def series_select(metric: str, *, x: str = "batch", **filters) -> sa.Select:
    """Every value of a metric, unsampled, for the runs matching the filters of
    :func:`list_runs` (``run_id=`` for some runs): the query behind ``export series``.

    Columns: ``run_id, snapshot_id, captured_ts, batch, x`` (an env value at its env's own
    epoch), ``env`` (NULL for tamiyo and snapshot metrics), ``value``; in run and x order.
    ``x="time"`` is seconds since the Unix epoch.
    """
    source, value = _metric(metric)
    rows = _metric_rows(source, value, x, _run_conditions(**filters))
    rows = rows.join(RUNS, RUNS.c.id == SNAPSHOTS.c.run_pk).subquery()
    return (
        sa.select(
            RUNS.c.run_id,
            rows.c.snapshot_id,
            SNAPSHOTS.c.captured_ts,
            SNAPSHOTS.c.current_batch.label("batch"),
            rows.c.x,
            rows.c.env,
            rows.c.value,
        )
        .join_from(rows, SNAPSHOTS, SNAPSHOTS.c.id == rows.c.snapshot_id)
        .join(RUNS, RUNS.c.id == rows.c.run_pk)
        .order_by(RUNS.c.run_id, rows.c.x, rows.c.snapshot_id, rows.c.env)
    )


def _downsampled(series: pd.DataFrame, max_points: int) -> pd.DataFrame:
    series = series.sort_values(["x", "snapshot_id"], kind="stable").reset_index(drop=True)
    x, y = series["x"].to_numpy(float), series["value"].to_numpy(float)
    return series.iloc[downsample_indices(x, y, max_points)]


def downsample_indices(x: np.ndarray, y: np.ndarray, max_points: int) -> np.ndarray:
    """Sorted indices of at most ``max_points`` points that keep a series' shape.

    Largest-Triangle-Three-Buckets (Steinarsson 2013) picks the points; the minimum and
    maximum of ``y``, which LTTB alone may drop, are always kept (from the same budget). ``x`` must be sorted and
    ``y`` finite. A series of at most ``max_points`` points is kept whole.
    """
    n = len(x)
    if n <= max_points:
        return np.arange(n)
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    x, y = np.asarray(x, float), np.asarray(y, float)
    extremes = {int(np.argmin(y)), int(np.argmax(y))} - {0, n - 1}
    chosen = _lttb(x, y, max_points - len(extremes))
    return np.union1d(chosen, sorted(extremes)).astype(int)


def _lttb(x: np.ndarray, y: np.ndarray, m: int) -> np.ndarray:
    """LTTB: the first and last points, and one point per bucket of the m - 2 between."""
    n = len(x)
    if m <= 2:
        return np.array([0, n - 1])
    # Bucket i covers [edges[i], edges[i + 1]) of the points strictly between the first and last.
    edges = (np.arange(m - 1) * (n - 2) // (m - 2) + 1).astype(int)
    edges[-1] = n - 1
    sizes = np.diff(edges)
    # Each bucket is scored against the average point of the bucket after it (the last point
    # for the last bucket).
    next_x = np.append((np.add.reduceat(x[:-1], edges[:-1]) / sizes)[1:], x[-1])
    next_y = np.append((np.add.reduceat(y[:-1], edges[:-1]) / sizes)[1:], y[-1])
    chosen = [0]
    a = 0
    if sizes.mean() < 32:
        # Small buckets: plain Python beats numpy's per-call overhead several times over.
        xs, ys, bounds = x.tolist(), y.tolist(), edges.tolist()
        for i, (cx, cy) in enumerate(zip(next_x.tolist(), next_y.tolist(), strict=True)):
            ax, ay = xs[a], ys[a]
            dx, dy = ax - cx, cy - ay
            best, a_next = -1.0, bounds[i]
            for j in range(bounds[i], bounds[i + 1]):
                area = abs(dx * (ys[j] - ay) - (ax - xs[j]) * dy)
                if area > best:
                    best, a_next = area, j
            a = a_next
            chosen.append(a)
    else:
        for i in range(m - 2):
            lo, hi = edges[i], edges[i + 1]
            ax, ay = x[a], y[a]
            area = np.abs((ax - next_x[i]) * (y[lo:hi] - ay) - (ax - x[lo:hi]) * (next_y[i] - ay))
            a = lo + int(np.argmax(area))
            chosen.append(a)
    chosen.append(n - 1)
    return np.asarray(chosen, dtype=int)


COHORT_CURVE_COLUMNS = {
    "cohort": "object",
    "x": "float64",
    "mean": "float64",
    "ci_low": "float64",
    "ci_high": "float64",
    "n": "int64",
}


def cohort_curves(
    engine, attribute: str, metric: str, *, x: str = "batch", max_points: int = 500, **filters
) -> pd.DataFrame:
    """A metric's mean curve per cohort, with a t-based 95 % interval across runs.

    ``x`` ("batch", "epoch", or "time" = seconds since each run's first snapshot) is cut into
    at most ``max_points`` equal buckets over the range of all runs; each run contributes one
    value per bucket (its mean there), so ``n`` counts runs. Columns: ``cohort`` (the value of
    ``attribute``), ``x`` (mean position of the bucket's points), ``mean, ci_low, ci_high, n``
    (interval NaN below 2 runs). Takes the run filters of :func:`list_runs`.
    """
    cohort = _cohort(attribute)
    source, value = _metric(metric)
    if max_points < 1:
        raise ValueError(f"max_points must be positive, got {max_points}")
    rows = (
        _metric_rows(source, value, x, [cohort.is_not(None), *_run_conditions(**filters)])
        .add_columns(cohort.label("cohort"))
        .join(RUNS, RUNS.c.id == SNAPSHOTS.c.run_pk)
        .subquery()
    )
    position = rows.c.x
    if x == "time":
        starts = (
            sa.select(SNAPSHOTS.c.run_pk, sa.func.min(_epoch_seconds(SNAPSHOTS.c.captured_ts)))
            .group_by(SNAPSHOTS.c.run_pk)
            .subquery()
        )
        rows = (
            sa.select(
                rows.c.cohort, rows.c.run_pk, rows.c.value, (rows.c.x - starts.c[1]).label("x")
            )
            .join_from(rows, starts, starts.c.run_pk == rows.c.run_pk)
            .subquery()
        )
        position = rows.c.x
    with read_connection(engine) as conn:
        low, high = conn.execute(sa.select(sa.func.min(position), sa.func.max(position))).one()
        if low is None:
            return _typed(pd.DataFrame(), COHORT_CURVE_COLUMNS)
        width = (high - low) / max_points or 1.0
        raw = _floor((position - low) / width)
        bucketed = sa.select(
            rows.c.cohort,
            rows.c.run_pk,
            position.label("x"),
            rows.c.value,
            sa.case((raw > max_points - 1, max_points - 1), else_=raw).label("bucket"),
        ).subquery()
        per_run = (
            sa.select(
                bucketed.c.cohort,
                bucketed.c.bucket,
                _f(sa.func.avg(bucketed.c.x)).label("x"),
                _f(sa.func.avg(bucketed.c.value)).label("value"),
            )
            .group_by(bucketed.c.cohort, bucketed.c.run_pk, bucketed.c.bucket)
            .subquery()
        )
        query = (
            sa.select(
                per_run.c.cohort,
                _f(sa.func.avg(per_run.c.x)).label("x"),
                _f(sa.func.avg(per_run.c.value)).label("mean"),
                _f(sa.func.avg(per_run.c.value * per_run.c.value)).label("square"),
                sa.func.count().label("n"),
            )
            .group_by(per_run.c.cohort, per_run.c.bucket)
            .order_by(per_run.c.cohort, per_run.c.bucket)
        )
        df = _frame(
            conn,
            query,
            {
                "cohort": "object",
                "x": "float64",
                "mean": "float64",
                "square": "float64",
                "n": "int64",
            },
        )
    n = df["n"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.clip(df["square"].to_numpy(float) - df["mean"].to_numpy(float) ** 2, 0, None)
        sem = np.sqrt(variance / (n - 1))  # sample variance / n
        half = np.where(n > 1, sps.t.ppf(0.975, np.maximum(n - 1, 1)) * sem, np.nan)
    df["ci_low"], df["ci_high"] = df["mean"] - half, df["mean"] + half
    return _typed(df, COHORT_CURVE_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Leaderboard
# ---------------------------------------------------------------------------------------------

LEADERBOARD_COLUMNS = {
    "run_id": "str",
    "record_id": "str",
    "env_id": "int64",
    "episode": "int64",
    "epoch": "int64",
    "peak_accuracy": "float64",
    "final_accuracy": "float64",
    "trajectory": "float64",
    "growth_ratio": "float64",
    "seeds_fossilized": "int64",
    "seeds_holding": "int64",
    "seeds_blending": "int64",
    "reward_mode": "str",
    "group_id": "str",
}


def leaderboard_select(
    *,
    reward_mode: str | Sequence[str] | None = None,
    group_id: str | Sequence[str] | None = None,
    run_id: str | Sequence[str] | None = None,
    limit: int | None = 100,
) -> sa.Select:
    """The query behind :func:`leaderboard` (and ``export leaderboard``)."""
    mode = sa.func.coalesce(BEST.c.reward_mode, RUNS.c.reward_mode)
    conditions = [
        _one_or_many(mode, reward_mode),
        _one_or_many(RUNS.c.group_id, group_id),
        _one_or_many(RUNS.c.run_id, run_id),
    ]
    top = (
        sa.select(
            BEST.c.id,
            RUNS.c.run_id,
            BEST.c.record_key.label("record_id"),
            BEST.c.env_id,
            BEST.c.episode,
            BEST.c.epoch,
            BEST.c.peak_accuracy,
            BEST.c.final_accuracy,
            BEST.c.growth_ratio,
            BEST.c.seeds_id,
            mode.label("reward_mode"),
            RUNS.c.group_id,
        )
        .join_from(BEST, RUNS, RUNS.c.id == BEST.c.run_pk)
        .where(*(c for c in conditions if c is not None))
        .order_by(BEST.c.peak_accuracy.desc().nulls_last(), BEST.c.id)
        .limit(limit)
        .subquery("top")
    )
    stage = SEEDS.c.stage
    seeds = (
        sa.select(
            SEEDS.c.seed_set_id,
            *(
                sa.func.sum(_flag(stage == name)).label(name.lower())
                for name in ("FOSSILIZED", "HOLDING", "BLENDING")
            ),
        )
        .where(SEEDS.c.seed_set_id.in_(sa.select(top.c.seeds_id)))
        .group_by(SEEDS.c.seed_set_id)
        .subquery("seeds")
    )
    return (
        sa.select(
            top.c.run_id,
            top.c.record_id,
            top.c.env_id,
            top.c.episode,
            top.c.epoch,
            top.c.peak_accuracy,
            top.c.final_accuracy,
            (top.c.final_accuracy - top.c.peak_accuracy).label("trajectory"),
            top.c.growth_ratio,
            *(
                _i(sa.func.coalesce(seeds.c[name], 0)).label(f"seeds_{name}")
                for name in ("fossilized", "holding", "blending")
            ),
            top.c.reward_mode,
            top.c.group_id,
        )
        .outerjoin(seeds, seeds.c.seed_set_id == top.c.seeds_id)
        .order_by(top.c.peak_accuracy.desc().nulls_last(), top.c.id)
    )


def leaderboard(
    engine,
    *,
    reward_mode: str | Sequence[str] | None = None,
    group_id: str | Sequence[str] | None = None,
    run_id: str | Sequence[str] | None = None,
    limit: int | None = 100,
) -> pd.DataFrame:
    """Best-run records across runs, best peak first; one row per stored record (a record
    shown in many snapshots is one row).

    Columns: ``run_id, record_id, env_id, episode, epoch, peak_accuracy, final_accuracy,
    trajectory`` (final - peak), ``growth_ratio, seeds_fossilized, seeds_holding,
    seeds_blending`` (the record's seeds at the peak, by stage), ``reward_mode`` (the
    record's, else its run's), ``group_id``.
    """
    query = leaderboard_select(
        reward_mode=reward_mode, group_id=group_id, run_id=run_id, limit=limit
    )
    with read_connection(engine) as conn:
        return _frame(conn, query, LEADERBOARD_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------

_SEED_BY = {"blueprint": "blueprint_id", "slot": "slot_key"}


def _by_run(conditions: list) -> list:
    """Run filters as ``env_states.run_pk IN (matching runs)``: planners then walk the
    (run_pk, ...) index from the few matching runs instead of scanning every env row."""
    if not conditions:
        return []
    return [ENVS.c.run_pk.in_(sa.select(RUNS.c.id).where(*conditions).scalar_subquery())]


def _seed_observations(conditions: list, cohort: sa.ColumnElement | None) -> sa.Subquery:
    """Every non-dormant seed slot seen in a snapshot, numbered into seeds (``seed``): within a
    (run, batch, env, slot), a new seed starts when the blueprint changes or the stage goes
    backwards (see the module docstring)."""
    stage = SEEDS.c.stage
    rank = sa.case(
        *((stage == name, i + 1) for i, name in enumerate(STAGES)),
        (stage.in_(PRUNED_STAGES), len(STAGES) + 1),
        else_=None,
    )
    observed = (
        sa.select(
            ENVS.c.run_pk,
            SNAPSHOTS.c.current_batch.label("batch"),
            ENVS.c.env_key,
            SEEDS.c.slot_key,
            SEEDS.c.blueprint_id,
            stage.label("stage"),
            rank.label("rank"),
            SNAPSHOTS.c.captured_ts,
            SNAPSHOTS.c.id.label("snapshot_id"),
            SEEDS.c.epochs_in_stage,
            SEEDS.c.epochs_total,
            SEEDS.c.prune_reason,
            _flag(SEEDS.c.auto_pruned).label("auto_pruned"),
            (cohort if cohort is not None else sa.literal(None, sa.Text)).label("cohort"),
        )
        .select_from(ENVS)
        .join(SNAPSHOTS, SNAPSHOTS.c.id == ENVS.c.snapshot_id)
        .join(RUNS, RUNS.c.id == ENVS.c.run_pk)
        .join(SEEDS, SEEDS.c.seed_set_id == ENVS.c.seeds_id)
        .where(stage != "DORMANT", SEEDS.c.blueprint_id.is_not(None), *_by_run(conditions))
        .subquery("observed")
    )
    o = observed.c
    slot = (o.run_pk, o.batch, o.env_key, o.slot_key)
    order = (o.captured_ts, o.snapshot_id)
    previous_blueprint = sa.func.lag(o.blueprint_id).over(partition_by=slot, order_by=order)
    previous_rank = sa.func.lag(o.rank).over(partition_by=slot, order_by=order)
    starts = sa.case(
        (previous_blueprint.is_(None), 1),
        (previous_blueprint != o.blueprint_id, 1),
        (o.rank < previous_rank, 1),
        else_=0,
    )
    flagged = sa.select(observed, starts.label("starts")).subquery("flagged")
    f = flagged.c
    seed = sa.func.sum(f.starts).over(
        partition_by=(f.run_pk, f.batch, f.env_key, f.slot_key),
        order_by=(f.captured_ts, f.snapshot_id),
        rows=(None, 0),
    )
    return sa.select(flagged, seed.label("seed")).subquery("numbered")


def _seeds(conditions: list, cohort: sa.ColumnElement | None) -> sa.Subquery:
    """One row per seed: blueprint, slot, furthest stage seen alive (``rank``), whether it
    fossilized, was seen pruned (``pruned_seen``, with its reason) or was pruned at all
    (``pruned``: also when it left its slot while its env was still observed in that batch;
    only a prune removes a seed mid-batch), and its lifespan (seen in a terminal state)."""
    o = _seed_observations(conditions, cohort).c
    pruned = o.rank == len(STAGES) + 1
    terminal = o.rank >= len(STAGES)
    seeds = (
        sa.select(
            o.cohort,
            o.run_pk,
            o.batch,
            o.env_key,
            sa.func.max(o.blueprint_id).label("blueprint_id"),
            o.slot_key,
            sa.func.max(sa.case((o.rank <= len(STAGES), o.rank))).label("rank"),
            sa.func.max(_flag(o.stage == "FOSSILIZED")).label("fossilized"),
            sa.func.max(_flag(pruned)).label("pruned_seen"),
            sa.func.max(o.captured_ts).label("last_seen"),
            sa.func.max(sa.case((terminal, o.epochs_total))).label("epochs_total"),
            sa.func.max(sa.case((pruned, o.prune_reason))).label("prune_reason"),
            sa.func.max(sa.case((pruned, o.auto_pruned))).label("auto_pruned"),
        )
        .group_by(o.cohort, o.run_pk, o.batch, o.env_key, o.slot_key, o.seed)
        .subquery("tracked")
    )
    env_seen = (
        sa.select(
            ENVS.c.run_pk,
            SNAPSHOTS.c.current_batch.label("batch"),
            ENVS.c.env_key,
            sa.func.max(SNAPSHOTS.c.captured_ts).label("until"),
        )
        .join_from(ENVS, SNAPSHOTS, SNAPSHOTS.c.id == ENVS.c.snapshot_id)
        .join(RUNS, RUNS.c.id == ENVS.c.run_pk)
        .where(ENVS.c.current_epoch > 0, *_by_run(conditions))
        .group_by(ENVS.c.run_pk, SNAPSHOTS.c.current_batch, ENVS.c.env_key)
        .subquery("env_seen")
    )
    t = seeds.c
    vanished = sa.and_(t.fossilized == 0, t.last_seen < env_seen.c.until)
    return (
        sa.select(
            seeds,
            sa.case((sa.or_(t.pruned_seen == 1, vanished), 1), else_=0).label("pruned"),
        )
        .outerjoin(
            env_seen,
            sa.and_(
                env_seen.c.run_pk == t.run_pk,
                env_seen.c.batch == t.batch,
                env_seen.c.env_key == t.env_key,
            ),
        )
        .subquery("seeds")
    )


def _seed_scope(cohort: str | None, filters: dict) -> tuple[list, sa.ColumnElement | None]:
    return _run_conditions(**filters), None if cohort is None else _cohort(cohort)


def _with_cohort(dtypes: dict[str, str], cohort: str | None) -> dict[str, str]:
    return dtypes if cohort is None else {"cohort": "object", **dtypes}


def seed_funnel(engine, *, by: str | None = "blueprint", cohort: str | None = None, **filters):
    """How far seeds got, per blueprint (``by="slot"``: per slot; None: all together) and,
    given ``cohort`` (a :data:`COHORT_ATTRIBUTES` name), per cohort.

    Columns: [``cohort``], [``blueprint_id`` | ``slot_key``], ``germinated, training,
    blending, holding, fossilized, pruned`` (seeds that reached each stage; see the module
    docstring for what a seed is), ``blend_success_rate`` (fossilized / (fossilized + pruned),
    esper's definition), and for ``by="blueprint"`` the counters esper itself reports at each
    run's latest snapshot, which include seeds no snapshot caught: ``reported_spawns,
    reported_fossilized, reported_prunes``. Takes the run filters of :func:`list_runs`.
    """
    if by is not None and by not in _SEED_BY:
        raise ValueError(f"by must be 'blueprint', 'slot' or None, got {by!r}")
    conditions, cohort_expr = _seed_scope(cohort, filters)
    seeds = _seeds(conditions, cohort_expr)
    keys = ([seeds.c.cohort] if cohort else []) + ([seeds.c[_SEED_BY[by]]] if by else [])
    counts = [
        _i(sa.func.count()).label("germinated"),
        *(
            _i(sa.func.sum(_flag(seeds.c.rank >= i + 2))).label(name.lower())
            for i, name in enumerate(STAGES[1:-1])
        ),
        _i(sa.func.sum(seeds.c.fossilized)).label("fossilized"),
        _i(sa.func.sum(seeds.c.pruned)).label("pruned"),
    ]
    query = sa.select(*keys, *counts).group_by(*keys).order_by(*keys)
    names = ["germinated", "training", "blending", "holding", "fossilized", "pruned"]
    dtypes = _with_cohort(
        {**({_SEED_BY[by]: "str"} if by else {}), **dict.fromkeys(names, "int64")}, cohort
    )
    with read_connection(engine) as conn:
        df = _frame(conn, query, dtypes)
        if by == "blueprint":
            df = df.merge(
                _reported(conn, conditions, cohort_expr), how="outer", on=list(dtypes)[: len(keys)]
            )
    with np.errstate(invalid="ignore", divide="ignore"):
        total = (df["fossilized"] + df["pruned"]).to_numpy(float)
        df["blend_success_rate"] = df["fossilized"].to_numpy(float) / np.where(
            total > 0, total, np.nan
        )
    for name in names:
        df[name] = df[name].fillna(0).astype("int64")
    return df.sort_values(list(dtypes)[: len(keys)], ignore_index=True) if keys else df


def _reported(conn: sa.Connection, conditions: list, cohort: sa.ColumnElement | None):
    latest = (
        sa.select(SNAPSHOTS.c.id)
        .where(SNAPSHOTS.c.run_pk == RUNS.c.id)
        .order_by(SNAPSHOTS.c.captured_ts.desc(), SNAPSHOTS.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    picked = (
        sa.select(
            RUNS.c.id,
            latest.label("last_id"),
            *([cohort.label("cohort")] if cohort is not None else []),
        )
        .where(*conditions)
        .subquery()
    )
    keys = ([picked.c.cohort] if cohort is not None else []) + [BLUEPRINTS.c.blueprint_id]
    query = (
        sa.select(
            *keys,
            *(
                _i(sa.func.sum(sa.func.coalesce(BLUEPRINTS.c[name], 0))).label(f"reported_{name}")
                for name in ("spawns", "fossilized", "prunes")
            ),
        )
        .join_from(picked, BLUEPRINTS, BLUEPRINTS.c.snapshot_id == picked.c.last_id)
        .group_by(*keys)
    )
    dtypes = {
        "blueprint_id": "str",
        **dict.fromkeys(("reported_spawns", "reported_fossilized", "reported_prunes"), "Int64"),
    }
    return _frame(conn, query, _with_cohort(dtypes, "cohort" if cohort is not None else None))


def seed_lifespans(engine, *, cohort: str | None = None, **filters) -> pd.DataFrame:
    """How long seeds lived: the histogram of ``epochs_total`` of seeds seen in a terminal
    state, per outcome and blueprint.

    Columns: [``cohort``], ``outcome`` ("fossilized" / "pruned"), ``blueprint_id``,
    ``epochs_total``, ``n`` (seeds). Takes the run filters of :func:`list_runs`.
    """
    conditions, cohort_expr = _seed_scope(cohort, filters)
    seeds = _seeds(conditions, cohort_expr)
    outcome = sa.case((seeds.c.fossilized == 1, "fossilized"), else_="pruned")
    keys = [
        *([seeds.c.cohort] if cohort else []),
        outcome.label("outcome"),
        seeds.c.blueprint_id,
        seeds.c.epochs_total,
    ]
    query = (
        sa.select(*keys, sa.func.count().label("n"))
        .where(
            sa.or_(seeds.c.fossilized == 1, seeds.c.pruned == 1), seeds.c.epochs_total.is_not(None)
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    dtypes = {"outcome": "str", "blueprint_id": "str", "epochs_total": "int64", "n": "int64"}
    with read_connection(engine) as conn:
        return _frame(conn, query, _with_cohort(dtypes, cohort))


def time_in_stage(engine, *, by: str | None = "blueprint", cohort: str | None = None, **filters):
    """Epochs seeds spent in each stage they were seen to leave.

    A stage visit counts once the seed is seen in another stage afterwards; its length is the
    ``epochs_in_stage`` of the last observation in it (a lower bound: snapshots are samples).
    Columns: [``cohort``], ``stage``, [``blueprint_id`` | ``slot_key``], ``n`` (visits),
    ``mean_epochs, min_epochs, max_epochs``, in lifecycle order. Takes the run filters of
    :func:`list_runs`.
    """
    if by is not None and by not in _SEED_BY:
        raise ValueError(f"by must be 'blueprint', 'slot' or None, got {by!r}")
    conditions, cohort_expr = _seed_scope(cohort, filters)
    o = _seed_observations(conditions, cohort_expr).c
    following = sa.func.lead(o.stage).over(
        partition_by=(o.run_pk, o.batch, o.env_key, o.slot_key, o.seed),
        order_by=(o.captured_ts, o.snapshot_id),
    )
    visits = sa.select(
        o.cohort,
        o.stage,
        o.rank,
        o.blueprint_id,
        o.slot_key,
        o.epochs_in_stage,
        following.label("next"),
    ).subquery("visits")
    v = visits.c
    keys = [*([v.cohort] if cohort else []), v.stage, *([v[_SEED_BY[by]]] if by else [])]
    query = (
        sa.select(
            *keys,
            sa.func.count().label("n"),
            _f(sa.func.avg(v.epochs_in_stage)).label("mean_epochs"),
            sa.func.min(v.epochs_in_stage).label("min_epochs"),
            sa.func.max(v.epochs_in_stage).label("max_epochs"),
        )
        .where(v.next.is_not(None), v.next != v.stage)
        .group_by(*keys, v.rank)
        .order_by(*([v.cohort] if cohort else []), v.rank, *keys[1 if cohort else 0 :])
    )
    dtypes = {
        "stage": "str",
        **({_SEED_BY[by]: "str"} if by else {}),
        "n": "int64",
        "mean_epochs": "float64",
        "min_epochs": "int64",
        "max_epochs": "int64",
    }
    with read_connection(engine) as conn:
        return _frame(conn, query, _with_cohort(dtypes, cohort))


def prune_reasons(engine, *, cohort: str | None = None, **filters) -> pd.DataFrame:
    """Why seeds were pruned: one row per reason and auto/policy prune.

    Columns: [``cohort``], ``prune_reason``, ``auto_pruned`` (bool), ``n`` (seeds),
    ``share`` (of the cohort's pruned seeds), most frequent first. Takes the run filters of
    :func:`list_runs`.
    """
    conditions, cohort_expr = _seed_scope(cohort, filters)
    seeds = _seeds(conditions, cohort_expr)
    keys = [
        *([seeds.c.cohort] if cohort else []),
        sa.func.coalesce(seeds.c.prune_reason, "").label("prune_reason"),
        sa.func.coalesce(seeds.c.auto_pruned, 0).label("auto_pruned"),
    ]
    query = (
        sa.select(*keys, sa.func.count().label("n")).where(seeds.c.pruned_seen == 1).group_by(*keys)
    )
    dtypes = {"prune_reason": "str", "auto_pruned": "bool", "n": "int64"}
    with read_connection(engine) as conn:
        df = _frame(conn, query, _with_cohort(dtypes, cohort))
    totals = df.groupby("cohort")["n"].transform("sum") if cohort else df["n"].sum()
    df["share"] = (df["n"] / totals).astype("float64")
    order = ["cohort", "n", "prune_reason"] if cohort else ["n", "prune_reason"]
    ascending = [True, False, True] if cohort else [False, True]
    return df.sort_values(order, ascending=ascending, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------


def action_mix(engine, *, cohort: str | None = None, **filters) -> pd.DataFrame:
    """The policy's actions per batch: esper's per-batch action counts, taken at each batch's
    last trained snapshot (they count up through a batch), summed over runs.

    Columns: [``cohort``], ``batch, action, count, share`` (of the batch's actions),
    ``runs`` (runs contributing). Takes the run filters of :func:`list_runs` (``run_id=`` for
    one run).
    """
    conditions, cohort_expr = _seed_scope(cohort, filters)
    per_run = (
        sa.select(
            (cohort_expr if cohort_expr is not None else sa.literal(None, sa.Text)).label("cohort"),
            SNAPSHOTS.c.run_pk,
            SNAPSHOTS.c.current_batch.label("batch"),
            ACTIONS.c.action,
            sa.func.max(ACTIONS.c.count).label("count"),
        )
        .select_from(ACTIONS)
        .join(SNAPSHOTS, SNAPSHOTS.c.id == ACTIONS.c.snapshot_id)
        .join(RUNS, RUNS.c.id == SNAPSHOTS.c.run_pk)
        .where(ACTIONS.c.scope == "batch", _trained(SNAPSHOTS), *conditions)
        .group_by(
            sa.literal_column("cohort"),
            SNAPSHOTS.c.run_pk,
            SNAPSHOTS.c.current_batch,
            ACTIONS.c.action,
        )
        .subquery()
    )
    keys = [*([per_run.c.cohort] if cohort else []), per_run.c.batch, per_run.c.action]
    query = (
        sa.select(
            *keys, _i(sa.func.sum(per_run.c["count"])).label("count"), sa.func.count().label("runs")
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    dtypes = {"batch": "int64", "action": "str", "count": "int64", "runs": "int64"}
    with read_connection(engine) as conn:
        df = _frame(conn, query, _with_cohort(dtypes, cohort))
    batch = ["cohort", "batch"] if cohort else ["batch"]
    with np.errstate(invalid="ignore", divide="ignore"):
        df.insert(
            3 + bool(cohort), "share", df["count"] / df.groupby(batch)["count"].transform("sum")
        )
    return df.astype({"share": "float64"})


def _decision_scope(filters: dict) -> list:
    conditions = _run_conditions(**filters)
    if not conditions:
        return []
    return [DECISIONS.c.run_pk.in_(sa.select(RUNS.c.id).where(*conditions))]


def calibration(engine, *, bins: int = 10, **filters) -> pd.DataFrame:
    """Is the policy's confidence calibrated? Decisions with a known reward, binned by
    confidence into ``bins`` equal bins over [0, 1] (values outside go to the end bins).

    Columns: ``bin, bin_low, bin_high, mean_confidence, positive_rate`` (fraction whose
    ``actual_reward > 0``), ``mean_reward, n``; every bin, empty ones with n = 0. Takes the
    run filters of :func:`list_runs`.
    """
    if bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    d = DECISIONS.c
    raw = _floor(d.confidence * bins)
    binned = (
        sa.select(
            sa.case((raw < 0, 0), (raw > bins - 1, bins - 1), else_=raw).label("bin"),
            d.confidence,
            d.actual_reward,
        )
        .where(d.confidence.is_not(None), d.actual_reward.is_not(None), *_decision_scope(filters))
        .subquery()
    )
    b = binned.c
    query = (
        sa.select(
            b.bin,
            _f(sa.func.avg(b.confidence)).label("mean_confidence"),
            _f(sa.func.avg(_flag(b.actual_reward > 0))).label("positive_rate"),
            _f(sa.func.avg(b.actual_reward)).label("mean_reward"),
            sa.func.count().label("n"),
        )
        .group_by(b.bin)
        .order_by(b.bin)
    )
    dtypes = {
        "bin": "int64",
        "mean_confidence": "float64",
        "positive_rate": "float64",
        "mean_reward": "float64",
        "n": "int64",
    }
    with read_connection(engine) as conn:
        found = _frame(conn, query, dtypes)
    df = pd.DataFrame({"bin": np.arange(bins)}).merge(found, how="left", on="bin")
    df.insert(1, "bin_low", df["bin"] / bins)
    df.insert(2, "bin_high", (df["bin"] + 1) / bins)
    df["n"] = df["n"].fillna(0).astype("int64")
    return df


VALUE_COLUMNS = {
    "run_id": "str",
    "decision_id": "str",
    "batch": "int64",
    "epoch": "int64",
    "env_id": "int64",
    "chosen_action": "str",
    "confidence": "float64",
    "expected_value": "float64",
    "actual_reward": "float64",
}


def value_vs_reward(engine, *, limit: int = 2000, **filters) -> pd.DataFrame:
    """(expected_value, actual_reward) pairs of decisions whose reward is known: all of them,
    or a deterministic pseudo-random sample of ``limit``.

    Columns: ``run_id, decision_id, batch, epoch, env_id, chosen_action, confidence,
    expected_value, actual_reward``. Takes the run filters of :func:`list_runs`.
    """
    d = DECISIONS.c
    # A multiplicative hash of the key spreads the sample evenly over runs and time.
    scramble = (d.id * 2654435761) % 4294967296
    query = (
        sa.select(
            RUNS.c.run_id,
            d.decision_key.label("decision_id"),
            d.batch,
            d.epoch,
            d.env_id,
            d.chosen_action,
            d.confidence,
            d.expected_value,
            d.actual_reward,
        )
        .join_from(DECISIONS, RUNS, RUNS.c.id == d.run_pk)
        .where(
            d.expected_value.is_not(None), d.actual_reward.is_not(None), *_run_conditions(**filters)
        )
        .order_by(scramble, d.id)
        .limit(limit)
    )
    with read_connection(engine) as conn:
        return _frame(conn, query, VALUE_COLUMNS)


HEADS = ("op", "slot", "blueprint", "style", "tempo", "alpha_target", "alpha_speed", "alpha_curve")


def head_entropy(engine, run_id: str | Sequence[str] | None = None, **filters) -> pd.DataFrame:
    """The policy heads' entropies per batch (means over the snapshots, and runs, of a batch).

    Columns: ``batch, head`` (one of :data:`HEADS`), ``entropy, n`` (snapshots). Takes the
    run filters of :func:`list_runs`.
    """
    conditions = _run_conditions(run_id=run_id, **filters)
    query = (
        sa.select(
            SNAPSHOTS.c.current_batch.label("batch"),
            *(_f(sa.func.avg(TAMIYO.c[f"head_{h}_entropy"])).label(h) for h in HEADS),
            sa.func.count().label("n"),
        )
        .select_from(TAMIYO)
        .join(SNAPSHOTS, SNAPSHOTS.c.id == TAMIYO.c.snapshot_id)
        .join(RUNS, RUNS.c.id == SNAPSHOTS.c.run_pk)
        .where(*conditions)
        .group_by(SNAPSHOTS.c.current_batch)
        .order_by(SNAPSHOTS.c.current_batch)
    )
    with read_connection(engine) as conn:
        wide = _frame(
            conn, query, {"batch": "int64", **dict.fromkeys(HEADS, "float64"), "n": "int64"}
        )
    long = wide.melt(
        id_vars=["batch", "n"], value_vars=list(HEADS), var_name="head", value_name="entropy"
    )
    long["head"] = pd.Categorical(long["head"], categories=HEADS)
    long = long.sort_values(["batch", "head"], ignore_index=True)
    return _typed(long, {"batch": "int64", "head": "str", "entropy": "float64", "n": "int64"})


DECISION_COLUMNS = {
    "decision_id": "str",
    "timestamp": "object",
    "batch": "int64",
    "epoch": "int64",
    "env_id": "int64",
    "chosen_action": "str",
    "chosen_slot": "str",
    "chosen_blueprint": "str",
    "confidence": "float64",
    "expected_value": "float64",
    "actual_reward": "float64",
    "value_residual": "float64",
    "decision_entropy": "float64",
    "host_accuracy": "float64",
    "alternatives": "str",
}


def decision_table(engine, run_id: str, *, limit: int = 200) -> pd.DataFrame:
    """A run's decisions, newest first, with the alternatives the policy weighed.

    Columns: ``decision_id, timestamp, batch, epoch, env_id, chosen_action, chosen_slot,
    chosen_blueprint, confidence, expected_value, actual_reward, value_residual,
    decision_entropy, host_accuracy, alternatives`` ("ACTION probability, ..." in the policy's
    order).
    """
    d = DECISIONS.c
    top = (
        sa.select(
            d.id,
            *(
                d[name] if name != "decision_id" else d.decision_key.label(name)
                for name in list(DECISION_COLUMNS)[:-1]
            ),
        )
        .join_from(DECISIONS, RUNS, RUNS.c.id == d.run_pk)
        .where(RUNS.c.run_id == run_id)
        .order_by(d.batch.desc(), d.epoch.desc(), d.id.desc())
        .limit(limit)
    )
    with read_connection(engine) as conn:
        df = _frame(
            conn,
            top,
            {"id": "int64", **{k: v for k, v in DECISION_COLUMNS.items() if k != "alternatives"}},
        )
        alternatives = conn.execute(
            sa.select(ALTERNATIVES.c.decision_pk, ALTERNATIVES.c.action, ALTERNATIVES.c.probability)
            .where(ALTERNATIVES.c.decision_pk.in_(df["id"].tolist()))
            .order_by(ALTERNATIVES.c.decision_pk, ALTERNATIVES.c.position)
        ).all()
    text: dict[int, list[str]] = {}
    for pk, action, probability in alternatives:
        shown = "nan" if probability is None else f"{probability:.3f}"
        text.setdefault(pk, []).append(f"{action} {shown}")
    df["alternatives"] = [", ".join(text.get(pk, [])) for pk in df["id"]]
    return _typed(df, DECISION_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Attribution
# ---------------------------------------------------------------------------------------------

SYNERGY_COLUMNS = {
    "run_id": "str",
    "snapshot_id": "int64",
    "batch": "int64",
    "epoch": "int64",
    "env": "int64",
    "n_slots": "int64",
    "baseline_accuracy": "float64",
    "combined_accuracy": "float64",
    "individual_sum": "float64",
    "synergy": "float64",
}


def synergy(engine, *, limit: int | None = 10_000, **filters) -> pd.DataFrame:
    """Counterfactual synergy per run, env and snapshot: combined - baseline - the sum of the
    seeds' solo gains over baseline (as ``CounterfactualSnapshot.total_synergy``; a missing
    baseline or combined configuration counts as 0.0). Envs without a matrix are left out.

    Columns: ``run_id, snapshot_id, batch, epoch, env, n_slots, baseline_accuracy,
    combined_accuracy, individual_sum, synergy``, newest first. Takes the run filters of
    :func:`list_runs`.
    """
    c = CF_CONFIGS.c
    ones = sa.func.length(c.seed_mask) - sa.func.length(sa.func.replace(c.seed_mask, "1", ""))
    used = sa.select(ENVS.c.counterfactual_matrix_id).join_from(
        ENVS, RUNS, RUNS.c.id == ENVS.c.run_pk
    )
    conditions = _run_conditions(**filters)
    per_matrix = (
        sa.select(
            c.counterfactual_id,
            sa.func.max(sa.func.length(c.seed_mask)).label("n_slots"),
            sa.func.coalesce(sa.func.max(sa.case((ones == 0, c.accuracy))), 0.0).label("baseline"),
            sa.func.coalesce(
                sa.func.max(sa.case((ones == sa.func.length(c.seed_mask), c.accuracy))), 0.0
            ).label("combined"),
            sa.func.coalesce(sa.func.sum(sa.case((ones == 1, c.accuracy))), 0.0).label("solo_sum"),
            sa.func.sum(_flag(ones == 1)).label("solo_n"),
        )
        .where(c.counterfactual_id.in_(used.where(*conditions) if conditions else used))
        .group_by(c.counterfactual_id)
        .subquery("per_matrix")
    )
    m = per_matrix.c
    individual = _f(m.solo_sum) - m.solo_n * _f(m.baseline)
    query = (
        sa.select(
            RUNS.c.run_id,
            SNAPSHOTS.c.id.label("snapshot_id"),
            SNAPSHOTS.c.current_batch.label("batch"),
            ENVS.c.current_epoch.label("epoch"),
            ENVS.c.env_key.label("env"),
            m.n_slots,
            _f(m.baseline).label("baseline_accuracy"),
            _f(m.combined).label("combined_accuracy"),
            individual.label("individual_sum"),
            (_f(m.combined) - _f(m.baseline) - individual).label("synergy"),
        )
        .select_from(ENVS)
        .join(per_matrix, m.counterfactual_id == ENVS.c.counterfactual_matrix_id)
        .join(SNAPSHOTS, SNAPSHOTS.c.id == ENVS.c.snapshot_id)
        .join(RUNS, RUNS.c.id == ENVS.c.run_pk)
        .where(m.n_slots > 0, *conditions)
        .order_by(SNAPSHOTS.c.captured_ts.desc(), SNAPSHOTS.c.id.desc(), ENVS.c.env_key)
        .limit(limit)
    )
    with read_connection(engine) as conn:
        return _frame(conn, query, SYNERGY_COLUMNS)


def shapley_ranking(
    engine, *, by: str = "slot", cohort: str | None = None, z: float = 1.96, **filters
) -> pd.DataFrame:
    """Which slots (``by="slot"``) or blueprints (``by="blueprint"``: the seed's blueprint in
    that slot then) contribute, by their Shapley estimates.

    An estimate counts once per run, env and Shapley snapshot, however many snapshots repeat
    it. It is significant when ``mean ± z·std`` excludes zero (as
    ``ShapleySnapshot.get_significance``). Columns: [``cohort``], ``slot_id`` |
    ``blueprint_id``, ``mean_value, n, share_significant``, best first. Takes the run filters
    of :func:`list_runs`.
    """
    if by not in ("slot", "blueprint"):
        raise ValueError(f"by must be 'slot' or 'blueprint', got {by!r}")
    conditions, cohort_expr = _seed_scope(cohort, filters)
    label = cohort_expr if cohort_expr is not None else sa.literal(None, sa.Text)
    columns = [label.label("cohort"), ENVS.c.run_pk, ENVS.c.env_key, ENVS.c.shapley_snapshot_id]
    shown = sa.select(*columns).join_from(ENVS, RUNS, RUNS.c.id == ENVS.c.run_pk)
    if by == "blueprint":
        # The blueprint of the seed in that slot then; each pairing counts once.
        shown = (
            shown.add_columns(SEEDS.c.slot_key, SEEDS.c.blueprint_id)
            .join(SEEDS, SEEDS.c.seed_set_id == ENVS.c.seeds_id)
            .where(SEEDS.c.blueprint_id.is_not(None))
        )
    shown = (
        shown.where(ENVS.c.shapley_snapshot_id.is_not(None), *conditions)
        .distinct()
        .subquery("shown")
    )
    s = SHAPLEY.c
    estimates = sa.select(shown.c.cohort, s.slot_id, s.mean, s.std).join_from(
        shown, SHAPLEY, s.shapley_id == shown.c.shapley_snapshot_id
    )
    if by == "blueprint":
        estimates = estimates.add_columns(shown.c.blueprint_id).where(shown.c.slot_key == s.slot_id)
    estimates = estimates.where(s.mean.is_not(None)).subquery("estimates")
    e = estimates.c
    key = e.slot_id if by == "slot" else e.blueprint_id
    significant = sa.and_(
        e.std.is_not(None),
        sa.or_(e.mean - z * sa.func.abs(e.std) > 0, e.mean + z * sa.func.abs(e.std) < 0),
    )
    keys = [*([e.cohort] if cohort else []), key]
    query = sa.select(
        *keys,
        _f(sa.func.avg(e.mean)).label("mean_value"),
        sa.func.count().label("n"),
        _f(sa.func.avg(_flag(significant))).label("share_significant"),
    ).group_by(*keys)
    name = "slot_id" if by == "slot" else "blueprint_id"
    dtypes = {name: "str", "mean_value": "float64", "n": "int64", "share_significant": "float64"}
    with read_connection(engine) as conn:
        df = _frame(conn, query, _with_cohort(dtypes, cohort))
    order = ["cohort", "mean_value", name] if cohort else ["mean_value", name]
    ascending = [True, False, True] if cohort else [False, True]
    return df.sort_values(order, ascending=ascending, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------

EVENT_COLUMNS = {
    "run_id": "str",
    "seq": "int64",
    "timestamp": "str",
    "event_type": "str",
    "env_id": "Int64",
    "episode": "int64",
    "message": "str",
    "metadata": "object",
}


def search_events(
    engine,
    *,
    run_id: str | Sequence[str] | None = None,
    event_type: str | Sequence[str] | None = None,
    env_id: int | Sequence[int] | None = None,
    text: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    limit: int = 500,
) -> pd.DataFrame:
    """Events of the runs' event logs, newest first.

    ``text`` is a case-insensitive substring of the message or the metadata (as JSON text);
    ``since``/``until`` keep events shown in a snapshot captured in that window (a snapshot
    shows a contiguous window of its run's events). Columns: ``run_id, seq`` (the event's
    number in its run), ``timestamp`` (esper's, as shown), ``event_type, env_id, episode,
    message, metadata`` (dict).
    """
    e = EVENTS.c
    conditions = [
        _one_or_many(RUNS.c.run_id, run_id),
        _one_or_many(e.event_type, event_type),
        _one_or_many(e.env_id, env_id),
    ]
    if text:
        conditions.append(
            sa.or_(
                e.message.icontains(text, autoescape=True),
                sa.cast(e.metadata, sa.Text).icontains(text, autoescape=True),
            )
        )
    query = sa.select(
        RUNS.c.run_id, e.seq, e.timestamp, e.event_type, e.env_id, e.episode, e.message, e.metadata
    ).join_from(EVENTS, RUNS, RUNS.c.id == e.run_pk)
    if since is not None or until is not None:
        s = SNAPSHOTS.c
        window = sa.select(
            s.run_pk,
            sa.func.min(s.event_log_start).label("lo"),
            sa.func.max(s.event_log_start + s.event_log_len).label("hi"),
        ).where(s.event_log_start.is_not(None))
        if since is not None:
            window = window.where(s.captured_ts >= _utc(since))
        if until is not None:
            window = window.where(s.captured_ts <= _utc(until))
        window = window.group_by(s.run_pk).subquery("window")
        query = query.join(
            window, sa.and_(window.c.run_pk == e.run_pk, e.seq >= window.c.lo, e.seq < window.c.hi)
        )
    query = (
        query.where(*(c for c in conditions if c is not None)).order_by(e.id.desc()).limit(limit)
    )
    with read_connection(engine) as conn:
        return _frame(conn, query, EVENT_COLUMNS)


# --------------------------------------------------------------------------------------------
# Small look-ups for the explorer
# --------------------------------------------------------------------------------------------

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


def best_run_record(engine, run_id: str, record_id: str) -> dict:
    """One best-run record in full, in JSON form (seeds, histories, reward components,
    counterfactual, Shapley), as it was last stored. Raises LookupError if absent."""
    from sanctum_store import codec, reader, schema

    query = (
        sa.select(BEST)
        .join(RUNS, RUNS.c.id == BEST.c.run_pk)
        .where(RUNS.c.run_id == run_id, BEST.c.record_id == record_id)
        .order_by(BEST.c.id.desc())
        .limit(1)
    )
    with read_connection(engine) as conn:
        row = conn.execute(query).mappings().first()
        if row is None:
            raise LookupError(f"run {run_id!r} has no best-run record {record_id!r}")
        return codec.object_to_json(schema.BestRunRecord, reader.keyed_tree(conn, "best_runs", row))


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
