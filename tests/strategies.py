"""Hypothesis strategies for arbitrary Sanctum snapshots, derived from the schema itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from sanctum_store import codec, schema
from sanctum_store.labels import MAX_INDEXED_TEXT

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
HUGE_TEXT = st.sampled_from(["", "x" * 100_000, "ünïcødé ✓ 🧬 " * 1_000])
ANY_TEXT = st.one_of(TEXT, TEXT, TEXT, HUGE_TEXT)
INTS = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
DATETIMES = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30))]),
)
JSON = st.recursive(
    st.none() | st.booleans() | INTS | FLOATS | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
# Small pools make identities collide across the snapshots of one run (decisions and best runs
# completed or changed later, events repeated), which is what the archive must get right.
DECISION_IDS = st.sampled_from(["", "d1", "d2", "d3"])
RECORD_IDS = st.sampled_from(["", "r1", "r2"])

_SCALARS = {
    "int": INTS,
    "float": FLOATS,
    "str": ANY_TEXT,
    "bool": st.booleans(),
    "datetime": DATETIMES,
}
# Text the archive indexes (identities, labels) is at most MAX_INDEXED_TEXT bytes; longer is
# refused (tests/test_hostile.py). Here: ordinary text or close to the longest accepted.
INDEXED_TEXT = st.one_of(TEXT, TEXT, TEXT, st.just("ü" * (MAX_INDEXED_TEXT // 2 - 8)))
_OVERRIDES = {
    (schema.DecisionSnapshot, "decision_id"): DECISION_IDS,
    (schema.BestRunRecord, "record_id"): RECORD_IDS,
    **{
        (cls, name): INDEXED_TEXT
        for cls, name in (
            (schema.SanctumSnapshot, "run_id"),
            (schema.SanctumSnapshot, "captured_at"),
            (schema.SanctumSnapshot, "task_name"),
            (schema.TamiyoState, "group_id"),
            (schema.EnvState, "reward_mode"),
            (schema.BestRunRecord, "reward_mode"),
            (schema.EventLogEntry, "event_type"),
        )
    },
}


def value(spec: codec.Spec, depth: int = 0):
    if spec.kind in _SCALARS:
        base = _SCALARS[spec.kind]
    elif spec.kind == "object":
        base = obj(spec.cls, depth + 1)
    elif spec.kind in ("list", "deque"):
        base = st.lists(value(spec.item, depth + 1), max_size=4 if depth < 2 else 1)
    elif spec.kind == "tuple":
        base = st.lists(value(spec.item, depth + 1), max_size=3).map(tuple)
    elif spec.kind == "pair":
        base = st.tuples(*(value(s, depth + 1) for s in spec.items))
    elif spec.kind == "dict":
        keys = st.integers(-5, 2**40) if spec.key.kind == "int" else TEXT
        base = st.dictionaries(keys, value(spec.item, depth + 1), max_size=3 if depth < 2 else 1)
    elif spec.kind == "free":
        base = JSON
    else:
        raise AssertionError(spec.kind)
    return st.none() | base if spec.optional else base


def obj(cls: type, depth: int = 0):
    """A dict in tree form for a schema class, sometimes with unknown extra fields."""
    fields = {}
    for f in codec.class_info(cls).fields:
        override = _OVERRIDES.get((cls, f.name))
        fields[f.name] = override if override is not None else value(f.spec, depth)
    extras = st.dictionaries(st.sampled_from(["zz_extra", "zz_note", "_private"]), JSON, max_size=2)
    return st.tuples(st.fixed_dictionaries(fields), extras).map(lambda pair: {**pair[0], **pair[1]})


def snapshots():
    """Arbitrary snapshots in dict form (int env keys, datetime objects, tuples)."""
    return obj(schema.SanctumSnapshot)
