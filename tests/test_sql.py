"""sql: user SQL is read-only by construction, time-limited and row-capped, on both backends.

Every attack test fingerprints the archive before and after: schema, row counts and, on SQLite,
the file's bytes; on PostgreSQL an md5 of every table's rows, sequences and large objects.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import select_only_role
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sanctum_store import sql
from sanctum_store.errors import QueryFailed, QueryInterrupted, QueryRefused, SanctumError, SQLError
from sanctum_store.sql import SCHEMA_COLUMNS, run_query, schema_overview

RUNS = [("alpha", 1, 0.25), ("beta", 2, 0.75), ("gamma", 3, 0.5)]
STEPS_PER_RUN = 40
STEP_ROWS = len(RUNS) * STEPS_PER_RUN
RUNAWAY = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c) SELECT count(*) FROM c"
ENDLESS = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c) SELECT n FROM c"
NOT_A_READ = r"^only SELECT, WITH or EXPLAIN statements may run; got "
ONE_STATEMENT = r"^only one statement may run at a time$"

metadata = sa.MetaData()
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("seed", sa.Integer),
    sa.Column("reward", sa.Float),
)
steps = sa.Table(
    "steps",
    metadata,
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("loss", sa.Float),
)


def build_archive(url: str) -> str:
    """A small archive written through an ordinary, writable engine."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")  # as the writer leaves it
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(runs.insert(), [{"name": n, "seed": s, "reward": r} for n, s, r in RUNS])
        conn.execute(
            steps.insert(),
            [
                {"run_id": run_id, "step": step, "loss": 1.0 / (step + 1)}
                for run_id in range(1, len(RUNS) + 1)
                for step in range(STEPS_PER_RUN)
            ],
        )
        conn.exec_driver_sql(
            "CREATE VIEW best_runs AS SELECT name, reward FROM runs WHERE reward > 0.4"
        )
    engine.dispose()
    return url


#: The owner's URL of each reader URL handed out (fingerprints read as the owner).
OWNERS: dict[str, str] = {}


def as_reader(url: str):
    """Yield ``url`` (SQLite) or, on PostgreSQL, the URL of a fresh SELECT-only role: the only
    kind of role the console runs as."""
    if not url.startswith("postgresql"):
        yield url
        return
    with select_only_role(url) as reader:
        OWNERS[reader] = url
        yield reader
        OWNERS.pop(reader)


@pytest.fixture
def archive(db_url) -> str:
    yield from as_reader(build_archive(db_url))


@pytest.fixture
def sqlite_archive(sqlite_url) -> str:
    return build_archive(sqlite_url)


@pytest.fixture
def postgres_archive(postgres_url) -> str:
    yield from as_reader(build_archive(postgres_url))


@pytest.fixture
def postgres_owner_archive(postgres_url) -> str:
    """A PostgreSQL archive whose URL is its owner, a superuser: what the console refuses."""
    return build_archive(postgres_url)


@pytest.fixture(autouse=True)
def _fresh_engines():
    yield
    sql.dispose_readonly_engines()


def fingerprint(url: str) -> dict:
    """Everything a write could change."""
    state = {}
    if url.startswith("sqlite"):
        state["sha256"] = hashlib.sha256(Path(sa.make_url(url).database).read_bytes()).hexdigest()
    engine = sa.create_engine(OWNERS.get(url, url))
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables = sorted(inspector.get_table_names())
            objects = tables + sorted(inspector.get_view_names())
            state["schema"] = {
                name: [(c["name"], str(c["type"])) for c in inspector.get_columns(name)]
                for name in objects
            }
            state["counts"] = {
                name: conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar()
                for name in tables
            }
            if engine.dialect.name == "postgresql":
                state["md5"] = {
                    name: conn.exec_driver_sql(
                        f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {name} t"
                    ).scalar()
                    for name in tables
                }
                state["sequences"] = conn.exec_driver_sql(
                    "SELECT sequencename, last_value FROM pg_sequences"
                    " WHERE schemaname = current_schema() ORDER BY 1"
                ).all()
                state["large_objects"] = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_largeobject_metadata"
                ).scalar()
    finally:
        engine.dispose()
    return state


def assert_stopped(url: str, attack: str, error: type[SQLError], match: str, **kwargs) -> None:
    before = fingerprint(url)
    with pytest.raises(error, match=match):
        run_query(url, attack, **{"timeout_s": 1, **kwargs})
    assert fingerprint(url) == before


# --- attacks through run_query ----------------------------------------------------------------

COMMON_ATTACKS = [
    pytest.param("INSERT INTO runs (name) VALUES ('evil')", NOT_A_READ + "INSERT$", id="insert"),
    pytest.param("UPDATE runs SET reward = 0", NOT_A_READ + "UPDATE$", id="update"),
    pytest.param("DELETE FROM steps", NOT_A_READ + "DELETE$", id="delete"),
    pytest.param("delete from steps", NOT_A_READ + "DELETE$", id="delete-lowercase"),
    pytest.param("DROP TABLE runs", NOT_A_READ + "DROP$", id="drop"),
    pytest.param("CREATE TABLE evil (x INTEGER)", NOT_A_READ + "CREATE$", id="create"),
    pytest.param("ALTER TABLE runs ADD COLUMN evil INTEGER", NOT_A_READ + "ALTER$", id="alter"),
    pytest.param("BEGIN", NOT_A_READ + "BEGIN$", id="begin"),
    pytest.param("SELECT 1; DROP TABLE runs", ONE_STATEMENT, id="two-statements"),
    pytest.param("select 1;\n-- x\ndelete from steps;", ONE_STATEMENT, id="two-statements-comment"),
    pytest.param("SELECT ';'; DELETE FROM steps", ONE_STATEMENT, id="semicolon-in-string-first"),
    pytest.param("SELECT 1 /* ; */ ; DELETE FROM steps", ONE_STATEMENT, id="comment-then-two"),
    pytest.param("/* */ DELETE FROM steps", NOT_A_READ + "DELETE$", id="block-comment"),
    pytest.param("-- x\nDELETE FROM steps", NOT_A_READ + "DELETE$", id="line-comment"),
    pytest.param("\n\t /* a */ -- b\n DELETE FROM steps", NOT_A_READ + "DELETE$", id="comments"),
    pytest.param("(SELECT 1)", NOT_A_READ + r"'\('$", id="parenthesis"),
]


@pytest.mark.parametrize(("attack", "match"), COMMON_ATTACKS)
def test_write_attempts_are_refused_by_the_statement_check(archive, attack, match):
    assert_stopped(archive, attack, QueryRefused, match)


SQLITE_ATTACKS = [
    pytest.param("ATTACH DATABASE '{dir}/evil.db' AS evil", QueryRefused, NOT_A_READ, id="attach"),
    pytest.param("VACUUM INTO '{dir}/evil.db'", QueryRefused, NOT_A_READ, id="vacuum-into"),
    pytest.param("PRAGMA user_version = 5", QueryRefused, NOT_A_READ, id="pragma-user-version"),
    pytest.param("PRAGMA journal_mode = DELETE", QueryRefused, NOT_A_READ, id="pragma-journal"),
    pytest.param("PRAGMA query_only = 0", QueryRefused, NOT_A_READ, id="pragma-query-only"),
    pytest.param(
        "REPLACE INTO runs (id, name) VALUES (1, 'x')", QueryRefused, NOT_A_READ, id="repl"
    ),
    pytest.param(
        "SELECT load_extension('x')",
        QueryRefused,
        "refused FUNCTION load_extension$",
        id="load-extension",
    ),
    pytest.param(
        "WITH x AS (SELECT 1) INSERT INTO runs (name) SELECT 'evil' FROM x",
        QueryRefused,
        "refused INSERT runs$",
        id="cte-insert",
    ),
    pytest.param(
        "WITH x AS (SELECT 1) DELETE FROM steps",
        QueryRefused,
        "refused DELETE steps$",
        id="cte-del",
    ),
    pytest.param(
        "WITH x AS (SELECT 1) UPDATE runs SET reward = 0",
        QueryRefused,
        "refused UPDATE runs",
        id="cte-update",
    ),
    pytest.param("EXPLAIN DELETE FROM steps", QueryRefused, "refused DELETE steps$", id="explain"),
    pytest.param(
        "SELECT 1 AS [a'b]; DELETE FROM steps; --']", QueryRefused, ONE_STATEMENT, id="[]"
    ),
    pytest.param(
        "SELECT 1 AS `a'b`; DELETE FROM steps", QueryRefused, ONE_STATEMENT, id="backtick"
    ),
    pytest.param("/* /* */ DELETE FROM steps */ SELECT 1", QueryRefused, NOT_A_READ, id="nest"),
]


@pytest.mark.parametrize(("attack", "error", "match"), SQLITE_ATTACKS)
def test_sqlite_attacks_are_stopped(sqlite_archive, tmp_path, attack, error, match):
    assert_stopped(sqlite_archive, attack.format(dir=tmp_path), error, match)
    assert not (tmp_path / "evil.db").exists()


POSTGRES_ATTACKS = [
    pytest.param(
        "WITH d AS (DELETE FROM runs RETURNING *) SELECT * FROM d",
        QueryRefused,
        "read-only transaction",
        id="cte-delete",
    ),
    pytest.param(
        "EXPLAIN ANALYZE WITH d AS (DELETE FROM runs RETURNING *) SELECT * FROM d",
        QueryRefused,
        "read-only transaction",
        id="explain-analyze-cte-delete",
    ),
    pytest.param(
        "EXPLAIN ANALYZE DELETE FROM steps",
        QueryRefused,
        "read-only transaction",
        id="explain-analyze-delete",
    ),
    pytest.param(
        "SET default_transaction_read_only = off; DELETE FROM steps",
        QueryRefused,
        NOT_A_READ + "SET$",
        id="set-read-write",
    ),
    pytest.param(
        "SELECT 1; COMMIT; DELETE FROM steps", QueryRefused, ONE_STATEMENT, id="commit-then-write"
    ),
    pytest.param(
        "SELECT set_config('transaction_read_only', 'off', true)",
        QueryRefused,
        r"^set_config\(\) is refused",
        id="set-config-read-write",
    ),
    pytest.param(
        "SELECT * INTO evil FROM runs", QueryRefused, "read-only transaction", id="select-into"
    ),
    pytest.param("SELECT nextval('runs_id_seq')", QueryRefused, r"^nextval\(\)", id="nextval"),
    pytest.param("SELECT setval('runs_id_seq', 1000)", QueryRefused, r"^setval\(\)", id="setval"),
    pytest.param("SELECT E'\\''; DELETE FROM steps; --'", QueryRefused, ONE_STATEMENT, id="e-str"),
    pytest.param("SELECT $$'$$; DELETE FROM steps; --'", QueryRefused, ONE_STATEMENT, id="dollar"),
    pytest.param(
        "SELECT 1$$'$$; DELETE FROM steps; --'", QueryRefused, ONE_STATEMENT, id="1-dollar"
    ),
    pytest.param(
        "SELECT * FROM runs FOR UPDATE", QueryRefused, "read-only transaction", id="for-update"
    ),
    pytest.param("COPY runs TO STDOUT", QueryRefused, NOT_A_READ + "COPY$", id="copy"),
    pytest.param(
        "DO $$ BEGIN DELETE FROM steps; END $$", QueryRefused, NOT_A_READ + "DO$", id="do-block"
    ),
]


@pytest.mark.parametrize(("attack", "error", "match"), POSTGRES_ATTACKS)
def test_postgres_attacks_are_stopped(postgres_archive, attack, error, match):
    assert_stopped(postgres_archive, attack, error, match)


def test_postgres_side_effects_of_a_select_are_rolled_back(postgres_archive):
    # lo_import is a SELECT that creates a large object; as superuser it even succeeds.
    before = fingerprint(postgres_archive)
    run_unchecked(
        OWNERS[postgres_archive], "SELECT lo_import('/etc/hostname')", unsafe_writable_role=True
    )
    assert fingerprint(postgres_archive) == before


def test_postgres_session_state_dies_with_the_query(postgres_archive):
    # A session-level advisory lock survives ROLLBACK; only closing the connection frees it.
    run_unchecked(postgres_archive, "SELECT pg_advisory_lock(4242)")
    engine = sa.create_engine(postgres_archive)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_try_advisory_lock(4242)").scalar() is True
    finally:
        engine.dispose()


def test_runaway_query_is_interrupted_with_the_exact_message(archive):
    before = fingerprint(archive)
    start = time.monotonic()
    with pytest.raises(QueryInterrupted) as info:
        run_query(archive, RUNAWAY, timeout_s=1)
    assert str(info.value) == "query interrupted after 1 s"
    assert time.monotonic() - start < 3
    assert fingerprint(archive) == before


def test_interrupt_message_names_the_limit_as_given(archive):
    with pytest.raises(QueryInterrupted, match=r"^query interrupted after 0\.5 s$"):
        run_query(archive, RUNAWAY, timeout_s=0.5)


@pytest.mark.parametrize("query", ["SELECT pg_sleep(5)", "EXPLAIN ANALYZE SELECT pg_sleep(5)"])
def test_postgres_sleep_is_interrupted(postgres_archive, query):
    start = time.monotonic()
    with pytest.raises(QueryInterrupted, match=r"^query interrupted after 1 s$"):
        run_query(postgres_archive, query, timeout_s=1)
    assert time.monotonic() - start < 3


def test_time_limits_are_per_query_under_concurrency(archive):
    with ThreadPoolExecutor(max_workers=4) as pool:
        runaways = [pool.submit(run_query, archive, RUNAWAY, timeout_s=0.5) for _ in range(2)]
        reads = [
            pool.submit(run_query, archive, "SELECT count(*) AS n FROM steps") for _ in range(4)
        ]
        for future in runaways:
            with pytest.raises(QueryInterrupted):
                future.result()
        assert [f.result().frame["n"].tolist() for f in reads] == [[STEP_ROWS]] * 4


# --- the layers below the statement check, each on its own ------------------------------------


def run_unchecked(url: str, statement: str, **kwargs):
    """Skip the statement check: what the connection alone lets through."""
    engine = sql.readonly_engine(url)
    return sql._execute(
        engine, statement, **{"timeout_s": 1, "max_rows": 10, "params": None, **kwargs}
    )


@pytest.mark.parametrize(
    ("statement", "refused"),
    [
        ("DELETE FROM steps", "DELETE steps"),
        ("INSERT INTO runs (name) VALUES ('evil')", "INSERT runs"),
        ("DROP TABLE runs", "a schema change"),
        ("CREATE TABLE evil (x)", "a schema change"),
        ("CREATE TEMP TABLE evil (x)", "a schema change"),
        ("ALTER TABLE runs ADD COLUMN evil", "ALTER TABLE runs"),
        ("ATTACH DATABASE '{dir}/evil.db' AS evil", "ATTACH {dir}/evil.db"),
        ("PRAGMA user_version = 5", "PRAGMA user_version"),
        ("PRAGMA query_only = 0", "PRAGMA query_only"),
        ("SELECT load_extension('x')", "FUNCTION load_extension"),
        ("BEGIN IMMEDIATE", "TRANSACTION BEGIN"),
    ],
)
def test_sqlite_authorizer_alone_refuses_writes(sqlite_archive, tmp_path, statement, refused):
    before = fingerprint(sqlite_archive)
    message = f"only reading is allowed; refused {refused.format(dir=tmp_path)}"
    with pytest.raises(QueryRefused) as info:
        run_unchecked(sqlite_archive, statement.format(dir=tmp_path))
    assert str(info.value).startswith(message)
    assert fingerprint(sqlite_archive) == before
    assert not (tmp_path / "evil.db").exists()


def test_sqlite_connection_alone_is_read_only(sqlite_archive, tmp_path):
    before = fingerprint(sqlite_archive)
    proxy = sql.readonly_engine(sqlite_archive).raw_connection()
    conn = proxy.driver_connection  # no authorizer, no statement check
    try:
        assert conn.execute("PRAGMA query_only").fetchone() == (1,)
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):
            conn.execute("DELETE FROM steps")
        conn.execute("PRAGMA query_only = 0")  # mode=ro still holds
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):
            conn.execute("DELETE FROM steps")
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):
            conn.execute("PRAGMA user_version = 5")
        with pytest.raises(sqlite3.OperationalError, match="too many attached databases"):
            conn.execute(f"ATTACH DATABASE '{tmp_path}/evil.db' AS evil")
        with pytest.raises(sqlite3.OperationalError, match="not authorized"):
            conn.execute("SELECT load_extension('x')")
        with pytest.raises(sqlite3.ProgrammingError, match="one statement at a time"):
            conn.execute("SELECT 1; DELETE FROM steps")
    finally:
        proxy.close()
    assert fingerprint(sqlite_archive) == before
    assert not (tmp_path / "evil.db").exists()


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM steps",
        "UPDATE runs SET reward = 0",
        "INSERT INTO runs (name) VALUES ('evil')",
        "DROP TABLE runs",
        "CREATE TABLE evil (x int)",
        "ALTER TABLE runs ADD COLUMN evil int",
        "SELECT nextval('runs_id_seq')",
    ],
)
@pytest.mark.parametrize("as_owner", [False, True])
def test_postgres_read_only_transaction_alone_refuses_writes(postgres_archive, statement, as_owner):
    # As the owner (a superuser, role check skipped) the read-only transaction alone refuses.
    url = OWNERS[postgres_archive] if as_owner else postgres_archive
    before = fingerprint(postgres_archive)
    with pytest.raises(QueryRefused):
        run_unchecked(url, statement, unsafe_writable_role=as_owner)
    assert fingerprint(postgres_archive) == before


def test_postgres_protocol_alone_refuses_several_statements(postgres_archive):
    before = fingerprint(postgres_archive)
    attack = "SELECT 1; SET default_transaction_read_only = off; COMMIT; DELETE FROM steps"
    with pytest.raises(QueryFailed, match="cannot insert multiple commands"):
        run_unchecked(OWNERS[postgres_archive], attack, unsafe_writable_role=True)
    assert fingerprint(postgres_archive) == before


def test_postgres_session_alone_is_read_only(postgres_archive):
    psycopg = pytest.importorskip("psycopg")
    before = fingerprint(postgres_archive)
    proxy = sql.readonly_engine(postgres_archive).raw_connection()
    conn = proxy.driver_connection  # no SET TRANSACTION READ ONLY, no statement check
    try:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM steps")
        conn.rollback()
        with pytest.raises(psycopg.errors.SyntaxError, match="multiple commands"):
            conn.execute("COMMIT; SET default_transaction_read_only = off; DELETE FROM steps")
        conn.rollback()
    finally:
        proxy.close()
    assert fingerprint(postgres_archive) == before


# --- what a reader gets -----------------------------------------------------------------------


def test_select_returns_a_dataframe(archive):
    result = run_query(archive, "SELECT name, seed FROM runs ORDER BY id")
    assert list(result.frame.columns) == ["name", "seed"]
    assert result.frame.to_dict("list") == {
        "name": [name for name, _, _ in RUNS],
        "seed": [seed for _, seed, _ in RUNS],
    }
    assert result.truncated is False
    assert result.sql == "SELECT name, seed FROM runs ORDER BY id"
    assert result.elapsed_s >= 0


def test_params_bind_by_name(archive):
    result = run_query(
        archive,
        "SELECT name FROM runs WHERE seed >= :low AND (name LIKE :pattern OR name LIKE 'g%')"
        " ORDER BY id",
        params={"low": 2, "pattern": "%ta"},
    )
    assert result.frame["name"].tolist() == ["beta", "gamma"]


def test_sql_without_params_reaches_the_driver_verbatim(archive):
    result = run_query(archive, "SELECT name, ':x' AS colon FROM runs WHERE name LIKE 'a%'")
    assert result.frame.to_dict("list") == {"name": ["alpha"], "colon": [":x"]}


def test_missing_param_fails(archive):
    with pytest.raises(QueryFailed, match=r"^A value is required for bind parameter 'seed'$"):
        run_query(archive, "SELECT name FROM runs WHERE seed = :seed", params={"other": 1})


@pytest.mark.parametrize("max_rows", [1, 10, STEP_ROWS - 1])
def test_row_cap_truncates_to_exactly_max_rows(archive, max_rows):
    result = run_query(archive, "SELECT * FROM steps ORDER BY run_id, step", max_rows=max_rows)
    assert result.truncated is True
    assert len(result.frame) == max_rows
    assert result.frame["step"].tolist()[:2] == [0, 1][:max_rows]


@pytest.mark.parametrize("max_rows", [STEP_ROWS, STEP_ROWS + 1, 10_000])
def test_row_cap_not_reached_is_not_truncated(archive, max_rows):
    result = run_query(archive, "SELECT * FROM steps", max_rows=max_rows)
    assert result.truncated is False
    assert len(result.frame) == STEP_ROWS


def test_row_cap_never_materialises_the_whole_result(archive):
    # The result is endless: only fetching max_rows + 1 rows lets this return at all.
    result = run_query(archive, ENDLESS, max_rows=5, timeout_s=5)
    assert result.frame["n"].tolist() == [1, 2, 3, 4, 5]
    assert result.truncated is True
    assert result.elapsed_s < 1


def test_empty_result_keeps_its_columns(archive):
    result = run_query(archive, "SELECT name, seed FROM runs WHERE seed > 100")
    assert list(result.frame.columns) == ["name", "seed"]
    assert result.frame.empty and result.truncated is False


def test_with_comments_and_a_closing_semicolon(archive):
    text = "-- top\nWITH r AS (SELECT name FROM runs) /* ; */ SELECT count(*) AS n FROM r; -- end\n"
    result = run_query(archive, text)
    assert result.frame["n"].tolist() == [len(RUNS)]
    assert (
        result.sql
        == "-- top\nWITH r AS (SELECT name FROM runs) /* ; */ SELECT count(*) AS n FROM r"
    )


def test_views_are_queryable(archive):
    result = run_query(archive, "SELECT name FROM best_runs ORDER BY name")
    assert result.frame["name"].tolist() == ["beta", "gamma"]


def test_explain(archive):
    result = run_query(archive, "EXPLAIN SELECT * FROM runs WHERE seed = 2")
    assert len(result.frame) > 0


def test_sqlite_explain_query_plan_and_read_functions(sqlite_archive):
    plan = run_query(sqlite_archive, "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE id = 1").frame
    assert plan["detail"].str.contains("runs").any()
    info = run_query(sqlite_archive, "SELECT name FROM pragma_table_info('runs')").frame
    assert info["name"].tolist() == ["id", "name", "seed", "reward"]
    items = run_query(sqlite_archive, "SELECT value FROM json_each('[1, 2]')").frame
    assert items["value"].tolist() == [1, 2]


def test_postgres_explain_analyze_runs_its_query(postgres_archive):
    plan = run_query(postgres_archive, "EXPLAIN ANALYZE SELECT count(*) FROM steps").frame
    assert plan["QUERY PLAN"].str.contains("actual time").any()


def test_postgres_nested_comments_are_comments(postgres_archive):
    result = run_query(postgres_archive, "/* /* */ DELETE FROM steps */ SELECT 1 AS one")
    assert result.frame["one"].tolist() == [1]


def test_query_error_carries_the_driver_message_and_cause(archive):
    with pytest.raises(QueryFailed, match="nope") as info:
        run_query(archive, "SELECT * FROM nope")
    assert type(info.value.__cause__).__module__.split(".")[0] in {"sqlite3", "psycopg"}


def test_missing_sqlite_archive_is_not_created(tmp_path):
    path = tmp_path / "missing.db"
    with pytest.raises(QueryFailed, match="unable to open"):
        run_query(f"sqlite:///{path}", "SELECT 1")
    with pytest.raises(QueryFailed):
        schema_overview(f"sqlite:///{path}")
    assert not path.exists()


@pytest.mark.parametrize("kwargs", [{"timeout_s": 0}, {"timeout_s": -1}, {"max_rows": 0}])
def test_nonsense_limits_are_rejected(sqlite_archive, kwargs):
    with pytest.raises(ValueError):
        run_query(sqlite_archive, "SELECT 1", **kwargs)


def test_errors_share_the_package_base():
    for error in (QueryRefused, QueryInterrupted, QueryFailed):
        assert issubclass(error, SQLError)
    assert issubclass(SQLError, SanctumError)


def test_one_engine_per_url_until_disposed(sqlite_archive):
    engine = sql.readonly_engine(sqlite_archive)
    assert sql.readonly_engine(sqlite_archive) is engine
    sql.dispose_readonly_engines()
    assert sql.readonly_engine(sqlite_archive) is not engine


def test_schema_overview_lists_tables_views_and_columns(archive):
    overview = schema_overview(archive)
    assert list(overview.columns) == SCHEMA_COLUMNS
    listed = list(overview[["object", "kind", "column"]].itertuples(index=False, name=None))
    assert listed == [
        ("runs", "table", "id"),
        ("runs", "table", "name"),
        ("runs", "table", "seed"),
        ("runs", "table", "reward"),
        ("steps", "table", "run_id"),
        ("steps", "table", "step"),
        ("steps", "table", "loss"),
        ("best_runs", "view", "name"),
        ("best_runs", "view", "reward"),
    ]
    types = dict(zip(overview["object"] + "." + overview["column"], overview["type"], strict=True))
    assert types["runs.id"] == "INTEGER"
    assert types["runs.name"] == "TEXT"


def test_postgres_schema_overview_sees_only_the_current_schema(postgres_archive):
    overview = schema_overview(postgres_archive)
    assert set(overview["object"]) == {"runs", "steps", "best_runs"}


# --- the statement check ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "text", "statement"),
    [
        ("sqlite", "SELECT 1", "SELECT 1"),
        ("sqlite", "  select 1 ;  -- done", "select 1"),
        ("postgresql", "SELECT 1;;", "SELECT 1"),
        ("sqlite", "SELECT ';' AS semi", "SELECT ';' AS semi"),
        ("sqlite", "SELECT 'it''s; fine'", "SELECT 'it''s; fine'"),
        ("sqlite", 'SELECT 1 AS "a;""b"', 'SELECT 1 AS "a;""b"'),
        ("sqlite", "SELECT 1 AS [x;y]", "SELECT 1 AS [x;y]"),
        ("sqlite", "SELECT 1 -- ; not a statement", "SELECT 1 -- ; not a statement"),
        ("sqlite", "SELECT 1 /* unterminated ;", "SELECT 1 /* unterminated ;"),
        ("postgresql", "/* /* nested; */ ; */ SELECT 1", "/* /* nested; */ ; */ SELECT 1"),
        ("postgresql", "SELECT $$;$$, $t$ $$; $t$", "SELECT $$;$$, $t$ $$; $t$"),
        ("postgresql", "SELECT E'\\';'", "SELECT E'\\';'"),
        ("postgresql", "SELECT $1::int, a$b FROM t", "SELECT $1::int, a$b FROM t"),
        # As PostgreSQL lexes it: an identifier (with $$), then one string to the end.
        (
            "postgresql",
            "SELECT \u0661$$'$$; DELETE FROM t; --'",
            "SELECT \u0661$$'$$; DELETE FROM t; --'",
        ),
        ("sqlite", "EXPLAIN QUERY PLAN SELECT 1", "EXPLAIN QUERY PLAN SELECT 1"),
        (
            "postgresql",
            "with x as (select 1) select * from x",
            "with x as (select 1) select * from x",
        ),
    ],
)
def test_statement_check_accepts_one_read(dialect, text, statement):
    assert sql._check_statement(text, dialect)[1] == statement


@pytest.mark.parametrize(
    ("dialect", "text", "match"),
    [
        ("sqlite", "", "^no statement to run$"),
        ("postgresql", " -- only a comment\n /* and another */ ", "^no statement to run$"),
        ("sqlite", ";", NOT_A_READ + "';'$"),
        ("sqlite", "SELECTX 1", NOT_A_READ + "SELECTX$"),
        ("postgresql", "WITH_X", NOT_A_READ + "WITH_X$"),
        ("sqlite", "/* /* */ DELETE FROM t */ SELECT 1", NOT_A_READ + "DELETE$"),
        ("postgresql", "SELECT E'\\''; DELETE FROM t; --'", ONE_STATEMENT),
        ("postgresql", "SELECT 1e'\\''; DELETE FROM t; --'", ONE_STATEMENT),
        ("postgresql", "SELECT $$'$$; DELETE FROM t; --'", ONE_STATEMENT),
        ("postgresql", "SELECT $a$ $b$ $a$; DELETE FROM t", ONE_STATEMENT),
        ("postgresql", 'SELECT 1 AS "a\'b"; DELETE FROM t', ONE_STATEMENT),
        ("sqlite", "SELECT 1 AS [a'b]; DELETE FROM t; --']", ONE_STATEMENT),
        ("sqlite", "SELECT 1 AS `a'b`; DELETE FROM t", ONE_STATEMENT),
        ("sqlite", "SELECT 1; ;DELETE FROM t", ONE_STATEMENT),
        ("postgresql", "SELECT 1 -- x\r; DELETE FROM t", ONE_STATEMENT),
        ("postgresql", "SELECT $\u0661$'$\u0661$; DELETE FROM t; --'", ONE_STATEMENT),
        ("postgresql", "SELECT \u00a0e'\\'; DELETE FROM t; --'", ONE_STATEMENT),
    ],
)
def test_statement_check_refuses(dialect, text, match):
    with pytest.raises(QueryRefused, match=match):
        sql._check_statement(text, dialect)


def literal_forms(text: str, dialect: str) -> list[str]:
    """``text`` as every kind of string literal ``dialect`` has."""
    forms = ["'" + text.replace("'", "''") + "'"]
    if dialect == "postgresql":
        forms.append("E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'")
        tag = "$q$"
        while (text + tag).find(tag) < len(text):  # the first closing tag must be ours
            tag = tag[:-1] + "q$"
        forms.append(tag + text + tag)
    return forms


@given(text=st.text(), dialect=st.sampled_from(["sqlite", "postgresql"]))
def test_no_literal_or_comment_hides_a_second_statement(text, dialect):
    # Spaces inside the comment: "/*/*/" opens a nested comment on PostgreSQL.
    hiding = [*literal_forms(text, dialect), "/* " + text.replace("*", "") + " */"]
    hiding.append("--" + text.replace("\n", "").replace("\r", "") + "\n")
    for part in hiding:
        read = f"SELECT {part} AS v"
        assert sql._check_statement(read, dialect)[1] == read
        with pytest.raises(QueryRefused, match=ONE_STATEMENT):
            sql._check_statement(f"{read}; DELETE FROM steps", dialect)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")))
def test_literals_reach_the_database_intact(archive, text):
    # The check lexes quotes as the database does, so it neither refuses nor cuts these.
    dialect = "sqlite" if archive.startswith("sqlite") else "postgresql"
    for literal in literal_forms(text, dialect):
        assert run_query(archive, f"SELECT {literal} AS v").frame["v"].tolist() == [text]
