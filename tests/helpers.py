"""Assertions shared by the tests."""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime


def differences(a, b, path: str = "") -> list[str]:
    """Where two values differ, strictly: same types, NaN equals NaN, the sign of zero counts,
    datetimes keep their UTC offset; dict order does not matter (dicts are unordered)."""
    if type(a) is not type(b):
        return [f"{path}: {type(a).__name__} {a!r:.60} != {type(b).__name__} {b!r:.60}"]
    if isinstance(a, float):
        same = (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
        return [] if same else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, datetime):
        same = (
            a == b and a.utcoffset() == b.utcoffset() and (a.tzinfo is None) == (b.tzinfo is None)
        )
        return [] if same else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict):
        out = [f"{path}: key {k!r} only on one side" for k in set(a) ^ set(b)]
        for k in a:
            if k in b:
                out += differences(a[k], b[k], f"{path}[{k!r}]")
        return out
    if isinstance(a, (list, tuple, deque)):
        if isinstance(a, deque) and a.maxlen != b.maxlen:
            return [f"{path}: maxlen {a.maxlen} != {b.maxlen}"]
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += differences(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: {a!r:.60} != {b!r:.60}"]


def assert_same(a, b) -> None:
    diffs = differences(a, b)
    assert not diffs, "\n".join(diffs[:20])


def assert_keeps(actual, given, path: str = "") -> None:
    """Every value in ``given`` is in ``actual`` unchanged (``actual`` may add defaults)."""
    if isinstance(given, dict) and isinstance(actual, dict):
        for key, value in given.items():
            assert key in actual, f"{path}[{key!r}] was lost"
            assert_keeps(actual[key], value, f"{path}[{key!r}]")
    elif isinstance(given, list) and isinstance(actual, list) and len(given) == len(actual):
        for i, (x, y) in enumerate(zip(actual, given, strict=True)):
            assert_keeps(x, y, f"{path}[{i}]")
    else:
        diffs = differences(actual, given, path)
        assert not diffs, "\n".join(diffs[:20])


REFUSED = 1e305  # a value the database below refuses (a trigger stands in for a backend limit)


def refuse_a_value(archive) -> None:
    """Make the archive's database refuse an env whose host accuracy is :data:`REFUSED`: on
    PostgreSQL with a data exception (SQLSTATE 22003, as an overflow), on SQLite with an abort."""
    with archive.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'value out of range: overflow' USING ERRCODE = '22003'; "
                "END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON env_states FOR EACH ROW "
                f"WHEN (NEW.host_accuracy = {REFUSED!r}) EXECUTE FUNCTION refuse()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON env_states "
                f"WHEN NEW.host_accuracy = {REFUSED!r} "
                "BEGIN SELECT RAISE(ABORT, 'value refused'); END"
            )
