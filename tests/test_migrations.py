"""Migrations: they build exactly the models' schema, ship in the wheel, guard old archives."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from sanctum_store import Archive, ArchiveTooNew, db, migrate
from sanctum_store.cli import main
from sanctum_store.models import Base

ROOT = Path(__file__).resolve().parents[1]


def test_migrations_create_exactly_the_models_schema(db_url):
    engine = db.create_engine(db_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diffs == []


def test_revisions_never_import_the_live_package():
    for path in (ROOT / "migrations" / "versions").glob("*.py"):
        text = path.read_text()
        assert "sanctum_store" not in text, f"{path.name} imports the package"


def test_a_fresh_archive_is_created_at_head(db_url):
    with Archive(db_url) as archive, archive.engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()


def test_an_archive_from_a_newer_version_is_refused(db_url):
    Archive(db_url).close()
    engine = db.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    engine.dispose()
    with pytest.raises(ArchiveTooNew, match="upgrade sanctum-store"):
        Archive(db_url)


def test_db_check_and_upgrade_commands(tmp_path):
    path = tmp_path / "cli.db"
    runner = CliRunner()
    missing = runner.invoke(main, ["db", "check", "--db", str(path)])
    assert missing.exit_code != 0
    assert f"no archive at {path} (create one with sanctum-store demo or db upgrade)" in (
        missing.output
    )
    assert not path.exists()  # checking never creates
    created = runner.invoke(main, ["db", "upgrade", "--db", str(path)])
    assert created.exit_code == 0, created.output
    assert "upgraded an empty archive" in created.output
    checked = runner.invoke(main, ["db", "check", "--db", str(path)])
    assert checked.exit_code == 0
    assert migrate.head_revision() in checked.output


@pytest.mark.slow
def test_migrations_ship_inside_the_installed_wheel(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(wheels)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("sanctum_store-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "sanctum_store/migrations/env.py" in names
        assert any(n.startswith("sanctum_store/migrations/versions/0001") for n in names)
        site = tmp_path / "site"
        archive.extractall(site)
    # Run the CLI from the unpacked wheel alone: no source tree on the path.
    script = (
        "import sys; sys.path.insert(0, sys.argv.pop(1));"
        "import sanctum_store; assert sanctum_store.__file__.startswith(sys.path[0]), sanctum_store.__file__;"
        "from sanctum_store.cli import main; main()"
    )
    target = tmp_path / "from-wheel.db"
    for command in (["db", "upgrade"], ["db", "check"]):
        result = subprocess.run(
            [sys.executable, "-c", script, str(site), *command, "--db", str(target)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
    assert "ok: schema revision" in result.stdout
