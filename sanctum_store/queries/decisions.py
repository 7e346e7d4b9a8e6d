"""The policy's decisions: action mix, calibration, value vs reward, head entropies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa

from sanctum_store.queries._base import (
    ACTIONS,
    ALTERNATIVES,
    DECISIONS,
    RUNS,
    SNAPSHOTS,
    TAMIYO,
    _f,
    _flag,
    _floor,
    _frame,
    _i,
    _run_conditions,
    _seed_scope,
    _trained,
    _typed,
    _with_cohort,
    read_connection,
)


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
