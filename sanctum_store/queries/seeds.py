"""Seed lifecycles: how far seeds got, how long they lived and stayed in each stage, why they
were pruned.

A seed (see the package docstring) is known only from every observation of its slot, which is
costly to follow; the archive keeps each seed once its batch has ended (``seed_lives``,
``seed_visits``: the writer derives them, see :mod:`sanctum_store.summary`), and these
questions are GROUP BYs over them. The batches not derived yet (a running run's current batch,
an archive upgraded from before seeds were kept) are derived in the question, from their
snapshots: the same numbers. The questions only read: they answer alike on a read-only archive
and never wait for the write lock.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from sanctum_store import stats, summary
from sanctum_store.expressions import STAGES, stage_rank
from sanctum_store.queries._base import (
    BLUEPRINTS,
    RUNS,
    SEED_LIVES,
    SEED_VISITS,
    _f,
    _flag,
    _frame,
    _i,
    _seed_scope,
    _typed,
    _with_cohort,
    read_connection,
)

_SEED_BY = {"blueprint": "blueprint_id", "slot": "slot_key"}


def _current(engine, conditions: list) -> dict[int, list[int]]:
    """The batches of the runs matching ``conditions`` whose seeds are not kept (yet), which
    the question derives itself: ``{run_pk: [batch, ...]}``."""
    with read_connection(engine) as conn:
        return summary.stale_batches(conn, *conditions)


def _cohort_label(cohort: sa.ColumnElement | None) -> sa.Label:
    return (cohort if cohort is not None else sa.literal(None, sa.Text)).label("cohort")


def _seeds(
    conditions: list, cohort: sa.ColumnElement | None, live: dict[int, list[int]]
) -> sa.Subquery:
    """One row per seed of the runs matching ``conditions``, with its run's ``cohort``: from
    ``seed_lives``, or derived now for the ``live`` batches. ``rank`` is the furthest stage it
    was seen alive in (see :func:`summary.seeds_select` for the other columns)."""
    names = [c.name for c in SEED_LIVES.columns]

    def columns(source) -> list:
        return [source.c[n].label("rank" if n == "furthest_rank" else n) for n in names]

    kept = (
        sa.select(_cohort_label(cohort), *columns(SEED_LIVES))
        .join_from(SEED_LIVES, RUNS, RUNS.c.id == SEED_LIVES.c.run_pk)
        .where(*conditions)
    )
    if not live:
        return kept.subquery("seeds")
    derived = summary.seeds_select(summary.batch_scope(live)).subquery("derived")
    fresh = sa.select(_cohort_label(cohort), *columns(derived)).join_from(
        derived, RUNS, RUNS.c.id == derived.c.run_pk
    )
    kept = kept.where(sa.not_(summary.in_batches(SEED_LIVES, live)))
    return sa.union_all(kept, fresh).subquery("seeds")


def _visits(
    conditions: list, cohort: sa.ColumnElement | None, live: dict[int, list[int]]
) -> sa.Subquery:
    """Every stage a seed of the runs matching ``conditions`` was seen to leave, with its
    ``rank`` and the run's ``cohort``: from ``seed_visits``, or derived now for the ``live``
    batches."""
    names = ("stage", "blueprint_id", "slot_key", "epochs_in_stage")

    def columns(source) -> list:
        return [source.c[n] for n in names]

    kept = (
        sa.select(_cohort_label(cohort), *columns(SEED_VISITS))
        .join_from(SEED_VISITS, RUNS, RUNS.c.id == SEED_VISITS.c.run_pk)
        .where(*conditions)
    )
    if live:
        derived = summary.visits_select(summary.batch_scope(live)).subquery("derived")
        fresh = sa.select(_cohort_label(cohort), *columns(derived)).join_from(
            derived, RUNS, RUNS.c.id == derived.c.run_pk
        )
        kept = sa.union_all(kept.where(sa.not_(summary.in_batches(SEED_VISITS, live))), fresh)
    visits = kept.subquery("visits")
    return sa.select(visits, stage_rank(visits.c.stage).label("rank")).subquery("ranked")


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
    seeds = _seeds(conditions, cohort_expr, _current(engine, conditions))
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


def _reported(
    conn: sa.Connection, conditions: list, cohort: sa.ColumnElement | None, *, per_run=False
) -> pd.DataFrame:
    """esper's counters (``blueprint_counts``) at each run's latest snapshot, summed over the
    runs matching ``conditions`` per [cohort] and blueprint (``per_run``: per run instead of
    per blueprint, with ``run_id``): ``reported_spawns, reported_fossilized,
    reported_prunes``; the numbers of ``v_lifecycle``."""
    picked = (
        sa.select(
            RUNS.c.id,
            RUNS.c.run_id,
            RUNS.c.last_snapshot_id.label("last_id"),
            *([cohort.label("cohort")] if cohort is not None else []),
        )
        .where(*conditions)
        .subquery()
    )
    keys = ([picked.c.cohort] if cohort is not None else []) + (
        [picked.c.run_id] if per_run else [BLUEPRINTS.c.blueprint_id]
    )
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
        "run_id" if per_run else "blueprint_id": "str",
        **dict.fromkeys(("reported_spawns", "reported_fossilized", "reported_prunes"), "Int64"),
    }
    return _frame(conn, query, _with_cohort(dtypes, "cohort" if cohort is not None else None))


def lifecycle_totals(engine, *, cohort: str | None = None, **filters) -> pd.DataFrame:
    """Seeds per blueprint as esper counted them, beside the seeds snapshots saw.

    esper's counters (``blueprint_counts`` at each run's latest snapshot, summed over the runs:
    the numbers of ``v_lifecycle``) count every seed, also those that lived and died between
    two snapshots; the seeds seen are those of :func:`seed_funnel`. Columns: [``cohort``],
    ``blueprint_id``, ``spawns, fossilized, prunes`` (counters), ``blend_success_rate``
    (fossilized / (fossilized + prunes), from the counters), ``seen, seen_fossilized,
    seen_pruned`` (seeds seen). Takes the run filters of :func:`list_runs`.
    """
    funnel = seed_funnel(engine, by="blueprint", cohort=cohort, **filters)
    out = funnel.rename(
        columns={
            "reported_spawns": "spawns",
            "reported_fossilized": "fossilized_counted",
            "reported_prunes": "prunes",
        }
    )
    out = out.assign(
        seen=out["germinated"], seen_fossilized=out["fossilized"], seen_pruned=out["pruned"]
    )
    out["fossilized"] = out.pop("fossilized_counted")
    counters = ["spawns", "fossilized", "prunes"]
    out[counters] = out[counters].fillna(0).astype("int64")
    ended = (out["fossilized"] + out["prunes"]).to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["blend_success_rate"] = out["fossilized"].to_numpy(float) / np.where(
            ended > 0, ended, np.nan
        )
    keys = (["cohort"] if cohort else []) + ["blueprint_id"]
    return out[
        [*keys, *counters, "blend_success_rate", "seen", "seen_fossilized", "seen_pruned"]
    ].reset_index(drop=True)


#: The conversion rates of :func:`conversion_rates`: name, numerator, denominator counters.
RATES = {
    "fossilized / spawns": ("reported_fossilized", ("reported_spawns",)),
    "fossilized / (fossilized + prunes)": (
        "reported_fossilized",
        ("reported_fossilized", "reported_prunes"),
    ),
}


def conversion_rates(
    engine, *, cohort: str | None = None, confidence: float = 0.95, **filters
) -> pd.DataFrame:
    """How many seeds made it, per cohort (all runs together without ``cohort``), from esper's
    counters at each run's latest snapshot (see :func:`lifecycle_totals`).

    The unit is the run: each run's rate, then their mean with a t-interval across runs at
    ``confidence`` (``n - 1`` degrees of freedom; NaN with fewer than 2 runs). A run whose
    denominator is 0 has no rate. Columns: ``cohort`` (None without a split), ``rate``
    (:data:`RATES`), ``runs`` (runs with a rate), ``pooled`` (the cohort's summed numerator
    over summed denominator), ``mean, ci_low, ci_high``. Takes the run filters of
    :func:`list_runs`.
    """
    conditions, cohort_expr = _seed_scope(cohort, filters)
    with read_connection(engine) as conn:
        per_run = _reported(conn, conditions, cohort_expr, per_run=True)
    if not cohort:
        per_run["cohort"] = None
    frames = []
    for rate, (top, bottom) in RATES.items():
        numerator = per_run[top].astype("float64")
        denominator = sum(per_run[c].astype("float64") for c in bottom)
        runs = per_run.assign(
            value=numerator / denominator.where(denominator > 0),
            cohort_label=per_run["cohort"].map(str),
        )
        described = stats.describe_cohorts(runs, "cohort_label", "value", confidence=confidence)
        sums = runs.assign(top=numerator, bottom=denominator).groupby("cohort_label")
        pooled = sums["top"].sum() / sums["bottom"].sum().where(lambda b: b > 0)
        frames.append(
            described.assign(rate=rate, runs=described["n"], pooled=described["cohort"].map(pooled))
        )
    if not frames or per_run.empty:
        return pd.DataFrame(
            columns=["cohort", "rate", "runs", "pooled", "mean", "ci_low", "ci_high"]
        )
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values("cohort", kind="stable", ignore_index=True)
    labels = dict(zip(per_run["cohort"].map(str), per_run["cohort"], strict=False))
    out["cohort"] = out["cohort"].map(labels)
    out = out[["cohort", "rate", "runs", "pooled", "mean", "ci_low", "ci_high"]]
    return out.astype({"runs": "int64", "pooled": "float64"}).reset_index(drop=True)


def seed_lifespans(engine, *, cohort: str | None = None, **filters) -> pd.DataFrame:
    """How long seeds lived: the histogram of ``epochs_total`` of seeds seen in a terminal
    state, per outcome and blueprint.

    Columns: [``cohort``], ``outcome`` ("fossilized" / "pruned"), ``blueprint_id``,
    ``epochs_total``, ``n`` (seeds). Takes the run filters of :func:`list_runs`.
    """
    conditions, cohort_expr = _seed_scope(cohort, filters)
    seeds = _seeds(conditions, cohort_expr, _current(engine, conditions))
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
    v = _visits(conditions, cohort_expr, _current(engine, conditions)).c
    keys = [*([v.cohort] if cohort else []), v.stage, *([v[_SEED_BY[by]]] if by else [])]
    query = (
        sa.select(
            *keys,
            sa.func.count().label("n"),
            _f(sa.func.avg(v.epochs_in_stage)).label("mean_epochs"),
            sa.func.min(v.epochs_in_stage).label("min_epochs"),
            sa.func.max(v.epochs_in_stage).label("max_epochs"),
        )
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


#: The ``prune_reason`` of :func:`prune_reasons`' row for prunes no snapshot recorded.
UNRECORDED = "unrecorded"


def prune_reasons(engine, *, cohort: str | None = None, **filters) -> pd.DataFrame:
    """Why seeds were pruned: one row per reason and auto/policy prune, from the seeds seen
    pruned, and a row ``prune_reason`` = :data:`UNRECORDED` (``auto_pruned`` missing) for the
    rest of esper's prune counter (:func:`lifecycle_totals`: seeds pruned between two
    snapshots, or gone from their slot before a snapshot saw them pruned), so that ``n`` adds
    up to the counter (of every run whose counter is at least its prunes seen; a run without
    counters adds none).

    Columns: [``cohort``], ``prune_reason``, ``auto_pruned`` (nullable bool), ``n`` (seeds),
    ``share`` (of the cohort's prunes), most frequent first. Takes the run filters of
    :func:`list_runs`.
    """
    conditions, cohort_expr = _seed_scope(cohort, filters)
    seeds = _seeds(conditions, cohort_expr, _current(engine, conditions))
    keys = [
        *([seeds.c.cohort] if cohort else []),
        sa.func.coalesce(seeds.c.prune_reason, "").label("prune_reason"),
        sa.func.coalesce(seeds.c.auto_pruned, 0).label("auto_pruned"),
    ]
    query = (
        sa.select(*keys, sa.func.count().label("n")).where(seeds.c.pruned_seen == 1).group_by(*keys)
    )
    dtypes = {"prune_reason": "str", "auto_pruned": "boolean", "n": "int64"}
    with read_connection(engine) as conn:
        df = _frame(conn, query, _with_cohort(dtypes, cohort))
        counted = _reported(conn, conditions, cohort_expr, per_run=True)
        df = pd.concat([df, _unrecorded(conn, seeds, counted, cohort)], ignore_index=True)
    df = _typed(df, _with_cohort(dtypes, cohort))
    totals = df.groupby("cohort")["n"].transform("sum") if cohort else df["n"].sum()
    df["share"] = (df["n"] / totals).astype("float64")
    order = ["cohort", "n", "prune_reason"] if cohort else ["n", "prune_reason"]
    ascending = [True, False, True] if cohort else [False, True]
    return df.sort_values(order, ascending=ascending, ignore_index=True)


def _unrecorded(conn: sa.Connection, seeds: sa.Subquery, counted: pd.DataFrame, cohort):
    """The :data:`UNRECORDED` rows: per cohort, the sum over its runs of esper's prune counter
    minus the prunes seen in the run (none for a run whose counter is below them: one without
    counters)."""
    query = (
        sa.select(RUNS.c.run_id, sa.func.count().label("seen"))
        .join_from(seeds, RUNS, RUNS.c.id == seeds.c.run_pk)
        .where(seeds.c.pruned_seen == 1)
        .group_by(RUNS.c.run_id)
    )
    seen = _frame(conn, query, {"run_id": "str", "seen": "int64"})
    runs = counted.merge(seen, how="left", on="run_id")
    rest = (runs["reported_prunes"].fillna(0) - runs["seen"].fillna(0)).clip(lower=0)
    label = runs["cohort"].map(str) if cohort else pd.Series("", index=runs.index)
    rest = rest.astype("int64").groupby(label).sum()
    rest = rest[rest > 0]
    labels = dict(zip(label, runs["cohort"], strict=False)) if cohort else {}
    return pd.DataFrame(
        {
            **({"cohort": [labels[k] for k in rest.index]} if cohort else {}),
            "prune_reason": UNRECORDED,
            "auto_pruned": pd.array([pd.NA] * len(rest), dtype="boolean"),
            "n": rest.to_numpy(dtype="int64"),
        }
    )
