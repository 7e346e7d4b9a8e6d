"""sql: hostile queries stay within the time limit (+ 1 s) and the byte cap (+ 150 MB of
working room), from the API and the CLI, on SQLite and PostgreSQL.

Each probe runs in a fresh process (forked from a server that has loaded everything), which
reports the probe's wall time and how far its peak RSS (``ru_maxrss``) rose above where it
started. The roles and
refused functions of PostgreSQL are tested here too.
"""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
import sqlalchemy as sa
from conftest import select_only_role

from sanctum_store import Archive, db, sql
from sanctum_store.errors import LockTimeout, QueryRefused, QueryRoleRefused

MB = 2**20
CAP = sql.DEFAULT_MAX_BYTES
#: Working room above the byte cap: one row in flight, the DataFrame, CSV/Parquet buffers.
ROOM = 150 * MB


def _child(spec: dict, reply) -> None:
    """In a fresh process forked from a server that has loaded everything: run one probe and
    send back its wall time, RSS rise (bytes) and outcome."""
    import resource
    import time

    from sanctum_store import cli
    from sanctum_store.errors import SQLError

    sql.run_query(spec["url"], "SELECT 1", unsafe_writable_role=True)  # the driver, warmed up
    sql.dispose_readonly_engines()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    try:
        if spec["cli"]:
            cli.main(spec["cli"], standalone_mode=False)
            outcome = "written"
        else:
            result = sql.run_query(spec["url"], spec["query"], timeout_s=spec["timeout"])
            outcome = f"{len(result.frame)} rows, {result.truncated_by or 'complete'}"
    except SQLError as e:
        outcome = f"{type(e).__name__}: {e}"
    except Exception as e:  # click's own errors, with standalone_mode=False
        outcome = f"{type(e).__name__}: {e}"
    elapsed = time.monotonic() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reply.send({"elapsed": elapsed, "rise": (peak - base) * 1024, "outcome": outcome})


@pytest.fixture(scope="module")
def forkserver():
    """Children forked from one server that has imported pandas, pyarrow and the package
    (a fresh interpreter per probe would spend two seconds importing them)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["pandas", "pyarrow", "pyarrow.parquet", "sqlalchemy", "psycopg", "sanctum_store.cli"]
    )
    return context


@pytest.fixture
def probe(forkserver, plain_main):
    def run(url: str, query: str, *, timeout: float, fmt: str | None = None, out=None) -> dict:
        """Run one query in a fresh process: its wall time, RSS rise and outcome."""
        cli = None
        if fmt:
            cli = ["sql", query, "--db", url, "--timeout", str(timeout), "--format", fmt]
            cli += ["--out", str(out)]
        spec = {"url": url, "query": query, "timeout": timeout, "cli": cli}
        receive, reply = forkserver.Pipe(duplex=False)
        child = forkserver.Process(target=_child, args=(spec, reply))
        child.start()
        reply.close()
        try:
            assert receive.poll(60), "the probe sent no report within 60 s"
            report = receive.recv()
        finally:
            child.join(10)
            if child.is_alive():
                child.kill()
        rise = report["rise"] / MB
        print(f"{report['elapsed']:.2f} s, +{rise:.0f} MB: {report['outcome'][:120]}")
        return report

    return run


def assert_bounded(report: dict, timeout: float, *, row: int = 0) -> None:
    """Within the time limit + 1 s, and the byte cap + ROOM (+ 4 copies of ``row``, the
    largest single row: a PostgreSQL row arrives whole, through libpq's buffers)."""
    assert report["elapsed"] <= timeout + 1, report
    assert report["rise"] <= CAP + ROOM + 4 * row, report


def rows(n: int) -> str:
    return f"WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {n}) "


LONG = "WITH x(a) AS (SELECT printf('%.*c', 130000, 'a')) "
SQLITE_PROBES = {
    "instr-of-printf": "SELECT instr(printf('%.*c', 100000000, 'a'),"
    " printf('%.*c', 15000, 'a') || 'b')",
    "printf-2e9": "SELECT printf('%.*c', 2000000000, 'a')",
    "zeroblob-x40": rows(40) + "SELECT zeroblob(50000000) FROM c",
    "randomblob-2e9": "SELECT randomblob(2000000000)",
    "blobs-under-the-value-limit": rows(100_000) + "SELECT n, zeroblob(120000) FROM c",
    "randomblob-rows": rows(100_000) + "SELECT n, randomblob(100000) FROM c",
    "recursive-count": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c)"
    " SELECT count(*) FROM c",
    "instr-x500-in-one-row": LONG
    + "SELECT "
    + ", ".join(["instr(a, substr(a, 1, 60000) || 'b')"] * 500)
    + " FROM x",
    "like-worst-case-rows": "WITH RECURSIVE x(a) AS (SELECT printf('%.*c', 130000, 'a')),"
    " c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 100000)"
    " SELECT a LIKE '%' || printf('%.*c', 98, 'a') || 'b' FROM x, c",
    "trim-by-a-long-set-x50": "WITH x(a, b) AS (SELECT printf('%.*c', 130000, 'a'),"
    " printf('%.*c', 14000, 'b') || 'a') SELECT "
    + ", ".join(["length(ltrim(a, b))"] * 50)
    + " FROM x",
    "json-patch-x50": "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 6000),"
    " x(a, b) AS (SELECT json_group_object('a' || i, 1), json_group_object('b' || i, 1) FROM k)"
    " SELECT " + ", ".join(["length(json_patch(a, b))"] * 50) + " FROM x",
    "group-concat": rows(10_000_000) + "SELECT group_concat(printf('%.*c', 1000, 'a')) FROM c",
    "sorted-blobs": rows(1_000_000) + "SELECT randomblob(1000) AS b FROM c ORDER BY b",
}


@pytest.fixture(scope="module")
def sqlite_archive(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('bounds') / 'archive.db'}"
    Archive(url).close()  # an empty archive at the current schema (the CLI checks it)
    return url


@pytest.mark.parametrize("name", SQLITE_PROBES)
def test_sqlite_probe_is_bounded(probe, sqlite_archive, name):
    assert_bounded(probe(sqlite_archive, SQLITE_PROBES[name], timeout=1), 1)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    "query",
    [
        pytest.param(rows(20) + "SELECT zeroblob(50000000) FROM c", id="20-huge-rows"),
        pytest.param(rows(100_000) + "SELECT n, randomblob(100000) FROM c", id="byte-cap"),
        pytest.param(rows(1_000_000) + "SELECT printf('%.*c', 1000, 'x') FROM c", id="text"),
    ],
)
def test_sqlite_cli_output_is_bounded(probe, sqlite_archive, tmp_path, fmt, query):
    # The time limit covers writing the rows too: a query refused, or rows the limit leaves
    # no time to write, fail in one line and leave no partial file.
    report = probe(sqlite_archive, query, timeout=2, fmt=fmt, out=tmp_path / "out")
    assert_bounded(report, 2)
    assert "\n" not in report["outcome"], report
    assert (report["outcome"] == "written") == (tmp_path / "out").exists(), report


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_owner():
    """A PostgreSQL archive (its owner's URL: a superuser on the test server)."""
    from conftest import postgres_schema_url

    with postgres_schema_url() as url:
        Archive(url).close()
        yield url


@pytest.fixture(scope="module")
def postgres_reader(postgres_owner):
    with select_only_role(postgres_owner) as reader:
        yield reader


HUGE_ROWS = "SELECT repeat('x', 50000000) FROM generate_series(1, 20)"
PG_PROBES = {  # name: (query, time limit, largest row)
    "repeat-50MB-x20": (HUGE_ROWS, 5, 50 * 10**6),
    "repeat-5MB-x200": ("SELECT repeat('x', 5000000) FROM generate_series(1, 200)", 5, 5 * 10**6),
    "sleep": ("SELECT pg_sleep(10)", 1, 0),
    "explain-analyze-sleep": ("EXPLAIN ANALYZE SELECT pg_sleep(10)", 1, 0),
    "many-rows": ("SELECT g, md5(g::text) FROM generate_series(1, 100000000) g", 2, 0),
    "recursive-count": (
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c",
        1,
        0,
    ),
}


@pytest.mark.parametrize("name", PG_PROBES)
def test_postgres_probe_is_bounded(probe, postgres_reader, name):
    query, timeout, row = PG_PROBES[name]
    assert_bounded(probe(postgres_reader, query, timeout=timeout), timeout, row=row)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_postgres_cli_output_is_bounded(probe, postgres_reader, tmp_path, fmt):
    report = probe(postgres_reader, HUGE_ROWS, timeout=5, fmt=fmt, out=tmp_path / "out")
    # Writing a 50 MB value to CSV or Parquet takes a few more copies of it.
    assert_bounded(report, 5, row=2 * 50 * 10**6)


SHIMMED = [
    "instr('abcabc', 'ca')",
    "instr(x'010203', x'03')",
    "instr(NULL, 'a')",
    "instr(12345, 34)",
    "replace('aXbX', 'X', 'yy')",
    "replace('abc', '', 'z')",
    "replace(NULL, 'a', 'b')",
    "'ABC' LIKE 'a%'",
    "like('a%', 'ABC')",
    "'a_c' LIKE 'a|_c' ESCAPE '|'",
    "'abc' GLOB 'a*'",
    "printf('%d-%5.2f-%s-%%-%.*c', 3, 2.5, 'x', 3, 'z')",
    "format('%q', 'it''s')",
    'json_patch(\'{"a":1,"c":3}\', \'{"b":2,"c":null}\')',
    "trim('  x  ')",
    "ltrim('xxa', 'x')",
    "rtrim('axx', 'x')",
    "trim('\u00e9a\u00e9', '\u00e9')",
    "trim(125.5, '5')",
    "trim(NULL, 'x')",
]


@pytest.mark.parametrize("expression", SHIMMED)
def test_shimmed_functions_answer_as_sqlite_does(sqlite_archive, expression):
    expected = sqlite3.connect(":memory:").execute(f"SELECT {expression}").fetchone()[0]
    got = sql.run_query(sqlite_archive, f"SELECT {expression} AS v").frame["v"].tolist()[0]
    assert got == expected


def test_byte_cap_is_reported_like_the_row_cap(sqlite_archive):
    result = sql.run_query(
        sqlite_archive, rows(1000) + "SELECT randomblob(1000) FROM c", max_bytes=10_000
    )
    assert result.truncated and result.truncated_by == sql.BYTE_CAP
    assert 0 < len(result.frame) < 10
    result = sql.run_query(sqlite_archive, rows(1000) + "SELECT n FROM c", max_rows=5)
    assert result.truncated and result.truncated_by == sql.ROW_CAP


@pytest.mark.parametrize(
    "call",
    [
        "pg_advisory_lock(1)",
        "pg_advisory_xact_lock(1)",
        "pg_try_advisory_lock(1)",
        "pg_catalog.pg_advisory_lock_shared(1)",
        '"pg_advisory_lock"(1)',
        "PG_ADVISORY_LOCK(1)",
        "pg_terminate_backend(1)",
        "pg_cancel_backend(1)",
        "pg_reload_conf()",
        "lo_import('/etc/hostname')",
        "lo_export(1, '/tmp/x')",
        "dblink_exec('dbname=test', 'CREATE TABLE evil (x int)')",
        "set_config('statement_timeout', '0', false)",
        "nextval('s')",
        "setval('s', 1)",
        "query_to_xml('SELECT pg_advisory_lock(1)', true, true, '')",
        "pg_read_file('/etc/passwd')",
        "pg_ls_dir('.')",
    ],
)
def test_postgres_side_effect_functions_are_refused_by_name(postgres_reader, call):
    with pytest.raises(QueryRefused, match=r"\(\) is refused in the console"):
        sql.run_query(postgres_reader, f"SELECT {call}")


def test_postgres_unicode_escaped_identifiers_are_refused(postgres_reader):
    with pytest.raises(QueryRefused, match="U&"):
        sql.run_query(postgres_reader, 'SELECT U&"pg_advisory_lock"(1)')


def test_postgres_superuser_is_refused_in_one_line(postgres_owner):
    with pytest.raises(QueryRoleRefused) as info:
        sql.run_query(postgres_owner, "SELECT 1")
    message = str(info.value)
    assert "\n" not in message
    assert "it is a superuser" in message
    assert "GRANT SELECT ON ALL TABLES IN SCHEMA" in message
    assert "--unsafe-writable-role" in message
    assert sql.run_query(postgres_owner, "SELECT 1 AS one", unsafe_writable_role=True).frame[
        "one"
    ].tolist() == [1]


@pytest.mark.parametrize(
    ("grant", "why"),
    [
        ('GRANT INSERT ON runs TO "{role}"', "may write tables of the archive (runs)"),
        ('GRANT TRUNCATE ON events TO "{role}"', "may write tables of the archive (events)"),
        ('GRANT UPDATE (status) ON runs TO "{role}"', "may write tables of the archive (runs)"),
        ('GRANT pg_signal_backend TO "{role}"', "member of pg_signal_backend"),
    ],
)
def test_postgres_role_that_may_write_or_signal_is_refused(postgres_owner, grant, why):
    with select_only_role(postgres_owner) as reader:
        role = sa.make_url(reader).username
        engine = sa.create_engine(postgres_owner)
        with engine.begin() as conn:
            conn.exec_driver_sql(grant.format(role=role))
        try:
            with pytest.raises(QueryRoleRefused, match=why.replace("(", r"\(").replace(")", r"\)")):
                sql.run_query(reader, "SELECT count(*) FROM runs")
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    grant.format(role=role).replace("GRANT", "REVOKE").replace(" TO ", " FROM ")
                )
            engine.dispose()


def test_postgres_select_only_role_reads(postgres_reader):
    assert sql.run_query(postgres_reader, "SELECT count(*) AS n FROM runs").frame["n"].tolist() == [
        0
    ]


def test_migration_lock_wait_is_bounded_and_names_the_holder(postgres_owner):
    holder = sa.create_engine(postgres_owner, connect_args={"application_name": "lock-holder"})
    waiter = sa.create_engine(postgres_owner)
    try:
        with holder.connect() as held:
            held.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": 4711})
            with waiter.begin() as conn, pytest.raises(LockTimeout) as info:
                db.advisory_xact_lock(conn, 4711, "the schema migration", wait_s=0.5)
            held.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": 4711})
            held.commit()
    finally:
        holder.dispose()
        waiter.dispose()
    message = str(info.value)
    assert message.startswith("the schema migration waited 0.5 s for its lock, held by role")
    assert "'lock-holder'" in message
