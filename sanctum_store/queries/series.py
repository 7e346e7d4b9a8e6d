"""Metrics over time: one run's series, every value for export, cohorts' mean curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy import stats as sps

from sanctum_store.queries._base import (
    ENVS,
    RUNS,
    SNAPSHOTS,
    TAMIYO,
    _cohort,
    _epoch_seconds,
    _f,
    _floor,
    _frame,
    _growth,
    _run_conditions,
    _typed,
    read_connection,
)

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
    if x == "time":
        rows = _since_run_start(rows)
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
    half = _t_half_width(df["n"].to_numpy(float), df["mean"], df["square"])
    df["ci_low"], df["ci_high"] = df["mean"] - half, df["mean"] + half
    return _typed(df, COHORT_CURVE_COLUMNS)


def _since_run_start(rows: sa.Subquery) -> sa.Subquery:
    """``rows`` (cohort, run_pk, value, x = epoch seconds) with x in seconds since the run's
    first snapshot."""
    starts = (
        sa.select(SNAPSHOTS.c.run_pk, sa.func.min(_epoch_seconds(SNAPSHOTS.c.captured_ts)))
        .group_by(SNAPSHOTS.c.run_pk)
        .subquery()
    )
    return (
        sa.select(rows.c.cohort, rows.c.run_pk, rows.c.value, (rows.c.x - starts.c[1]).label("x"))
        .join_from(rows, starts, starts.c.run_pk == rows.c.run_pk)
        .subquery()
    )


def _t_half_width(n: np.ndarray, mean: pd.Series, square: pd.Series) -> np.ndarray:
    """Half the width of a t-based 95 % interval of a mean, from n, mean and mean square (NaN
    below 2 values)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.clip(square.to_numpy(float) - mean.to_numpy(float) ** 2, 0, None)
        sem = np.sqrt(variance / (n - 1))  # sample variance / n
        return np.where(n > 1, sps.t.ppf(0.975, np.maximum(n - 1, 1)) * sem, np.nan)
