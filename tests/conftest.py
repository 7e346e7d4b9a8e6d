"""Shared fixtures: a fresh archive per test, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

FIXTURES = Path(__file__).parent / "fixtures"
POSTGRES_URL = os.environ.get("SANCTUM_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"]


def fixture_snapshot_lines() -> list[str]:
    """The 19 real esper snapshots, one JSON document per line."""
    with gzip.open(FIXTURES / "run-default-4env.snapshots.jsonl.gz", "rt") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def fixture_snapshots() -> list[dict]:
    return [json.loads(line) for line in fixture_snapshot_lines()]


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A SQLite archive URL in a fresh temporary directory."""
    return f"sqlite:///{tmp_path / 'archive.db'}"


@contextlib.contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped on exit (skips the test
    when no server is configured)."""
    if not POSTGRES_URL:
        pytest.skip("SANCTUM_TEST_POSTGRES_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def select_only_role(url: str) -> Iterator[str]:
    """``url`` logged in as a fresh role that may only read the tables of the URL's schema
    (its search_path), as README tells operators to set up the console's role; the role is
    dropped on exit. Grant it after the tables exist: ``ON ALL TABLES`` means those present."""
    role = f"reader_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.exec_driver_sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
    try:
        yield sa.make_url(url).set(username=role).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"
                ),
                {"r": role},
            )
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()


@pytest.fixture
def postgres_url():
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    with postgres_schema_url() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request) -> str:
    """A fresh, empty archive location on each backend (PostgreSQL skipped when unset)."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(name)


@pytest.fixture
def plain_main(monkeypatch):
    """multiprocessing's fork server and spawned children re-run ``__main__``; AppTest (the
    explorer tests) leaves it pointing at explorer/app.py. Children get an empty one."""
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
