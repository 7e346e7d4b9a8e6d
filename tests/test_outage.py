"""PostgreSQL goes away mid-run and comes back: the writer buffers, retries, resumes.

The database is made unreachable the way a restart or a network cut looks to a client: its
connections are terminated and new ones refused (``ALLOW_CONNECTIONS false`` on a database of
the test's own, so other tests sharing the server are not disturbed).
"""

from __future__ import annotations

import logging
import time
import uuid

import pytest
import sqlalchemy as sa
from conftest import POSTGRES_URL
from helpers import assert_same

from sanctum_store import Archive, SnapshotWriter, codec, demo

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not POSTGRES_URL, reason="SANCTUM_TEST_POSTGRES_URL is not set"),
]

BACKOFF = (0.05, 0.4)


@pytest.fixture(scope="module")
def snapshots() -> list:
    return list(demo.snapshot_stream(4, 3, 60, seed=3))


class Database:
    """A database of the test's own that can be made unreachable and brought back."""

    def __init__(self):
        self.name = f"sanctum_outage_{uuid.uuid4().hex[:10]}"
        self.admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        self._sql(f'CREATE DATABASE "{self.name}"')
        self.url = (
            sa.make_url(POSTGRES_URL).set(database=self.name).render_as_string(hide_password=False)
        )

    def _sql(self, statement: str, **params) -> list:
        with self.admin.connect() as conn:
            result = conn.execute(sa.text(statement), params)
            return result.all() if result.returns_rows else []

    def cut(self) -> int:
        """Refuse new connections and drop the open ones; returns how many were dropped."""
        self._sql(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false')
        return len(self.terminate())

    def terminate(self, where: str = "TRUE") -> list:
        return self._sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = :name AND pid <> pg_backend_pid() AND {where}",
            name=self.name,
        )

    def restore(self) -> None:
        self._sql(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true')

    def drop(self) -> None:
        self.restore()
        self._sql(f'DROP DATABASE "{self.name}" WITH (FORCE)')
        self.admin.dispose()


@pytest.fixture
def database():
    db = Database()
    yield db
    db.drop()


def expected(snapshot) -> dict:
    return codec.to_json(codec.normalize(snapshot))


def wait_until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_an_outage_within_the_buffer_loses_nothing(database, snapshots, caplog):
    before, during, after = snapshots[:12], snapshots[12:36], snapshots[36:48]
    writer = SnapshotWriter(
        database.url, run_id="outage", queue_size=64, batch_size=4, retry_backoff=BACKOFF
    )
    for snapshot in before:
        assert writer.write(snapshot)
    assert writer.flush(timeout=60)
    assert database.cut() >= 1  # the writer's idle pooled connection is now dead

    cut_at = time.monotonic()
    deepest = 0
    for snapshot in during:
        assert writer.write(snapshot)  # the training loop never waits for the database
        deepest = max(deepest, writer.stats.queue_depth)
        time.sleep(0.05)
    time.sleep(max(0.0, 2.5 - (time.monotonic() - cut_at)))
    stalled = writer.stats
    assert stalled.written == len(before)  # nothing got through...
    assert stalled.retried > 0 and stalled.alive  # ...and the writer kept trying
    assert deepest < writer.queue_size  # all of it fitted in the buffer

    database.restore()
    restored_at = time.monotonic()
    assert writer.flush(timeout=60)
    recovery = time.monotonic() - restored_at
    for snapshot in after:
        writer.write(snapshot)
    stats = writer.close(timeout=60)

    total = len(before) + len(during) + len(after)
    assert (stats.written, stats.dropped, stats.failed) == (total, 0, 0)
    # Backoff, not a busy loop: about log2(max/min) doublings, then one try per max delay.
    assert stalled.retried <= 2.5 / BACKOFF[1] + 6
    assert "storage error, retrying" in caplog.text
    with Archive(database.url) as archive:
        ids = archive.snapshot_ids("outage")
        assert len(ids) == total
        for snapshot_id, snapshot in zip(ids, before + during + after, strict=True):
            assert_same(archive.load_dict("outage", at=snapshot_id), expected(snapshot))
        assert archive.runs().loc[0, "snapshot_count"] == total
    print(
        f"\noutage within the buffer: {total} written, {len(ids)} stored, 0 lost; "
        f"outage {2.5:.1f} s, {stalled.retried} retries, queue depth up to {deepest} of "
        f"{writer.queue_size}, recovered (queue drained) {recovery:.2f} s after the database "
        "came back"
    )


def test_an_outage_beyond_the_buffer_drops_the_oldest_and_counts_them(database, snapshots, caplog):
    caplog.set_level(logging.WARNING, logger="sanctum_store.writer")
    before, during, after = snapshots[:8], snapshots[8:48], snapshots[48:56]
    writer = SnapshotWriter(
        database.url,
        run_id="overflow",
        queue_size=8,
        on_full="drop_oldest",
        batch_size=4,
        retry_backoff=BACKOFF,
    )
    for snapshot in before:
        writer.write(snapshot)
    assert writer.flush(timeout=60)
    database.cut()
    accepted = [writer.write(snapshot) for snapshot in during]
    assert all(accepted)  # drop_oldest makes room for the newest, never refuses it
    assert wait_until(lambda: writer.stats.retried > 0)
    assert writer.stats.dropped > 0
    database.restore()
    assert writer.flush(timeout=60)
    for snapshot in after:
        writer.write(snapshot)
    stats = writer.close(timeout=60)

    written = before + during + after
    with Archive(database.url) as archive:
        ids = archive.snapshot_ids("overflow")
        stored = {archive.load("overflow", at=i).captured_at: i for i in ids}
        assert len(stored) == len(ids)
        assert stats.dropped == len(written) - len(ids) > 0
        assert (stats.written, stats.failed) == (len(ids), 0)
        # Kept: what came before, the batch in flight when it went, the newest queue_size
        # of the outage, and everything after.
        kept = [s.captured_at for s in before + during[-writer.queue_size :] + after]
        assert set(kept) <= set(stored)
        assert len(stored) - len(kept) <= writer.batch_size
        for snapshot in written:
            if snapshot.captured_at in stored:
                loaded = archive.load_dict("overflow", at=stored[snapshot.captured_at])
                assert_same(loaded, expected(snapshot))
    assert "queue full: dropped the oldest queued snapshot" in caplog.text
    print(
        f"\noutage beyond the buffer (queue_size {writer.queue_size}, drop_oldest): "
        f"{len(written)} written, {len(ids)} stored, {stats.dropped} dropped and counted, "
        f"{stats.retried} retries"
    )


def test_a_connection_killed_mid_transaction_is_retried(postgres_url, snapshots, caplog):
    """The writer's transaction is waiting on a lock when its backend is terminated."""
    application = f"sanctum-victim-{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}&application_name={application}"
    Archive(postgres_url).close()
    locker = sa.create_engine(postgres_url)
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    lock = locker.connect()
    transaction = lock.begin()
    lock.execute(sa.text("LOCK TABLE snapshots IN ACCESS EXCLUSIVE MODE"))
    writer = SnapshotWriter(url, run_id="victim", batch_size=4, retry_backoff=BACKOFF)
    try:
        for snapshot in snapshots[:4]:
            writer.write(snapshot)
        find = sa.text(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :app "
            "AND wait_event_type = 'Lock'"
        )

        def blocked() -> list:
            with admin.connect() as conn:
                return conn.execute(find, {"app": application}).scalars().all()

        assert wait_until(lambda: bool(blocked())), "the writer never reached the lock"
        with admin.connect() as conn:  # kill it mid-transaction
            for pid in blocked():
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert wait_until(lambda: writer.stats.retried > 0)
    finally:
        transaction.rollback()
        lock.close()
        locker.dispose()
        admin.dispose()
    assert writer.flush(timeout=60)
    stats = writer.close(timeout=60)
    assert (stats.written, stats.failed, stats.dropped) == (4, 0, 0)
    assert "terminating connection due to administrator command" in caplog.text
    with Archive(postgres_url) as archive:
        ids = archive.snapshot_ids("victim")
        assert len(ids) == 4
        for snapshot_id, snapshot in zip(ids, snapshots[:4], strict=True):
            assert_same(archive.load_dict("victim", at=snapshot_id), expected(snapshot))
