"""Hostile input, fuzzed: the writer and the importer store it exactly or refuse it by name.

Valid snapshots are mutated at random paths: wrong types, NaN/±inf, missing and extra fields,
1 MB strings, junk nested deeper than the archive takes, ids beyond 64 bits, non-string keys,
lone surrogates and NUL in text. Each mutated snapshot must either be stored exactly (it loads
back equal to its normalized input, and the injected value is there unchanged where the schema
keeps such values as they are) or be refused with a SnapshotInvalid whose path names one of
the mutated places. The writer keeps running, later good snapshots are stored, and nothing
stored before is lost.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import random
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import fixture_snapshot_lines
from helpers import assert_same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import JSON, snapshots, value

from sanctum_store import Archive, SnapshotInvalid, SnapshotWriter, codec, schema
from sanctum_store.cli import main
from sanctum_store.labels import MAX_INDEXED_TEXT, check_indexed_text
from sanctum_store.writer import is_transient

FUZZ = settings(
    max_examples=25,
    deadline=None,
    # One archive and one writer for all examples is the point: nothing stored before is lost.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)

MEGABYTE = 1_000_000
NAN, INF = math.nan, math.inf


# A megabyte of text that does not compress (PostgreSQL compresses long values it indexes).
INCOMPRESSIBLE = base64.b64encode(random.Random(0).randbytes(MEGABYTE * 3 // 4)).decode()


def nested(depth: int, leaf=NAN):
    """Junk nested ``depth`` levels deep: lists and dicts in turn, NaN and odd text inside."""
    value = leaf
    for level in range(depth):
        value = [value, "\u2603", -0.0] if level % 2 else {"k": value, "": None, "n": INF}
    return value


# Values valid JSON can carry (the importer's input)...
JSON_HOSTILE = st.one_of(
    st.sampled_from(
        [
            "abc",
            "",
            "NaN",
            "-Infinity",
            "1.5",
            1.5,
            -1,
            0,
            True,
            None,
            [],
            {},
            [1, "x", None],
            {"a": [1, {"b": None}]},
            NAN,
            INF,
            -INF,
            -0.0,
            1e308,
            5e-324,
            2**63 - 1,
            -(2**63),
            2**63,
            2**64,
            -(2**63) - 1,
            10**30,
            "\ud800",
            "a\udfffb",
            "a\x00b",
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-05:00",
            "x" * MEGABYTE,
            "ü" * (MEGABYTE // 2),
            "y" * (MAX_INDEXED_TEXT + 1),
            {"\x00": 1},
            {"\ud800": 1},
        ]
    ),
    st.just(INCOMPRESSIBLE),
    st.builds(
        nested,
        st.sampled_from([3, codec.MAX_FREE_DEPTH - 2, codec.MAX_FREE_DEPTH + 1, 300]),
    ),
    JSON,
)
# ...and what only a Python object can (the writer's input).
PY_HOSTILE = st.one_of(
    JSON_HOSTILE,
    st.sampled_from(
        [
            {1: "int key"},
            {(1, 2): "tuple key"},
            {None: "none key"},
            {1.5: "float key"},
            {b"k": "bytes key"},
            b"\xff\xfe",
            {1, 2},
            (1, 2),
            complex(1, 2),
            object(),
        ]
    ),
)


# --------------------------------------------------------------------------------------------
# Mutating a valid snapshot at random paths
# --------------------------------------------------------------------------------------------

ROOT = codec.Spec("object", cls=schema.SanctumSnapshot)
FREE = codec.Spec("free")


@dataclass
class Mutation:
    path: list  # keys from the root
    spec: codec.Spec  # what the schema says lives there
    op: str  # replace | delete | add
    value: object = None

    def where(self) -> str:
        """The path as SnapshotInvalid names it: .field, [key], [index]."""
        text, spec = "", ROOT
        for key in self.path:
            if spec.kind == "object":
                text += f".{key}"
            else:
                text += f"[{key!r}]"
            spec = child_spec(spec, key)
        return text.lstrip(".")


def child_spec(spec: codec.Spec, key) -> codec.Spec:
    if spec.kind == "object":
        for f in codec.class_info(spec.cls).fields:
            if f.name == key:
                return f.spec
        return FREE  # an unknown field
    if spec.kind in ("list", "deque", "tuple", "dict"):
        return spec.item
    if spec.kind == "pair":
        return spec.items[key]
    return FREE


def children(node) -> list:
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, list):
        return list(range(len(node)))
    return []


def extreme(spec: codec.Spec, as_json: bool):
    """Valid but extreme values for the place (NaN, ±inf, 64-bit limits, huge text, ...)."""
    if spec.kind == "free":
        return JSON
    values = value(spec)
    if as_json:  # what a JSON dump of such a value holds
        values = values.map(lambda v: codec._json(spec, codec._convert(spec, v)))
    return values


@st.composite
def mutate(draw, snapshot: dict, hostile) -> tuple[dict, list[Mutation]]:
    """A deep copy of ``snapshot`` with one to three hostile changes at random paths."""
    snapshot = copy.deepcopy(snapshot)
    mutations = []
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):
        path, spec, parent, node = [], ROOT, None, snapshot
        while children(node) and (parent is None or draw(st.integers(0, 3))):
            key = draw(st.sampled_from(children(node)))
            parent, node, spec = node, node[key], child_spec(spec, key)
            path.append(key)
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if op != "replace" and not isinstance(parent, dict):
            op = "replace"
        # Copies: later mutations may reach inside a value, which must not change the pool.
        if op == "replace":
            new = draw(st.one_of(hostile, extreme(spec, as_json=hostile is JSON_HOSTILE)))
            new = copy.deepcopy(new)
            parent[path[-1]] = new
            mutations.append(Mutation(path, spec, op, new))
        elif op == "delete":
            del parent[path[-1]]
            mutations.append(Mutation(path, spec, op))
        else:
            holder_path = path[:-1] if path else []
            holder_spec = ROOT
            for key in holder_path:
                holder_spec = child_spec(holder_spec, key)
            key = draw(st.sampled_from(["zz_unknown", "", "\u00e9t\u00e9", 7, "-5", "2"]))
            if key in parent or (not isinstance(key, str) and hostile is JSON_HOSTILE):
                key = f"zz_{len(mutations)}"
            new = copy.deepcopy(draw(hostile))
            parent[key] = new
            mutations.append(Mutation([*holder_path, key], child_spec(holder_spec, key), op, new))
    return snapshot, mutations


def loose(path: str) -> str:
    """Env keys read ['3'] in a JSON snapshot and [3] once normalized: compare without quotes."""
    return path.replace("'", "").replace('"', "")


def outcome(snapshot, run_id: str | None):
    """What the archive must do: ("stored", JSON form) or ("refused", SnapshotInvalid)."""
    try:
        tree = codec.normalize(snapshot)
        check_indexed_text(tree, run_id)
    except SnapshotInvalid as e:
        return "refused", e
    return "stored", codec.to_json(tree)


def assert_names_a_mutation(error: SnapshotInvalid, mutations: list[Mutation]) -> None:
    named = loose(error.path)

    def within(place: str) -> bool:
        return named == place or named.startswith((place + ".", place + "["))

    assert any(within(loose(m.where())) for m in mutations), (
        f"refused at {error.path!r} ({error.problem}), but the changes were at "
        f"{[m.where() for m in mutations]}"
    )


def kept_as_is(mutation: Mutation) -> bool:
    """Whether the schema keeps this injected value unchanged (so it must load back as is)."""
    injected, kind = mutation.value, mutation.spec.kind
    if mutation.op == "delete":
        return False
    if kind in ("float", "int", "str"):
        return type(injected).__name__ == kind
    if kind == "free":
        return _plain_json(injected)
    return False


def _plain_json(value) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and _plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_json(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


def at(tree, path: list):
    for key in path:
        tree = tree[key] if not isinstance(tree, dict) or key in tree else tree[str(key)]
    return tree


def check_stored(loaded: dict, expected: dict, mutations: list[Mutation]) -> None:
    assert_same(loaded, expected)
    for mutation in mutations:
        if kept_as_is(mutation):
            try:
                value = at(loaded, mutation.path)
            except (KeyError, IndexError, TypeError):
                continue  # a later mutation replaced what holds it
            if mutation is _last_at(mutations, mutation.path):
                assert_same(value, mutation.value)


def _last_at(mutations: list[Mutation], path: list) -> Mutation | None:
    """The mutation whose value is the one left at ``path`` (None if a later one changed it)."""
    last = None
    for m in mutations:
        if m.path[: len(path)] == path or path[: len(m.path)] == m.path:
            last = m
    return last


# --------------------------------------------------------------------------------------------
# Bases: real snapshots and arbitrary ones
# --------------------------------------------------------------------------------------------

REAL = [json.loads(line) for line in fixture_snapshot_lines()[-3:]]


def lists_for_tuples(value):
    if isinstance(value, dict):
        return {k: lists_for_tuples(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [lists_for_tuples(v) for v in value]
    return value


BASES = st.one_of(st.sampled_from(REAL), snapshots().map(lists_for_tuples))


def good(i: int) -> dict:
    snapshot = copy.deepcopy(REAL[i % len(REAL)])
    snapshot["captured_at"] = f"2026-11-26T04:{i // 60:02d}:{i % 60:02d}+00:00"
    return snapshot


# --------------------------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fuzzed_writer(db_url):
    writer = SnapshotWriter(db_url, batch_size=4)
    ledger = {"good": [], "stored": {}, "refused": 0}
    yield db_url, writer, ledger
    stats = writer.close(timeout=60)
    assert stats.alive is False and stats.dropped == 0
    with Archive(db_url) as archive:  # nothing stored earlier was lost later
        ids = archive.snapshot_ids("good")
        assert len(ids) == len(ledger["good"])
        for snapshot_id, snapshot in zip(ids, ledger["good"], strict=True):
            assert_same(archive.load_dict("good", at=snapshot_id), outcome(snapshot, "good")[1])
        for run_id, (expected, mutations) in ledger["stored"].items():
            check_stored(archive.load_dict(run_id), expected, mutations)
    print(
        f"\nwriter fuzz: {len(ledger['stored']) + ledger['refused']} hostile snapshots, "
        f"{len(ledger['stored'])} stored exactly, {ledger['refused']} refused by path; "
        f"{len(ledger['good'])} good ones stored around them"
    )


@FUZZ
@given(data=st.data())
def test_the_writer_stores_hostile_snapshots_exactly_or_refuses_them_by_path(fuzzed_writer, data):
    url, writer, ledger = fuzzed_writer
    base = data.draw(BASES, label="base")
    mutated, mutations = data.draw(mutate(base, PY_HOSTILE), label="mutated")
    run_id = f"hostile-{uuid.uuid4().hex[:10]}"
    verdict, detail = outcome(mutated, run_id)

    before = writer.stats
    assert writer.write(mutated, run_id=run_id) is True  # never raises, never refuses here
    follower = good(len(ledger["good"]))
    writer.write(follower, run_id="good")
    ledger["good"].append(follower)
    assert writer.flush(timeout=60)
    after = writer.stats
    assert after.alive
    if verdict == "refused":
        assert_names_a_mutation(detail, mutations)
        assert after.failed == before.failed + 1
        assert after.last_error == f"snapshot refused: {detail}"
        assert after.written == before.written + 1
        ledger["refused"] += 1
    else:
        assert (after.failed, after.written) == (before.failed, before.written + 2), (
            after.last_error
        )
        with Archive(url) as archive:
            check_stored(archive.load_dict(run_id), detail, mutations)
        ledger["stored"][run_id] = (detail, mutations)


@pytest.mark.parametrize(
    "thing", ["text", b"bytes", 42, 1.5, [1, 2], ("a",)], ids=lambda t: type(t).__name__
)
def test_the_writer_refuses_what_is_not_a_snapshot_and_goes_on(sqlite_url, thing):
    with SnapshotWriter(sqlite_url, run_id="r") as writer:
        writer.write(thing)
        writer.write(good(0))
        writer.flush(timeout=60)
        stats = writer.stats
        assert (stats.failed, stats.written, stats.alive) == (1, 1, True)
        assert stats.last_error.startswith("snapshot refused: ")


def test_text_too_long_to_index_is_refused_by_path_and_the_writer_goes_on(db_url):
    # On PostgreSQL this once failed in the database as an OperationalError, which the writer
    # took for an outage and retried for ever, every later snapshot stuck behind it.
    poisoned = good(0) | {"task_name": INCOMPRESSIBLE}
    with SnapshotWriter(db_url, run_id="r") as writer:
        writer.write(poisoned)
        writer.write(good(1))
        assert writer.flush(timeout=60)
        stats = writer.stats
    assert (stats.failed, stats.written, stats.retried) == (1, 1, 0)
    assert stats.last_error.startswith("snapshot refused: task_name: text of 1000000 bytes")
    with pytest.raises(SnapshotInvalid, match="too long to index"), Archive(db_url) as archive:
        archive.save(poisoned)


def test_permanent_database_errors_are_not_retried():
    psycopg = pytest.importorskip("psycopg")

    def wrapped(error):
        return sa.exc.OperationalError("INSERT ...", {}, error)

    assert not is_transient(wrapped(psycopg.errors.ProgramLimitExceeded("index row too big")))
    assert not is_transient(sa.exc.DataError("x", {}, psycopg.errors.NumericValueOutOfRange()))
    assert is_transient(wrapped(psycopg.errors.AdminShutdown("terminating connection")))
    assert is_transient(wrapped(psycopg.errors.DeadlockDetected("deadlock")))
    assert is_transient(wrapped(psycopg.errors.TooManyConnections("too many")))
    assert is_transient(wrapped(psycopg.OperationalError("connection failed")))  # no SQLSTATE


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-13-45"]
)
def test_captured_at_that_is_no_utc_time_is_stored(db_url, moment):
    # A time that leaves datetime's range once moved to UTC once failed the whole snapshot.
    snapshot = good(0) | {"captured_at": moment}
    with Archive(db_url) as archive:
        archive.save(snapshot, run_id="edge")
        assert_same(archive.load_dict("edge"), outcome(snapshot, "edge")[1])


# --------------------------------------------------------------------------------------------
# The importer
# --------------------------------------------------------------------------------------------


def import_outcome(snapshot: dict):
    """:func:`outcome` for a dump line imported without --run-id: it also needs a run_id."""
    verdict, detail = outcome(snapshot, None)
    if verdict == "stored" and not detail["run_id"]:
        return "refused", SnapshotInvalid(
            "run_id", "snapshot has no run_id: pass --run-id to import it"
        )
    return verdict, detail


@settings(FUZZ, max_examples=15)
@given(data=st.data())
def test_the_importer_stores_hostile_lines_exactly_or_skips_them_by_path(
    db_url, tmp_path_factory, data
):
    base = data.draw(st.sampled_from(REAL), label="base")
    mutated, mutations = data.draw(mutate(base, JSON_HOSTILE), label="mutated")
    run_id = f"hostile-{uuid.uuid4().hex[:10]}"
    # Each example's line is its own run (the archive is shared by all examples).
    if not any(m.path[:1] == ["run_id"] for m in mutations):
        mutated["run_id"] = run_id
    if not any(m.path[:1] == ["captured_at"] for m in mutations):
        mutated["captured_at"] = f"{mutated['captured_at']}#{run_id}"
    line = json.dumps(mutated)
    parsed = json.loads(line)
    verdict, detail = import_outcome(parsed)
    first, last = good(1), good(2)
    first["run_id"] = last["run_id"] = f"good-{run_id}"
    path = tmp_path_factory.mktemp("import") / "dump.jsonl"
    path.write_text("\n".join([json.dumps(first), line, json.dumps(last)]) + "\n")

    result = CliRunner().invoke(main, ["import", str(path), "--db", db_url])
    # A refused line makes the import fail, after storing the good ones.
    assert result.exit_code == (1 if verdict == "refused" else 0), result.output
    with Archive(db_url) as archive:
        assert len(archive.snapshot_ids(f"good-{run_id}")) == 2
        if verdict == "refused":
            assert_names_a_mutation(detail, mutations)
            assert f"line 2: skipped: {detail}" in result.stderr
            assert "1 refused" in result.stdout
        else:
            assert "0 refused" in result.stdout, result.stderr
            stored_as = parsed["run_id"]
            check_stored(archive.load_dict(stored_as), detail, mutations)


# --------------------------------------------------------------------------------------------
# Gaps this suite found, fixed: each stays as a regression test
# --------------------------------------------------------------------------------------------


def import_lines(db_url, tmp_path, lines: list[str]):
    path = tmp_path / "dump.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return CliRunner().invoke(main, ["import", str(path), "--db", db_url])


def test_the_importer_skips_a_line_without_run_id(sqlite_url, tmp_path):
    nameless = good(1) | {"run_id": ""}
    result = import_lines(sqlite_url, tmp_path, [json.dumps(good(0)), json.dumps(nameless)])
    assert result.exit_code == 1 and "line 2: skipped: run_id" in result.stderr


def test_the_importer_skips_a_line_nested_deeper_than_json_can_parse(sqlite_url, tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    result = import_lines(sqlite_url, tmp_path, [json.dumps(good(0)), deep])
    assert result.exit_code == 1 and "line 2: skipped" in result.stderr


def test_the_importer_skips_a_line_with_text_too_long_to_index(sqlite_url, tmp_path):
    long_task = good(1) | {"task_name": "t" * (MAX_INDEXED_TEXT + 1)}
    result = import_lines(sqlite_url, tmp_path, [json.dumps(good(0)), json.dumps(long_task)])
    assert result.exit_code == 1 and "line 2: skipped: task_name" in result.stderr


def test_free_keys_that_collide_once_made_text_are_refused():
    snapshot = good(0) | {"zz_unknown": {1: "a", "1": "b"}}
    with pytest.raises(SnapshotInvalid, match="zz_unknown"):
        codec.normalize(snapshot)


def test_env_keys_that_collide_once_made_integers_are_refused():
    snapshot = good(0)
    snapshot["envs"][2] = copy.deepcopy(snapshot["envs"]["2"]) | {"host_accuracy": 1.0}
    with pytest.raises(SnapshotInvalid, match="envs"):
        codec.normalize(snapshot)
