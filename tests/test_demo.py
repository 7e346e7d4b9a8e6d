"""The synthetic demo telemetry: deterministic, plausible, internally consistent, and valid
for the archive."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from helpers import assert_same, differences

from sanctum_store import Archive, codec, demo, schema, simulation
from sanctum_store.schema import SanctumSnapshot

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PRUNE_REASONS = {"negative_contribution", "gradient_vanishing", "timeout", "policy"}
REWARD_PARTS = (
    "base_acc_delta",
    "bounded_attribution",
    "seed_contribution",
    "compute_rent",
    "alpha_shock",
    "ratio_penalty",
    "stage_bonus",
    "fossilize_terminal_bonus",
    "blending_warning",
    "holding_warning",
    "hindsight_credit",
)


def short(run: demo.DemoRun, batches: int = 2) -> demo.DemoRun:
    return dataclasses.replace(run, max_batches=batches)


@pytest.fixture(scope="module")
def plan() -> list[demo.DemoRun]:
    return demo.plan_runs(12, seed=0, now=NOW)


@pytest.fixture(scope="module")
def cohort_runs(plan) -> dict[str, list[tuple[datetime, SanctumSnapshot]]]:
    """Every planned run, a snapshot at each batch end (and at the stop of unfinished runs);
    finished runs cut to 3 batches to keep the suite fast."""
    return {
        run.run_id: list(
            demo.simulate(short(run, 3) if run.outcome == "finished" else run, every_epochs=25)
        )
        for run in plan
    }


@pytest.fixture(scope="module")
def detailed(plan) -> list[tuple[datetime, SanctumSnapshot]]:
    """One finished run at the default rate, one snapshot every 5 epochs."""
    return list(demo.simulate(plan[0]))


def all_snapshots(cohort_runs, detailed) -> list[SanctumSnapshot]:
    return [s for run in cohort_runs.values() for _, s in run] + [s for _, s in detailed]


def final_accuracy(snapshots: list[tuple[datetime, SanctumSnapshot]]) -> float:
    """Mean host accuracy over the envs at the run's last batch end."""
    ends = [s for _, s in snapshots if s.envs[0].current_epoch == s.max_epochs]
    return ends[-1].aggregate_mean_accuracy


# --------------------------------------------------------------------------------------------
# Determinism and independence
# --------------------------------------------------------------------------------------------


def test_same_run_gives_identical_snapshots(plan):
    first = [
        (at, dataclasses.asdict(s)) for at, s in demo.simulate(short(plan[1]), every_epochs=10)
    ]
    again = [
        (at, dataclasses.asdict(s)) for at, s in demo.simulate(short(plan[1]), every_epochs=10)
    ]
    assert len(first) > 5
    assert_same(first, again)


def test_different_seed_gives_different_runs(plan):
    other = demo.plan_runs(12, seed=1, now=NOW)
    assert [r.run_id for r in other] != [r.run_id for r in plan]
    a = [dataclasses.asdict(s) for _, s in demo.simulate(short(plan[0]), every_epochs=25)]
    b = [dataclasses.asdict(s) for _, s in demo.simulate(short(other[0]), every_epochs=25)]
    assert differences(a, b)
    assert a[-2]["envs"][0]["accuracy_history"] != b[-2]["envs"][0]["accuracy_history"]


def test_yielded_snapshots_are_independent(plan):
    seen = [(at, dataclasses.asdict(s), s) for at, s in demo.simulate(short(plan[2]))]
    for _, taken, later in seen:  # nothing changed after it was handed over
        assert_same(taken, dataclasses.asdict(later))
    tamiyos = {id(s.tamiyo) for _, _, s in seen}
    assert len(tamiyos) == len(seen)


def test_trajectory_does_not_depend_on_the_snapshot_rate(plan):
    run = short(plan[0], 1)

    def batch_ends(every):
        return [
            (at, [list(e.accuracy_history) for e in s.envs.values()], s.tamiyo.entropy)
            for at, s in demo.simulate(run, every_epochs=every)
            if s.envs[0].current_epoch == s.max_epochs
        ]

    assert batch_ends(1) == batch_ends(25)


def test_plan_is_deterministic_for_its_arguments(plan):
    assert demo.plan_runs(12, seed=0, now=NOW) == plan
    later = demo.plan_runs(12, seed=0, now=NOW + timedelta(hours=1))
    assert [r.run_id for r in later] == [r.run_id for r in plan]
    assert {r.start - p.start for r, p in zip(later, plan, strict=True)} == {timedelta(hours=1)}


# --------------------------------------------------------------------------------------------
# The plan: cohorts, outcomes, times
# --------------------------------------------------------------------------------------------


def test_plan_spreads_runs_over_cohorts_and_outcomes(plan):
    assert Counter(r.outcome for r in plan) == {"finished": 10, "running": 1, "crashed": 1}
    modes = [r.reward_mode for r in plan]
    assert modes[:3] == ["shaped", "simplified", "sparse"] and modes[3:6] == modes[:3]
    for run in plan:
        assert run.group_id == {"shaped": "A", "simplified": "B", "sparse": "C"}[run.reward_mode]
        assert run.start.tzinfo is not None
        assert NOW - timedelta(days=4) < run.start < NOW
    assert len({r.run_id for r in plan}) == 12
    assert len({r.seed for r in plan if r.reward_mode == "shaped"}) == 4
    with pytest.raises(ValueError):
        demo.plan_runs(12, now=datetime(2026, 1, 1))  # naive


def test_runs_end_where_their_outcome_says(plan, cohort_runs):
    for run in plan:
        snapshots = cohort_runs[run.run_id]
        times = [at for at, _ in snapshots]
        assert times == sorted(times) and len(set(times)) == len(times)
        last_at, last = snapshots[-1]
        assert last.captured_at == last_at.isoformat()
        assert last.runtime_seconds == pytest.approx((last_at - run.start).total_seconds())
        if run.outcome == "running":
            assert last_at == NOW
            assert 0 < last.current_batch < run.max_batches
        elif run.outcome == "crashed":
            assert NOW - timedelta(days=1) < last_at <= NOW - timedelta(hours=2)
            assert last.current_batch < run.max_batches - 1
        else:
            assert last_at < NOW - timedelta(minutes=10)
            assert last.current_batch == last.max_batches
            assert len(last.best_runs) == 10


def test_cohorts_differ_in_the_intended_direction_but_overlap(plan, cohort_runs):
    finals = {c.reward_mode: [] for c in demo.COHORTS}
    for run in plan:
        if run.outcome == "finished":
            finals[run.reward_mode].append(final_accuracy(cohort_runs[run.run_id]))
    means = {mode: statistics.fmean(values) for mode, values in finals.items()}
    # Built in: shaped +1.5 over sparse, simplified +0.8, runs varying with sd ~2. At 3-4 runs
    # per cohort only the larger gap is safely above the noise.
    assert 0.5 < means["shaped"] - means["sparse"] < 3.0
    assert means["sparse"] - 1.0 < means["simplified"] < means["shaped"] + 1.0
    assert all(0.5 < statistics.stdev(values) < 3.5 for values in finals.values())
    # Modest and noisy: the best sparse run beats the worst shaped run.
    assert max(finals["sparse"]) > min(finals["shaped"])
    for values in finals.values():
        assert all(60 < v < 85 for v in values)


def test_accuracy_rises_over_an_episode_and_plateaus(detailed):
    histories = [
        list(env.accuracy_history)
        for _, s in detailed
        if s.envs[0].current_epoch == s.max_epochs
        for env in s.envs.values()
    ]
    for history in histories:
        assert len(history) == 25
        assert 12 < history[0] < 30 and history[-1] > 55
        late_rise = statistics.fmean(history[-5:]) - statistics.fmean(history[-10:-5])
        assert late_rise < 0.15 * (history[9] - history[0])
    assert any(h[i] < h[i - 1] for h in histories for i in range(15, 25))  # noisy


# --------------------------------------------------------------------------------------------
# Seeds, decisions, leaderboard, counterfactuals
# --------------------------------------------------------------------------------------------


def test_seeds_go_through_the_whole_lifecycle(cohort_runs, detailed):
    stages, reasons, auto = Counter(), set(), set()
    for snapshot in all_snapshots(cohort_runs, detailed):
        for env in snapshot.envs.values():
            assert list(env.seeds) == snapshot.slot_ids
            for seed in env.seeds.values():
                stages[seed.stage] += 1
                assert (seed.blueprint_id is None) == (seed.stage == "DORMANT")
                if seed.stage == "PRUNED":
                    assert seed.prune_reason in PRUNE_REASONS
                    auto.add(seed.auto_pruned)
                    assert seed.auto_pruned == (seed.prune_reason != "policy")
                if seed.stage == "BLENDING":
                    assert 0.0 <= seed.alpha <= 1.0
                if seed.stage in ("HOLDING", "FOSSILIZED"):
                    assert seed.alpha == 1.0
        reasons |= {
            e.metadata["reason"] for e in snapshot.event_log if e.event_type == "SEED_PRUNED"
        }
    assert set(stages) == set(simulation.STAGES)
    assert reasons == PRUNE_REASONS
    assert auto == {True, False}


def test_counts_agree_with_the_seeds(detailed):
    for _, s in detailed:
        seeds = [seed for env in s.envs.values() for seed in env.seeds.values()]
        assert sum(s.slot_stage_counts.values()) == s.total_slots == len(seeds) == 12
        assert s.slot_stage_counts["FOSSILIZED"] == sum(e.fossilized_count for e in s.envs.values())
        assert sum(s.cumulative_blueprint_spawns.values()) == s.cumulative_germinated
        assert sum(s.cumulative_blueprint_prunes.values()) == s.cumulative_pruned
        assert sum(s.cumulative_blueprint_fossilized.values()) == s.cumulative_fossilized
        assert s.seed_lifecycle.germination_count == s.cumulative_germinated
        for env in s.envs.values():
            assert sum(env.blueprint_fossilized.values()) == env.fossilized_count
            assert env.growth_ratio >= 1.0
            assert env.total_actions == env.current_epoch == len(env.accuracy_history)
            rc = env.reward_components
            assert rc.total == pytest.approx(sum(getattr(rc, name) for name in REWARD_PARTS))
    last = detailed[-1][1]
    assert last.cumulative_germinated > 30 and last.cumulative_fossilized > 5
    assert len(last.cumulative_blueprint_spawns) >= 6


def test_decisions_get_their_reward_in_a_later_snapshot(detailed):
    completed = 0
    for (_, earlier), (_, later) in itertools.pairwise(detailed):
        before = {d.decision_id: d for d in earlier.tamiyo.recent_decisions}
        for d in later.tamiyo.recent_decisions:
            if d.decision_id in before:
                old = before[d.decision_id]
                assert (old.chosen_action, old.timestamp, old.expected_value) == (
                    d.chosen_action,
                    d.timestamp,
                    d.expected_value,
                )
                if old.actual_reward is None and d.actual_reward is not None:
                    completed += 1
                if old.actual_reward is not None:
                    assert d.actual_reward == old.actual_reward
    assert completed >= 10
    for _, s in detailed:
        decisions = s.tamiyo.recent_decisions
        assert 0 < len(decisions) <= 8
        assert len({d.decision_id for d in decisions}) == len(decisions)
        assert [d.timestamp for d in decisions] == sorted(
            (d.timestamp for d in decisions), reverse=True
        )
        assert decisions[0].actual_reward is None or s.current_epoch == s.max_epochs
        for d in decisions:
            assert d.chosen_action in schema.BASE_ACTIONS
            assert d.confidence + sum(p for _, p in d.alternatives) <= 1.0 + 1e-9
            assert (d.chosen_blueprint is not None) == (d.chosen_action == "GERMINATE")
            assert s.start_time < d.timestamp <= datetime.fromisoformat(s.captured_at)
    ops = {d.chosen_action for _, s in detailed for d in s.tamiyo.recent_decisions}
    assert ops >= {"GERMINATE", "ADVANCE", "FOSSILIZE", "WAIT"}


def test_ppo_metrics_evolve_plausibly(detailed):
    ends = [s for _, s in detailed if s.envs[0].current_epoch == s.max_epochs]
    entropies = [s.tamiyo.entropy for s in ends]
    assert entropies[0] > 1.4 and entropies[-1] < 0.8 and entropies[0] > entropies[-1]
    last = ends[-1].tamiyo
    assert list(last.entropy_history) == entropies
    assert last.entropy_velocity < 0 and 0.0 <= last.collapse_risk_score <= 1.0
    assert all(0.002 <= v <= 0.03 for v in last.kl_divergence_history)
    assert all(0.05 <= v <= 0.25 for v in last.clip_fraction_history)
    assert last.explained_variance_history[-1] > last.explained_variance_history[0]
    assert last.cumulative_total_actions == sum(last.cumulative_action_counts.values()) == 800
    assert len(last.value_function.td_errors) == 100
    assert ends[-1].vitals.gpu_stats and not ends[-1].vitals.has_memory_alarm


def test_best_runs_are_the_top_ten_by_peak(detailed):
    peaks = []  # every finished episode's peak so far
    for _, s in detailed:
        assert [r.peak_accuracy for r in s.best_runs] == sorted(peaks, reverse=True)[:10]
        if s.envs[0].current_epoch == s.max_epochs:  # the episode's final state, not yet recorded
            peaks += [env.best_accuracy for env in s.envs.values()]
    final = detailed[-1][1].best_runs
    assert len(final) == 10 and len({r.record_id for r in final}) == 10
    for r in final:
        assert r.reward_mode == "shaped" and r.final_accuracy <= r.peak_accuracy
        assert r.accuracy_history[r.epoch - 1] == r.peak_accuracy
        assert r.counterfactual_matrix is not None and r.reward_components is not None
        assert all(seed.stage in ("BLENDING", "HOLDING", "FOSSILIZED") for seed in r.seeds.values())


def test_counterfactual_matrices_are_full_factorial_and_match_shapley(detailed):
    checked = 0
    for _, s in detailed:
        for env in s.envs.values():
            matrix = env.counterfactual_matrix
            # Measured after the epoch, before Tamiyo's action: a seed she germinated since is
            # not in it yet, one she pruned since still is.
            live = [
                k
                for k, seed in env.seeds.items()
                if (
                    seed.stage in simulation.LIVE
                    and (seed.stage, seed.epochs_in_stage) != ("GERMINATED", 0)
                )
                or (seed.stage, seed.epochs_in_stage, seed.prune_reason) == ("PRUNED", 0, "policy")
            ]
            assert list(matrix.slot_ids) == live
            if not live:
                assert matrix.configs == [] and env.shapley_snapshot.values == {}
                continue
            masks = {tuple(c.seed_mask) for c in matrix.configs}
            assert matrix.strategy == "full_factorial"
            assert len(matrix.configs) == len(masks) == 2 ** len(live)
            assert matrix.combined_accuracy == env.host_accuracy
            shapley = sum(env.shapley_snapshot.get_mean(k) for k in live)
            assert shapley == pytest.approx(matrix.combined_accuracy - matrix.baseline_accuracy)
            for i, slot in enumerate(live):
                off = tuple(j != i for j in range(len(live)))
                ablated = matrix.get_accuracy(off)
                assert env.seeds[slot].counterfactual == pytest.approx(env.host_accuracy - ablated)
            checked += 1
    assert checked > 50


def test_event_log_is_bounded_ordered_and_unique(detailed):
    for _, s in detailed:
        log = s.event_log
        assert 0 < len(log) <= 100
        assert len({e.metadata["event_id"] for e in log}) == len(log)
        stamps = [e.timestamp for e in log]
        assert all(len(t) == 8 and t[2] == t[5] == ":" for t in stamps)
        assert log[-1].timestamp == datetime.fromisoformat(s.captured_at).strftime("%H:%M:%S")
        assert all(e.relative_time == "(0s)" for e in log)
    types_seen = {e.event_type for _, s in detailed for e in s.event_log}
    assert types_seen >= {"SEED_GERMINATED", "SEED_STAGE_CHANGED", "SEED_FOSSILIZED",
                          "SEED_PRUNED", "PPO_UPDATE_COMPLETED", "BATCH_EPOCH_COMPLETED",
                          "REWARD_COMPUTED"}  # fmt: skip


# --------------------------------------------------------------------------------------------
# The archive's validator, benchmark snapshots, writing
# --------------------------------------------------------------------------------------------


def test_every_snapshot_passes_the_archive_validator(cohort_runs, detailed):
    for snapshot in [run[-1][1] for run in cohort_runs.values()] + [s for _, s in detailed]:
        tree = codec.normalize(snapshot)
        assert tree["tamiyo"]["group_id"] in ("A", "B", "C")
        assert {env["reward_mode"] for env in tree["envs"].values()} <= {
            "shaped",
            "simplified",
            "sparse",
        }
        assert tree[codec.EXTRA] == {"reward_mode": snapshot.envs[0].reward_mode}
        json.dumps(codec.to_json(tree), allow_nan=True)


def test_large_snapshot_and_stream():
    big = demo.large_snapshot()
    assert len(big.envs) == 128 and all(len(env.seeds) == 3 for env in big.envs.values())
    assert big.slot_ids == ["r0c0", "r0c1", "r0c2"]
    size = len(json.dumps(codec.to_json(codec.normalize(big))))
    assert 300_000 < size < 1_500_000
    assert len(big.best_runs) == 10 and len(big.tamiyo.recent_decisions) == 8
    stream = list(demo.snapshot_stream(4, 3, 12))
    assert len(stream) == 12
    for a, b in itertools.pairwise(stream):
        codec.normalize(b)
        shared = {d.decision_id for d in a.tamiyo.recent_decisions} & {
            d.decision_id for d in b.tamiyo.recent_decisions
        }
        assert shared or b.current_epoch == 0
        events = {e.metadata["event_id"] for e in a.event_log}
        assert sum(e.metadata["event_id"] in events for e in b.event_log) > 50
        assert b.captured_at > a.captured_at


def test_write_demo_into_an_archive(sqlite_url, monkeypatch):
    from sanctum_store import Archive

    now = datetime.now(UTC)
    monkeypatch.setattr(demo, "simulate", functools.partial(demo.simulate, every_epochs=25))
    ticks = []
    runs = demo.write_demo(sqlite_url, n_runs=3, now=now, progress=ticks.append)
    archive = Archive(sqlite_url)
    try:
        table = archive.runs().set_index("run_id")
        # Finished runs were closed as finished; the others read from their heartbeat's age.
        assert table["status"].to_dict() == {r.run_id: r.outcome for r in runs}
        assert set(table["reward_mode"]) == {"shaped", "simplified", "sparse"}
        assert set(table["group_id"]) == {"A", "B", "C"}
        counts = [len(archive.snapshot_ids(r.run_id)) for r in runs]
        assert ticks == [1] * sum(counts) and min(counts) > 1
        finished = archive.load(runs[0].run_id)
        assert finished.current_batch == finished.max_batches and len(finished.best_runs) == 10
        assert archive.load(runs[-1].run_id).captured_at == now.isoformat()
    finally:
        archive.close()


def test_demo_command_fills_an_empty_archive_once(tmp_path):
    from click.testing import CliRunner

    from sanctum_store import Archive
    from sanctum_store.cli import main

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = CliRunner().invoke(main, ["demo", "--db", url, "--runs", "3", "--seed", "1"])
    assert result.exit_code == 0, result.output
    with Archive(url) as archive:
        runs = archive.runs()
    assert len(runs) == 3
    assert set(runs["reward_mode"]) == {"shaped", "simplified", "sparse"}
    assert "finished" in set(runs["status"]) and "crashed" in set(runs["status"])
    assert (runs["first_seen"] <= runs["last_seen"]).all()
    again = CliRunner().invoke(main, ["demo", "--db", url, "--if-empty"])
    assert "nothing to do" in again.output


def test_demo_live_keeps_a_run_recording_until_interrupted(tmp_path):
    """`sanctum-store demo --live`, as a user runs it: the run grows and reads as running
    while it records, and is finished once interrupted."""
    import signal
    import subprocess
    import sys
    import time as wall

    path = tmp_path / "live.db"
    with Archive(str(path)) as archive:
        archive.save(demo.large_snapshot(4, 3))  # runs there already: --live adds its own only
    log = tmp_path / "live.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sanctum_store.cli",
                "demo",
                "--live",
                "--every",
                "0.1",
                "--db",
                str(path),
                "--runs",
                "3",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        counts = []
        deadline = wall.monotonic() + 120
        while wall.monotonic() < deadline and (len(counts) < 2 or counts[-1] < 5):
            wall.sleep(0.2)
            with Archive(str(path), create=False) as archive:
                runs = archive.runs()
            live = runs[runs["run_id"].str.contains("-live-")]
            if not live.empty:
                counts.append(int(live["snapshot_count"].iloc[0]))
                assert live["status"].iloc[0] == "running"
        assert len(counts) >= 2 and counts[-1] > counts[0], (counts, log.read_text())
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, log.read_text()
    with Archive(str(path), create=False) as archive:
        runs = archive.runs()
    assert len(runs) == 2, "an archive that had runs gets the live run only"
    live = runs[runs["run_id"].str.contains("-live-")].iloc[0]
    assert live["status"] == "finished" and live["snapshot_count"] >= counts[-1]
    assert "is finished" in log.read_text()
