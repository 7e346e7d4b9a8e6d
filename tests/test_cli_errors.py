"""Every user mistake on the command line gets one line naming the problem and a non-zero exit
status, never a traceback; read commands never create a file; imports say what they refused."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import fixture_snapshot_lines

from sanctum_store import Archive
from sanctum_store.cli import run
from sanctum_store.db import ENV_VAR

READ_COMMANDS = {
    "runs": ["runs"],
    "sql": ["sql", "SELECT count(*) FROM runs"],
    "export": ["export", "runs", "--out", "out.csv"],
    "db check": ["db", "check"],
}


@pytest.fixture(autouse=True)
def in_tmp(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)


def one_line_error(capsys, args: list[str], code: int | None = None) -> str:
    """Run the CLI; it must fail with one ``sanctum-store: error:`` line, last on stderr (an
    import's progress label and its per-line reports may come before it)."""
    status = run([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status != 0 and (code is None or status == code), (status, err)
    errors = [line for line in lines if line.startswith("sanctum-store: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    if args[0] != "import":
        assert lines == errors, err
    assert "Traceback" not in err
    return errors[0].removeprefix("sanctum-store: error: ")


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def places(tmp_path) -> dict[str, str]:
    """Locations that cannot be read as an archive, and what the error must say of each."""
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "notes.txt").write_text("not an archive\n")
    (tmp_path / "noise.bin").write_bytes(os.urandom(4096))
    foreign = sqlite3.connect(tmp_path / "other-program.db")
    foreign.execute("CREATE TABLE invoices (id INTEGER)")
    foreign.commit()
    foreign.close()
    newer = tmp_path / "newer.db"
    with Archive(str(newer)):
        pass
    connection = sqlite3.connect(newer)
    connection.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    connection.commit()
    connection.close()
    return {
        "missing.db": "no archive at {tmp}/missing.db (create one with sanctum-store demo or db upgrade)",
        "deeper/missing.db": "no archive at {tmp}/deeper/missing.db (create one with",
        "a-folder": "{tmp}/a-folder is a directory, not an archive",
        "notes.txt": "{tmp}/notes.txt is not an archive: it is not a SQLite database file",
        "noise.bin": "{tmp}/noise.bin is not an archive: it is not a SQLite database file",
        "other-program.db": "{tmp}/other-program.db is not a sanctum-store archive: it holds tables of its own (invoices)",
        "newer.db": "{tmp}/newer.db was written by a newer sanctum-store",
        "postgresql+psycopg://postgres@127.0.0.1:1/archive": "cannot open the archive at postgresql+psycopg://postgres@127.0.0.1:1/archive: connection failed",
        "postgress://postgres@127.0.0.1/archive": "sanctum-store archives are SQLite or PostgreSQL, not 'postgress'",
        "postgresql+psycopg2://postgres@127.0.0.1/archive": "the driver 'postgresql+psycopg2' is not installed",
        "mysql://root@127.0.0.1/archive": "sanctum-store archives are SQLite or PostgreSQL, not 'mysql'",
    }


@pytest.mark.parametrize("command", list(READ_COMMANDS))
def test_read_commands_name_what_is_wrong_and_create_nothing(capsys, tmp_path, places, command):
    before = files(tmp_path)
    for location, expected in places.items():
        if location.startswith("postgresql+psycopg2") and _has_module("psycopg2"):
            continue
        message = one_line_error(capsys, [*READ_COMMANDS[command], "--db", location])
        assert expected.format(tmp=tmp_path) in message, (location, message)
    assert files(tmp_path) == before  # not a file, not a folder, not a -wal or -shm


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_a_misspelled_server_is_named(capsys, postgres_url):
    wrong = postgres_url.replace("/test", "/no_such_database", 1).split("?")[0]
    message = one_line_error(capsys, ["runs", "--db", wrong])
    assert 'database "no_such_database" does not exist' in message


def test_postgresql_urls_without_a_driver_mean_psycopg(capsys, postgres_url):
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    assert run(["db", "upgrade", "--db", plain]) == 0
    assert run(["runs", "--db", plain]) == 0
    assert "no runs" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-1", "1e9", "soon"])
def test_sql_refuses_a_timeout_that_is_not_a_time_limit(capsys, value):
    with Archive("archive.db"):
        pass
    message = one_line_error(capsys, ["sql", "SELECT 1", "--db", "archive.db", "--timeout", value])
    assert "--timeout" in message


def test_db_upgrade_refuses_another_programs_database_unless_forced(capsys, tmp_path, places):
    foreign = tmp_path / "other-program.db"
    content = foreign.read_bytes()
    message = one_line_error(capsys, ["db", "upgrade", "--db", foreign])
    assert "holds tables of its own (invoices)" in message and "--force" in message
    assert foreign.read_bytes() == content  # untouched, not even its journal mode
    assert run(["db", "upgrade", "--db", str(foreign), "--force"]) == 0
    with Archive(str(foreign), create=False) as archive:
        assert archive.runs().empty
    assert sqlite3.connect(foreign).execute("SELECT count(*) FROM invoices").fetchone() == (0,)
    for location in ("a-folder", "noise.bin", "newer.db"):
        one_line_error(capsys, ["db", "upgrade", "--db", location])


def test_the_installed_program_prints_one_line(tmp_path):
    """The console script, run as a user runs it."""
    script = Path(sys.executable).with_name("sanctum-store")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sanctum_store.cli"]
    result = subprocess.run(
        [*command, "runs", "--db", str(tmp_path / "nothing.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"sanctum-store: error: no archive at {tmp_path}/nothing.db (create one with "
        "sanctum-store demo or db upgrade)"
    ]
    assert not (tmp_path / "nothing.db").exists()


# --------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------


def lines(n: int = 3) -> list[str]:
    return fixture_snapshot_lines()[:n]


def imported(db: str = "archive.db") -> int:
    with Archive(db, create=False) as archive:
        return int(archive.runs()["snapshot_count"].sum())


def test_import_takes_a_byte_order_mark_and_crlf_line_ends(capsys, tmp_path):
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines()).encode() + b"\r\n")
    assert run(["import", "bom.jsonl", "--db", "archive.db"]) == 0
    assert "3 snapshots stored, 0 already present, 0 refused" in capsys.readouterr().out
    assert imported() == 3


def test_a_carriage_return_inside_a_line_does_not_break_it(capsys, tmp_path):
    first, second, third = lines()
    (tmp_path / "cr.jsonl").write_text(f"{first}\n{second}\r{third}\n", newline="")
    message = one_line_error(capsys, ["import", "cr.jsonl", "--db", "archive.db"], code=1)
    assert message.startswith("1 of 2 snapshots in cr.jsonl were refused")
    assert imported() == 1  # line 1; line 2 (two snapshots joined by \r) is one bad line


def test_import_reports_where_each_refused_snapshot_was_and_fails(capsys, tmp_path):
    good, *_ = lines(1)
    duplicated = good.replace('"current_batch":', '"current_batch": 7, "current_batch":', 1)
    (tmp_path / "mixed.jsonl").write_text(f"{good}\n{duplicated}\nnot json\n")
    status = run(["import", "mixed.jsonl", "--db", "archive.db"])
    captured = capsys.readouterr()
    assert status == 1
    assert "line 2: skipped: an object repeats the key 'current_batch'" in captured.err
    assert "line 3: skipped: invalid JSON: Expecting value (column 1)" in captured.err
    assert "1 snapshots stored, 0 already present, 2 refused" in captured.out
    assert captured.err.strip().splitlines()[-1] == (
        "sanctum-store: error: 2 of 3 snapshots in mixed.jsonl were refused"
    )


@pytest.mark.parametrize("form", ["array", "document"])
def test_a_json_array_or_one_pretty_printed_document_is_imported(capsys, tmp_path, form):
    snapshots = [json.loads(line) for line in lines()]
    value = snapshots if form == "array" else snapshots[0]
    (tmp_path / "dump.json").write_text(json.dumps(value, indent=2))
    assert run(["import", "dump.json", "--db", "archive.db"]) == 0
    assert imported() == (3 if form == "array" else 1)
    assert run(["import", "dump.json", "--db", "archive.db"]) == 0  # again: nothing new
    assert "0 snapshots stored" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("\n\n  \n", "holds no snapshots"),
        (
            '{"run_id": "r",\n "envs": {\n',
            "is neither one JSON snapshot per line nor one JSON document",
        ),
        ('{\n "run_id": "a",\n "run_id": "b"\n}\n', "an object repeats the key 'run_id'"),
    ],
)
def test_a_file_with_no_snapshot_is_an_error(capsys, tmp_path, content, expected):
    (tmp_path / "dump.jsonl").write_text(content)
    assert expected in one_line_error(capsys, ["import", "dump.jsonl", "--db", "archive.db"])


@pytest.mark.parametrize(
    ("name", "expected"), [("missing.jsonl", "does not exist"), ("folder", "is a directory")]
)
def test_import_of_something_that_is_not_a_file(capsys, tmp_path, name, expected):
    (tmp_path / "folder").mkdir()
    assert expected in one_line_error(capsys, ["import", name, "--db", "archive.db"], code=2)
