"""The archive's contract: what is saved loads back exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from conftest import fixture_snapshot_lines
from helpers import assert_keeps, assert_same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import snapshots

from sanctum_store import (
    Archive,
    RunNotFound,
    SnapshotInvalid,
    SnapshotNotFound,
    codec,
    demo,
    schema,
)
from sanctum_store.models import Base

RUN = "run-default-42"


def expected(snapshot) -> dict:
    """asdict of the input normalized through the schema."""
    return dataclasses.asdict(codec.to_schema(codec.normalize(snapshot)))


@pytest.fixture
def archive(db_url):
    with Archive(db_url) as a:
        yield a


@pytest.fixture
def fixture_archive(archive):
    lines = fixture_snapshot_lines()
    ids = [archive.save(json.loads(line)) for line in lines]
    return archive, lines, ids


def test_every_real_snapshot_round_trips_exactly(fixture_archive):
    archive, lines, ids = fixture_archive
    assert archive.snapshot_ids(RUN) == ids
    for line, snapshot_id in zip(lines, ids, strict=True):
        raw = json.loads(line)
        loaded = archive.load(RUN, at=snapshot_id)
        assert isinstance(loaded, schema.SanctumSnapshot)
        assert_same(dataclasses.asdict(loaded), expected(raw))
        # load_dict gives back the real snapshot itself: every field it had, unknown ones too.
        as_json = archive.load_dict(RUN, at=snapshot_id)
        assert_keeps(as_json, raw)


def test_unknown_fields_of_real_snapshots_come_back(fixture_archive):
    archive, lines, ids = fixture_archive
    raw = json.loads(lines[-1])
    as_json = archive.load_dict(RUN, at=ids[-1])
    assert as_json["reward_mode"] == raw["reward_mode"]  # top level
    assert as_json["rewards"]["escrow_credit_prev"] == raw["rewards"]["escrow_credit_prev"]
    assert as_json["tamiyo"]["op_valid_mask"] == raw["tamiyo"]["op_valid_mask"]
    assert all(math.isnan(q) for q in as_json["tamiyo"]["op_q_values"])
    assert (
        as_json["observation_stats"]["near_clip_pct"] == raw["observation_stats"]["near_clip_pct"]
    )
    decision = as_json["tamiyo"]["recent_decisions"][0]
    assert decision["action_success"] == raw["tamiyo"]["recent_decisions"][0]["action_success"]
    loaded = archive.load(RUN, at=ids[-1])
    assert loaded.tamiyo.op_valid_mask == raw["tamiyo"]["op_valid_mask"]
    assert loaded.tamiyo._previous_risk == raw["tamiyo"]["_previous_risk"]
    assert dataclasses.asdict(loaded.tamiyo)["_previous_risk"] == raw["tamiyo"]["_previous_risk"]


def test_load_latest_and_by_time(fixture_archive):
    archive, lines, _ = fixture_archive
    assert archive.load(RUN).captured_at == json.loads(lines[-1])["captured_at"]
    middle = json.loads(lines[9])
    moment = datetime.fromisoformat(middle["captured_at"])
    assert archive.load(RUN, at=moment).captured_at == middle["captured_at"]
    later = moment + timedelta(microseconds=1)
    assert archive.load(RUN, at=later).captured_at == middle["captured_at"]
    # The same instant in another time zone names the same snapshot.
    elsewhere = moment.astimezone(timezone(timedelta(hours=-7)))
    assert archive.load(RUN, at=elsewhere).captured_at == middle["captured_at"]
    with pytest.raises(SnapshotNotFound):
        archive.load(RUN, at=moment - timedelta(days=1))
    with pytest.raises(SnapshotNotFound):
        archive.load(RUN, at=10**9)
    with pytest.raises(RunNotFound):
        archive.load("no-such-run")


def test_a_snapshot_without_captured_at_is_identified_by_its_content(archive):
    first = json.loads(fixture_snapshot_lines()[0]) | {"captured_at": ""}
    second = json.loads(fixture_snapshot_lines()[1]) | {"captured_at": ""}
    ids = [archive.save(s, run_id="anon") for s in (first, second, first)]
    assert ids[0] == ids[2] != ids[1]
    assert archive.runs().loc[0, "snapshot_count"] == 2


def test_saving_the_same_moment_twice_stores_it_once(fixture_archive):
    archive, lines, ids = fixture_archive
    again = [archive.save(json.loads(line)) for line in lines]
    assert again == ids
    runs = archive.runs()
    assert runs.loc[runs.run_id == RUN, "snapshot_count"].item() == len(lines)


def test_two_archives_taking_turns_on_one_run_store_everything_exactly(db_url):
    """Each archive remembers what it stored of a run; the other's snapshots in between make
    that stale (sequences, value records, decisions): a collision is retried looking
    everything up, and every snapshot comes back as saved."""
    lines = [json.loads(line) for line in fixture_snapshot_lines()[:8]]
    with Archive(db_url) as first, Archive(db_url) as second:
        ids = [(first, second)[i % 2].save(snapshot) for i, snapshot in enumerate(lines)]
        assert ids == first.snapshot_ids(RUN)
        for snapshot_id, snapshot in zip(ids, lines, strict=True):
            assert_same(dataclasses.asdict(second.load(RUN, at=snapshot_id)), expected(snapshot))
            assert_keeps(first.load_dict(RUN, at=snapshot_id), snapshot)
        assert first.runs().loc[0, "snapshot_count"] == len(lines)


def test_runs_listing_and_run_id_override(fixture_archive):
    archive, lines, _ = fixture_archive
    other = archive.save(json.loads(lines[0]), run_id="copy")
    runs = archive.runs().set_index("run_id")
    assert set(runs.index) == {RUN, "copy"}
    assert runs.loc[RUN, "reward_mode"] == "shaped"
    assert runs.loc[RUN, "task_name"] == "cifar_baseline"
    assert runs.loc[RUN, "status"] == "running"
    assert runs.loc["copy", "snapshot_count"] == 1
    assert archive.snapshot_ids("copy") == [other]
    # The snapshot keeps its own run_id field; the archive files it under the one given.
    assert archive.load("copy").run_id == RUN


def test_delete_run_cascades_to_every_table(fixture_archive):
    archive, lines, _ = fixture_archive
    archive.save(json.loads(lines[0]), run_id="keep")
    archive.delete_run(RUN)
    with archive.engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT id FROM runs")).scalars().all()
        assert len(runs) == 1
        for table in Base.metadata.sorted_tables:
            if "run_pk" in table.c:
                left = conn.execute(
                    sa.select(sa.func.count()).select_from(table).where(table.c.run_pk != runs[0])
                ).scalar()
                assert left == 0, table.name
    assert_same(dataclasses.asdict(archive.load("keep")), expected(json.loads(lines[0])))
    with pytest.raises(RunNotFound):
        archive.delete_run(RUN)


# --------------------------------------------------------------------------------------------
# Arbitrary snapshots
# --------------------------------------------------------------------------------------------

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    # One archive for all examples is intended: each example writes its own run.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)


@PROPERTY
@given(data=st.data())
def test_arbitrary_snapshots_round_trip(archive, data):
    run_id = f"prop-{uuid.uuid4().hex[:8]}"
    # Several snapshots of one run: identities (decision_id, record_id, events) collide across
    # them with different contents, which the archive stores once plus per-snapshot overlays.
    inputs = data.draw(st.lists(snapshots(), min_size=1, max_size=3))
    for i, snapshot in enumerate(inputs):
        # captured_at identifies a snapshot within its run: keep the drawn text, make it unique.
        snapshot["captured_at"] += f"#{i}"
    ids = [archive.save(snapshot, run_id=run_id) for snapshot in inputs]
    for snapshot, snapshot_id in zip(inputs, ids, strict=True):
        assert_same(dataclasses.asdict(archive.load(run_id, at=snapshot_id)), expected(snapshot))
        assert_same(
            archive.load_dict(run_id, at=snapshot_id), codec.to_json(codec.normalize(snapshot))
        )


# --------------------------------------------------------------------------------------------
# Foreign objects: the training framework's own classes, which we never import
# --------------------------------------------------------------------------------------------


class ForeignSeed:
    def __init__(self, slot_id):
        self.slot_id = slot_id
        self.stage = "BLENDING"
        self.blueprint_id = "conv_light"
        self.alpha = 0.25
        self.lineage = ["r0c0", 3]  # unknown here


class ForeignEnv:
    def __init__(self, env_id):
        self.env_id = env_id
        self.host_accuracy = 61.5
        self.seeds = {"r0c0": ForeignSeed("r0c0")}
        self.reward_history = deque([0.1, float("nan"), -0.0], maxlen=50)
        self.last_update = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
        self.gpu_affinity = 1  # unknown here


@dataclasses.dataclass
class ForeignTamiyo:
    entropy: float = 1.2
    recurrent_state_norm: float = float("inf")  # unknown here
    recent_decisions: list = dataclasses.field(default_factory=list)


class ForeignSnapshot:
    def __init__(self):
        self.run_id = "foreign-1"
        self.envs = {0: ForeignEnv(0), 7: ForeignEnv(7)}
        self.tamiyo = ForeignTamiyo()
        self.captured_at = "2026-11-26T03:00:00+00:00"
        self.experiment_tags = {"owner": "ada", "sweep": [1, 2]}  # unknown here


def test_duck_typed_foreign_snapshot_with_extra_fields(archive):
    foreign = ForeignSnapshot()
    archive.save(foreign)
    loaded = archive.load("foreign-1")
    assert_same(dataclasses.asdict(loaded), expected(foreign))
    assert set(loaded.envs) == {0, 7}
    assert loaded.envs[7].seeds["r0c0"].alpha == 0.25
    assert loaded.envs[0].last_update == datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    assert loaded.experiment_tags == {"owner": "ada", "sweep": [1, 2]}
    assert loaded.tamiyo.recurrent_state_norm == float("inf")
    as_json = archive.load_dict("foreign-1")
    assert as_json["envs"]["7"]["gpu_affinity"] == 1
    assert as_json["envs"]["0"]["seeds"]["r0c0"]["lineage"] == ["r0c0", 3]
    assert as_json["tamiyo"]["recurrent_state_norm"] == float("inf")
    assert as_json["experiment_tags"] == {"owner": "ada", "sweep": [1, 2]}
    # Missing fields took the schema's defaults.
    assert loaded.envs[0].best_reward == float("-inf")
    assert math.isnan(loaded.tamiyo.advantage_skewness)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_bad_snapshot_names_the_field_and_stores_nothing(fixture_archive):
    archive, lines, ids = fixture_archive
    before = archive.load_dict(RUN)
    bad = json.loads(lines[3])
    bad["captured_at"] = "2030-01-01T00:00:00+00:00"
    bad["envs"]["3"]["host_accuracy"] = "abc"
    with pytest.raises(SnapshotInvalid) as info:
        archive.save(bad)
    assert str(info.value) == "envs['3'].host_accuracy: expected float, got 'abc'"
    assert info.value.path == "envs['3'].host_accuracy"
    assert archive.snapshot_ids(RUN) == ids
    assert_same(archive.load_dict(RUN), before)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["tamiyo"]["recent_decisions"][0].pop("timestamp"),
            "tamiyo.recent_decisions[0].timestamp: required field is missing",
        ),
        (lambda d: d["envs"].update({"x": {"env_id": 1}}), "envs['x']: key 'x' is not an integer"),
        (
            lambda d: d["best_runs"][0].update(epoch=1.5),
            "best_runs[0].epoch: expected int, got 1.5",
        ),
        (
            lambda d: d["event_log"][2].update(message="a\x00b"),
            "event_log[2].message: text contains a NUL character, which PostgreSQL cannot store",
        ),
        (
            lambda d: d.update(current_batch=2**64),
            "current_batch: integer 18446744073709551616 is outside the 64-bit range the archive stores",
        ),
        (
            lambda d: d["envs"]["0"].update(action_history=["WAIT", "a\x00"]),
            "envs['0'].action_history[1]: text contains a NUL character, which PostgreSQL "
            "cannot store",
        ),
        (
            lambda d: d["tamiyo"].update(action_counts={"WAIT": 2**63}),
            "tamiyo.action_counts['WAIT']: integer 9223372036854775808 is outside the 64-bit "
            "range the archive stores",
        ),
        (
            lambda d: d["event_log"][1]["metadata"].update(slot="r0\x00"),
            "event_log[1].metadata['slot']: text contains a NUL character, which PostgreSQL "
            "cannot store",
        ),
        (
            lambda d: d.update(start_time="yesterday"),
            "start_time: expected an ISO-8601 datetime, got 'yesterday'",
        ),
        (
            lambda d: d["tamiyo"].update(entropy_history={"a": 1}),
            "tamiyo.entropy_history: expected a list, got a dict",
        ),
    ],
)
def test_bad_input_messages(archive, mutate, message):
    snapshot = json.loads(fixture_snapshot_lines()[-1])
    mutate(snapshot)
    with pytest.raises(SnapshotInvalid) as info:
        archive.save(snapshot)
    assert str(info.value) == message
    assert archive.runs().empty


def test_compiled_converters_take_real_and_demo_snapshots_as_given(monkeypatch):
    """The compiled converters (codec._compile) build real and demo snapshots themselves,
    never falling back to the field-by-field way, and give what it gives."""
    info = codec.CLASSES[schema.SanctumSnapshot]
    snapshots = [json.loads(line) for line in fixture_snapshot_lines()]
    snapshots += demo.snapshot_stream(4, 3, 3, seed=3)
    precise = [codec._convert_any_object(info, snapshot) for snapshot in snapshots]
    fell_back = []
    monkeypatch.setattr(codec, "_convert_any_object", lambda i, o: fell_back.append(i.cls))
    for snapshot, expected_tree in zip(snapshots, precise, strict=True):
        assert_same(codec.normalize(snapshot), expected_tree)
    assert fell_back == []


class _Mapping(dict):
    """A dict the fast paths do not take: free_value reads it the general way."""


@pytest.mark.parametrize(
    "value",
    [
        {"event_id": "x", "n": 1, "f": 1.5, "b": True, "none": None},
        {1: 2, None: "x", 2.5: False},  # keys made text
        {"é": "ü", "k": "v"},  # not ASCII
        {"a": [1, {"b": -0.0}], "c": {"d": float("nan")}},
        {},
    ],
)
def test_free_values_are_the_same_by_the_fast_way_and_the_general_one(value):
    fast, general = codec.free_value(value), codec.free_value(_Mapping(value))
    assert repr(fast) == repr(general)
    assert [type(k) for k in fast] == [type(k) for k in general]


def test_snapshot_without_run_id_needs_one(archive):
    with pytest.raises(SnapshotInvalid, match="run_id"):
        archive.save(schema.SanctumSnapshot())
    snapshot_id = archive.save(schema.SanctumSnapshot(), run_id="given")
    assert archive.snapshot_ids("given") == [snapshot_id]


def test_a_reader_never_blocks_a_writer(sqlite_url):
    lines = fixture_snapshot_lines()
    with Archive(sqlite_url) as archive:
        archive.save(json.loads(lines[0]))
        with archive.engine.connect() as reader:
            count = sa.text("SELECT count(*) FROM snapshots")
            assert reader.execute(count).scalar() == 1  # a read transaction is now open
            archive.save(json.loads(lines[1]))  # would wait on a lock held by the reader
            assert reader.execute(count).scalar() == 1  # the reader keeps its snapshot
        with archive.engine.connect() as fresh:
            assert fresh.execute(count).scalar() == 2


@pytest.mark.parametrize("junk", [None, object(), {"a", "b"}, 3])
def test_something_that_is_not_a_snapshot_is_refused(archive, junk):
    with pytest.raises(SnapshotInvalid, match="expected SanctumSnapshot"):
        archive.save(junk, run_id="junk")
    snapshot = json.loads(fixture_snapshot_lines()[-1])
    snapshot["envs"]["1"] = junk
    with pytest.raises(SnapshotInvalid, match=r"envs\['1'\]: expected EnvState"):
        archive.save(snapshot)
    assert archive.runs().empty


def test_negative_zero_keeps_its_sign_everywhere(archive):
    snapshot = json.loads(fixture_snapshot_lines()[-1])
    snapshot["run_config"]["entropy_coef"] = -0.0  # also copied onto the runs row
    snapshot["tamiyo"]["entropy_history"] = [-0.0, 1.0]
    snapshot["envs"]["0"]["reward_components"]["compute_rent"] = -0.0
    snapshot["tamiyo"]["recent_decisions"][0]["alternatives"][0][1] = -0.0
    archive.save(snapshot)
    assert_same(dataclasses.asdict(archive.load(RUN)), expected(snapshot))


def test_event_ids_are_kept_in_16_bytes_and_every_other_form_as_given(archive):
    snapshot = json.loads(fixture_snapshot_lines()[-1])
    canonical = str(uuid.uuid4())
    forms = [
        {"event_id": canonical, "slot_id": "r0c1"},  # esper's way: packed
        {"event_id": canonical.upper()},  # not canonical text
        {"slot_id": "r0c1", "event_id": canonical},  # not the first key
        {"event_id": canonical.replace("-", "")},
        {"event_id": 7},
        {"event_id": "not-a-uuid-but-thirty-six-characters"},
        {},
    ]
    for event, metadata in zip(snapshot["event_log"], forms, strict=False):
        event["metadata"] = metadata
    archive.save(snapshot)
    assert_same(dataclasses.asdict(archive.load(RUN)), expected(snapshot))
    with archive.engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT event_uuid, metadata FROM events ORDER BY seq LIMIT 7")
        ).all()
    packed = [None if u is None else uuid.UUID(bytes=bytes(u)) for u, _ in stored]
    assert packed == [uuid.UUID(canonical)] + [None] * 6
    assert canonical not in str(stored[0][1])


# numpy's scalars, under both numpy generations' names (numpy 2 calls its boolean numpy.bool).
NUMPY_SCALARS = [
    ("envs", "host_accuracy", "float32", 71.5),
    ("envs", "host_accuracy", "float64", 71.25),
    ("envs", "current_epoch", "int64", 3),
    ("envs", "current_epoch", "int32", 4),
    ("envs", "current_epoch", "uint8", 5),
    ("envs", "rolled_back", "bool_", True),
    ("envs", "rolled_back", "bool", False),
    ("tamiyo", "entropy", "float16", 0.5),
]


@pytest.mark.parametrize(("where", "field", "kind", "value"), NUMPY_SCALARS)
def test_numpy_scalars_are_taken_as_the_plain_type(archive, where, field, kind, value):
    np = pytest.importorskip("numpy")
    if not hasattr(np, kind):
        pytest.skip(f"this numpy has no numpy.{kind}")
    snapshot = json.loads(fixture_snapshot_lines()[-1])
    target = snapshot["envs"]["0"] if where == "envs" else snapshot[where]
    target[field] = getattr(np, kind)(value)
    target["numpy_extra"] = [getattr(np, kind)(value)]  # an unknown field holding one
    archive.save(snapshot)
    loaded = archive.load_dict(RUN)
    stored = (loaded["envs"]["0"] if where == "envs" else loaded[where])[field]
    assert stored == value and type(stored) is type(value)
    kept = (loaded["envs"]["0"] if where == "envs" else loaded[where])["numpy_extra"][0]
    assert kept == value


class _Sensor:
    """An env of the caller's own whose code fails while the archive reads it."""

    def __init__(self, fields: dict, failing: str):
        self.__dict__.update({k: v for k, v in fields.items() if k != failing})
        self._failing = failing

    def __getattr__(self, name):
        if name == self.__dict__.get("_failing"):
            raise RuntimeError("sensor offline")
        raise AttributeError(name)


def test_an_exception_from_the_callers_own_object_refuses_the_snapshot_at_its_field(archive):
    snapshot = json.loads(fixture_snapshot_lines()[-1])
    snapshot["envs"]["2"] = _Sensor(snapshot["envs"]["2"], "host_loss")
    with pytest.raises(SnapshotInvalid) as info:
        archive.save(snapshot)
    assert str(info.value) == (
        "envs['2'].host_loss: reading it raised RuntimeError: sensor offline"
    )
    snapshot = json.loads(fixture_snapshot_lines()[-1])

    class Closed(list):
        def __iter__(self):
            raise OSError("stream closed")

    snapshot["tamiyo"]["entropy_history"] = Closed([0.5])
    with pytest.raises(
        SnapshotInvalid, match=r"^tamiyo.entropy_history: reading it raised OSError"
    ):
        archive.save(snapshot)
    assert archive.runs().empty
