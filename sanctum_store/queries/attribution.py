"""Attribution: counterfactual synergy and Shapley rankings of slots and blueprints."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from sanctum_store.queries._base import (
    CF_CONFIGS,
    ENVS,
    RUNS,
    SEEDS,
    SHAPLEY,
    SNAPSHOTS,
    _f,
    _flag,
    _frame,
    _run_conditions,
    _seed_scope,
    _with_cohort,
    read_connection,
)

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
