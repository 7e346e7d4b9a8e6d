"""Episodes: how each episode ended, batch after batch.

In esper a batch is an episode: every env trains a host from scratch for ``max_epochs`` epochs,
then resets. The archive keeps one row per (run, batch, env) episode whose end a snapshot saw
(:func:`sanctum_store.summary.episodes_select` says how an end is recognised), derived with the
seeds once the batch has ended (the next batch's first snapshot, or the run's end); an episode
whose end no snapshot saw is absent, never guessed. ``v_episodes`` holds the same rows for SQL.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from sanctum_store.models import TABLES
from sanctum_store.queries._base import (
    RUNS,
    _cohort,
    _f,
    _frame,
    _run_conditions,
    _typed,
    read_connection,
)

EPISODES = TABLES["episodes"]

#: Columns of :func:`episode_outcomes`, with their dtypes.
EPISODE_COLUMNS = {
    "run_id": "object",
    "batch": "int64",
    "env_id": "Int64",
    "final_accuracy": "float64",
    "peak_accuracy": "float64",
    "final_loss": "float64",
    "episode_reward": "float64",
    "growth_ratio": "float64",
    "fossilized": "Int64",
    "pruned": "Int64",
    "task_name": "object",
    "reward_mode": "object",
    "group_id": "object",
}


def episode_outcomes(source, **filters) -> pd.DataFrame:
    """One row per episode of the runs matching ``filters`` (the run filters of
    :func:`~sanctum_store.queries.list_runs`), ordered by run, batch and env.

    Columns: ``run_id, batch, env_id, final_accuracy, peak_accuracy, final_loss,
    episode_reward`` (the env's ``cumulative_reward`` at the end: the episode's return),
    ``growth_ratio`` (at the end), ``fossilized, pruned`` (seeds, the env's counters at the
    end), ``task_name, reward_mode, group_id``.
    """
    e = EPISODES.c
    query = (
        sa.select(
            RUNS.c.run_id,
            e.batch,
            e.env_id,
            e.final_accuracy,
            e.peak_accuracy,
            e.final_loss,
            e.episode_reward,
            e.growth_ratio,
            e.fossilized,
            e.pruned,
            RUNS.c.task_name,
            RUNS.c.reward_mode,
            RUNS.c.group_id,
        )
        .join_from(EPISODES, RUNS, RUNS.c.id == e.run_pk)
        .where(*_run_conditions(**filters))
        .order_by(RUNS.c.run_id, e.batch, e.env_key)
    )
    with read_connection(source) as conn:
        return _frame(conn, query, EPISODE_COLUMNS)


#: Columns of :func:`episode_curves`, with their dtypes.
EPISODE_CURVE_COLUMNS = {
    "cohort": "object",
    "batch": "int64",
    "value": "float64",
    "ci_low": "float64",
    "ci_high": "float64",
    "n": "int64",
}
#: What :func:`episode_curves` can draw per batch: an episode outcome, or ``fossilize_rate``.
EPISODE_METRICS = (
    "final_accuracy",
    "peak_accuracy",
    "final_loss",
    "episode_reward",
    "growth_ratio",
    "fossilize_rate",
)


def run_episode_means(source, metric: str, *, attribute: str | None = None, **filters):
    """Per run and batch, ``metric`` over the run's episodes of that batch: the mean over its
    envs (``fossilize_rate``: fossilized / (fossilized + pruned) summed over its envs).

    Columns: ``run_id, cohort`` (the value of ``attribute``, None without one), ``batch,
    value, envs`` (episodes the value is over). Takes the run filters of :func:`list_runs`.
    """
    if metric not in EPISODE_METRICS:
        raise ValueError(f"unknown episode metric {metric!r}; choose one of {EPISODE_METRICS}")
    e = EPISODES.c
    if metric == "fossilize_rate":
        ended = sa.func.sum(e.fossilized + e.pruned)
        value = _f(sa.func.sum(e.fossilized)) / sa.func.nullif(ended, 0)
    else:
        value = _f(sa.func.avg(e[metric]))
    cohort = (_cohort(attribute) if attribute else sa.literal(None, sa.Text)).label("cohort")
    query = (
        sa.select(
            RUNS.c.run_id,
            cohort,
            e.batch,
            value.label("value"),
            sa.func.count().label("envs"),
        )
        .join_from(EPISODES, RUNS, RUNS.c.id == e.run_pk)
        .where(*_run_conditions(**filters))
        .group_by(RUNS.c.run_id, cohort, e.batch)
        .order_by(RUNS.c.run_id, e.batch)
    )
    dtypes = {"run_id": "object", "cohort": "object", "batch": "int64", "value": "float64"}
    with read_connection(source) as conn:
        return _frame(conn, query, {**dtypes, "envs": "int64"})


def episode_curves(
    source,
    attribute: str,
    metric: str,
    *,
    statistic: str = "mean",
    confidence: float = 0.95,
    n_boot: int = 2_000,
    seed: int = 0,
    **filters,
) -> pd.DataFrame:
    """The end-of-episode learning curve of each cohort: per batch, each run's mean over its
    envs (:func:`run_episode_means`), then across the cohort's runs the ``statistic`` ("mean"
    or "iqm") with a percentile-bootstrap interval over runs (the run is the unit; the interval
    lies within the runs' values, so within the metric's domain). ``n`` counts runs; the
    interval is NaN below 2. Deterministic for ``seed``. Takes the run filters of
    :func:`list_runs`; columns :data:`EPISODE_CURVE_COLUMNS`.
    """
    from sanctum_store import stats

    per_run = run_episode_means(source, metric, attribute=attribute, **filters)
    per_run = per_run[per_run["cohort"].notna() & per_run["value"].notna()]
    rows = []
    for (cohort, batch), group in per_run.groupby(["cohort", "batch"], sort=True):
        value, lo, hi = stats.interval(
            group["value"].to_numpy(float),
            statistic,
            confidence=confidence,
            n_boot=n_boot,
            seed=seed,
        )
        rows.append((cohort, batch, value, lo, hi, len(group)))
    return _typed(pd.DataFrame(rows, columns=list(EPISODE_CURVE_COLUMNS)), EPISODE_CURVE_COLUMNS)
