"""Realistic synthetic telemetry of esper-style morphogenetic training runs, for the demo
archive and the write benchmarks. The model, in short:

* A run trains ``n_envs`` copies of a CIFAR-10 host for ``max_batches`` episodes of
  ``max_epochs`` epochs. Host accuracy rises along a saturating curve towards a ceiling set by
  the reward cohort (:data:`COHORTS`) and the run's luck (``DemoRun.skill``), with AR(1) noise.
* A slot can hold a seed whose true contribution comes from its blueprint (:data:`BLUEPRINTS`).
  Its alpha ramps in while it blends, so what it adds shows up alike in the host accuracy, its
  counterfactual, the env's factorial matrix and the Shapley values.
* Tamiyo acts once per env and epoch. As PPO entropy falls she acts more decisively, judges
  seeds better and prefers better blueprints, so accuracy improves over a run in every cohort.
* Time is simulated. Durations and snapshot-time readings (vitals, staleness) have random
  streams of their own, so neither times nor trajectory depend on how often snapshots are taken.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from sanctum_store.schema import SanctumSnapshot
from sanctum_store.simulation import (
    BENCH_START,
    COHORTS,
    RUN_SD,
    TASK_NAME,
    DemoRun,
    SimClock,
    Simulation,
    timeline,
)

# --------------------------------------------------------------------------------------------
# Planning and timing
# --------------------------------------------------------------------------------------------


def plan_runs(n_runs: int = 12, seed: int = 0, *, now: datetime | None = None) -> list[DemoRun]:
    """Runs over the cohorts round-robin, started over the three days before ``now``
    (timezone-aware; default: the current UTC time). The last run is still running (its last
    snapshot is at ``now``), the one before it crashed mid-way hours ago, the rest finished."""
    if n_runs < len(COHORTS):
        raise ValueError(f"need at least {len(COHORTS)} runs, one per cohort")
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = np.random.default_rng(seed)
    skills, gap = _stratified_skills(rng, n_runs), timedelta(days=3) / n_runs
    latest_end = {"running": now, "crashed": now - timedelta(hours=3)}
    runs = []
    for i in range(n_runs):
        cohort = COHORTS[i % len(COHORTS)]
        run_seed = 42 + 1000 * seed + i // len(COHORTS)  # the same seeds in every cohort
        outcome = {n_runs - 1: "running", n_runs - 2: "crashed"}.get(i, "finished")
        run_id = f"{TASK_NAME}-{cohort.reward_mode}-s{run_seed}-{rng.bytes(3).hex()}"
        run = DemoRun(run_id, *cohort[:2], run_seed, now, outcome=outcome, skill=float(skills[i]))
        if outcome != "finished":
            first = max(1, run.max_batches // 3) if outcome == "running" else 1
            batch = int(rng.integers(first, max(first, 2 * run.max_batches // 3) + 1))
            run = replace(run, stop_at=(batch, int(rng.integers(2, run.max_epochs - 1))))
        planned = now - timedelta(days=3) + (i + float(rng.uniform(0, 0.3))) * gap
        end = latest_end.get(outcome, now - timedelta(minutes=15))
        start = end - timedelta(seconds=_last_offset(run))  # its last snapshot at `end` ...
        runs.append(replace(run, start=start if outcome == "running" else min(planned, start)))
    return runs


def _stratified_skills(rng: np.random.Generator, n_runs: int) -> np.ndarray:
    """Run offsets with sd RUN_SD. Each cohort's finished runs (all but the last two) take
    stratified quantiles (near the middle of k equal strata, in random order), so that even at
    3-4 runs per cohort the cohort means sit near the intended effects while runs overlap."""
    skills, normal = rng.normal(0.0, RUN_SD, n_runs), statistics.NormalDist(0.0, RUN_SD)
    for c in range(len(COHORTS)):
        members = np.arange(c, n_runs - 2, len(COHORTS))
        strata = rng.permutation(len(members)) + rng.uniform(0.4, 0.6, len(members))
        skills[members] = [normal.inv_cdf(q / len(members)) for q in strata]
    return skills


def _stop_point(run: DemoRun) -> tuple[int, int] | None:
    if run.outcome == "finished":
        return None
    batch, epoch = run.stop_at or (run.max_batches // 2, run.max_epochs // 2)
    return min(max(batch, 0), run.max_batches - 1), min(max(epoch, 1), run.max_epochs - 1)


def _last_offset(run: DemoRun) -> float:
    """Seconds from the start to the run's last snapshot."""
    epoch_end, ppo_end = timeline(run)
    stop = _stop_point(run)
    return float(ppo_end[-1] + 1.0 if stop is None else epoch_end[stop[0], stop[1] - 1])


# --------------------------------------------------------------------------------------------
# Public generators
# --------------------------------------------------------------------------------------------


def simulate(run: DemoRun, *, every_epochs: int = 5) -> Iterator[tuple[datetime, SanctumSnapshot]]:
    """The run's snapshots in time order, each with the simulated time it was taken: one every
    ``every_epochs`` epochs, one at each batch end (after the PPO update, before the envs reset)
    and, for a finished run, one after the final reset that holds every best-run record. A
    running or crashed run stops at its stop point. Every snapshot is an independent copy."""
    if every_epochs < 1:
        raise ValueError("every_epochs must be at least 1")
    sim, stop = Simulation(run), _stop_point(run)
    for kind, batch, epoch in sim.steps():
        at_stop = kind == "epoch" and (batch, epoch) == stop
        if kind != "epoch" or at_stop or (epoch % every_epochs == 0 and epoch < run.max_epochs):
            yield sim.now, sim.snapshot()
        if at_stop:
            return


def snapshot_stream(n_envs: int, n_slots: int, n: int, seed: int = 0) -> Iterator[SanctumSnapshot]:
    """``n`` successive snapshots of one run, one per epoch and batch end, from its second
    batch on: histories slide, decisions and events repeat between neighbours as in esper."""
    name = f"bench-{n_envs}x{n_slots}-s{seed}"
    run = DemoRun(name, "shaped", "A", seed, BENCH_START, n_envs, n_slots, 100, outcome="running")
    sim = Simulation(run)
    steps = sim.steps()
    for _, batch, epoch in steps:
        if (batch, epoch) == (1, 15):
            break
    for i in range(n):  # up to ~2,500 snapshots: 100 batches of 25 epochs
        if i and next(steps, None) is None:
            return
        yield sim.snapshot()


def large_snapshot(n_envs: int = 128, n_slots: int = 3, seed: int = 0) -> SanctumSnapshot:
    """One realistic mid-run snapshot of a large run."""
    return next(snapshot_stream(n_envs, n_slots, 1, seed))


def write_demo(
    db: str | None,
    n_runs: int = 12,
    seed: int = 0,
    *,
    now: datetime | None = None,
    progress: Callable[[int], object] | None = None,
    runs: list[DemoRun] | None = None,
) -> list[DemoRun]:
    """Write every planned run to the archive ``db`` (one writer per run; the archive's
    last-seen times follow the simulated clock) and return the plan. Finished runs are closed
    as finished; the running and crashed ones are left open, so their heartbeat age tells their
    status. ``progress(1)`` is called after each snapshot. ``runs`` replaces the plan."""
    from sanctum_store.writer import SnapshotWriter  # pulls in the database stack

    if runs is None:
        runs = plan_runs(n_runs, seed, now=now)
    for run in runs:
        clock = SimClock(run.start)
        writer = SnapshotWriter(db, run_id=run.run_id, clock=clock, block_timeout=300.0)
        done = False
        try:
            for at, snapshot in simulate(run):
                clock.at = at
                if not writer.write(snapshot, run_id=run.run_id, at=at):
                    raise RuntimeError(f"demo snapshot of {run.run_id} was dropped")
                if progress is not None:
                    progress(1)
            done = True
        finally:
            stats = writer.close(finish=done and run.outcome == "finished")
        if stats.failed or stats.dropped:
            raise RuntimeError(f"demo run {run.run_id} not fully stored: {stats.last_error}")
    return runs


def write_live(
    db: str | None,
    *,
    every: float = 3.0,
    seed: int = 0,
    now: datetime | None = None,
    on_snapshot: Callable[[int], object] | None = None,
) -> DemoRun:
    """Write one long simulated run as a training loop would: a snapshot every ``every``
    seconds of real time, stamped with the time it is written, until the run ends or the
    caller interrupts (KeyboardInterrupt); either way the run is closed as finished.
    ``on_snapshot(n)`` is called with the count written so far. Returns the run."""
    import time

    from sanctum_store.writer import SnapshotWriter

    if not every > 0:
        raise ValueError(f"every must be a positive number of seconds, got {every}")
    now = datetime.now(UTC) if now is None else now
    cohort = COHORTS[seed % len(COHORTS)]
    run = DemoRun(
        f"{TASK_NAME}-{cohort.reward_mode}-live-{now:%Y%m%dT%H%M%S}",
        cohort.reward_mode,
        cohort.group_id,
        42 + seed,
        now,
        max_batches=200,  # a few hours at a snapshot every few seconds
    )
    writer = SnapshotWriter(db, run_id=run.run_id)
    written = 0
    try:
        for _, snapshot in simulate(run, every_epochs=1):
            snapshot.captured_at = datetime.now(UTC).isoformat()
            writer.write(snapshot, run_id=run.run_id)
            written += 1
            if on_snapshot is not None:
                on_snapshot(written)
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    finally:
        writer.close(finish=True)
    return run
