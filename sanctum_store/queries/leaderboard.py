"""Best-run records across runs."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from sanctum_store.expressions import difference
from sanctum_store.queries._base import (
    BEST,
    RUNS,
    SEEDS,
    _flag,
    _frame,
    _i,
    _one_or_many,
    read_connection,
)

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
            difference(top.c.final_accuracy, top.c.peak_accuracy).label("trajectory"),
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
