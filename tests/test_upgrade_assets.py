"""Archives frozen at every earlier schema revision upgrade to head with every row intact.

``tests/fixtures/archives/rev-XXXX.db`` is a small archive written at revision XXXX (by the
code of that revision's time, or by today's writer when the tables it writes did not change),
with ``rev-XXXX.snapshots.jsonl.gz`` holding the snapshots it stores in JSON form. Rebuild
one with ``python tests/test_upgrade_assets.py XXXX`` (only while XXXX can still be written
by the current code: assets are frozen on purpose).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import assert_same

from sanctum_store import Archive, codec, db, migrate, queries
from sanctum_store.cli import main

ARCHIVES = Path(__file__).parent / "fixtures" / "archives"
ASSETS = sorted(ARCHIVES.glob("rev-*.db"))

# Every asset holds the same runs (see build): their outcomes as the queries of revision 0002
# derived them from the snapshots (list_runs, sorted by run_id), which 0003 stores on runs.
OUTCOME_COLUMNS = [
    "run_id",
    "snapshot_count",
    "batches_done",
    "final_accuracy",
    "peak_accuracy",
    "mean_reward",
    "growth_ratio",
    "fossilized",
    "pruned",
]
NAN = float("nan")
OUTCOMES_AT_0002 = [
    ("demo", 4, 1, 70.67853413228933, 73.1619150661672, 2.971053771504224, 1.0, 0, 0),
    # One snapshot without a trained env: nothing measured.
    ("odd", 1, 0, NAN, NAN, NAN, NAN, 0, 0),
    # Two batch-end resets: no final snapshot, a peak from the envs' best accuracy.
    ("real", 2, 6, NAN, 75.79245274948444, NAN, NAN, 10, 7),
]  # fmt: skip


def revision_of(asset: Path) -> str:
    return asset.stem.removeprefix("rev-")


def inputs_of(asset: Path) -> list[dict]:
    with gzip.open(asset.with_name(f"{asset.stem}.snapshots.jsonl.gz"), "rt") as f:
        return [json.loads(line) for line in f]


def contents(path: Path) -> dict[str, tuple[int, str, list[str]]]:
    """Per table: row count, sha256 over its sorted rows, and its columns (names sorted)."""
    out = {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND name != 'alembic_version' ORDER BY name"
            )
        ]
        for table in tables:
            if DERIVED.get(table, ()) is None:
                continue
            columns = sorted(
                row[1]
                for row in conn.execute(f'PRAGMA table_info("{table}")')
                if row[1] not in DERIVED.get(table, ())
            )
            out[table] = (*_checksum(conn, table, columns), columns)
    return out


#: What ``db upgrade`` derives for the runs it finds (summary.derive_seeds): caches it may fill
#: (whole tables: None), left out of "every row unchanged".
DERIVED = {"runs": {"seeds_counted_at"}, "seed_lives": None, "seed_visits": None}
DERIVED["seed_batches"] = None


def _checksum(conn: sqlite3.Connection, table: str, columns: list[str]) -> tuple[int, str]:
    select = ", ".join(f'"{c}"' for c in columns)
    rows = sorted(repr(row) for row in conn.execute(f'SELECT {select} FROM "{table}"'))
    return len(rows), hashlib.sha256("\n".join(rows).encode("utf-8", "surrogatepass")).hexdigest()


def rows_survived(path: Path, before: dict) -> None:
    """Every table the old archive had still holds exactly its rows (in the old columns)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        for table, (count, digest, columns) in before.items():
            assert _checksum(conn, table, columns) == (count, digest), table


def test_every_earlier_revision_has_a_frozen_archive():
    earlier = migrate.known_revisions() - {migrate.head_revision()}
    assert {revision_of(a) for a in ASSETS} == earlier, (
        "add tests/fixtures/archives/rev-<revision>.db for the revision just superseded "
        "(python tests/test_upgrade_assets.py <revision>, before changing the writer)"
    )


@pytest.mark.parametrize("asset", ASSETS, ids=lambda p: p.stem)
def test_a_frozen_archive_upgrades_to_head_with_every_row(asset, tmp_path):
    archive_path = tmp_path / asset.name
    shutil.copy2(asset, archive_path)
    before = contents(archive_path)
    assert sum(count for count, _, _ in before.values()) > 0
    engine = db.create_engine(str(archive_path))
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == revision_of(asset)
    engine.dispose()

    result = CliRunner().invoke(main, ["db", "upgrade", "--db", str(archive_path)])
    assert result.exit_code == 0, result.output
    head = migrate.head_revision()
    assert f"upgraded {revision_of(asset)} -> {head}" in result.output

    # The backup is the archive as it was: the same rows in every table.
    (backup,) = tmp_path.glob(f"{asset.name}.bak-*")
    assert f"backed up to {backup}" in result.output
    assert contents(backup) == before
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (revision_of(asset),)
        ]

    # The upgraded archive: at head, every old row unchanged, every snapshot loads exactly.
    rows_survived(archive_path, before)
    with Archive(str(archive_path)) as archive:
        with archive.engine.connect() as conn:
            assert migrate.current_revision(conn) == head
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        inputs = inputs_of(asset)
        for snapshot in inputs:
            stored_as = snapshot.pop("__run__")
            # What the snapshot reads as under today's schema: fields it gained since the asset
            # was written take the values the snapshot carried, else their defaults.
            assert_same(
                archive.load_dict(stored_as, at=_moment(archive, stored_as, snapshot)),
                codec.to_json(codec.normalize(snapshot)),
            )
        assert archive.runs()["snapshot_count"].sum() == len(inputs)
        # 0004 filled tamiyo_states._previous_risk from what each snapshot carried (else 0.0).
        with archive.engine.connect() as conn:
            risks = conn.exec_driver_sql("SELECT _previous_risk FROM tamiyo_states").scalars()
            assert sorted(risks) == sorted(s["tamiyo"].get("_previous_risk", 0.0) for s in inputs)
        outcomes = queries.list_runs(archive, sort="run_id", descending=False)
        assert_same(
            [
                tuple(v.item() if hasattr(v, "item") else v for v in row)
                for row in outcomes[OUTCOME_COLUMNS].itertuples(index=False)
            ],
            OUTCOMES_AT_0002,
        )


def _moment(archive: Archive, run_id: str, snapshot: dict) -> int:
    """The id of the run's snapshot captured at ``snapshot['captured_at']``."""
    for snapshot_id in archive.snapshot_ids(run_id):
        if archive.load(run_id, at=snapshot_id).captured_at == snapshot["captured_at"]:
            return snapshot_id
    raise AssertionError(f"{run_id} lost the snapshot captured at {snapshot['captured_at']}")


# --------------------------------------------------------------------------------------------
# Building an asset (run by hand, once per revision)
# --------------------------------------------------------------------------------------------


def build(revision: str) -> Path:
    """Write a small archive at ``revision`` through the current writer."""
    from conftest import fixture_snapshots

    from sanctum_store import demo, schema
    from sanctum_store.persist import Persister

    target = ARCHIVES / f"rev-{revision}.db"
    ARCHIVES.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    engine = db.create_engine(str(target))
    migrate.upgrade(engine, revision)

    odd = schema.SanctumSnapshot(run_id="odd", captured_at="2026-11-26T05:00:00+00:00")
    odd.task_name = "ünïcødé ✓ 🧬"
    odd.aggregate_mean_accuracy = -0.0
    odd.experiment_tags = {"owner": "ada", "nan": float("nan"), "deep": [[{"x": None}]]}
    runs = {
        "real": fixture_snapshots()[-2:],
        "demo": list(demo.snapshot_stream(2, 2, 4, seed=5)),
        "odd": [odd],
    }
    inputs = []
    persister = Persister()
    with db.for_writing(engine).begin() as conn:
        for run_id, snapshots in runs.items():
            for snapshot in snapshots:
                tree = codec.normalize(snapshot)
                persister.save(conn, tree, run_id)
                persister.touch_run(conn, persister.runs[run_id], tree, 1)
                inputs.append({**codec.to_json(tree), "__run__": run_id})
    engine.dispose()
    raw = sqlite3.connect(target, isolation_level=None)  # one self-contained file
    raw.execute("PRAGMA journal_mode = DELETE")
    raw.execute("PRAGMA page_size = 1024")  # mostly small tables: keep the file small
    raw.execute("VACUUM")
    raw.close()
    with gzip.open(target.with_name(f"{target.stem}.snapshots.jsonl.gz"), "wt") as f:
        f.writelines(json.dumps(snapshot) + "\n" for snapshot in inputs)
    return target


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    print(build(sys.argv[1]))
