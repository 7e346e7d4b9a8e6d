"""Reads never write: every question, and every explorer page, answers the same on an archive
opened read-only, through a SELECT-only PostgreSQL role, and while another process holds the
SQLite write lock; and asking leaves the archive as it was.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import FIXTURES, fixture_snapshots

from sanctum_store import Archive, demo, experiments, queries

EXPLORER = FIXTURES.parent.parent / "explorer"
sys.path.insert(0, str(EXPLORER))
from navigation import SCRIPTS as PAGES  # noqa: E402  (the app's own page list)

RUNNING = "live-run"


def fill(url: str) -> None:
    """Demo runs, esper's real run, and a run still recording: its running batch has no kept
    seeds, so seed questions derive them in the question."""
    demo.write_demo(url, 3, seed=4, now=datetime.now(UTC))
    with Archive(url) as archive:
        for snapshot in fixture_snapshots():
            archive.save(snapshot)
        for snapshot in demo.snapshot_stream(2, 3, 40, seed=9):
            archive.save(snapshot, run_id=RUNNING)


def questions(engine) -> dict[str, pd.DataFrame]:
    """Every public question, the way the explorer asks them."""
    runs = queries.run_index(engine)
    finished = runs["run_id"].iloc[-1]
    board = queries.leaderboard(engine, limit=5)
    answers = {
        "list_runs": queries.list_runs(engine),
        "run_index": runs,
        "count_runs": pd.DataFrame({"n": [queries.count_runs(engine)]}),
        "run_facets": pd.DataFrame({k: [tuple(v)] for k, v in queries.run_facets(engine).items()}),
        "run_outcomes": queries.run_outcomes(engine),
        "snapshot_times": queries.snapshot_times(engine, run_id=RUNNING),
        "run_series": queries.run_series(engine, run_id=RUNNING, metric="host_accuracy"),
        "run_series_env": queries.run_series(
            engine, run_id=finished, metric="host_accuracy", per_env=True
        ),
        "cohort_curves": queries.cohort_curves(
            engine, attribute="reward_mode", metric="host_accuracy"
        ),
        "episode_outcomes": queries.episode_outcomes(engine),
        "episode_curves": queries.episode_curves(
            engine, attribute="reward_mode", metric="final_accuracy"
        ),
        "leaderboard": board,
        "action_mix": queries.action_mix(engine),
        "calibration": queries.calibration(engine),
        "value_vs_reward": queries.value_vs_reward(engine),
        "head_entropy": queries.head_entropy(engine),
        "decision_table": queries.decision_table(engine, run_id=finished),
        "shapley_ranking": queries.shapley_ranking(engine, by="slot", cohort="reward_mode"),
        "synergy": queries.synergy(engine),
        "search_events": queries.search_events(engine, run_id=finished),
    }
    for by in ("blueprint", "slot"):
        answers[f"seed_funnel_{by}"] = queries.seed_funnel(engine, by=by, cohort="reward_mode")
        answers[f"time_in_stage_{by}"] = queries.time_in_stage(engine, by=by)
    answers["seed_lifespans"] = queries.seed_lifespans(engine)
    answers["lifecycle_totals"] = queries.lifecycle_totals(engine, cohort="reward_mode")
    answers["conversion_rates"] = queries.conversion_rates(engine, cohort="reward_mode")
    answers["prune_reasons"] = queries.prune_reasons(engine, cohort="group_id")
    answers["run_confounders"] = queries.run_confounders(engine)
    baseline = sorted(answers["run_outcomes"]["reward_mode"].dropna())[0]
    verdict = experiments.evaluate(
        engine, by="reward_mode", baseline=baseline, metric="final_accuracy", min_runs=2, n_boot=200
    )
    answers.update({f"verdict_{name}": table for name, table in verdict.tables().items()})
    return answers


def assert_same_answers(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], obj=name)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sqlite_archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("reads") / "archive.db"
    fill(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # the whole archive in the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def kept(path) -> list:
    """What the archive keeps of its seeds, and how far each run's are derived."""
    with sqlite3.connect(path) as conn:
        return [
            conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
            for table in ("seed_lives", "seed_visits", "seed_batches")
        ] + [conn.execute("SELECT id, seeds_counted_at FROM runs ORDER BY id").fetchall()]


def test_questions_answer_alike_on_a_read_only_archive_and_write_nothing(sqlite_archive, tmp_path):
    before = kept(sqlite_archive)
    with sqlite3.connect(sqlite_archive) as conn:  # runs still running: seeds to derive on asking
        behind = conn.execute(
            "SELECT count(*) FROM runs WHERE seeds_counted_at IS NOT snapshot_count"
        ).fetchone()[0]
    assert behind >= 2
    with Archive(str(sqlite_archive)) as archive:
        want = questions(archive.engine)
        assert_same_answers(questions(archive.engine), want)  # asking twice changes nothing
    assert kept(sqlite_archive) == before
    copy = tmp_path / "read-only.db"
    shutil.copy(sqlite_archive, copy)
    digest = sha256(copy)
    with Archive(f"sqlite:///{copy}?mode=ro") as archive:
        assert_same_answers(questions(archive.engine), want)
    assert sha256(copy) == digest


HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


@pytest.fixture
def write_lock_held(sqlite_archive):
    """Another process holds the archive's write lock (a writer mid-transaction)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(sqlite_archive), "600"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    yield
    holder.kill()
    holder.wait()


def test_questions_never_wait_for_the_write_lock(sqlite_archive, write_lock_held):
    with Archive(str(sqlite_archive), create=False) as archive:
        started = time.monotonic()
        questions(archive.engine)
        # A question that tried to write would wait out the 30 s busy timeout, then fail.
        assert time.monotonic() - started < 20


@pytest.mark.parametrize("page", PAGES)
def test_no_page_waits_for_the_write_lock(sqlite_archive, write_lock_held, monkeypatch, page):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setenv("SANCTUM_DB", f"sqlite:///{sqlite_archive}")
    app = str(EXPLORER / "app.py")
    # 15 s each, well inside the 30 s a page that tried to write would wait for the lock.
    at = AppTest.from_file(app, default_timeout=15).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert at.title, page


def test_a_select_only_postgresql_role_gets_the_same_answers(postgres_url):
    fill(postgres_url)
    owner = sa.create_engine(postgres_url)
    role = f"reader_{uuid.uuid4().hex[:10]}"
    schema = sa.make_url(postgres_url).query["options"].split("=", 1)[1]
    with owner.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.exec_driver_sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
    try:
        with Archive(postgres_url) as archive:
            want = questions(archive.engine)
        reader_url = sa.make_url(postgres_url).set(username=role)
        reader = sa.create_engine(reader_url, connect_args={"prepare_threshold": None})
        try:
            assert_same_answers(questions(reader), want)
            with (
                pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
                reader.begin() as conn,
            ):
                conn.exec_driver_sql("DELETE FROM seed_lives")
        finally:
            reader.dispose()
    finally:
        with owner.begin() as conn:
            conn.exec_driver_sql(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM "{role}"')
            conn.exec_driver_sql(f'REVOKE ALL ON SCHEMA "{schema}" FROM "{role}"')
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
        owner.dispose()


def test_every_page_shows_the_same_on_a_read_only_archive(sqlite_archive, tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    copy = tmp_path / "read-only.db"
    shutil.copy(sqlite_archive, copy)
    app = str(EXPLORER / "app.py")

    def shown(url: str, page: str) -> list:
        st.cache_data.clear()
        st.cache_resource.clear()
        monkeypatch.setenv("SANCTUM_DB", url)
        at = AppTest.from_file(app, default_timeout=60).run()
        at.switch_page(page).run()
        assert not at.exception, at.exception
        tables = [frame.value for frame in at.dataframe]
        charts = [chart.proto.spec for chart in at.get("vega_lite_chart")]
        return [tables, charts, [m.value for m in at.metric]]

    for page in ("views/runs.py", "views/run_detail.py", "views/lifecycle.py", "views/cohorts.py"):
        rw, ro = shown(f"sqlite:///{copy}", page), shown(f"sqlite:///{copy}?mode=ro", page)
        assert len(rw[0]) == len(ro[0]) and rw[1:] == ro[1:], page
        for a, b in zip(rw[0], ro[0], strict=True):
            pd.testing.assert_frame_equal(a, b, obj=page)
