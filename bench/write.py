"""Write benchmark: how fast and how compact the archive stores live snapshots.

    python bench/write.py [--snapshots 30] [--envs 128]

Prints each figure beside its target:

* persisting a realistic snapshot in steady state (later snapshots of a run) with the
  archive's own code (validation included, as the writer does it: ``WriteItem.of``), versus
  raw ``sqlite3.executemany`` inserting the identical row set into the same tables with the
  same PRAGMAs, in the same process run: target <= 2.0x at 128 envs, <= 3.0x at 4 envs;
* ``SnapshotWriter.write()`` latency on the caller's thread: target median <= 0.1 ms;
* ``write()`` with ``copy=True`` at 128 and 10,000 envs: target a few ms (<= 5 ms) on the
  caller's thread, beside the copy the writer takes off it and the deep copy the caller's
  thread used to pay;
* stored bytes per snapshot divided by the snapshot's JSON size: target <= 0.25;
* peak memory of the process.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from sanctum_store import SnapshotWriter, codec, demo
from sanctum_store.archive import Archive, WriteItem


def json_size(tree: dict) -> int:
    return len(json.dumps(codec.to_json(tree)).encode())


def db_bytes(path: Path) -> int:
    """The database's size with its WAL folded in."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path.stat().st_size


class WriteRecorder:
    """Captures every write (INSERT, and the few UPDATE/DELETE that complete decisions) the
    archive sends to the driver, to replay the identical row set raw."""

    def __init__(self, engine: sa.Engine):
        self.statements: list[tuple[str, object, bool]] = []
        sa.event.listen(engine, "before_cursor_execute", self.capture)

    def capture(self, conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            self.statements.append((statement.split(" RETURNING ")[0], parameters, executemany))

    def take(self) -> list[tuple[str, object, bool]]:
        taken, self.statements = self.statements, []
        return taken


def rows_of(statement: str, parameters, many: bool) -> int:
    """Rows one captured statement writes: one per parameter set, or per VALUES tuple."""
    if many:
        return len(parameters)
    return statement.count("), (") + 1 if " VALUES (" in statement else 1


def raw_replay(path: Path, batches: list[list[tuple[str, object, bool]]]) -> list[float]:
    """Time raw sqlite3 inserts of the captured row sets, one transaction per snapshot."""
    Archive(f"sqlite:///{path}").close()  # same schema
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "busy_timeout = 30000",
        "foreign_keys = ON",
        "journal_mode = WAL",
        "synchronous = NORMAL",
    ):
        connection.execute(f"PRAGMA {pragma}")
    times = []
    for statements in batches:
        start = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        for statement, parameters, many in statements:
            if many:
                connection.executemany(statement, parameters)
            else:
                connection.execute(statement, parameters)
        connection.execute("COMMIT")
        times.append(time.perf_counter() - start)
    connection.close()
    return times


def persist_ratio(workdir: Path, n_envs: int, n: int) -> dict:
    snapshots = list(demo.snapshot_stream(n_envs, 3, n, seed=1))
    path = workdir / f"archive-{n_envs}.db"
    archive = Archive(f"sqlite:///{path}")
    recorder = WriteRecorder(archive.engine)
    ours, batches, sizes = [], [], []
    start_bytes = None
    for i, snapshot in enumerate(snapshots):
        start = time.perf_counter()
        item = WriteItem.of(snapshot, "bench")  # validation, as the writer does it
        archive.save_batch([item])
        tree = item.tree
        ours.append(time.perf_counter() - start)
        batches.append(recorder.take())
        sizes.append(json_size(tree))
        if i == 0:
            start_bytes = db_bytes(path)
    stored = (db_bytes(path) - start_bytes) / (n - 1)
    archive.close()
    raw = raw_replay(workdir / f"raw-{n_envs}.db", batches)
    ours_ms = statistics.median(ours[1:]) * 1e3
    raw_ms = statistics.median(raw[1:]) * 1e3
    rows = sum(rows_of(*statement) for statement in batches[-1])
    return {
        "envs": n_envs,
        "ours_ms": ours_ms,
        "raw_ms": raw_ms,
        "ratio": ours_ms / raw_ms,
        "rows": rows,
        "json_kib": statistics.mean(sizes[1:]) / 1024,
        "stored_kib": stored / 1024,
        "bytes_ratio": stored / statistics.mean(sizes[1:]),
    }


def write_latency(workdir: Path, n: int) -> tuple[float, float]:
    snapshots = list(demo.snapshot_stream(4, 3, 60, seed=2))
    writer = SnapshotWriter(
        f"sqlite:///{workdir / 'latency.db'}", run_id="latency", queue_size=n + 1
    )
    latencies = []
    for i in range(n):
        snapshot = snapshots[i % len(snapshots)]
        start = time.perf_counter()
        writer.write(snapshot)
        latencies.append(time.perf_counter() - start)
        time.sleep(0.0005)  # a training step between snapshots
    writer.close(timeout=120)
    latencies.sort()
    return latencies[len(latencies) // 2] * 1e3, latencies[int(len(latencies) * 0.99)] * 1e3


def copy_latency(workdir: Path, n_envs: int, n: int) -> dict:
    """``write(copy=True)`` of one snapshot object the caller keeps mutating: the time on the
    caller's thread, the writer's copy (until ``copied()``), and a deep copy for comparison."""
    snapshot = demo.large_snapshot(n_envs)
    start = time.perf_counter()
    copy.deepcopy(snapshot)
    deep_ms = (time.perf_counter() - start) * 1e3
    writer = SnapshotWriter(
        f"sqlite:///{workdir / f'copy-{n_envs}.db'}", run_id="copy", copy=True, queue_size=n + 1
    )
    calls, copies = [], []
    for i in range(n):
        snapshot.captured_at = f"2026-12-03T10:00:{i:02d}+00:00"
        start = time.perf_counter()
        writer.write(snapshot)
        handed = time.perf_counter()
        writer.copied()
        calls.append(handed - start)
        copies.append(time.perf_counter() - handed)
        snapshot.current_epoch += 1  # the training loop moves on, once the copy is taken
    writer.close(timeout=0.5, finish=False)  # the bench times copies, not the storing
    return {
        "median_ms": statistics.median(calls) * 1e3,
        "max_ms": max(calls) * 1e3,
        "copy_ms": statistics.median(copies) * 1e3,
        "deep_ms": deep_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=30, help="snapshots per run (>= 3)")
    parser.add_argument("--envs", type=int, default=128, help="envs of the large snapshot")
    parser.add_argument("--writes", type=int, default=3000, help="write() calls timed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print(
            f"{'snapshot':>14} {'ours ms':>9} {'raw ms':>8} {'ratio':>6} {'target':>7}"
            f" {'rows':>6} {'JSON KiB':>9} {'stored KiB':>11} {'bytes ratio':>12} {'target':>7}"
        )
        for n_envs in (args.envs, 4):
            r = persist_ratio(workdir, n_envs, args.snapshots)
            print(
                f"{n_envs:>7} envs   {r['ours_ms']:>9.2f} {r['raw_ms']:>8.2f} {r['ratio']:>5.2f}x"
                f" {'<= 2.0x' if n_envs >= 128 else '<= 3.0x':>7} {r['rows']:>6} {r['json_kib']:>9.1f} {r['stored_kib']:>11.2f}"
                f" {r['bytes_ratio']:>12.3f} {'<= 0.25':>7}"
            )
        median, p99 = write_latency(workdir, args.writes)
        print(
            f"write() latency on the caller's thread: median {median:.4f} ms (target <= 0.1 ms),"
            f" p99 {p99:.4f} ms"
        )
        for n_envs, n in ((128, 20), (10_000, 3)):
            r = copy_latency(workdir, n_envs, n)
            print(
                f"write(copy=True) at {n_envs} envs on the caller's thread: median"
                f" {r['median_ms']:.3f} ms, max {r['max_ms']:.3f} ms (target: a few ms, <= 5 ms);"
                f" the writer's copy, off that thread: {r['copy_ms']:.0f} ms;"
                f" a deep copy on it (before): {r['deep_ms']:.0f} ms"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of the process (max RSS): {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
