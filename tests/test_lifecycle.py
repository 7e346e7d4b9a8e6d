"""Lifecycle counts that add up, on the real fixture run and on a demo archive: the SQL page's
example, ``v_lifecycle``, esper's run counters and the questions the Lifecycle page asks give
the same numbers; prune reasons add up to the prune counter; the funnel counts each seed once
per stage."""

from __future__ import annotations

import ast
import itertools
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import fixture_snapshots
from scipy import stats as sps

from sanctum_store import Archive, demo, queries, sql

SQL_PAGE = Path(__file__).resolve().parents[1] / "explorer" / "views" / "sql.py"
STAGES = ["germinated", "training", "blending", "holding", "fossilized"]


def sql_examples() -> dict[str, str]:
    """The SQL page's EXAMPLES, read from its source (importing the page would run it)."""
    for node in ast.parse(SQL_PAGE.read_text()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "EXAMPLES":
            return ast.literal_eval(node.value)
    raise AssertionError("no EXAMPLES in the SQL page")


@pytest.fixture(scope="module", params=["fixture", "demo"])
def archive(request, tmp_path_factory):
    """(url, engine) of the real fixture run's archive, or of a 6-run demo archive."""
    url = f"sqlite:///{tmp_path_factory.mktemp(request.param) / 'archive.db'}"
    if request.param == "fixture":
        with Archive(url) as stored:
            for snapshot in fixture_snapshots():
                stored.save(snapshot)
    else:
        demo.write_demo(url, 6, seed=3, now=datetime.now(UTC))
    engine = sa.create_engine(url)
    yield url, engine
    engine.dispose()


def from_view(engine, by: str) -> pd.DataFrame:
    """v_lifecycle's counters summed per ``by`` (blueprint_id or run_id)."""
    with engine.connect() as conn:
        return pd.read_sql(
            f"SELECT {by}, sum(spawns) AS spawns, sum(fossilized) AS fossilized,"
            f" sum(prunes) AS prunes FROM v_lifecycle GROUP BY {by} ORDER BY {by}",
            conn,
        )


def test_the_sql_example_the_view_and_the_page_agree_per_blueprint(archive):
    url, engine = archive
    example = sql.run_query(url, sql_examples()["Pruned seeds per blueprint"]).frame
    view = from_view(engine, "blueprint_id")
    totals = queries.lifecycle_totals(engine).sort_values("blueprint_id", ignore_index=True)
    assert len(totals) == len(view) > 0
    assert totals["blueprint_id"].tolist() == view["blueprint_id"].tolist()
    for column in ("spawns", "fossilized", "prunes"):
        assert totals[column].tolist() == view[column].astype(int).tolist(), column
    pruned = dict(zip(example["blueprint_id"], example["pruned"].astype(int), strict=True))
    assert pruned == dict(zip(totals["blueprint_id"], totals["prunes"], strict=True))
    assert example["pruned"].is_monotonic_decreasing
    # Snapshots are samples: they see no more seeds than esper counted, and here fewer.
    assert (totals["seen"] <= totals["spawns"]).all()
    assert (totals["seen_fossilized"] <= totals["fossilized"]).all()
    assert (totals["seen_pruned"] <= totals["prunes"]).all()
    funnel = queries.seed_funnel(engine).sort_values("blueprint_id", ignore_index=True)
    assert totals["seen"].tolist() == funnel["germinated"].tolist()


def test_blueprint_counters_add_up_to_the_runs_counters(archive):
    _, engine = archive
    totals = queries.lifecycle_totals(engine)
    runs = queries.list_runs(engine)
    assert totals["fossilized"].sum() == runs["fossilized"].sum() > 0
    assert totals["prunes"].sum() == runs["pruned"].sum() > 0


@pytest.mark.parametrize("cohort", [None, "reward_mode"])
def test_prune_reasons_add_up_to_the_prune_counter(archive, cohort):
    _, engine = archive
    reasons = queries.prune_reasons(engine, cohort=cohort)
    totals = queries.lifecycle_totals(engine, cohort=cohort)
    keys = ["cohort"] if cohort else []
    if cohort:
        assert reasons.groupby("cohort")["n"].sum().to_dict() == (
            totals.groupby("cohort")["prunes"].sum().to_dict()
        )
        assert np.allclose(reasons.groupby("cohort")["share"].sum(), 1.0)
    else:
        assert reasons["n"].sum() == totals["prunes"].sum()
        assert math.isclose(reasons["share"].sum(), 1.0)
    unrecorded = reasons[reasons["prune_reason"] == queries.UNRECORDED]
    recorded = reasons[reasons["prune_reason"] != queries.UNRECORDED]
    assert len(unrecorded) == len(unrecorded.drop_duplicates(keys or ["prune_reason"]))
    assert unrecorded["auto_pruned"].isna().all() and recorded["auto_pruned"].notna().all()
    # The recorded reasons are the seeds seen pruned; the rest are unrecorded.
    assert recorded["n"].sum() + unrecorded["n"].sum() == totals["prunes"].sum()
    assert 0 < recorded["n"].sum() <= totals["seen_pruned"].sum()


def test_the_funnel_counts_each_seed_once_per_stage(archive):
    _, engine = archive
    funnel = queries.seed_funnel(engine, by=None)
    everything = funnel.iloc[0]
    by_blueprint = queries.seed_funnel(engine)
    for earlier, later in itertools.pairwise(STAGES):
        assert (by_blueprint[later] <= by_blueprint[earlier]).all(), (earlier, later)
    assert (by_blueprint["pruned"] <= by_blueprint["germinated"]).all()
    # A seed counts once in each stage it reached: the stage totals are seed counts, the same
    # over blueprints as over everything, and no more seeds than germinated.
    for stage in [*STAGES, "pruned"]:
        assert by_blueprint[stage].sum() == everything[stage], stage
    assert everything["fossilized"] + everything["pruned"] <= everything["germinated"]
    fossilized = queries.lifecycle_totals(engine)["seen_fossilized"].sum()
    assert everything["fossilized"] == fossilized


def test_conversion_rates_are_per_run_with_a_t_interval(archive):
    _, engine = archive
    per_run = from_view(engine, "run_id")
    rates = queries.conversion_rates(engine).set_index("rate")
    assert list(rates.index) == list(queries.RATES)
    expected = {
        "fossilized / spawns": per_run["fossilized"] / per_run["spawns"],
        "fossilized / (fossilized + prunes)": per_run["fossilized"]
        / (per_run["fossilized"] + per_run["prunes"]),
    }
    for name, values in expected.items():
        row = rates.loc[name]
        assert row["runs"] == len(per_run)
        assert math.isclose(row["mean"], values.mean())
        if len(values) < 2:
            assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
        else:
            low, high = sps.t.interval(0.95, len(values) - 1, values.mean(), sps.sem(values))
            assert math.isclose(row["ci_low"], low) and math.isclose(row["ci_high"], high)
    totals = queries.lifecycle_totals(engine)
    pooled = totals["fossilized"].sum() / totals["spawns"].sum()
    assert math.isclose(rates.loc["fossilized / spawns", "pooled"], pooled)
    split = queries.conversion_rates(engine, cohort="reward_mode")
    assert split.groupby("rate")["runs"].sum().tolist() == [len(per_run)] * 2
