"""Many training processes, one archive: every snapshot stored exactly once, readers unharmed.

The processes are real ones (fresh interpreters, as on a cluster) and all of them start on an
archive that does not exist yet, so creating and migrating it races too.
"""

from __future__ import annotations

import json
import multiprocessing
import pickle
import re
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from conftest import POSTGRES_URL
from helpers import assert_same

from sanctum_store import Archive, codec, demo, migrate
from sanctum_store.models import TABLES

pytestmark = pytest.mark.slow

WORKERS = Path(__file__).with_name("workers.py")


def spawn(role: str, **args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKERS), role, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def await_ready(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        line = process.stdout.readline()
        assert json.loads(line or "{}").get("event") == "ready", process.stderr.read()


def report(process: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return json.loads(out.splitlines()[-1])


def stream(seed: int, n: int, run_id: str, path: Path) -> list:
    """``n`` snapshots of a simulated 4-env, 3-slot run (captured_at distinct and rising),
    pickled to ``path`` for a writer process."""
    out = []
    for snapshot in demo.snapshot_stream(4, 3, n, seed):
        snapshot.run_id = run_id
        out.append(snapshot)
    with open(path, "wb") as f:
        pickle.dump(out, f)
    return out


@pytest.mark.parametrize(
    ("backend", "n_writers", "per_writer"), [("sqlite", 8, 12), ("postgresql", 16, 8)]
)
def test_many_writer_processes_and_a_reader_on_one_fresh_archive(
    request, tmp_path, backend, n_writers, per_writer
):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    if backend == "sqlite":
        (tmp_path / "archive.db").touch()  # an empty file: nothing created before they start
    go, stop = str(tmp_path / "go"), str(tmp_path / "stop")
    inputs = {
        f"proc-{i:02d}": stream(i, per_writer, f"proc-{i:02d}", tmp_path / f"{i}.pickle")
        for i in range(n_writers)
    }
    writers = [
        spawn("writer", url=url, inputs=str(tmp_path / f"{i}.pickle"), go=go, batch_size=2)
        for i in range(n_writers)
    ]
    reader = spawn("reader", url=url, go=go, stop=stop)
    try:
        await_ready([*writers, reader])
        Path(go).touch()  # every process opens the fresh archive at once
        results = [report(w) for w in writers]
    finally:
        Path(stop).touch()
        for process in [*writers, reader]:
            if process.poll() is None and process is not reader:
                process.kill()
    reading = report(reader, timeout=60)

    # No error reached any training loop.
    for result in results:
        assert all(result["accepted"]) and len(result["accepted"]) == per_writer
        stats = result["stats"]
        assert (stats["written"], stats["failed"], stats["dropped"]) == (per_writer, 0, 0), stats
    # The reader never failed, and it read while the writers wrote.
    assert reading["errors"] == []
    assert reading["reads"] >= 3 and reading["loads"] >= 1
    total = n_writers * per_writer
    assert any(0 < seen < total for seen in reading["totals"]), reading["totals"][:20]

    with Archive(url) as archive:
        listing = archive.runs().set_index("run_id")
        assert sorted(listing.index) == sorted(inputs)
        assert (listing["snapshot_count"] == per_writer).all()
        assert (listing["status"] == "finished").all()
        snapshots = TABLES["snapshots"]
        with archive.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
                (migrate.head_revision(),)
            ]
            stored = conn.execute(sa.select(sa.func.count()).select_from(snapshots)).scalar()
            assert stored == total  # each snapshot exactly once
            if backend == "sqlite":
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        runs_table = TABLES["runs"]
        for run_id, given in inputs.items():
            with archive.engine.connect() as conn:
                captured = (
                    conn.execute(
                        sa.select(snapshots.c.captured_at)
                        .join(runs_table, runs_table.c.id == snapshots.c.run_pk)
                        .where(runs_table.c.run_id == run_id)
                        .order_by(snapshots.c.captured_ts, snapshots.c.id)
                    )
                    .scalars()
                    .all()
                )
            assert captured == [s.captured_at for s in given]
            assert len(set(captured)) == per_writer
            ids = archive.snapshot_ids(run_id)
            for position in (0, -1):  # and what is stored is the snapshot itself
                expected = codec.to_json(codec.normalize(given[position]))
                assert_same(archive.load_dict(run_id, at=ids[position]), expected)
    print(
        f"\n{backend}: {n_writers} writer processes x {per_writer} snapshots = {total} written, "
        f"{stored} stored, retries {sum(r['stats']['retried'] for r in results)}; reader: "
        f"{reading['reads']} listings, {reading['loads']} snapshot loads, 0 errors"
    )


def fresh_postgres_schemas(n: int) -> tuple[list[str], list[str]]:
    names = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(n)]
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    admin.dispose()
    sep = "&" if "?" in POSTGRES_URL else "?"
    return names, [f"{POSTGRES_URL}{sep}options={quote(f'-csearch_path={n}')}" for n in names]


@pytest.mark.parametrize(("backend", "rounds"), [("sqlite", 12), ("postgresql", 4)])
def test_processes_opening_a_fresh_archive_at_the_same_moment(
    tmp_path, backend, rounds, plain_main
):
    """Creation races: the WAL switch of a new SQLite file, two migrations of one database."""
    n_processes = 8
    schemas: list[str] = []
    if backend == "sqlite":
        urls = [f"sqlite:///{tmp_path / f'fresh-{r}.db'}" for r in range(rounds)]
    else:
        if not POSTGRES_URL:
            pytest.skip("SANCTUM_TEST_POSTGRES_URL is not set")
        schemas, urls = fresh_postgres_schemas(rounds)
    # Forked from a server that has imported the package already: the race is in opening
    # the archive, not in starting Python, and a round costs a fraction of a second.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["sanctum_store", "pytest"])
    barrier = context.Barrier(n_processes)
    results = context.Queue()
    import workers

    processes = [
        context.Process(target=workers.open_fresh, args=(urls, barrier, results))
        for _ in range(n_processes)
    ]
    try:
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=120) for _ in range(n_processes * rounds)]
        for process in processes:
            process.join(timeout=30)
        failures = [o for o in outcomes if o != "ok"]
        assert not failures, f"{len(failures)} of {len(outcomes)} opens failed: {failures[:3]}"
        for url in urls:
            with Archive(url) as archive, archive.engine.connect() as conn:
                versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
                assert versions == [(migrate.head_revision(),)]
                if backend == "sqlite":
                    assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        if schemas:
            admin = sa.create_engine(POSTGRES_URL)
            with admin.begin() as conn:
                for name in schemas:
                    conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
            admin.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_concurrency_bench_smoke_run_prints_its_figures_beside_the_target(backend):
    """``bench/concurrency.py`` runs end to end on each backend: every snapshot its writers
    hand over is stored, its readers never fail, and it prints the figures with the target
    (the figures themselves are the bench's business, not a test's)."""
    command = [sys.executable, str(Path(__file__).parents[1] / "bench" / "concurrency.py")]
    command += ["--backend", backend, "--writers", "2", "--readers", "1"]
    command += ["--seconds", "3", "--warmup", "1", "--every", "1"]
    if backend == "postgres":
        if not POSTGRES_URL:
            pytest.skip("SANCTUM_TEST_POSTGRES_URL is not set")
        command += ["--url", POSTGRES_URL]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode in (0, 1), done.stderr  # 1: a figure missed its target
    stored = re.search(r"stored (\d+) snapshots \(dropped 0, failed 0, retries \d+\)", out)
    assert stored and int(stored.group(1)) >= 2 * 3, out + done.stderr
    assert re.search(r"readers: [1-9]\d* rounds, .*, 0 errors", out), out + done.stderr
    figures = r"throughput [\d.]+ snapshots/s .* p50 [\d.]+ s, p99 [\d.]+ s \(target <= 2 s\)"
    assert re.search(figures, out), out
