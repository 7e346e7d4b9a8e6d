"""Processes for the reliability suite: writers and a reader on one archive, a training run
that gets killed, processes opening a fresh archive at once.

``writer`` and ``reader`` run as ``python tests/workers.py <role> <json arguments>`` in a
fresh interpreter, as training processes and the explorer would. Each prints ``ready`` once
its imports are done and then waits for the file ``go`` names, so that the test starts all of
them at the same moment, and reports on stdout as one JSON object per line. The other
functions are multiprocessing targets.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import random
import sys
import time
import traceback

from sanctum_store import Archive, SnapshotWriter
from sanctum_store.errors import RunNotFound


def say(**message) -> None:
    # One short write per line: a line is either whole or absent when the process is killed.
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def wait_for(path: str | None) -> None:
    say(event="ready")
    while path and not os.path.exists(path):
        time.sleep(0.002)


def writer(args: dict) -> None:
    """Write a run's snapshots (SanctumSnapshot objects, pickled by the test) through a
    SnapshotWriter, the way a training loop does."""
    with open(args["inputs"], "rb") as f:
        snapshots = pickle.load(f)
    wait_for(args.get("go"))
    started = time.monotonic()
    w = SnapshotWriter(args["url"], batch_size=args.get("batch_size", 4))
    accepted = []
    for snapshot in snapshots:
        accepted.append(w.write(snapshot))
    stats = w.close(timeout=120)
    say(
        event="done",
        accepted=accepted,
        stats=dataclasses.asdict(stats),
        seconds=time.monotonic() - started,
    )


def reader(args: dict) -> None:
    """Read continuously, as the explorer would, until the file ``stop`` names exists."""
    wait_for(args.get("go"))
    errors: list[str] = []
    reads = loads = 0
    totals: list[int] = []
    seen: dict[str, int] = {}
    archive = None
    rng = random.Random(0)
    while not os.path.exists(args["stop"]):
        try:
            if archive is None:
                archive = Archive(args["url"])  # opens (or creates) a fresh archive too
            runs = archive.runs()
            counts = dict(zip(runs["run_id"], runs["snapshot_count"], strict=True))
            for run_id, count in counts.items():
                if count < seen.get(run_id, 0):
                    errors.append(f"{run_id}: snapshot_count went back {seen[run_id]} -> {count}")
                seen[run_id] = int(count)
            totals.append(sum(int(c) for c in counts.values()))
            reads += 1
            if counts:
                run_id = rng.choice(sorted(counts))
                ids = archive.snapshot_ids(run_id)
                if ids:
                    latest = archive.load(run_id)
                    if latest.run_id != run_id:
                        errors.append(f"{run_id}: latest snapshot says run {latest.run_id}")
                    loads += 1
        except Exception:
            errors.append(traceback.format_exc(limit=3))
        time.sleep(0.02)  # an explorer user clicking fast, not a busy loop
    say(event="done", reads=reads, loads=loads, totals=totals, errors=errors)


def resume_until_killed(args: dict, conn) -> None:
    """multiprocessing target: a training run resumed after a crash. It continues from what
    the archive holds, flushes every few snapshots and tells ``conn`` what is queued and what
    is durable, and keeps going until it is killed."""
    try:
        with Archive(args["url"]) as archive:
            start = len(archive.snapshot_ids(args["run_id"]))
    except RunNotFound:
        start = 0
    conn.send(("resume", start))
    w = SnapshotWriter(
        args["url"],
        run_id=args["run_id"],
        batch_size=args["batch_size"],
        queue_size=args["queue_size"],
        block_timeout=600,  # a full queue holds the loop back rather than drop a snapshot
    )
    with open(args["inputs"]) as f:
        lines = f.readlines()[start:]
    for i, line in enumerate(lines, start=start):
        if w.write(json.loads(line)):
            conn.send(("queued", i + 1))
        if (i + 1) % args["flush_every"] == 0:
            w.flush()
            conn.send(("durable", i + 1))
    w.flush()
    conn.send(("durable", start + len(lines)))
    time.sleep(3600)  # a training loop that keeps going: only SIGKILL ends it


def open_fresh(urls: list[str], barrier, results) -> None:
    """multiprocessing target: open each fresh archive the moment every process is ready."""
    for url in urls:
        barrier.wait()
        try:
            with Archive(url) as archive:
                archive.runs()
            results.put("ok")
        except Exception as e:
            results.put(f"{type(e).__name__}: {e}")


ROLES = {"writer": writer, "reader": reader}

if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(sys.argv[2]))
