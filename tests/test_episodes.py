"""Episodes are first-class: one row per (run, batch, env) whose end a snapshot saw, kept by the
writer as batches end, the same through queries.episode_outcomes and v_episodes."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner
from conftest import fixture_snapshots

from sanctum_store import Archive, migrate, queries
from sanctum_store.cli import main

COLUMNS = [
    "run_id", "batch", "env_id", "final_accuracy", "peak_accuracy", "final_loss",
    "episode_reward", "growth_ratio",
]  # fmt: skip


def envs_of(snapshot: dict) -> list[dict]:
    envs = snapshot["envs"]
    return list(envs.values()) if isinstance(envs, dict) else list(envs)


def expected_episodes(snapshots: list[dict]) -> dict[tuple[int, int], dict]:
    """Computed from the JSON itself: per (batch, env), the env in the latest snapshot showing
    it at max_epochs, and the best accuracy any snapshot of that batch showed for it."""
    ends, peaks = {}, {}
    for s in sorted(snapshots, key=lambda s: s["captured_at"]):
        for env in envs_of(s):
            if env["current_epoch"] <= 0:
                continue
            key = (s["current_batch"], env["env_id"])
            peaks[key] = max(peaks.get(key, 0.0), env["best_accuracy"], env["host_accuracy"])
            if env["current_epoch"] >= s["max_epochs"]:
                ends[key] = env
    return {
        key: {
            "final_accuracy": env["host_accuracy"],
            "peak_accuracy": peaks[key],
            "final_loss": env["host_loss"],
            "episode_reward": env["cumulative_reward"],
            "fossilized": env["fossilized_count"],
            "pruned": env["pruned_count"],
        }
        for key, env in ends.items()
    }


def stored(archive: Archive) -> dict[tuple[int, int], dict]:
    df = queries.episode_outcomes(archive)
    return {
        (r.batch, r.env_id): {
            name: getattr(r, name)
            for name in ("final_accuracy", "peak_accuracy", "final_loss", "episode_reward")
        }
        | {"fossilized": int(r.fossilized), "pruned": int(r.pruned)}
        for r in df.itertuples()
    }


def test_every_episode_the_fixture_saw_end_is_kept_with_its_outcome(db_url):
    snapshots = fixture_snapshots()
    with Archive(db_url) as archive:
        for s in snapshots:
            archive.save(s)
        archive.finish_run(snapshots[0]["run_id"])
        got = stored(archive)
    expected = expected_episodes(snapshots)
    # 6 batches x 4 envs, each seen at its 25th epoch.
    assert len(expected) == 24
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        assert got[key] == pytest.approx(want), key


def test_the_writer_keeps_an_episode_when_its_batch_ends(db_url):
    snapshots = sorted(fixture_snapshots(), key=lambda s: s["captured_at"])
    first_of_batch_1 = next(i for i, s in enumerate(snapshots) if s["current_batch"] == 1)
    with Archive(db_url) as archive:
        for s in snapshots[:first_of_batch_1]:
            archive.save(s)
        # Batch 0 has not ended yet (no later snapshot): nothing kept, nothing guessed.
        assert queries.episode_outcomes(archive).empty
        archive.save(snapshots[first_of_batch_1])
        kept = queries.episode_outcomes(archive)
    assert set(kept["batch"]) == {0} and len(kept) == 4


def test_an_episode_whose_end_no_snapshot_saw_is_absent(db_url):
    snapshots = fixture_snapshots()
    # Drop batch 2's end: its envs are seen mid-episode only.
    sparse = [
        s
        for s in snapshots
        if not (s["current_batch"] == 2 and any(e["current_epoch"] >= 25 for e in envs_of(s)))
    ]
    with Archive(db_url) as archive:
        for s in sparse:
            archive.save(s)
        archive.finish_run(snapshots[0]["run_id"])
        batches = queries.episode_outcomes(archive)["batch"]
    assert set(batches) == {0, 1, 3, 4, 5}
    assert batches.value_counts().eq(4).all()


def test_v_episodes_answers_like_episode_outcomes(db_url):
    snapshots = fixture_snapshots()
    with Archive(db_url) as archive:
        for s in snapshots:
            archive.save(s)
        archive.finish_run(snapshots[0]["run_id"])
        api = queries.episode_outcomes(archive)[COLUMNS]
        with archive.engine.connect() as conn:
            view = pd.read_sql(
                sa.text(
                    f"SELECT {', '.join(COLUMNS)} FROM v_episodes ORDER BY run_id, batch, env_id"
                ),
                conn,
            )
    assert len(api) == 24
    pd.testing.assert_frame_equal(
        view.reset_index(drop=True), api.reset_index(drop=True), check_dtype=False
    )


def test_db_upgrade_derives_the_episodes_of_an_archive_from_before_0005(sqlite_url):
    snapshots = fixture_snapshots()
    with Archive(sqlite_url) as archive:
        for s in snapshots:
            archive.save(s)
        archive.finish_run(snapshots[0]["run_id"])
        before = queries.episode_outcomes(archive)
        with archive.engine.begin() as conn:
            command.downgrade(migrate.alembic_config(conn), "0004")
        with archive.engine.connect() as conn:
            assert not sa.inspect(conn).has_table("episodes")
    result = CliRunner().invoke(main, ["db", "upgrade", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert f"upgraded 0004 -> {migrate.head_revision()}" in result.output
    with Archive(sqlite_url) as archive:
        after = queries.episode_outcomes(archive)
    assert len(after) == 24
    pd.testing.assert_frame_equal(after, before)


def test_episode_curves_are_each_cohorts_mean_over_runs_of_each_runs_mean_over_envs(sqlite_url):
    from scipy.stats import trim_mean

    from sanctum_store import demo, stats

    demo.write_demo(sqlite_url, 6, seed=3)
    with Archive(sqlite_url) as archive:
        episodes = queries.episode_outcomes(archive)
        curves = queries.episode_curves(archive, "reward_mode", "final_accuracy")
        iqm = queries.episode_curves(archive, "reward_mode", "final_accuracy", statistic="iqm")
    per_run = episodes.groupby(["reward_mode", "batch", "run_id"])["final_accuracy"].mean()
    expected = per_run.groupby(["reward_mode", "batch"]).agg(["mean", "count"])
    got = curves.set_index(["cohort", "batch"])
    assert len(got) == len(expected)
    assert got["value"].to_numpy() == pytest.approx(expected["mean"].to_numpy())
    assert (got["n"].to_numpy() == expected["count"].to_numpy()).all()
    # Percentile-bootstrap bands lie within the runs' values: never outside the domain.
    spread = per_run.groupby(["reward_mode", "batch"]).agg(["min", "max"])
    banded = got.dropna(subset=["ci_low"])
    assert not banded.empty
    assert (banded["ci_low"] >= spread.loc[banded.index, "min"] - 1e-9).all()
    assert (banded["ci_high"] <= spread.loc[banded.index, "max"] + 1e-9).all()
    assert (banded["ci_low"] <= banded["value"]).all() and (
        banded["value"] <= banded["ci_high"]
    ).all()
    trimmed = per_run.groupby(["reward_mode", "batch"]).agg(lambda v: trim_mean(v, 0.25))
    assert iqm["value"].to_numpy() == pytest.approx(trimmed.to_numpy())
    assert stats.interval([1.0, 2.0, 3.0, 100.0], "iqm")[0] == pytest.approx(2.5)
