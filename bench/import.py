"""Import benchmark: how fast ``sanctum-store import`` reads snapshot dumps, and how compact
what it stores is.

    python bench/import.py [--repeat 10] [--snapshots 30] [--batches 12]

For each stream (esper's real 4-env run repeated as one long run, a 128-env demo run, a long
16-env A/B pair of demo runs whose event logs carry esper's unique ids, timestamps and
metadata), imports its JSONL dump into a fresh SQLite archive through the command's own path
(:func:`sanctum_store.ingest.import_file`) and prints snapshots/s and MB/s of JSON, and the
steady-state stored bytes per JSON byte (after the first tenth of the stream; target <= 0.20)
with the tables that hold them (SQLite's dbstat).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sanctum_store import Archive, codec, demo
from sanctum_store.ingest import import_file

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "run-default-4env.snapshots.jsonl.gz"
TARGET = 0.20


def fixture_repeated(times: int) -> list[dict]:
    """esper's 19 real snapshots, again and again, as one long run: each repeat later in time
    and in batches, so that every snapshot is new."""
    with gzip.open(FIXTURE, "rt") as f:
        base = [json.loads(line) for line in f if line.strip()]
    span = max(s["current_batch"] for s in base) + 1
    out = []
    for k in range(times):
        for snapshot in base:
            s = json.loads(json.dumps(snapshot))
            at = datetime.fromisoformat(s["captured_at"]) + timedelta(hours=k)
            s["captured_at"] = at.isoformat()
            s["current_batch"] += k * span
            out.append(s)
    return out


def demo_stream(n_envs: int, n: int) -> list[dict]:
    return [codec.to_json(codec.normalize(s)) for s in demo.snapshot_stream(n_envs, 3, n, seed=1)]


def ab_stream(n_envs: int, batches: int) -> list[dict]:
    """Two cohorts (A shaped, B simplified) of one experiment, a snapshot every epoch."""
    start = datetime(2026, 11, 20, tzinfo=UTC)
    out = []
    for i, (mode, group) in enumerate((("shaped", "A"), ("simplified", "B"))):
        run = demo.DemoRun(
            f"ab-{group}", mode, group, 42 + i, start, n_envs=n_envs, max_batches=batches
        )
        run = replace(run, outcome="finished")
        out += [codec.to_json(codec.normalize(s)) for _, s in demo.simulate(run, every_epochs=1)]
    return out


def db_bytes(path: Path) -> int:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path.stat().st_size


def table_bytes(path: Path) -> list[tuple[str, int]]:
    """Bytes per table, its indexes included (SQLite's dbstat)."""
    connection = sqlite3.connect(path)
    rows = connection.execute(
        "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
        "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    connection.close()
    return rows


def measure(workdir: Path, name: str, snapshots: list[dict]) -> dict:
    head = max(1, len(snapshots) // 10)
    parts = []
    for i, chunk in enumerate((snapshots[:head], snapshots[head:])):
        path = workdir / f"{name}-{i}.jsonl"
        path.write_text("".join(json.dumps(s) + "\n" for s in chunk))
        parts.append(path)
    archive_path = workdir / f"{name}.db"
    with Archive(f"sqlite:///{archive_path}") as archive:
        import_file(archive, parts[0])
        warm = db_bytes(archive_path)
        started = time.perf_counter()
        report = import_file(archive, parts[1])
        seconds = time.perf_counter() - started
    json_bytes = parts[1].stat().st_size
    stored = db_bytes(archive_path) - warm
    return {
        "name": name,
        "snapshots": report.stored,
        "mb": json_bytes / 1e6,
        "seconds": seconds,
        "per_s": report.stored / seconds,
        "mb_s": json_bytes / 1e6 / seconds,
        "ratio": stored / json_bytes,
        "tables": table_bytes(archive_path)[:6],
        "total": db_bytes(archive_path),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="repeats of the 4-env fixture")
    parser.add_argument("--snapshots", type=int, default=30, help="snapshots of the 128-env run")
    parser.add_argument("--batches", type=int, default=12, help="batches of each A/B run")
    args = parser.parse_args()
    streams = {
        f"fixture 4-env x{args.repeat}": lambda: fixture_repeated(args.repeat),
        "demo 128-env": lambda: demo_stream(128, args.snapshots),
        "demo 16-env A/B": lambda: ab_stream(16, args.batches),
    }
    print(
        f"{'stream':>20} {'snapshots':>9} {'JSON MB':>8} {'s':>6} {'snap/s':>7} {'MB/s':>6}"
        f" {'bytes ratio':>11} {'target':>7}   largest tables (share of the archive)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in streams.items():
            r = measure(Path(tmp), name.split()[1], make())
            shares = ", ".join(f"{t} {b / r['total']:.0%}" for t, b in r["tables"][:5])
            print(
                f"{name:>20} {r['snapshots']:>9} {r['mb']:>8.1f} {r['seconds']:>6.2f}"
                f" {r['per_s']:>7.1f} {r['mb_s']:>6.2f} {r['ratio']:>11.3f} {'<= ' + str(TARGET):>7}"
                f"   {shares}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
