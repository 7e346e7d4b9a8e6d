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
from sanctum_store.queries._base import RUNS, _frame, _run_conditions, read_connection

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
