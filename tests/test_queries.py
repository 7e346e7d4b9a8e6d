"""Cross-run queries, analyst views and `sanctum-store sql`, on a small archive whose every answer
was worked out by hand (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import BACKENDS, fixture_snapshots, postgres_schema_url, select_only_role
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from sanctum_store import Archive, ArchiveOutdated, db, migrate, queries, stats
from sanctum_store.archive import WriteItem
from sanctum_store.cli import main

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RUN = "run-default-42"  # the real fixture run
VIEWS = {
    "v_runs": [
        "run_id", "task_name", "reward_mode", "group_id", "status", "first_seen", "last_seen",
        "heartbeat_at", "finished_at", "duration_s", "snapshot_count", "batches_done",
        "max_batches", "max_epochs", "final_snapshot_id", "final_accuracy", "peak_accuracy",
        "mean_reward", "growth_ratio", "fossilized", "pruned", "fossilize_rate", "config_seed",
        "config_n_episodes", "config_lr", "config_clip_ratio", "config_entropy_coef",
        "config_param_budget", "config_resume_path",
    ],
    "v_env_epochs": [
        "run_id", "snapshot_id", "captured_ts", "batch", "epoch", "env", "host_accuracy",
        "host_loss", "best_accuracy", "cumulative_reward", "host_params", "fossilized_params",
        "growth_ratio", "active_seed_count", "fossilized_count", "pruned_count", "status",
        "reward_mode",
    ],
    "v_seeds": [
        "run_id", "snapshot_id", "captured_ts", "batch", "epoch", "env", "slot_id",
        "blueprint_id", "stage", "alpha", "epochs_in_stage", "epochs_total", "accuracy_delta",
        "improvement", "counterfactual", "seed_params", "prune_reason", "auto_pruned",
    ],
    "v_decisions": [
        "run_id", "reward_mode", "group_id", "decision_id", "timestamp", "batch", "epoch",
        "env_id", "chosen_action", "chosen_slot", "chosen_blueprint", "confidence",
        "expected_value", "actual_reward", "value_residual", "td_advantage", "decision_entropy",
        "host_accuracy", "op_entropy", "slot_entropy", "blueprint_entropy",
    ],
    "v_best_runs": [
        "run_id", "record_id", "env_id", "episode", "epoch", "peak_accuracy", "final_accuracy",
        "trajectory", "growth_ratio", "host_params", "fossilized_count", "pruned_count",
        "seeds_fossilized", "seeds_holding", "seeds_blending", "reward_mode", "group_id",
    ],
    "v_lifecycle": [
        "run_id", "reward_mode", "group_id", "blueprint_id", "spawns", "fossilized", "prunes",
        "blend_success_rate",
    ],
    "v_cohorts": [
        "task_name", "reward_mode", "group_id", "runs", "finished", "running", "incomplete",
        "stale", "crashed", "failed", "mean_final_accuracy",
        "min_final_accuracy", "max_final_accuracy", "mean_peak_accuracy", "mean_reward",
        "mean_growth_ratio", "mean_fossilize_rate",
    ],
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The crafted archive
# ---------------------------------------------------------------------------------------------


def seed(slot, stage, blueprint=None, **fields):
    return {"slot_id": slot, "stage": stage, "blueprint_id": blueprint, **fields}


def env(env_id, epoch, accuracy, best, *, reward=0.0, params=1000, fossilized=0, seeds=(), **more):
    return {
        "env_id": env_id,
        "current_epoch": epoch,
        "host_accuracy": accuracy,
        "best_accuracy": best,
        "cumulative_reward": reward,
        "host_params": params,
        "fossilized_params": fossilized,
        "seeds": {s["slot_id"]: s for s in seeds},
        **more,
    }


def reset_envs(n=2):
    return [env(i, 0, 0.0, 0.0) for i in range(n)]


def decision(key, batch, epoch, confidence, reward, *, expected=0.5, action="WAIT"):
    return {
        "decision_id": key,
        "timestamp": (T0 + timedelta(seconds=epoch)).isoformat(),
        "slot_states": {"r0c0": "Training"},
        "host_accuracy": 50.0,
        "chosen_action": action,
        "chosen_slot": None,
        "confidence": confidence,
        "expected_value": expected,
        "actual_reward": reward,
        "alternatives": [["WAIT", 0.5], ["PRUNE", 0.25]],
        "env_id": 0,
        "batch": batch,
        "epoch": epoch,
    }


def event(kind, env_id, message, episode=0, **metadata):
    return {
        "timestamp": "12:00:00",
        "event_type": kind,
        "env_id": env_id,
        "message": message,
        "episode": episode,
        "metadata": metadata,
    }


def snapshot(run, mode, group, *, at, batch, epoch, envs, task="cifar10", tamiyo=None, **top):
    return {
        "run_id": run,
        "task_name": task,
        "reward_mode": mode,  # esper's top-level field (unknown to the schema, kept as extra)
        "captured_at": at.isoformat(),
        "current_batch": batch,
        "current_epoch": epoch,
        "max_epochs": 10,
        "max_batches": 3,
        "run_config": {"seed": {"alpha": 1, "beta": 2}.get(run, 3), "lr": 0.001},
        "envs": {str(e["env_id"]): {**e, "reward_mode": mode} for e in envs},
        "tamiyo": {"group_id": group, **(tamiyo or {})},
        **top,
    }


MATRIX_2 = {
    "slot_ids": ["r0c0", "r0c1"],
    "strategy": "full_factorial",
    "configs": [
        {"seed_mask": [False, False], "accuracy": 50.0},
        {"seed_mask": [True, False], "accuracy": 55.0},
        {"seed_mask": [False, True], "accuracy": 53.0},
        {"seed_mask": [True, True], "accuracy": 60.0},
    ],
}
MATRIX_1 = {
    "slot_ids": ["r0c1"],
    "strategy": "full_factorial",
    "configs": [
        {"seed_mask": [False], "accuracy": 40.0},
        {"seed_mask": [True], "accuracy": 45.0},
    ],
}
RECORD_A1 = {
    "record_id": "a1",
    "env_id": 0,
    "episode": 0,
    "epoch": 9,
    "peak_accuracy": 85.0,
    "final_accuracy": 80.0,
    "growth_ratio": 1.1,
    "reward_mode": "shaped",
    "seeds": {
        "r0c0": seed("r0c0", "FOSSILIZED", "conv"),
        "r0c1": seed("r0c1", "HOLDING", "attention"),
        "r0c2": seed("r0c2", "BLENDING", "norm"),
    },
}
RECORD_A2 = {
    "record_id": "a2",
    "env_id": 1,
    "episode": 0,
    "epoch": 10,
    "peak_accuracy": 70.0,
    "final_accuracy": 70.0,
}
RECORD_B1 = {
    "record_id": "b1",
    "env_id": 1,
    "episode": 0,
    "epoch": 6,
    "peak_accuracy": 52.0,
    "final_accuracy": 37.0,
}
E1 = event("SEED_GERMINATED", 0, "Germinated", slot_id="r0c0", blueprint="conv")
E2 = event("SEED_PRUNED", 1, "Pruned", slot_id="r0c0", reason="policy_prune")
E3 = event("PPO_UPDATE_COMPLETED", None, "PPO update", entropy=0.8)
EVENT_ID = "5aa9e461-4d18-4e63-9115-e289ef5a811d"  # esper's first metadata key
F1 = event("SEED_GERMINATED", 0, "Germinated", event_id=EVENT_ID, slot_id="r0c0", blueprint="conv")


def alpha() -> list[dict]:
    """shaped / A: two batches and a reset; finished. Final snapshot: the 4th (the 5th is a
    batch-end reset)."""
    run = ("alpha", "shaped", "A")
    at = [T0 + timedelta(seconds=60 * i) for i in range(5)]
    return [
        snapshot(
            *run, at=at[0], batch=0, epoch=5,
            envs=[
                env(0, 5, 50.0, 50.0, reward=0.5, seeds=[
                    seed("r0c0", "TRAINING", "conv", epochs_in_stage=2),
                    seed("r0c1", "BLENDING", "attention"),
                ]),
                env(1, 5, 60.0, 62.0, reward=0.5, seeds=[
                    seed("r0c0", "GERMINATED", "norm", epochs_in_stage=0),
                    seed("r0c1", "HOLDING", "mlp"),
                ], shapley_snapshot={"slot_ids": ["r0c0"], "values": {
                    "r0c0": {"mean": 1.0, "std": 0.1, "n_samples": 8}}}),
            ],
            tamiyo={"entropy": 1.0, "head_op_entropy": 1.0, "action_counts": {"WAIT": 8, "GERMINATE": 2},
                    "recent_decisions": [decision("d1", 0, 5, 0.05, 1.0), decision("d2", 0, 5, 0.15, -1.0)]},
            event_log=[E1],
        ),
        snapshot(
            *run, at=at[1], batch=0, epoch=10,
            envs=[
                env(0, 10, 70.0, 72.0, reward=1.5, fossilized=100, seeds=[
                    seed("r0c0", "FOSSILIZED", "conv", epochs_in_stage=1, epochs_total=8),
                    seed("r0c1", "DORMANT"),
                ], counterfactual_matrix=MATRIX_2, shapley_snapshot={"slot_ids": ["r0c0", "r0c1"], "values": {
                    "r0c0": {"mean": 2.0, "std": 0.5, "n_samples": 8},
                    "r0c1": {"mean": 0.1, "std": 1.0, "n_samples": 8}}}),
                env(1, 10, 80.0, 80.0, reward=2.5, seeds=[
                    seed("r0c0", "PRUNED", "norm", epochs_total=3, prune_reason="policy_prune"),
                    seed("r0c1", "GERMINATED", "mlp"),
                ], counterfactual_matrix=MATRIX_1),
            ],
            tamiyo={"entropy": 0.8, "head_op_entropy": 0.5,
                    "action_counts": {"WAIT": 15, "GERMINATE": 3, "PRUNE": 2},
                    "recent_decisions": [decision("d1", 0, 5, 0.05, 1.0), decision("d2", 0, 5, 0.15, -1.0),
                                         decision("d3", 0, 9, 0.12, 0.5), decision("d4", 0, 10, 0.95, 2.0)]},
            event_log=[E1, E2], cumulative_fossilized=1, cumulative_pruned=1,
        ),
        snapshot(
            *run, at=at[2], batch=1, epoch=10, envs=reset_envs(),
            tamiyo={"entropy": 0.7, "head_op_entropy": 0.4,
                    "action_counts": {"WAIT": 15, "GERMINATE": 3, "PRUNE": 2}},
            event_log=[E1, E2, E3], best_runs=[RECORD_A1, RECORD_A2],
            cumulative_fossilized=1, cumulative_pruned=1,
        ),
        snapshot(
            *run, at=at[3], batch=1, epoch=4,
            envs=[
                env(0, 4, 40.0, 41.0, reward=1.0, fossilized=100,
                    seeds=[seed("r0c0", "HOLDING", "conv")]),
                env(1, 4, 44.0, 44.0, reward=3.0, fossilized=300,
                    seeds=[seed("r0c1", "TRAINING", "lora")]),
            ],
            tamiyo={"entropy": 0.6, "head_op_entropy": 0.2, "action_counts": {"WAIT": 6, "GERMINATE": 2},
                    "recent_decisions": [decision("d3", 0, 9, 0.12, 0.5), decision("d4", 0, 10, 0.95, 2.0),
                                         decision("d5", 1, 3, 1.0, -0.5), decision("d6", 1, 4, 0.55, None)]},
            event_log=[E1, E2, E3], best_runs=[RECORD_A1, RECORD_A2],
            cumulative_fossilized=3, cumulative_pruned=1,
        ),
        snapshot(
            *run, at=at[4], batch=2, epoch=4, envs=reset_envs(),
            tamiyo={"entropy": 0.5, "head_op_entropy": 0.1},
            event_log=[E1, E2, E3], best_runs=[RECORD_A1, RECORD_A2],
            cumulative_fossilized=3, cumulative_pruned=1,
            cumulative_blueprint_spawns={"conv": 2, "attention": 1, "norm": 1, "mlp": 2, "lora": 1},
            cumulative_blueprint_fossilized={"conv": 1},
            cumulative_blueprint_prunes={"attention": 1, "norm": 1, "mlp": 1},
        ),
    ]  # fmt: skip


def beta() -> list[dict]:
    """sparse / B: one batch, a seed pruned automatically; failed."""
    run = ("beta", "sparse", "B")
    return [
        snapshot(
            *run, at=T0 + timedelta(seconds=30), batch=0, epoch=3,
            envs=[
                env(0, 3, 30.0, 30.0, reward=0.2, seeds=[seed("r0c0", "TRAINING", "conv", epochs_in_stage=4)]),
                env(1, 3, 34.0, 34.0, reward=0.4),
            ],
            tamiyo={"recent_decisions": [decision("d7", 0, 3, 0.5, 0.2)]},
            event_log=[F1],
        ),
        snapshot(
            *run, at=T0 + timedelta(seconds=90), batch=0, epoch=6,
            envs=[
                env(0, 6, 50.0, 55.0, reward=1.0, seeds=[seed(
                    "r0c0", "PRUNED", "conv", epochs_total=6, prune_reason="gradient_explosion",
                    auto_pruned=True)]),
                env(1, 6, 54.0, 54.0, reward=1.0),
            ],
            event_log=[F1], best_runs=[RECORD_B1],
        ),
    ]  # fmt: skip


def gamma() -> list[dict]:
    """sparse / B, another task; its writer went silent long ago: crashed."""
    return [
        snapshot(
            "gamma",
            "sparse",
            "B",
            task="mnist",
            at=T0 - timedelta(days=10),
            batch=0,
            epoch=2,
            envs=[env(0, 2, 20.0, 20.0)],
        )
    ]


def delta(now: datetime) -> list[dict]:
    """shaped / A, still running."""
    return [
        snapshot("delta", "shaped", "A", at=now, batch=0, epoch=1, envs=[env(0, 1, 10.0, 10.0)])
    ]


def build(url: str) -> None:
    """The crafted archive: alpha (finished), beta (failed), gamma (crashed), delta (running)."""
    now = datetime.now(UTC)
    with Archive(url) as archive:
        for snapshots, finish in (
            (alpha(), ("finished", T0 + timedelta(seconds=240))),
            (beta(), ("failed", T0 + timedelta(seconds=90))),
            (gamma(), None),
            (delta(now), None),
        ):
            for s in snapshots:
                seen = datetime.fromisoformat(s["captured_at"])
                archive.save_batch([WriteItem.of(s, seen_at=seen)])
            if finish:
                archive.finish_run(snapshots[0]["run_id"], finish[0], at=finish[1])


@contextlib.contextmanager
def backend_url(backend: str, tmp_path_factory):
    """A fresh archive location (SQLite file or PostgreSQL schema) for a whole test module."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('archive') / 'archive.db'}"
        return
    with postgres_schema_url() as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def url(request, tmp_path_factory):
    """The crafted archive, built once per backend (the tests only read it)."""
    with backend_url(request.param, tmp_path_factory) as location:
        build(location)
        yield location


@pytest.fixture(scope="module")
def engine(url):
    engine = db.create_engine(url)
    yield engine
    engine.dispose()


def rows(df: pd.DataFrame, columns: list[str]) -> list[tuple]:
    """The frame's rows as plain tuples, floats rounded (NaN kept as NaN) for exact comparison."""
    out = []
    for values in df[columns].itertuples(index=False):
        out.append(
            tuple(round(float(v), 9) if isinstance(v, (float, np.floating)) else v for v in values)
        )
    return out


def same(actual: list[tuple], expected: list[tuple]) -> bool:
    def eq(a, b):
        if isinstance(b, float) and math.isnan(b):  # NULL from SQL, NaN from a DataFrame
            return a is None or (isinstance(a, float) and math.isnan(a))
        return a == pytest.approx(b) if isinstance(b, float) else a == b

    return len(actual) == len(expected) and all(
        len(x) == len(y) and all(eq(a, b) for a, b in zip(x, y, strict=True))
        for x, y in zip(actual, expected, strict=True)
    )


NAN = float("nan")


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def test_list_runs_gives_each_runs_outcomes(engine):
    runs = queries.list_runs(engine, sort="run_id", descending=False)
    assert list(runs.columns) == list(queries.RUN_COLUMNS)
    assert same(
        rows(
            runs,
            ["run_id", "reward_mode", "group_id", "task_name", "status", "snapshot_count", "batches_done", "max_batches", "final_accuracy", "peak_accuracy", "mean_reward", "growth_ratio", "fossilized", "pruned", "fossilize_rate", "config_seed"],
        ),
        [
            # final = snapshot 4 (the 5th is a reset): (40 + 44) / 2; peak = record a1's 85.
            ("alpha", "shaped", "A", "cifar10", "finished", 5, 2, 3, 42.0, 85.0, 2.0, 1.2, 3, 1, 0.75, 1),
            ("beta", "sparse", "B", "cifar10", "failed", 2, 0, 3, 52.0, 55.0, 1.0, 1.0, 0, 0, NAN, 2),
            ("delta", "shaped", "A", "cifar10", "running", 1, 0, 3, 10.0, 10.0, 0.0, 1.0, 0, 0, NAN, 3),
            ("gamma", "sparse", "B", "mnist", "crashed", 1, 0, 3, 20.0, 20.0, 0.0, 1.0, 0, 0, NAN, 3),
        ],
    )  # fmt: skip
    alpha_row = runs.iloc[0]
    assert alpha_row["first_seen"] == pd.Timestamp("2026-03-01 12:00:00")
    assert alpha_row["duration_s"] == pytest.approx(240.0, abs=1e-3)
    assert runs.iloc[1]["duration_s"] == pytest.approx(60.0, abs=1e-3)
    assert runs["config_lr"].tolist() == [0.001] * 4
    assert str(runs["first_seen"].dtype) == "datetime64[us]"


def test_filters_reduce_the_runs(engine):
    def listed(**filters):
        assert queries.count_runs(engine, **filters) == len(queries.list_runs(engine, **filters))
        return sorted(queries.list_runs(engine, **filters)["run_id"])

    assert listed() == ["alpha", "beta", "delta", "gamma"]
    assert listed(reward_mode="sparse") == ["beta", "gamma"]
    assert listed(reward_mode=["sparse", "shaped"], group_id="A") == ["alpha", "delta"]
    assert listed(task="mnist") == ["gamma"]
    assert listed(status="crashed") == ["gamma"]
    assert listed(status=["finished", "failed"]) == ["alpha", "beta"]
    assert listed(status="running") == ["delta"]
    assert listed(since=T0) == ["alpha", "beta", "delta"]
    assert listed(until=(T0 - timedelta(days=1)).isoformat()) == ["gamma"]
    assert listed(search="ALP") == ["alpha"]
    assert listed(search="MNIST") == ["gamma"]  # the task
    assert listed(search="spar") == ["beta", "gamma"]  # the reward mode
    # LIKE wildcards in the search are literal characters.
    assert listed(search="%") == []
    assert listed(search="_") == []


def test_sorting_and_pages(engine):
    def order(**kw):
        return queries.list_runs(engine, **kw)["run_id"].tolist()

    assert order(sort="final_accuracy") == ["beta", "alpha", "gamma", "delta"]
    assert order(sort="final_accuracy", descending=False) == ["delta", "gamma", "alpha", "beta"]
    assert order(sort="peak_accuracy", limit=2) == ["alpha", "beta"]
    assert order(sort="peak_accuracy", limit=2, offset=2) == ["gamma", "delta"]
    # Sorting by a runs column pages before aggregating; same answers.
    assert order(sort="run_id", descending=False, limit=2, offset=1) == ["beta", "delta"]
    pages = [order(sort="last_seen", limit=1, offset=i) for i in range(5)]
    assert list(itertools.chain(*pages)) == order(sort="last_seen")
    # fossilize_rate is NULL for three runs: NULLs come last both ways, ties by id.
    assert order(sort="fossilize_rate")[0] == "alpha"
    assert order(sort="fossilize_rate", descending=False)[0] == "alpha"


@pytest.mark.parametrize(
    "call",
    [
        lambda e: queries.list_runs(e, sort="run_id; DROP TABLE runs"),
        lambda e: queries.run_series(e, "alpha", "host_accuracy); DROP TABLE runs; --"),
        lambda e: queries.run_series(e, "alpha", "metadata"),
        lambda e: queries.run_series(e, "alpha", "host_accuracy", x="1; DROP TABLE runs"),
        lambda e: queries.cohort_curves(e, "reward_mode OR 1=1", "host_accuracy"),
        lambda e: queries.seed_funnel(e, cohort="run_id"),
        lambda e: queries.seed_funnel(e, by="stage; DROP TABLE runs"),
    ],
)
def test_names_outside_the_whitelists_are_refused(engine, call):
    with pytest.raises(ValueError):
        call(engine)
    assert queries.count_runs(engine) == 4


def test_user_values_are_bound_not_spliced(engine):
    assert queries.count_runs(engine, search="x' OR '1'='1") == 0
    assert queries.count_runs(engine, run_id="alpha' --") == 0
    assert queries.search_events(engine, text="' OR 1=1 --").empty
    assert queries.count_runs(engine) == 4


def test_run_outcomes_feed_cohort_statistics(engine):
    outcomes = queries.run_outcomes(engine)
    assert list(outcomes.columns) == [
        "run_id",
        *queries.OUTCOME_METRICS,
        *queries.COHORT_ATTRIBUTES,
    ]
    assert outcomes["run_id"].tolist() == ["alpha", "beta", "delta", "gamma"]
    assert outcomes["final_accuracy"].tolist() == [42.0, 52.0, 10.0, 20.0]
    assert outcomes["config_seed"].tolist() == [1, 2, 3, 3]
    described = stats.describe_cohorts(outcomes, "reward_mode", "final_accuracy")
    assert described["cohort"].tolist() == ["shaped", "sparse"]
    assert described["mean"].tolist() == [26.0, 36.0]
    compared = stats.compare_cohorts(outcomes, "reward_mode", "final_accuracy", n_boot=200)
    assert compared.loc[0, "diff"] == pytest.approx(10.0)
    assert queries.run_outcomes(engine, reward_mode="sparse")["run_id"].tolist() == [
        "beta",
        "gamma",
    ]


def test_views_answer_like_the_queries(engine):
    with engine.connect() as conn:
        for view, columns in VIEWS.items():
            result = conn.execute(sa.text(f"SELECT * FROM {view}"))
            assert list(result.keys()) == columns, view
            result.all()
        got = conn.execute(
            sa.text(
                "SELECT run_id, status, final_accuracy, peak_accuracy, mean_reward, growth_ratio,"
                " batches_done, fossilize_rate, duration_s FROM v_runs ORDER BY run_id"
            )
        ).all()
        counts = {
            view: conn.execute(sa.text(f"SELECT count(*) FROM {view}")).scalar()
            for view in ("v_env_epochs", "v_seeds", "v_decisions", "v_best_runs")
        }
        cohorts = conn.execute(
            sa.text(
                "SELECT task_name, reward_mode, group_id, runs, finished, running, crashed,"
                " mean_final_accuracy FROM v_cohorts ORDER BY task_name, reward_mode"
            )
        ).all()
        lifecycle = conn.execute(
            sa.text(
                "SELECT blueprint_id, spawns, fossilized, prunes, blend_success_rate"
                " FROM v_lifecycle WHERE run_id = 'alpha' ORDER BY blueprint_id"
            )
        ).all()
        best = conn.execute(
            sa.text(
                "SELECT record_id, trajectory, seeds_fossilized, seeds_holding, seeds_blending,"
                " reward_mode FROM v_best_runs ORDER BY peak_accuracy DESC"
            )
        ).all()
    listed = queries.list_runs(engine, sort="run_id", descending=False)
    expected = rows(
        listed,
        [
            "run_id",
            "status",
            "final_accuracy",
            "peak_accuracy",
            "mean_reward",
            "growth_ratio",
            "batches_done",
            "fossilize_rate",
            "duration_s",
        ],
    )
    assert same([tuple(r) for r in got], expected)
    # 6 trained env rows of alpha, 4 of beta, 1 each of gamma and delta; seed slots of trained envs.
    assert counts == {"v_env_epochs": 12, "v_seeds": 12, "v_decisions": 7, "v_best_runs": 3}
    # v_cohorts averages the finished runs (the Cohorts page's default population) and counts
    # the others by status: alpha is finished, delta running, beta failed, gamma crashed.
    assert same(
        [tuple(r) for r in cohorts],
        [
            ("cifar10", "shaped", "A", 2, 1, 1, 0, 42.0),
            ("cifar10", "sparse", "B", 1, 0, 0, 0, NAN),
            ("mnist", "sparse", "B", 1, 0, 0, 1, NAN),
        ],
    )
    finished = queries.run_outcomes(engine, status="finished")
    assert finished.groupby("reward_mode")["final_accuracy"].mean().to_dict() == {"shaped": 42.0}
    assert same(
        [tuple(r) for r in lifecycle],
        [
            ("attention", 1, 0, 1, 0.0),
            ("conv", 2, 1, 0, 1.0),
            ("lora", 1, 0, 0, NAN),
            ("mlp", 2, 0, 1, 0.0),
            ("norm", 1, 0, 1, 0.0),
        ],
    )
    assert [tuple(r) for r in best] == [
        ("a1", -5.0, 1, 1, 1, "shaped"),
        ("a2", 0.0, 0, 0, 0, "shaped"),
        ("b1", -15.0, 0, 0, 0, "sparse"),
    ]


def test_an_archive_at_0001_is_refused_until_upgraded(db_url):
    engine = db.create_engine(db_url)
    migrate.upgrade(engine, "0001")
    with pytest.raises(ArchiveOutdated, match="sanctum-store db upgrade"):
        Archive(db_url)
    migrate.upgrade(engine)
    with Archive(db_url) as archive, archive.engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()
        assert conn.execute(sa.text("SELECT count(*) FROM v_runs")).scalar() == 0
    # And back down: the views go with 0002.
    migrate_down(engine, "0001")
    assert "v_runs" not in sa.inspect(engine).get_view_names()
    engine.dispose()


def migrate_down(engine: sa.Engine, revision: str) -> None:
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), revision)


# ---------------------------------------------------------------------------------------------
# Series
# ---------------------------------------------------------------------------------------------


def test_env_metric_series_mean_and_per_env(engine):
    series = queries.run_series(engine, "alpha", "host_accuracy", per_env=True)
    assert list(series.columns) == ["env", "x", "value", "std", "n", "snapshot_id"]
    s7 = math.sqrt(50.0)  # sample std of two values 10 apart
    assert same(
        rows(series, ["env", "x", "value", "std", "n"]),
        [
            ("mean", 0.5, 55.0, s7, 2),
            ("mean", 1.0, 75.0, s7, 2),
            ("mean", 1.4, 42.0, math.sqrt(8.0), 2),
            ("0", 0.5, 50.0, NAN, 1),
            ("0", 1.0, 70.0, NAN, 1),
            ("0", 1.4, 40.0, NAN, 1),
            ("1", 0.5, 60.0, NAN, 1),
            ("1", 1.0, 80.0, NAN, 1),
            ("1", 1.4, 44.0, NAN, 1),
        ],
    )
    mean_only = queries.run_series(engine, "alpha", "host_accuracy")
    assert rows(mean_only, ["x", "value", "n"]) == rows(
        series[series["env"] == "mean"], ["x", "value", "n"]
    )
    assert queries.run_series(engine, "alpha", "host_accuracy", x="epoch")["x"].tolist() == [
        5.0,
        10.0,
        14.0,
    ]
    assert queries.run_series(engine, "alpha", "host_accuracy", x="time")["x"].round(
        3
    ).tolist() == [
        0.0,
        60.0,
        180.0,
    ]
    growth = queries.run_series(engine, "alpha", "growth_ratio")
    assert growth["value"].round(9).tolist() == [1.0, 1.05, 1.2]


def test_snapshot_and_policy_series_place_resets_at_the_batch_start(engine):
    entropy = queries.run_series(engine, "alpha", "entropy")
    # The resets (3rd and 5th snapshot) still show epoch 10 and 4: they sit at batch + 0.
    assert rows(entropy, ["env", "x", "value", "n"]) == [
        ("mean", 0.5, 1.0, 1),
        ("mean", 1.0, 0.8, 1),
        ("mean", 1.0, 0.7, 1),
        ("mean", 1.4, 0.6, 1),
        ("mean", 2.0, 0.5, 1),
    ]
    assert entropy["std"].isna().all()
    fossilized = queries.run_series(engine, "alpha", "cumulative_fossilized", x="epoch")
    assert fossilized["x"].tolist() == [5.0, 10.0, 10.0, 14.0, 20.0]
    assert fossilized["value"].tolist() == [0.0, 1.0, 1.0, 3.0, 3.0]
    # Shared names: unqualified means the env's; qualified picks another source.
    assert queries.SERIES_METRICS["current_epoch"] == ("env", "current_epoch")
    epochs = queries.run_series(engine, "alpha", "snapshot.current_epoch")
    assert epochs["value"].tolist() == [5.0, 10.0, 10.0, 4.0, 4.0]
    assert queries.run_series(engine, "nobody", "entropy").empty


def test_series_are_downsampled(engine):
    entropy = queries.run_series(engine, "alpha", "entropy", max_points=4)
    assert len(entropy) == 4
    assert {1.0, 0.5} <= set(entropy["value"])  # the extremes survive
    per_env = queries.run_series(engine, "alpha", "host_accuracy", per_env=True, max_points=4)
    assert per_env.groupby("env").size().max() <= 4


def test_downsample_keeps_the_shape():
    x = np.arange(10_000, dtype=float)
    y = np.sin(x / 500.0)
    y[1234] = 5.0  # a one-point spike
    y[8000] = -4.0
    keep = queries.downsample_indices(x, y, 300)
    assert len(keep) <= 300
    assert keep[0] == 0 and keep[-1] == len(x) - 1
    assert 1234 in keep and 8000 in keep
    assert np.all(np.diff(keep) > 0)
    # The sine's shape is kept: interpolating the kept points stays close to it elsewhere.
    rebuilt = np.interp(x, x[keep], y[keep])
    calm = np.abs(x - 1234) > 50
    calm &= np.abs(x - 8000) > 50
    assert np.max(np.abs(rebuilt - y)[calm]) < 0.05
    # Short series are kept whole; too small a budget is an error.
    assert queries.downsample_indices(x[:10], y[:10], 300).tolist() == list(range(10))
    with pytest.raises(ValueError):
        queries.downsample_indices(x, y, 3)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=400),
    st.integers(4, 120),
)
def test_downsample_never_exceeds_the_budget_and_keeps_extremes(values, budget):
    y = np.asarray(values)
    x = np.arange(len(y), dtype=float)
    keep = queries.downsample_indices(x, y, budget)
    assert len(keep) <= budget
    assert len(set(keep.tolist())) == len(keep)
    assert y[keep].max() == y.max() and y[keep].min() == y.min()
    assert keep[0] == 0 and keep[-1] == len(y) - 1


def test_cohort_curves_average_runs_with_a_t_interval(engine):
    one = queries.cohort_curves(engine, "reward_mode", "host_accuracy", max_points=1)
    assert list(one.columns) == ["cohort", "x", "mean", "ci_low", "ci_high", "n"]
    # Each run counts once per bucket: its mean there.
    shaped = [np.mean([55.0, 75.0, 42.0]), 10.0]
    sparse = [np.mean([32.0, 52.0]), 20.0]
    for row, values in zip(one.itertuples(), (shaped, sparse), strict=True):
        mean = np.mean(values)
        half = sps.t.ppf(0.975, 1) * np.std(values, ddof=1) / math.sqrt(2)
        assert (row.n, row.mean) == (2, pytest.approx(mean))
        assert (row.ci_low, row.ci_high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert one["cohort"].tolist() == ["shaped", "sparse"]
    assert one["x"].tolist() == pytest.approx(
        [(np.mean([0.5, 1.0, 1.4]) + 0.1) / 2, (0.45 + 0.2) / 2]
    )
    # Two buckets over [0.1, 1.4]: alpha's last two points fall in the second, alone.
    two = queries.cohort_curves(engine, "reward_mode", "host_accuracy", max_points=2)
    assert rows(two, ["cohort", "mean", "n"]) == [
        ("shaped", 32.5, 2),
        ("shaped", 58.5, 1),
        ("sparse", 31.0, 2),
    ]
    assert math.isnan(two.loc[1, "ci_low"])
    by_group = queries.cohort_curves(engine, "group_id", "entropy", x="time", reward_mode="shaped")
    assert by_group["cohort"].unique().tolist() == ["A"]
    assert queries.cohort_curves(engine, "reward_mode", "entropy", task="none").empty


# ---------------------------------------------------------------------------------------------
# Leaderboard and seeds
# ---------------------------------------------------------------------------------------------


def test_leaderboard(engine):
    board = queries.leaderboard(engine)
    assert list(board.columns) == list(queries.LEADERBOARD_COLUMNS)
    # a1 and a2 are shown in three snapshots each: still one row each.
    assert rows(
        board,
        [
            "run_id",
            "record_id",
            "peak_accuracy",
            "final_accuracy",
            "trajectory",
            "growth_ratio",
            "seeds_fossilized",
            "seeds_holding",
            "seeds_blending",
            "reward_mode",
            "group_id",
        ],
    ) == [
        ("alpha", "a1", 85.0, 80.0, -5.0, 1.1, 1, 1, 1, "shaped", "A"),
        ("alpha", "a2", 70.0, 70.0, 0.0, 1.0, 0, 0, 0, "shaped", "A"),
        ("beta", "b1", 52.0, 37.0, -15.0, 1.0, 0, 0, 0, "sparse", "B"),
    ]
    assert board["episode"].tolist() == [0, 0, 0]
    assert queries.leaderboard(engine, reward_mode="sparse")["record_id"].tolist() == ["b1"]
    assert queries.leaderboard(engine, group_id="A")["record_id"].tolist() == ["a1", "a2"]
    assert queries.leaderboard(engine, run_id="beta")["record_id"].tolist() == ["b1"]
    assert queries.leaderboard(engine, limit=1)["record_id"].tolist() == ["a1"]


FUNNEL = ["germinated", "training", "blending", "holding", "fossilized", "pruned"]


def test_seed_funnel_follows_seeds_through_snapshots(engine):
    funnel = queries.seed_funnel(engine, run_id="alpha")
    assert list(funnel.columns) == [
        "blueprint_id",
        *FUNNEL,
        "reported_spawns",
        "reported_fossilized",
        "reported_prunes",
        "blend_success_rate",
    ]
    assert same(
        rows(funnel, ["blueprint_id", *FUNNEL, "blend_success_rate", "reported_spawns"]),
        [
            # attention: seen blending, then gone from its slot mid-batch: pruned.
            ("attention", 1, 1, 1, 0, 0, 1, 0.0, 1),
            # conv: one fossilized in batch 0, one still holding in batch 1.
            ("conv", 2, 2, 2, 2, 1, 0, 1.0, 2),
            ("lora", 1, 1, 0, 0, 0, 0, NAN, 1),
            # mlp: holding, then the slot shows a fresh mlp germination: two seeds.
            ("mlp", 2, 1, 1, 1, 0, 1, 0.0, 2),
            # norm: germinated, then seen pruned.
            ("norm", 1, 0, 0, 0, 0, 1, 0.0, 1),
        ],
    )
    assert funnel["reported_fossilized"].tolist() == [0, 1, 0, 0, 0]
    everything = queries.seed_funnel(engine, by=None, cohort="reward_mode")
    assert rows(everything, ["cohort", *FUNNEL]) == [
        ("shaped", 7, 5, 4, 3, 1, 3),
        ("sparse", 1, 1, 0, 0, 0, 1),
    ]
    by_slot = queries.seed_funnel(engine, by="slot")
    assert by_slot["slot_key"].tolist() == ["r0c0", "r0c1"]
    assert by_slot["germinated"].tolist() == [4, 4]


def test_seed_lifespans_time_in_stage_and_prune_reasons(engine):
    lifespans = queries.seed_lifespans(engine)
    assert rows(lifespans, ["outcome", "blueprint_id", "epochs_total", "n"]) == [
        ("fossilized", "conv", 8, 1),
        ("pruned", "conv", 6, 1),
        ("pruned", "norm", 3, 1),
    ]
    stages = queries.time_in_stage(engine)
    assert rows(
        stages, ["stage", "blueprint_id", "n", "mean_epochs", "min_epochs", "max_epochs"]
    ) == [
        ("GERMINATED", "norm", 1, 0.0, 0, 0),
        ("TRAINING", "conv", 2, 3.0, 2, 4),
    ]
    # alpha's counter says 3 prunes (attention, norm, mlp), snapshots saw norm's (policy):
    # 2 unrecorded; beta has no counters, so its prune seen adds no unrecorded row.
    reasons = queries.prune_reasons(engine)
    assert reasons["auto_pruned"].isna().tolist() == [True, False, False]
    reasons = reasons.assign(auto_pruned=reasons["auto_pruned"].astype(object).fillna("?"))
    assert same(
        rows(reasons, ["prune_reason", "auto_pruned", "n", "share"]),
        [
            ("unrecorded", "?", 2, 0.5),
            ("gradient_explosion", True, 1, 0.25),
            ("policy_prune", False, 1, 0.25),
        ],
    )
    by_mode = queries.prune_reasons(engine, cohort="reward_mode")
    assert same(
        rows(by_mode, ["cohort", "prune_reason", "n", "share"]),
        [
            ("shaped", "unrecorded", 2, 2 / 3),
            ("shaped", "policy_prune", 1, 1 / 3),
            ("sparse", "gradient_explosion", 1, 1.0),
        ],
    )
    assert queries.seed_lifespans(engine, reward_mode="shaped")["n"].sum() == 2


# ---------------------------------------------------------------------------------------------
# Decisions, attribution, events
# ---------------------------------------------------------------------------------------------


def test_action_mix_takes_each_batchs_last_counts(engine):
    mix = queries.action_mix(engine, run_id="alpha")
    assert list(mix.columns) == ["batch", "action", "count", "share", "runs"]
    # The resets (which still show batch 0's counts) do not count.
    assert rows(mix, ["batch", "action", "count", "share", "runs"]) == [
        (0, "GERMINATE", 3, 0.15, 1),
        (0, "PRUNE", 2, 0.1, 1),
        (0, "WAIT", 15, 0.75, 1),
        (1, "GERMINATE", 2, 0.25, 1),
        (1, "WAIT", 6, 0.75, 1),
    ]
    by_mode = queries.action_mix(engine, cohort="reward_mode")
    assert by_mode["cohort"].unique().tolist() == ["shaped"]


def test_calibration_bins(engine):
    calibration = queries.calibration(engine)
    assert len(calibration) == 10
    assert calibration["n"].tolist() == [1, 2, 0, 0, 0, 1, 0, 0, 0, 2]
    filled = calibration[calibration["n"] > 0]
    assert same(
        rows(filled, ["bin", "bin_low", "bin_high", "mean_confidence", "positive_rate"])
        + rows(filled, ["mean_reward"]),
        [
            (0, 0.0, 0.1, 0.05, 1.0),
            (1, 0.1, 0.2, 0.135, 0.5),
            (5, 0.5, 0.6, 0.5, 1.0),
            (9, 0.9, 1.0, 0.975, 0.5),  # confidence 1.0 lands in the last bin
            (1.0,),
            (-0.25,),
            (0.2,),
            (0.75,),
        ],
    )
    assert queries.calibration(engine, bins=2, run_id="alpha")["n"].tolist() == [3, 2]


def test_value_vs_reward_is_a_stable_sample(engine):
    pairs = queries.value_vs_reward(engine)
    assert sorted(pairs["decision_id"]) == ["d1", "d2", "d3", "d4", "d5", "d7"]  # d6: no reward
    sample = queries.value_vs_reward(engine, limit=3)
    assert len(sample) == 3
    assert sample.equals(queries.value_vs_reward(engine, limit=3))
    assert queries.value_vs_reward(engine, run_id="beta")["actual_reward"].tolist() == [0.2]


def test_head_entropy_and_decision_table(engine):
    heads = queries.head_entropy(engine, run_id="alpha")
    op = heads[heads["head"] == "op"]
    assert rows(op, ["batch", "entropy", "n"]) == [(0, 0.75, 2), (1, 0.3, 2), (2, 0.1, 1)]
    assert heads["head"].unique().tolist() == list(queries.HEADS)
    table = queries.decision_table(engine, "alpha")
    assert table["decision_id"].tolist() == ["d6", "d5", "d4", "d3", "d2", "d1"]
    assert table.loc[0, "alternatives"] == "WAIT 0.500, PRUNE 0.250"
    assert math.isnan(table.loc[0, "actual_reward"])
    assert queries.decision_table(engine, "alpha", limit=2)["decision_id"].tolist() == ["d6", "d5"]


def test_synergy_and_shapley_ranking(engine):
    synergy = queries.synergy(engine)
    assert rows(
        synergy,
        [
            "run_id",
            "env",
            "n_slots",
            "baseline_accuracy",
            "combined_accuracy",
            "individual_sum",
            "synergy",
        ],
    ) == [
        ("alpha", 0, 2, 50.0, 60.0, 8.0, 2.0),
        ("alpha", 1, 1, 40.0, 45.0, 5.0, 0.0),
    ]
    slots = queries.shapley_ranking(engine)
    assert rows(slots, ["slot_id", "mean_value", "n", "share_significant"]) == [
        ("r0c0", 1.5, 2, 1.0),
        ("r0c1", 0.1, 1, 0.0),
    ]
    blueprints = queries.shapley_ranking(engine, by="blueprint")
    assert rows(blueprints, ["blueprint_id", "mean_value", "n", "share_significant"]) == [
        ("conv", 2.0, 1, 1.0),
        ("norm", 1.0, 1, 1.0),
    ]
    assert queries.shapley_ranking(engine, reward_mode="sparse").empty


def test_search_events(engine):
    def found(**kw):
        events = queries.search_events(engine, **kw)
        return list(zip(events["run_id"], events["event_type"], strict=True))

    assert found() == [
        ("beta", "SEED_GERMINATED"),
        ("alpha", "PPO_UPDATE_COMPLETED"),
        ("alpha", "SEED_PRUNED"),
        ("alpha", "SEED_GERMINATED"),
    ]
    assert found(event_type="SEED_GERMINATED") == [
        ("beta", "SEED_GERMINATED"),
        ("alpha", "SEED_GERMINATED"),
    ]
    assert found(env_id=1) == [("alpha", "SEED_PRUNED")]
    assert found(text="POLICY") == [("alpha", "SEED_PRUNED")]  # in the metadata
    assert found(text="germ", run_id="beta") == [("beta", "SEED_GERMINATED")]
    # Events shown by a snapshot captured in the window: alpha's second snapshot shows two.
    moment = T0 + timedelta(seconds=60)
    assert found(since=moment, until=moment) == [
        ("alpha", "SEED_PRUNED"),
        ("alpha", "SEED_GERMINATED"),
    ]
    assert found(limit=1) == [("beta", "SEED_GERMINATED")]
    events = queries.search_events(engine, event_type="SEED_PRUNED")
    assert events.loc[0, "metadata"] == {"slot_id": "r0c0", "reason": "policy_prune"}
    # esper's event ids (stored in 16 bytes): found whole, in any spelling, and shown as given.
    germinated = queries.search_events(engine, text=EVENT_ID.upper())
    assert list(germinated["run_id"]) == ["beta"]
    assert germinated.loc[0, "metadata"] == {
        "event_id": EVENT_ID,
        "slot_id": "r0c0",
        "blueprint": "conv",
    }
    assert found(text=EVENT_ID.replace("-", "")) == [("beta", "SEED_GERMINATED")]
    assert pd.isna(
        queries.search_events(engine, event_type="PPO_UPDATE_COMPLETED").loc[0, "env_id"]
    )


def test_snapshot_times(engine):
    times = queries.snapshot_times(engine, "alpha")
    assert times["current_batch"].tolist() == [0, 0, 1, 1, 2]
    assert times["captured_ts"].iloc[0] == pd.Timestamp("2026-03-01 12:00:00")


def test_functions_accept_an_archive(url):
    with Archive(url) as archive:
        assert queries.count_runs(archive) == 4
    with pytest.raises(TypeError):
        queries.count_runs("sqlite:///not-an-engine.db")


# ---------------------------------------------------------------------------------------------
# sanctum-store sql
# ---------------------------------------------------------------------------------------------


def sql(url, *args):
    return CliRunner().invoke(main, ["sql", *args, "--db", url])


@pytest.fixture(scope="module")
def console_url(url):
    """What the console runs as: the archive itself, or on PostgreSQL a SELECT-only role."""
    if not url.startswith("postgresql"):
        yield url
        return
    with select_only_role(url) as reader:
        yield reader


def test_sql_command_formats(console_url, tmp_path):
    url = console_url
    statement = "SELECT run_id, final_accuracy FROM v_runs ORDER BY run_id"
    table = sql(url, statement)
    assert table.exit_code == 0, table.output
    assert table.stdout.split()[:4] == ["run_id", "final_accuracy", "alpha", "42.0"]
    csv = sql(url, statement, "--format", "csv")
    assert csv.stdout.splitlines()[:2] == ["run_id,final_accuracy", "alpha,42.0"]
    as_json = json.loads(sql(url, statement, "--format", "json").stdout)
    assert as_json[0] == {"run_id": "alpha", "final_accuracy": 42.0}
    out = tmp_path / "runs.parquet"
    written = sql(url, statement, "--format", "parquet", "--out", str(out))
    assert written.exit_code == 0, written.output
    assert pd.read_parquet(out)["run_id"].tolist() == ["alpha", "beta", "delta", "gamma"]
    to_file = sql(url, statement, "--format", "csv", "--out", str(tmp_path / "runs.csv"))
    assert to_file.stdout == ""
    assert pd.read_csv(tmp_path / "runs.csv")["final_accuracy"].tolist() == [42.0, 52.0, 10.0, 20.0]


def test_sql_command_refusals_limits_and_exit_codes(url, console_url):
    refused = sql(console_url, "DELETE FROM runs")
    assert refused.exit_code != 0
    assert "only SELECT, WITH or EXPLAIN" in refused.stderr
    interrupted = sql(
        console_url,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        "--timeout",
        "0.3",
    )
    assert interrupted.exit_code != 0
    assert "interrupted" in interrupted.stderr
    truncated = sql(console_url, "SELECT run_id FROM runs ORDER BY run_id", "--max-rows", "2")
    assert truncated.exit_code == 0
    assert truncated.stdout.split() == ["run_id", "alpha", "beta"]
    assert "stopped at 2 rows" in truncated.stderr
    needs_out = sql(console_url, "SELECT 1", "--format", "parquet")
    assert needs_out.exit_code != 0
    assert "--out" in needs_out.stderr
    byte_capped = sql(
        console_url, "SELECT a.run_id FROM runs a, runs b, runs c", "--max-bytes", "1K"
    )
    assert byte_capped.exit_code == 0, byte_capped.output
    assert "the byte cap (1024 bytes); more were left (raise --max-bytes)" in byte_capped.stderr
    assert queries.count_runs(db.create_engine(url)) == 4


def test_sql_command_refuses_a_writable_postgres_role_unless_told(url):
    if not url.startswith("postgresql"):
        pytest.skip("roles are PostgreSQL's")
    refused = sql(url, "SELECT count(*) AS n FROM runs")  # the test URL is a superuser
    assert refused.exit_code != 0
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "it is a superuser; connect as a SELECT-only role (CREATE ROLE reader" in refused.stderr
    assert "--unsafe-writable-role" in refused.stderr
    allowed = sql(url, "SELECT count(*) AS n FROM runs", "--unsafe-writable-role")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.stdout.split() == ["n", "4"]


def test_the_real_run_answers_as_its_snapshots_say(db_url):
    snapshots = fixture_snapshots()
    with Archive(db_url) as archive:
        for s in snapshots:
            archive.save(s)
        run = queries.list_runs(archive).iloc[0]
        funnel = queries.seed_funnel(archive)
        series = queries.run_series(archive, RUN, "host_accuracy", per_env=True)
        action_mix = queries.action_mix(archive)
    trained = [s for s in snapshots if any(e["current_epoch"] > 0 for e in s["envs"].values())]
    final = [e["host_accuracy"] for e in trained[-1]["envs"].values()]
    peaks = [e["best_accuracy"] for s in snapshots for e in s["envs"].values()]
    peaks += [r["peak_accuracy"] for s in snapshots for r in s["best_runs"]]
    last = snapshots[-1]
    # The last two snapshots are batch-end resets (accuracy 0): the final state is before them.
    assert all(e["host_accuracy"] == 0.0 for e in last["envs"].values())
    assert run["final_accuracy"] == pytest.approx(np.mean(final))
    assert run["peak_accuracy"] == pytest.approx(max(peaks))
    assert (run["batches_done"], run["fossilized"], run["pruned"]) == (
        last["current_batch"],
        last["cumulative_fossilized"],
        last["cumulative_pruned"],
    )
    # esper's own per-blueprint counters, and tracked seeds never exceeding them.
    assert funnel["reported_spawns"].sum() == last["cumulative_germinated"]
    assert dict(zip(funnel["blueprint_id"], funnel["reported_fossilized"], strict=True)) == {
        b: last["cumulative_blueprint_fossilized"].get(b, 0) for b in funnel["blueprint_id"]
    }
    assert (funnel["fossilized"] <= funnel["reported_fossilized"]).all()
    assert (funnel["germinated"] <= funnel["reported_spawns"]).all()
    # The first snapshot: epoch 24 of 25 (one env at 24, three at 23), all envs at x = 0.96.
    first = series[series["snapshot_id"] == series["snapshot_id"].min()]
    assert set(first["x"]) == {0.96}
    assert len(first) == 5  # the mean and four envs
    # Batch 0 ended with 100 actions (4 envs x 25 epochs), as esper counted them.
    assert action_mix[action_mix["batch"] == 0]["count"].sum() == 100
