"""No float breaks a backend: the edges of the doubles (the largest, its negative, the smallest
subnormal, infinities, NaN, -0.0) store and read back identically on SQLite and PostgreSQL, in
every float of a snapshot and in every outcome the archive derives from them (runs, episodes,
the analyst views), which equal what Python computes from the snapshots.

The reference for a derived mean is the exact mean of the values rounded once (what
``sum(values) / len(values)`` gives whenever the sum does not overflow); NaN is stored as NULL,
so means skip it, and +inf beside -inf makes a mean NULL (Python: NaN).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import fixture_snapshots
from helpers import assert_same

from sanctum_store import Archive, codec, expressions, queries

MAX = sys.float_info.max
TINY = 5e-324  # the smallest subnormal
EDGES = [
    0.0,
    -0.0,
    TINY,
    -TINY,
    sys.float_info.min,
    1e-300,
    1.0,
    1e154,
    1e300,
    MAX,
    -MAX,
    math.inf,
    -math.inf,
    math.nan,
]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def archive(db_url):
    with Archive(db_url) as a:
        yield a


def with_every_float(value, x: float):
    """``value`` with every float in it replaced by ``x``."""
    if type(value) is float:
        return x
    if isinstance(value, dict):
        return {k: with_every_float(v, x) for k, v in value.items()}
    if isinstance(value, list):
        return [with_every_float(v, x) for v in value]
    return value


@pytest.mark.parametrize("x", EDGES, ids=repr)
def test_every_float_of_a_real_snapshot_round_trips(archive, x):
    snapshot = with_every_float(fixture_snapshots()[-3], x)
    snapshot_id = archive.save(snapshot, run_id="edges")
    assert_same(
        archive.load_dict("edges", at=snapshot_id), codec.to_json(codec.normalize(snapshot))
    )


# ---------------------------------------------------------------------------------------------
# Derived outcomes
# ---------------------------------------------------------------------------------------------


def env(i: int, x: float, *, epoch: int = 10) -> dict:
    return {
        "env_id": i,
        "current_epoch": epoch,
        "host_accuracy": x,
        "best_accuracy": x,
        "host_loss": x,
        "cumulative_reward": x,
        "host_params": 1000,
        "fossilized_params": 0,
    }


def snapshot(run: str, minute: int, batch: int, values: list[float], **fields) -> dict:
    return {
        "run_id": run,
        "task_name": "edges",
        "captured_at": (T0 + timedelta(minutes=minute)).isoformat(),
        "current_batch": batch,
        "max_batches": 2,
        "max_epochs": 10,
        "envs": {i: env(i, x) for i, x in enumerate(values)},
        **fields,
    }


def mean(values: list[float]) -> float:
    """The reference mean (see the module docstring)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan
    infinite = {v for v in values if math.isinf(v)}
    if infinite:
        return infinite.pop() if len(infinite) == 1 else math.nan
    return float(sum(map(Fraction, values)) / len(values))


def agrees(actual, expected: float) -> bool:
    if actual is None or (isinstance(actual, float) and math.isnan(actual)):
        return math.isnan(expected)
    if math.isnan(expected) or math.isinf(expected):
        return actual == expected
    return actual == pytest.approx(expected, rel=1e-12, abs=0.0)


def check(row: dict, expected: dict, where: str) -> None:
    wrong = {k: (row[k], v) for k, v in expected.items() if not agrees(row[k], v)}
    assert not wrong, f"{where}: (stored, expected) {wrong}"


def runs_of(x: float) -> dict[str, list[float]]:
    """Runs of one cohort, by the host accuracies of their final snapshot's four envs."""
    return {"two": [x, x, 50.0, 60.0], "all": [x, x, x, x], "plain": [50.0, 60.0, 70.0, 80.0]}


def store_runs(archive: Archive, x: float) -> None:
    for run, values in runs_of(x).items():
        record = {"record_id": f"{run}-r", "env_id": 0, "episode": 0, "peak_accuracy": x}
        record["final_accuracy"] = -x
        archive.save(snapshot(run, 0, 0, values, best_runs=[record]))
        # esper's reset at the batch's end: batch 0 ended, its episodes are kept.
        reset = snapshot(run, 1, 1, [0.0] * 4)
        for e in reset["envs"].values():
            e["current_epoch"] = 0
        archive.save(reset)
        archive.save(snapshot(run, 2, 1, values))
        archive.finish_run(run)


@pytest.mark.parametrize("x", EDGES, ids=repr)
def test_outcomes_derived_from_edge_floats_are_what_python_computes(archive, x):
    store_runs(archive, x)
    finals = {run: mean(values) for run, values in runs_of(x).items()}
    listed = queries.list_runs(archive).set_index("run_id")
    with archive.engine.connect() as conn:
        views = {
            view: conn.execute(sa.text(f"SELECT * FROM {view}")).mappings().all()
            for view in ("v_runs", "v_episodes", "v_cohorts", "v_best_runs")
        }
    for run, values in runs_of(x).items():
        # The best any env reached: the record's peak, every env's best (the reset's 0.0 too).
        peak = max(v for v in [x, 0.0, *values] if not math.isnan(v))
        expected = {"final_accuracy": finals[run], "mean_reward": finals[run]}
        check(listed.loc[run].to_dict(), {**expected, "peak_accuracy": peak}, f"list_runs {run}")
        (row,) = (r for r in views["v_runs"] if r["run_id"] == run)
        check(dict(row), {**expected, "peak_accuracy": peak}, f"v_runs {run}")
        (record,) = (r for r in views["v_best_runs"] if r["run_id"] == run)
        check(dict(record), {"trajectory": -x - x}, f"v_best_runs {run}")
        (record,) = queries.leaderboard(archive, run_id=run).to_dict("records")
        check(record, {"trajectory": -x - x}, f"leaderboard {run}")
        episodes = queries.episode_outcomes(archive, run_id=run).sort_values(["batch", "env_id"])
        assert list(episodes["batch"]) == [0] * 4 + [1] * 4
        rows = [r for r in views["v_episodes"] if r["run_id"] == run]
        assert len(rows) == 8
        for source, found in (
            ("episode_outcomes", episodes.to_dict("records")),
            ("v_episodes", rows),
        ):
            for row in found:
                v = values[row["env_id"]]
                want = {"final_accuracy": v, "final_loss": v, "episode_reward": v}
                check(dict(row), {**want, "peak_accuracy": v}, f"{source} {run} {row['env_id']}")
    (cohort,) = views["v_cohorts"]
    check(dict(cohort), {"mean_final_accuracy": mean(list(finals.values()))}, "v_cohorts")
    outcomes = queries.run_outcomes(archive, status="finished").set_index("run_id")
    for run in finals:
        check(outcomes.loc[run].to_dict(), {"final_accuracy": finals[run]}, f"run_outcomes {run}")


def test_json_of_the_reference_is_strict():
    # The test's own reference is sane: the mean of the largest doubles is the largest double.
    assert mean([MAX, MAX, 50.0, 60.0]) == pytest.approx(MAX / 2)
    assert mean([TINY] * 4) == TINY
    assert math.isnan(mean([math.inf, -math.inf]))
    assert json.dumps(with_every_float({"a": [1.5]}, 2.0)) == '{"a": [2.0]}'


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (MAX, -(2.0**970)),  # exactly half an ulp past the largest: a tie, rounds to inf
        (MAX, -(2.0**969)),  # less: the largest
        (MAX, -MAX),
        (-MAX, MAX),
        (MAX, TINY),
        (TINY, -MAX),
        (1e300, -1e300),
        (MAX, 0.5),
        (math.inf, MAX),
        (math.inf, math.inf),
        (0.1, 0.3),
    ],
)
def test_a_difference_in_sql_is_pythons(archive, a, b):
    values = sa.select(
        sa.literal(a, sa.Double).label("a"), sa.literal(b, sa.Double).label("b")
    ).subquery()
    with archive.engine.connect() as conn:
        got = conn.execute(sa.select(expressions.difference(values.c.a, values.c.b))).scalar()
    assert agrees(got, a - b), (got, a - b)


@pytest.mark.parametrize("x", [TINY, 1e154, MAX, -MAX, math.inf], ids=repr)
def test_the_0003_backfill_of_run_outcomes_agrees_with_the_writer(archive, x):
    # db upgrade from 0002 fills the run outcomes with 0003's own (frozen) SQL: on every
    # double it gives what the writer keeps (it once cast to a 15-digit numeric and failed).
    path = Path(__file__).parents[1] / "migrations" / "versions"
    spec = importlib.util.spec_from_file_location(
        "rev0003", path / "0003_run_outcomes_and_seed_lives.py"
    )
    rev0003 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rev0003)
    store_runs(archive, x)
    columns = ["run_id", "final_accuracy", "mean_reward", "peak_accuracy"]
    kept = queries.list_runs(archive)[columns].set_index("run_id")
    with archive.engine.begin() as conn:
        conn.exec_driver_sql(rev0003.aggregate(conn.dialect.name))
    backfilled = queries.list_runs(archive)[columns].set_index("run_id")
    for run in kept.index:
        check(backfilled.loc[run].to_dict(), kept.loc[run].to_dict(), f"0003 backfill {run}")
