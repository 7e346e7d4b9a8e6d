"""A training process killed mid-write, again and again: what was committed survives.

A run is written by a process that is SIGKILLed at a random point of its stream (seeded), then
resumed by a new process that continues from what the archive holds, twenty times over. Kills
are placed by what the process reports (how many snapshots it has handed to its writer), never
by how long it has run, so a loaded machine moves them no further than an idle one. Afterwards the
archive is intact, every snapshot a process had seen flushed is there, the run holds a gap-free
prefix of its input stream (each snapshot exactly as given), and it reads as stale, then
crashed, as time passes without a heartbeat.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from helpers import assert_same

from sanctum_store import Archive, codec, demo

pytestmark = pytest.mark.slow

KILLS = {"sqlite": 20, "postgresql": 10}
# Flushing less often than queue + batch lets the writer hold as much as the bound allows.
QUEUE_SIZE, BATCH_SIZE, FLUSH_EVERY = 6, 2, 12
#: A process is killed after handing over 0 (still opening the archive) to this many snapshots:
#: beyond queue + batch, so some kills find the writer holding all the bound allows.
MOST_BEFORE_KILL = 16
RUN = "resumed-run"
#: Long enough that twenty kills at the latest point cannot reach its end.
STREAM = 20 * (MOST_BEFORE_KILL + QUEUE_SIZE + BATCH_SIZE) + 40


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> tuple[str, list[dict]]:
    """A deterministic stream of real-looking snapshots, and a file with one JSON document
    per line of it (the resumed processes' input)."""
    snapshots = [
        codec.to_json(codec.normalize(s)) for s in demo.snapshot_stream(4, 3, STREAM, seed=11)
    ]
    path = tmp_path_factory.mktemp("crash") / "inputs.jsonl"
    with open(path, "w") as f:
        f.writelines(json.dumps(snapshot) + "\n" for snapshot in snapshots)
    return str(path), snapshots


def forkserver():
    """Processes forked from a server that has already imported the package: each resumed
    process starts in milliseconds instead of seconds, yet shares nothing with this one."""
    context = multiprocessing.get_context("forkserver")
    # Installed modules only: Python 3.11's fork server does not see this process's sys.path.
    context.set_forkserver_preload(["sanctum_store", "sanctum_store.demo", "pytest"])
    return context


def drain(conn, into: dict, timeout: float = 0.0) -> bool:
    """Read what the process has reported into ``into`` (largest count per kind), waiting up
    to ``timeout`` for the first message; False when nothing came."""
    got = False
    while True:
        try:
            if not conn.poll(timeout if not got else 0):
                return got
            kind, count = conn.recv()
        except (EOFError, OSError):
            return got
        got = True
        into[kind] = max(into.get(kind, 0), count)


def wait_until_queued(conn, seen: dict, count: int, timeout: float = 120.0) -> None:
    """Block until the process reports ``count`` snapshots handed to its writer."""
    deadline = time.monotonic() + timeout
    while seen.get("queued", 0) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"the process reported {seen} in {timeout} s, waiting for {count} queued"
        drain(conn, seen, timeout=min(left, 1.0))


def test_killed_and_resumed_over_and_over_loses_nothing_committed(db_url, stream, plain_main):
    import workers

    path, inputs = stream
    context = forkserver()
    rng = random.Random(20261126)
    args = {
        "url": db_url,
        "run_id": RUN,
        "inputs": path,
        "queue_size": QUEUE_SIZE,
        "batch_size": BATCH_SIZE,
        "flush_every": FLUSH_EVERY,
    }
    history = []  # per kill: where the process resumed, what it had queued / seen durable
    kills = KILLS[db_url.split(":", 1)[0].split("+", 1)[0]]
    for _ in range(kills):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=workers.resume_until_killed, args=(args, sender))
        process.start()
        sender.close()
        assert receiver.poll(60), "the resumed process did not start"
        kind, start = receiver.recv()
        assert kind == "resume"
        # From before its first commit (opening the archive, warming up) to deep in writing.
        seen: dict[str, int] = {}
        handed_over = rng.randint(0, MOST_BEFORE_KILL)
        if handed_over:
            wait_until_queued(receiver, seen, start + handed_over)
        process.kill()  # SIGKILL: no atexit, no flush, no rollback but the database's own
        process.join(timeout=30)
        killed_at = datetime.now(UTC)
        assert process.exitcode == -9
        drain(receiver, seen)
        receiver.close()
        history.append({"start": start, **seen})

    with Archive(db_url) as archive:
        ids = archive.snapshot_ids(RUN)
        stored = len(ids)
        ends = [h["start"] for h in history[1:]] + [stored]
        for h, end in zip(history, ends, strict=True):
            # Everything the process had seen flushed was there when the next one resumed...
            assert end >= h.get("durable", 0), history
            # ...and what it lost was at most what the writer still held in memory.
            assert h.get("queued", h["start"]) - end <= QUEUE_SIZE + BATCH_SIZE, history
        assert stored >= max(h.get("durable", 0) for h in history) > 0

        # A gap-free prefix of the input stream, each snapshot exactly as given.
        assert stored < len(inputs), "the stream ran out before the last kill"
        for snapshot_id, given in zip(ids, inputs[:stored], strict=True):
            assert_same(archive.load_dict(RUN, at=snapshot_id), given)

        listing = archive.runs(now=killed_at).set_index("run_id")
        assert listing.loc[RUN, "snapshot_count"] == stored
        assert listing.loc[RUN, "status"] == "running"  # just killed: nobody knows yet
        later = archive.runs(now=killed_at + timedelta(minutes=5)).set_index("run_id")
        assert later.loc[RUN, "status"] == "stale"
        much_later = archive.runs(now=killed_at + timedelta(hours=1)).set_index("run_id")
        assert much_later.loc[RUN, "status"] == "crashed"

        if archive.engine.dialect.name == "sqlite":
            with archive.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        with archive.engine.connect() as conn:
            total = conn.execute(sa.text("SELECT count(*) FROM snapshots")).scalar()
            assert total == stored  # no stray snapshot under another run

    lost = [max(0, h.get("queued", h["start"]) - end) for h, end in zip(history, ends, strict=True)]
    print(
        f"\n{archive.engine.dialect.name}: {kills} kills, {stored} snapshots stored, "
        f"{max(h.get('durable', 0) for h in history)} seen durable, unflushed lost per kill "
        f"{lost} (bound {QUEUE_SIZE + BATCH_SIZE}), killed before storing anything "
        f"{sum(1 for h, e in zip(history, ends, strict=True) if e == h['start'])} times"
    )
