"""Importing snapshot dumps from the command line."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import fixture_snapshot_lines
from helpers import REFUSED, assert_same, refuse_a_value

from sanctum_store import Archive, SnapshotInvalid, codec, queries
from sanctum_store.archive import WriteItem
from sanctum_store.cli import main
from sanctum_store.errors import ImportRefused
from sanctum_store.forms import to_utc, utcnow
from sanctum_store.ingest import import_file
from sanctum_store.models import TABLES
from sanctum_store.status import RunStatus, label, status_expression


@pytest.fixture
def dump(tmp_path):
    path = tmp_path / "run.snapshots.jsonl"
    path.write_text("\n".join(fixture_snapshot_lines()) + "\n")
    return path


@pytest.fixture
def broken(tmp_path):
    lines = fixture_snapshot_lines()
    bad_type = json.loads(lines[4])
    bad_type["envs"]["2"]["host_loss"] = [1, 2]
    rows = [*lines[:3], '{"envs": {', json.dumps(bad_type), *lines[5:], "", "not json at all"]
    path = tmp_path / "broken.jsonl"
    path.write_bytes("\n".join(rows).encode() + b"\n\xff\xfe broken bytes\n")
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_import_the_real_fixture_exactly_and_idempotently(dump, db_url):
    result = run("import", dump, "--db", db_url)
    assert result.exit_code == 0, result.output
    assert "19 snapshots stored, 0 already present, 0 refused" in result.output
    again = run("import", dump, "--db", db_url)
    assert "0 snapshots stored, 19 already present" in again.output
    with Archive(db_url) as archive:
        ids = archive.snapshot_ids("run-default-42")
        assert len(ids) == 19
        for line, snapshot_id in zip(fixture_snapshot_lines(), ids, strict=True):
            expected = dataclasses.asdict(codec.to_schema(codec.normalize(json.loads(line))))
            assert_same(
                dataclasses.asdict(archive.load("run-default-42", at=snapshot_id)), expected
            )


def test_broken_lines_are_reported_with_their_number_and_skipped(broken, sqlite_url):
    result = run("import", broken, "--db", sqlite_url, "--run-id", "imported")
    assert result.exit_code == 1, result.output  # the good lines are stored, and it says so
    assert "line 4: skipped: invalid JSON" in result.output
    assert "line 5: skipped: envs['2'].host_loss: expected float, got a list" in result.output
    assert "line 21: skipped: invalid JSON" in result.output
    assert "line 22: skipped: not UTF-8 text (byte 1)" in result.output  # not a crash
    assert "17 snapshots stored" in result.output
    assert "4 of 21 snapshots in" in result.output and "were refused" in result.output
    with Archive(sqlite_url) as archive:
        assert len(archive.snapshot_ids("imported")) == 17


def test_strict_import_is_all_or_nothing(broken, dump, sqlite_url):
    result = run("import", broken, "--db", sqlite_url, "--strict")
    assert result.exit_code != 0
    assert "nothing imported (--strict)" in result.output
    assert "line 4" in result.output
    with Archive(sqlite_url) as archive:
        assert archive.runs().empty
    good = run("import", dump, "--db", sqlite_url, "--strict")
    assert good.exit_code == 0 and "19 snapshots stored" in good.output


# ------------------------------------------------------------------------------------------------
# Imported runs are what they were (issue 13, point 7)
# ------------------------------------------------------------------------------------------------

RUN = "run-default-42"


def _captured(lines):
    return [to_utc(datetime.fromisoformat(json.loads(line)["captured_at"])) for line in lines]


def _write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_row(url, now=None):
    with Archive(url) as archive:
        runs = archive.runs(now=now)
        row = runs[runs["run_id"] == RUN].iloc[0].to_dict()
        listed = queries.list_runs(archive.engine)
        row["duration_s"] = listed[listed["run_id"] == RUN].iloc[0]["duration_s"]
    return row


def test_a_complete_dump_imports_as_a_finished_run_with_its_own_times(dump, db_url):
    lines = fixture_snapshot_lines()
    assert json.loads(lines[-1])["current_batch"] == json.loads(lines[-1])["max_batches"] == 6
    result = run("import", dump, "--db", db_url)
    assert result.exit_code == 0, result.output
    assert f"run {RUN}: finished" in result.output
    times = _captured(lines)
    row = _run_row(db_url, now=utcnow() + timedelta(hours=1))  # an ended run never ages
    assert row["status"] == RunStatus.FINISHED
    assert row["first_seen"] == min(times) and row["last_seen"] == max(times)
    assert row["heartbeat_at"] == row["finished_at"] == max(times)
    assert row["duration_s"] == pytest.approx((max(times) - min(times)).total_seconds(), abs=1e-3)
    with Archive(db_url) as archive:
        # The Cohorts page's default population ("finished runs only") holds it.
        assert RUN in queries.run_outcomes(archive.engine, status="finished")["run_id"].tolist()
        with archive.engine.connect() as conn:
            status, duration = conn.execute(
                sa.text("SELECT status, duration_s FROM v_runs WHERE run_id = :r"), {"r": RUN}
            ).one()
    assert status == "finished"
    assert duration == pytest.approx((max(times) - min(times)).total_seconds(), abs=1e-3)


def test_a_truncated_dump_is_incomplete_and_stays_so(tmp_path, db_url):
    lines = fixture_snapshot_lines()[:10]  # ends in batch 3 of 6
    result = run("import", _write(tmp_path, "part.jsonl", lines), "--db", db_url)
    assert result.exit_code == 0, result.output
    assert f"run {RUN}: incomplete" in result.output
    times = _captured(lines)
    for later in (timedelta(0), timedelta(minutes=5), timedelta(hours=1), timedelta(days=30)):
        row = _run_row(db_url, now=utcnow() + later)
        assert row["status"] == RunStatus.INCOMPLETE, later
    assert (row["first_seen"], row["last_seen"]) == (min(times), max(times))
    runs = TABLES["runs"]
    with Archive(db_url) as archive, archive.engine.connect() as conn:
        later = utcnow() + timedelta(hours=1)
        query = sa.select(status_expression(runs, now=later)).where(runs.c.run_id == RUN)
        assert conn.execute(query).scalar_one() == "incomplete"
        assert queries.run_outcomes(archive.engine, status="finished").empty
        listed = queries.list_runs(archive.engine, status="incomplete")
        assert listed["run_id"].tolist() == [RUN]
    assert label("incomplete") == "◐ incomplete (import ended early)"


def test_importing_the_rest_later_recomputes_status_and_times(tmp_path, dump, db_url):
    lines = fixture_snapshot_lines()
    assert (
        "incomplete"
        in run("import", _write(tmp_path, "b.jsonl", lines[8:12]), "--db", db_url).output
    )
    assert _run_row(db_url)["status"] == RunStatus.INCOMPLETE
    result = run("import", dump, "--db", db_url)
    assert "15 snapshots stored, 4 already present" in result.output
    times = _captured(lines)
    row = _run_row(db_url)
    assert row["status"] == RunStatus.FINISHED
    assert (row["first_seen"], row["last_seen"]) == (min(times), max(times))
    assert row["snapshot_count"] == 19


@pytest.mark.parametrize("override", ["finished", "incomplete", "failed"])
def test_import_status_overrides_what_the_snapshots_say(tmp_path, override, sqlite_url):
    lines = fixture_snapshot_lines()[:5]
    result = run(
        "import", _write(tmp_path, "part.jsonl", lines), "--db", sqlite_url, "--status", override
    )
    assert result.exit_code == 0, result.output
    row = _run_row(sqlite_url, now=utcnow() + timedelta(hours=2))
    assert row["status"] == override
    assert row["last_seen"] == max(_captured(lines))
    refused = run(
        "import", _write(tmp_path, "p.jsonl", lines), "--db", sqlite_url, "--status", "stale"
    )
    assert refused.exit_code == 2


def test_import_derives_the_seeds_of_every_batch_as_finish_run_does(dump, tmp_path, sqlite_url):
    recorded = f"sqlite:///{tmp_path / 'recorded.db'}"
    with Archive(recorded) as archive:
        archive.save_batch([WriteItem.of(json.loads(line)) for line in fixture_snapshot_lines()])
        archive.finish_run(RUN)
    assert run("import", dump, "--db", sqlite_url).exit_code == 0

    def derived(url):
        with Archive(url) as archive, archive.engine.connect() as conn:
            batches = conn.execute(
                sa.text("SELECT batch, snapshots FROM seed_batches ORDER BY batch")
            )
            lives = conn.execute(sa.text("SELECT count(*) FROM seed_lives")).scalar_one()
            return batches.all(), lives

    assert derived(sqlite_url) == derived(recorded)
    assert derived(sqlite_url)[0][-1][0] == 6  # the last batch's seeds too


def test_a_run_a_live_writer_records_is_left_running(tmp_path, sqlite_url):
    lines = fixture_snapshot_lines()
    with Archive(sqlite_url) as archive:
        archive.save(json.loads(lines[0]))  # a writer, heard from just now
    result = run("import", _write(tmp_path, "rest.jsonl", lines[1:]), "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert f"run {RUN}: left running (a live writer is recording it)" in result.output
    assert _run_row(sqlite_url)["status"] == RunStatus.RUNNING
    # Once its writer has gone quiet, an import ends it.
    with Archive(sqlite_url) as archive:
        archive.heartbeat([RUN], at=utcnow() - timedelta(minutes=10))
    result = run("import", _write(tmp_path, "all.jsonl", lines), "--db", sqlite_url)
    assert f"run {RUN}: finished" in result.output
    assert _run_row(sqlite_url)["status"] == RunStatus.FINISHED


def test_an_unknown_import_status_is_refused_before_anything_is_stored(dump, sqlite_url):
    from sanctum_store.ingest import import_file

    with Archive(sqlite_url) as archive:
        with pytest.raises(ValueError, match="not 'running'"):
            import_file(archive, dump, status="running")
        assert archive.runs().empty


def test_a_snapshot_the_database_refuses_costs_only_its_own_line(tmp_path, db_url):
    # 60 snapshots: lines 7 and 55 (in the first and the second batch of 50) carry a value
    # the database refuses; every other line is stored, the two are reported by line number.
    base = json.loads(fixture_snapshot_lines()[-3])
    start = datetime.fromisoformat(base["captured_at"])
    lines = []
    for number in range(1, 61):
        snapshot = json.loads(json.dumps(base))
        snapshot["captured_at"] = (start + timedelta(seconds=number)).isoformat()
        if number in (7, 55):
            snapshot["envs"]["1"]["host_accuracy"] = REFUSED
        lines.append(json.dumps(snapshot))
    path = tmp_path / "edges.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with Archive(db_url) as archive:
        refuse_a_value(archive)
        report = import_file(archive, path)
        assert [where for where, _ in report.skipped] == ["line 7", "line 55"]
        assert (report.read, report.stored, report.already_present) == (60, 58, 0)
        if archive.engine.dialect.name == "postgresql":
            # Archive.save's SnapshotInvalid names the field the database refused.
            assert all("envs[1].host_accuracy" in why for _, why in report.skipped), report.skipped
        assert all("refused" in why for _, why in report.skipped), report.skipped
        assert len(archive.snapshot_ids(base["run_id"])) == 58
        # Strict: nothing stored, and the bad lines named.
        other = tmp_path / "other.jsonl"
        other.write_text("\n".join(line.replace(base["run_id"], "strict-run") for line in lines))
        with pytest.raises(ImportRefused, match=r"line 7: .*line 55: "):
            import_file(archive, other, strict=True)
        assert "strict-run" not in set(archive.runs()["run_id"])


def test_archive_save_turns_a_refused_value_into_snapshot_invalid(postgres_url):
    snapshot = json.loads(fixture_snapshot_lines()[-3])
    snapshot["envs"]["1"]["host_accuracy"] = REFUSED
    with Archive(postgres_url) as archive:
        refuse_a_value(archive)
        with pytest.raises(SnapshotInvalid, match=r"^envs\[1\]\.host_accuracy: the database"):
            archive.save(snapshot)
        assert archive.runs().empty
