"""Importing snapshot dumps from the command line."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner
from conftest import fixture_snapshot_lines
from helpers import assert_same

from sanctum_store import Archive, codec
from sanctum_store.cli import main


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
