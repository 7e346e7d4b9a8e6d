"""The writer beside a training loop: never blocks it, never crashes it, loses nothing."""

from __future__ import annotations

import copy
import dataclasses
import json
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from conftest import fixture_snapshot_lines
from helpers import REFUSED, assert_same, refuse_a_value

from sanctum_store import Archive, SnapshotWriter, codec, db, record
from sanctum_store.db import create_engine, for_writing, is_sqlite
from sanctum_store.writer import is_transient


def real(i: int = -1) -> dict:
    return json.loads(fixture_snapshot_lines()[i])


def numbered(n: int, run_id: str = "w") -> list[dict]:
    """n distinct real-looking snapshots of one run."""
    base = real()
    out = []
    start = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    for i in range(n):
        snapshot = copy.deepcopy(base)
        snapshot["run_id"] = run_id
        snapshot["captured_at"] = (start + timedelta(seconds=5 * i)).isoformat()
        snapshot["current_epoch"] = i
        out.append(snapshot)
    return out


def expected(snapshot) -> dict:
    return dataclasses.asdict(codec.to_schema(codec.normalize(snapshot)))


class WriteLock:
    """Another connection holding the archive's write lock, as a busy second writer would."""

    def __init__(self, url: str):
        self.engine = create_engine(url)
        self.conn = for_writing(self.engine).connect()
        if is_sqlite(url):
            self.tx = self.conn.begin()  # BEGIN IMMEDIATE: the write lock
        else:
            self.tx = self.conn.begin()
            self.conn.execute(sa.text("LOCK TABLE snapshots IN ACCESS EXCLUSIVE MODE"))

    def release(self):
        self.tx.rollback()
        self.conn.close()
        self.engine.dispose()


def test_locked_database_never_blocks_the_training_thread_and_loses_nothing(db_url):
    Archive(db_url).close()  # create the schema first: the lock is on an existing archive
    snapshots = numbered(12)
    lock = WriteLock(db_url)
    writer = SnapshotWriter(db_url, batch_size=4)
    try:
        accepted = [writer.write(s) for s in snapshots]
        assert all(accepted)
        # Everything is still queued or in flight behind the lock: write() did not wait for it.
        assert writer.stats.written == 0
        assert not writer.flush(timeout=0.5)
    finally:
        lock.release()
    stats = writer.close(timeout=60)
    assert (stats.written, stats.dropped, stats.failed) == (12, 0, 0)
    with Archive(db_url) as archive:
        ids = archive.snapshot_ids("w")
        assert len(ids) == 12
        for snapshot, snapshot_id in zip(snapshots, ids, strict=True):
            assert_same(dataclasses.asdict(archive.load("w", at=snapshot_id)), expected(snapshot))
        assert archive.runs().loc[0, "status"] == "finished"


def test_full_queue_drops_the_oldest_and_counts_it(db_url):
    Archive(db_url).close()
    snapshots = numbered(10)
    lock = WriteLock(db_url)
    writer = SnapshotWriter(db_url, queue_size=3, on_full="drop_oldest", batch_size=1)
    try:
        writer.write(snapshots[0])
        assert writer.flush(timeout=0.3) is False  # the first is in flight, stuck on the lock
        results = [writer.write(s) for s in snapshots[1:]]
        assert all(results)  # drop_oldest never refuses the new one
        assert writer.stats.dropped == 6  # 9 more arrived, the queue holds 3
        assert writer.stats.queue_depth == 3
    finally:
        lock.release()
    stats = writer.close(timeout=60)
    assert (stats.written, stats.dropped) == (4, 6)
    with Archive(db_url) as archive:
        stored = [archive.load("w", at=i).current_epoch for i in archive.snapshot_ids("w")]
    assert stored == [0, 7, 8, 9]  # the one in flight and the three newest


def test_full_queue_blocks_up_to_the_timeout_then_drops(db_url):
    Archive(db_url).close()
    snapshots = numbered(6)
    lock = WriteLock(db_url)
    writer = SnapshotWriter(db_url, queue_size=2, on_full="block", block_timeout=0.05, batch_size=1)
    try:
        writer.write(snapshots[0])
        writer.flush(timeout=0.3)
        results = [writer.write(s) for s in snapshots[1:]]
        assert results == [True, True, False, False, False]
        assert writer.stats.dropped == 3
    finally:
        lock.release()
    assert writer.close(timeout=60).written == 3


def test_a_bad_snapshot_mid_stream_is_refused_and_the_rest_stored(db_url, caplog):
    snapshots = numbered(5)
    snapshots[2]["envs"]["1"]["host_accuracy"] = "abc"
    with SnapshotWriter(db_url, batch_size=8) as writer:
        for s in snapshots:
            writer.write(s)
        writer.flush(timeout=60)
        stats = writer.stats
    assert (stats.written, stats.failed) == (4, 1)
    assert "envs['1'].host_accuracy: expected float, got 'abc'" in stats.last_error
    assert "envs['1'].host_accuracy" in caplog.text
    assert stats.alive
    with Archive(db_url) as archive:
        epochs = [archive.load("w", at=i).current_epoch for i in archive.snapshot_ids("w")]
    assert epochs == [0, 1, 3, 4]


def test_the_writer_never_raises_into_the_training_loop(tmp_path):
    class Hostile:
        def __getattr__(self, name):
            raise RuntimeError("boom")

    writer = SnapshotWriter(f"sqlite:///{tmp_path / 'a.db'}")
    assert writer.write(Hostile()) is True
    assert writer.write(object()) is True
    writer.flush(timeout=30)
    stats = writer.close()
    assert stats.failed == 2
    assert writer.write(real()) is False  # closed: dropped and counted, not raised
    assert writer.stats.dropped == 1


def test_an_unreachable_database_is_retried_not_raised():
    # Nothing listens on port 1: every connection attempt is refused.
    writer = SnapshotWriter(
        "postgresql+psycopg://postgres@127.0.0.1:1/archive", retry_backoff=(0.01, 0.02)
    )
    assert writer.write(real()) is True
    assert not writer.flush(timeout=0.5)
    assert writer.stats.retried > 0
    stats = writer.close(timeout=0.2)
    assert stats.dropped == 1 and stats.written == 0


def test_a_location_that_can_never_hold_an_archive_is_refused_not_retried(tmp_path, caplog):
    # A directory where the database file should be: no retry can fix that.
    blocked = tmp_path / "not-a-file.db"
    blocked.mkdir()
    writer = SnapshotWriter(f"sqlite:///{blocked}", retry_backoff=(0.01, 0.02))
    assert writer.write(real()) is True
    assert writer.flush(timeout=30)
    stats = writer.close()
    assert stats.failed == 1 and stats.written == 0 and stats.retried == 0
    assert "is a directory, not an archive" in caplog.text


def test_the_archive_is_opened_at_start_not_at_the_first_snapshot(tmp_path):
    """The writer opens (and on a new file creates) its archive as soon as it starts, while
    the training loop makes its first snapshot: the first snapshot does not pay for it."""
    path = tmp_path / "opened.db"
    writer = SnapshotWriter(f"sqlite:///{path}", run_id="early")
    try:
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.exists()
        assert writer.stats.written == 0
    finally:
        writer.close(finish=False)
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    assert "snapshots" in {name for (name,) in tables}


def test_transient_errors_are_recognised():
    assert is_transient(sa.exc.OperationalError("x", {}, Exception("database is locked")))
    assert not is_transient(sa.exc.IntegrityError("x", {}, Exception("unique")))
    assert not is_transient(ValueError("bad"))


def test_resuming_a_run_continues_it(db_url):
    first, second = numbered(8)[:4], numbered(8)[4:]
    with SnapshotWriter(db_url) as writer:
        for s in first:
            writer.write(s)
    with Archive(db_url) as archive:
        assert archive.runs().loc[0, "status"] == "finished"
    writer = SnapshotWriter(db_url)
    for s in second:
        writer.write(s)
    writer.flush(timeout=60)
    with Archive(db_url) as archive:
        runs = archive.runs()
        assert runs.loc[0, "status"] == "running"  # resumed
        assert runs.loc[0, "snapshot_count"] == 8
        ids = archive.snapshot_ids("w")
        for snapshot, snapshot_id in zip(first + second, ids, strict=True):
            assert_same(dataclasses.asdict(archive.load("w", at=snapshot_id)), expected(snapshot))
    writer.close()


def test_run_status_from_heartbeat_age(db_url):
    now = datetime.now(UTC)
    ages = {
        "fresh": timedelta(seconds=5),
        "quiet": timedelta(minutes=10),
        "gone": timedelta(hours=3),
    }
    for name, age in ages.items():
        writer = SnapshotWriter(db_url, run_id=name, clock=lambda age=age: now - age)
        writer.write(real())
        writer.close(finish=False)
    with SnapshotWriter(db_url, run_id="done") as writer:
        writer.write(real())
    with Archive(db_url) as archive:
        status = archive.runs().set_index("run_id")["status"].to_dict()
    assert status == {"fresh": "running", "quiet": "stale", "gone": "crashed", "done": "finished"}


# --------------------------------------------------------------------------------------------
# No duplicated storage
# --------------------------------------------------------------------------------------------


def sliding_run(n: int) -> list[dict]:
    """n successive snapshots the way esper makes them: the event log, recent decisions and
    histories slide; decisions get their actual_reward in a later snapshot."""
    base = real()
    decisions = base["tamiyo"]["recent_decisions"]
    events = base["event_log"]
    out = []
    for i in range(n):
        snapshot = copy.deepcopy(base)
        snapshot["captured_at"] = (
            datetime(2026, 11, 26, tzinfo=UTC) + timedelta(seconds=i)
        ).isoformat()
        new_event = copy.deepcopy(events[-1])
        new_event["metadata"] = {"event_id": f"e{i}", "epoch": i}
        new_event["message"] = f"epoch {i} done"
        events = [*events, new_event][-100:]
        snapshot["event_log"] = events
        decision = copy.deepcopy(decisions[0])
        decision.update(decision_id=f"d{i}", actual_reward=None, td_advantage=None, epoch=i)
        decisions = [decision, *[copy.deepcopy(d) for d in decisions]][:8]
        for older in decisions[1:]:
            if older["actual_reward"] is None:
                older["actual_reward"] = 0.5
                older["td_advantage"] = 0.25
        snapshot["tamiyo"]["recent_decisions"] = decisions
        snapshot["mean_accuracy_history"] = ([*base["mean_accuracy_history"], *range(i)])[-50:]
        snapshot["tamiyo"]["entropy_history"] = [1.0 - 0.01 * k for k in range(i)][-10:]
        out.append(copy.deepcopy(snapshot))
    return out


def test_fifty_snapshots_store_each_decision_event_and_record_once(db_url):
    snapshots = sliding_run(50)
    with SnapshotWriter(db_url, run_id="slide", batch_size=7) as writer:
        for s in snapshots:
            writer.write(s)
    decision_ids = {d["decision_id"] for s in snapshots for d in s["tamiyo"]["recent_decisions"]}
    event_ids = {e["metadata"]["event_id"] for s in snapshots for e in s["event_log"]}
    record_ids = {b["record_id"] for s in snapshots for b in s["best_runs"]}
    with Archive(db_url) as archive:
        with archive.engine.connect() as conn:
            count = lambda table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()  # noqa: E731
            assert count("decisions") == len(decision_ids)
            assert count("events") == len(event_ids)
            assert count("best_runs") == len(record_ids)
            # 50-long history sliding one value per snapshot: each value stored once.
            points = conn.execute(
                sa.text(
                    "SELECT count(*) FROM series_points p JOIN series s ON s.id = p.series_id "
                    "WHERE s.name = 'mean_accuracy_history'"
                )
            ).scalar()
            assert points == 50 + 49  # the first window, then one new value per snapshot
            completed = conn.execute(
                sa.text("SELECT count(*) FROM decisions WHERE actual_reward IS NOT NULL")
            ).scalar()
            assert completed == len(decision_ids) - 1  # all but the newest got their outcome
        ids = archive.snapshot_ids("slide")
        for snapshot, snapshot_id in zip(snapshots, ids, strict=True):
            assert_same(
                dataclasses.asdict(archive.load("slide", at=snapshot_id)), expected(snapshot)
            )
            assert_same(
                archive.load_dict("slide", at=snapshot_id), codec.to_json(codec.normalize(snapshot))
            )


# --------------------------------------------------------------------------------------------
# Recording in one line
# --------------------------------------------------------------------------------------------


def test_record_polls_a_dict_of_groups_into_one_run_per_group(db_url):
    polls = {"n": 0}
    lock = threading.Lock()

    def get_all_snapshots():
        with lock:
            polls["n"] += 1
            n = polls["n"]
        groups = {}
        for group, mode in (("A", "shaped"), ("B", "sparse")):
            snapshot = real()
            snapshot["run_id"] = "exp7"
            snapshot["reward_mode"] = mode
            snapshot["captured_at"] = f"2026-11-26T03:00:{n:02d}+00:00"
            groups[group] = snapshot
        return groups

    recorder = record(get_all_snapshots, db_url, every=0.05)
    threading.Event().wait(0.4)
    stats = recorder.stop()
    assert stats.failed == 0 and stats.dropped == 0
    with Archive(db_url) as archive:
        runs = archive.runs().set_index("run_id")
        assert set(runs.index) == {"exp7-A", "exp7-B"}
        assert runs.loc["exp7-A", "group_id"] == "A"
        assert runs.loc["exp7-B", "reward_mode"] == "sparse"
        assert (runs["status"] == "finished").all()
        assert runs.loc["exp7-A", "snapshot_count"] == polls["n"] >= 3


def test_record_survives_a_failing_source(tmp_path):
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] % 2:
            raise RuntimeError("training hiccup")
        snapshot = real()
        snapshot["captured_at"] = f"t{calls['n']}"
        return snapshot

    recorder = record(
        flaky, f"sqlite:///{tmp_path / 'r.db'}", every=0.02, run_id=f"r-{uuid.uuid4().hex[:6]}"
    )
    threading.Event().wait(0.3)
    recorder.stop()
    assert recorder.errors >= 2
    assert recorder.stats.written >= 2


# --------------------------------------------------------------------------------------------
# Recovery: reconnecting, a file deleted or replaced, snapshots of the same moment, copies
# --------------------------------------------------------------------------------------------


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_writer_started_on_a_read_only_file_stores_everything_once_it_is_writable(
    sqlite_url, monkeypatch
):
    # The tests run as root, whom file modes do not stop: SQLite's own read-only open stands
    # in for a file without write permission. A connection opened read-only stays so.
    path = str(db.sqlite_path(sqlite_url))
    Archive(sqlite_url).close()
    read_only = {"on": True}
    connect = sqlite3.dbapi2.connect  # what SQLAlchemy's pysqlite dialect calls

    def connect_as_permitted(database, *args, **kwargs):
        if read_only["on"] and database == path:
            database, kwargs["uri"] = f"file:{path}?mode=ro", True
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3.dbapi2, "connect", connect_as_permitted)
    snapshots = numbered(12)
    writer = SnapshotWriter(sqlite_url, batch_size=4, retry_backoff=(0.01, 0.05))
    try:
        assert all(writer.write(s) for s in snapshots)
        wait_until(lambda: writer.stats.retried >= 5)
        assert writer.stats.written == 0
        read_only["on"] = False  # permissions restored
        assert writer.flush(timeout=30)
        stats = writer.stats
        assert (stats.written, stats.failed, stats.dropped) == (12, 0, 0)
        assert stats.reconnects >= 1
    finally:
        writer.close()
    with Archive(sqlite_url) as archive:
        assert len(archive.snapshot_ids("w")) == 12


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def test_a_deleted_archive_file_is_noticed_and_nothing_after_it_counted_written(sqlite_url, caplog):
    path = db.sqlite_path(sqlite_url)
    snapshots = numbered(7)
    writer = SnapshotWriter(sqlite_url, batch_size=2)
    assert all(writer.write(s) for s in snapshots[:3]) and writer.flush(timeout=30)
    assert writer.stats.written == 3
    _remove(path)
    assert all(writer.write(s) for s in snapshots[3:]) and writer.flush(timeout=30)
    stats = writer.close()
    assert (stats.written, stats.failed) == (3, 4)
    assert stats.archive_lost == f"archive file {path} was deleted while the writer was using it"
    assert "was deleted" in caplog.text
    assert not path.exists()  # no new, empty archive made in its place


def test_a_replaced_archive_file_is_noticed_and_left_alone(sqlite_url, tmp_path):
    path = db.sqlite_path(sqlite_url)
    snapshots = numbered(4)
    writer = SnapshotWriter(sqlite_url)
    assert writer.write(snapshots[0]) and writer.flush(timeout=30)
    other = tmp_path / "other.db"
    Archive(str(other)).close()
    _remove(path)
    other.replace(path)
    assert all(writer.write(s) for s in snapshots[1:]) and writer.flush(timeout=30)
    stats = writer.close()
    assert (stats.written, stats.failed) == (1, 3)
    assert stats.archive_lost == f"archive file {path} was replaced by another file"
    with Archive(sqlite_url) as archive:
        assert archive.runs().empty  # the file now there was not the writer's to write


def test_snapshots_of_one_moment_with_other_content_are_all_stored_and_counted(db_url, caplog):
    # Five different snapshots of one run with the same captured_at: five stored, four of
    # them counted (and logged) as sharing a stored one's moment; the same five again: nothing
    # new, five duplicates.
    moment = numbered(5)
    for snapshot in moment:
        snapshot["captured_at"] = moment[0]["captured_at"]
    writer = SnapshotWriter(db_url, batch_size=2)
    assert all(writer.write(s) for s in moment) and writer.flush(timeout=30)
    stats = writer.stats
    assert (stats.written, stats.same_moment, stats.duplicates, stats.failed) == (5, 4, 0, 0)
    assert "already had another snapshot captured at" in caplog.text
    assert all(writer.write(s) for s in moment) and writer.flush(timeout=30)
    stats = writer.close()
    assert (stats.written, stats.same_moment, stats.duplicates) == (5, 4, 5)
    with Archive(db_url) as archive:
        ids = archive.snapshot_ids("w")
        assert len(ids) == 5
        assert sorted(archive.load("w", at=i).current_epoch for i in ids) == [0, 1, 2, 3, 4]
        for snapshot in moment:  # Archive.save alike: the same content is the same snapshot
            assert archive.save(snapshot) in ids


def test_copy_takes_the_writers_own_copy_off_the_training_thread(db_url):
    snapshot = numbered(1)[0]
    original = copy.deepcopy(snapshot)
    writer = SnapshotWriter(db_url, copy=True)
    try:
        started = time.perf_counter()
        assert writer.write(snapshot)
        handed_over = time.perf_counter() - started
        assert writer.copied(timeout=30)
        snapshot["envs"]["0"]["host_accuracy"] = -1.0  # the training loop moves on
        snapshot["envs"]["0"]["seeds"].clear()
        snapshot["current_epoch"] = 999
        assert writer.flush(timeout=30)
        assert writer.stats.written == 1
    finally:
        writer.close()
    assert handed_over < 0.05  # no copy on the training thread (the copy itself takes longer)
    with Archive(db_url) as archive:
        assert_same(dataclasses.asdict(archive.load("w")), expected(original))


def test_a_value_the_database_refuses_costs_only_its_own_snapshot(db_url, caplog):
    snapshots = numbered(6)
    snapshots[2]["envs"]["1"]["host_accuracy"] = REFUSED
    with Archive(db_url) as archive:
        refuse_a_value(archive)
    writer = SnapshotWriter(db_url, batch_size=6)
    assert all(writer.write(s) for s in snapshots) and writer.flush(timeout=60)
    stats = writer.close()
    assert (stats.written, stats.failed, stats.retried) == (5, 1, 0)
    if "postgresql" in db_url:  # a data exception: SnapshotInvalid names the field
        assert "envs[1].host_accuracy: the database refused 1e+305" in stats.last_error
    assert "could not be stored" in caplog.text
