"""What the archive keeps derived from its snapshots (sanctum_store.summary) is what deriving it
afresh gives: each run's outcomes on ``runs``, its seeds in ``seed_lives`` / ``seed_visits``, as
runs grow, when snapshots arrive out of order or twice, when the cache cannot be written, and
gone with a deleted run (SQLite and PostgreSQL).

The reference answers here are computed in Python straight from the snapshots that were saved,
following the definitions in the sanctum_store.queries docstring.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sanctum_store import Archive, codec, queries, summary
from sanctum_store.archive import WriteItem
from sanctum_store.models import Base

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STAGES = ("GERMINATED", "TRAINING", "BLENDING", "HOLDING", "FOSSILIZED")
PRUNED = ("PRUNED", "EMBARGOED", "RESETTING")
SEED_TABLES = ("seed_lives", "seed_visits", "seed_batches")
NAN = float("nan")


@pytest.fixture
def archive(db_url):
    with Archive(db_url) as a:
        yield a


# ---------------------------------------------------------------------------------------------
# Snapshots, and what they say (the reference)
# ---------------------------------------------------------------------------------------------


def seed(stage, blueprint="conv", **fields):
    return {"stage": stage, "blueprint_id": blueprint, **fields}


def env(epoch, accuracy=50.0, best=None, *, reward=0.0, params=1000, fossilized=0, seeds=None):
    return {
        "current_epoch": epoch,
        "host_accuracy": accuracy,
        "best_accuracy": accuracy if best is None else best,
        "cumulative_reward": reward,
        "host_params": params,
        "fossilized_params": fossilized,
        "seeds": {slot: {"slot_id": slot, **s} for slot, s in (seeds or {}).items()},
    }


def snapshot(run, minute, batch, envs, *, records=(), fossilized=0, pruned=0):
    return {
        "run_id": run,
        "captured_at": (T0 + timedelta(minutes=minute)).isoformat(),
        "current_batch": batch,
        "max_epochs": 10,
        "envs": {i: {"env_id": i, **e} for i, e in enumerate(envs)},
        "best_runs": [
            {
                "record_id": record_id,
                "env_id": 0,
                "episode": 0,
                "peak_accuracy": peak,
                "final_accuracy": 0.0,
            }
            for record_id, peak in records
        ],
        "cumulative_fossilized": fossilized,
        "cumulative_pruned": pruned,
    }


def stored(saves: list[dict]) -> list[tuple]:
    """(time, order, snapshot with its defaults) of what the archive keeps: the first save of
    each moment and content (another content of the same moment is kept too, after it), in
    time order."""
    seen, out = set(), []
    for s in saves:
        tree = codec.normalize(s)
        key = (s["captured_at"], json.dumps(codec.to_json(tree), sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            out.append((datetime.fromisoformat(s["captured_at"]), len(out), tree))
    return sorted(out, key=lambda item: item[:2])


def _finite(values) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def _mean(values) -> float:
    values = _finite(values)
    return sum(values) / len(values) if values else NAN


def _trained(s: dict) -> list[dict]:
    return [e for e in s["envs"].values() if e["current_epoch"] > 0]


def expected_outcomes(saves: list[dict]) -> dict:
    """A run's outcomes, from the snapshots saved (in save order)."""
    kept = stored(saves)
    if not kept:
        return {}
    last = kept[-1][2]
    finals = [s for _, _, s in kept if _trained(s)]
    final = _trained(finals[-1]) if finals else []
    records = {}
    for _, _, s in sorted(kept, key=lambda item: item[1]):  # a record's row: its latest save
        records.update({r["record_id"]: r["peak_accuracy"] for r in s["best_runs"]})
    peaks = _finite(
        [e["best_accuracy"] for _, _, s in kept for e in s["envs"].values()]
        + list(records.values())
        + [e["host_accuracy"] for e in final]
    )
    growth = [
        (e["host_params"] + e["fossilized_params"]) / e["host_params"]
        if e["host_params"] > 0
        else 1.0
        for e in final
    ]
    return {
        "batches_done": last["current_batch"],
        "final_accuracy": _mean(e["host_accuracy"] for e in final),
        "peak_accuracy": max(peaks) if peaks else NAN,
        "mean_reward": _mean(e["cumulative_reward"] for e in final),
        "growth_ratio": _mean(growth),
        "fossilized": last["cumulative_fossilized"],
        "pruned": last["cumulative_pruned"],
    }


def _rank(stage: str) -> int | None:
    if stage in STAGES:
        return STAGES.index(stage) + 1
    return len(STAGES) + 1 if stage in PRUNED else None


def expected_seeds(saves: list[dict]) -> tuple[list[dict], list[tuple]]:
    """(one dict per seed, one (stage, rank, blueprint, slot, epochs) per stage visit left)."""
    kept = stored(saves)
    slots, until = defaultdict(list), {}
    for ts, order, s in kept:
        for key, e in s["envs"].items():
            where = (s["current_batch"], key)
            if e["current_epoch"] > 0:
                until[where] = max(until.get(where, ts), ts)
            for slot, state in e["seeds"].items():
                if state["stage"] != "DORMANT" and state["blueprint_id"] is not None:
                    slots[(*where, slot)].append((ts, order, state))
    seeds, visits = [], []
    for (batch, key, slot), observations in slots.items():
        lives: list[list] = []
        for ts, _, state in sorted(observations, key=lambda o: o[:2]):
            previous = lives[-1][-1][1] if lives else None
            rank, before = _rank(state["stage"]), previous and _rank(previous["stage"])
            if (
                previous is None
                or previous["blueprint_id"] != state["blueprint_id"]
                or (rank is not None and before is not None and rank < before)
            ):
                lives.append([])
            lives[-1].append((ts, state))
        for life in lives:
            states = [state for _, state in life]
            ranks = [_rank(s["stage"]) for s in states]
            pruned = [s for s, r in zip(states, ranks, strict=True) if r == len(STAGES) + 1]
            terminal = [
                s["epochs_total"]
                for s, r in zip(states, ranks, strict=True)
                if r is not None and r >= len(STAGES)
            ]
            alive = [r for r in ranks if r is not None and r <= len(STAGES)]
            fossilized = any(s["stage"] == "FOSSILIZED" for s in states)
            last_seen = life[-1][0]
            vanished = not fossilized and (batch, key) in until and last_seen < until[(batch, key)]
            seeds.append(
                {
                    "blueprint_id": states[0]["blueprint_id"],
                    "slot_key": slot,
                    "rank": max(alive) if alive else None,
                    "fossilized": int(fossilized),
                    "pruned_seen": int(bool(pruned)),
                    "pruned": int(bool(pruned) or vanished),
                    "epochs_total": max(terminal) if terminal else None,
                    "prune_reason": max(s["prune_reason"] for s in pruned) if pruned else None,
                    "auto_pruned": max(int(s["auto_pruned"]) for s in pruned) if pruned else None,
                }
            )
            for here, after in itertools.pairwise(states):
                if after["stage"] != here["stage"]:
                    visits.append(
                        (here["stage"], _rank(here["stage"]), here["blueprint_id"], slot,
                         here["epochs_in_stage"])
                    )  # fmt: skip
    return seeds, visits


def expected_answers(saves: list[dict]) -> dict[str, list[tuple]]:
    """The seed questions' answers (as sorted rows), from the snapshots saved."""
    seeds, visits = expected_seeds(saves)
    funnel = defaultdict(lambda: [0] * 6)
    for s in seeds:
        counts = funnel[s["blueprint_id"]]
        counts[0] += 1
        for i in (1, 2, 3):
            counts[i] += int(s["rank"] is not None and s["rank"] >= i + 1)
        counts[4] += s["fossilized"]
        counts[5] += s["pruned"]
    lifespans, reasons = defaultdict(int), defaultdict(int)
    for s in seeds:
        if (s["fossilized"] or s["pruned"]) and s["epochs_total"] is not None:
            outcome = "fossilized" if s["fossilized"] else "pruned"
            lifespans[(outcome, s["blueprint_id"], s["epochs_total"])] += 1
        if s["pruned_seen"]:
            reasons[(s["prune_reason"] or "", bool(s["auto_pruned"]))] += 1
    total = sum(reasons.values())
    stages = defaultdict(list)
    for stage, rank, _, _, epochs in visits:
        stages[(stage, rank)].append(epochs)
    return {
        "funnel": sorted((b, *counts) for b, counts in funnel.items()),
        "lifespans": sorted((*k, n) for k, n in lifespans.items()),
        "reasons": sorted((*k, n, n / total) for k, n in reasons.items()),
        "stages": sorted(
            (stage, len(e), sum(e) / len(e), min(e), max(e)) for (stage, _), e in stages.items()
        ),
    }


def answers(archive, run_id: str) -> dict[str, list[tuple]]:
    """The seed questions' answers for one run, from the archive."""
    funnel = queries.seed_funnel(archive, run_id=run_id)
    lifespans = queries.seed_lifespans(archive, run_id=run_id)
    reasons = queries.prune_reasons(archive, run_id=run_id)
    stages = queries.time_in_stage(archive, by=None, run_id=run_id)
    names = ["germinated", "training", "blending", "holding", "fossilized", "pruned"]
    return {
        "funnel": _rows(funnel, ["blueprint_id", *names]),
        "lifespans": _rows(lifespans, ["outcome", "blueprint_id", "epochs_total", "n"]),
        "reasons": _rows(reasons, ["prune_reason", "auto_pruned", "n", "share"]),
        "stages": _rows(stages, ["stage", "n", "mean_epochs", "min_epochs", "max_epochs"]),
    }


def _rows(df, columns) -> list[tuple]:
    return sorted(
        tuple(v.item() if hasattr(v, "item") else v for v in row)
        for row in df[columns].itertuples(index=False)
    )


OUTCOMES = (
    "batches_done",
    "final_accuracy",
    "peak_accuracy",
    "mean_reward",
    "growth_ratio",
    "fossilized",
    "pruned",
)


def assert_outcomes(archive, run_id: str, saves: list[dict]) -> None:
    got = queries.list_runs(archive, run_id=run_id).iloc[0]
    want = expected_outcomes(saves)
    for name in OUTCOMES:
        a, b = (NAN if pd.isna(got[name]) else float(got[name])), float(want[name])
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12), name


def assert_answers(archive, run_id: str, saves: list[dict]) -> None:
    got, want = answers(archive, run_id), expected_answers(saves)
    for name in want:
        assert len(got[name]) == len(want[name]), (name, got[name], want[name])
        for g, w in zip(got[name], want[name], strict=True):
            # Field by field: pytest.approx refuses sequences that mix text and numbers.
            assert len(g) == len(w), (name, g, w)
            for a, b in zip(g, w, strict=True):
                close = a == pytest.approx(b, rel=1e-12) if isinstance(b, float) else a == b
                assert close, (name, got[name], want[name])


def save(archive, snapshots: list[dict]) -> None:
    archive.save_batch([WriteItem.of(s) for s in snapshots])


def cached(archive, table: str, run_id: str) -> int:
    t = Base.metadata.tables[table]
    runs = Base.metadata.tables["runs"]
    query = (
        sa.select(sa.func.count())
        .select_from(t)
        .join(runs, runs.c.id == t.c.run_pk)
        .where(runs.c.run_id == run_id)
    )
    with archive.engine.connect() as conn:
        return conn.execute(query).scalar_one()


# ---------------------------------------------------------------------------------------------
# Run outcomes
# ---------------------------------------------------------------------------------------------


def test_outcomes_follow_a_run_through_late_and_repeated_snapshots(archive):
    run = "late"
    first = snapshot(run, 0, 0, [env(5, 50.0, reward=1.0), env(5, 60.0, 61.0, reward=3.0)])
    newer = snapshot(
        run, 2, 1, [env(3, 70.0, params=100, fossilized=50), env(0, 0.0)], fossilized=2, pruned=1
    )
    reset = snapshot(run, 3, 2, [env(0, 0.0), env(0, 0.0)], fossilized=2, pruned=2)
    late = snapshot(run, 1, 0, [env(9, 95.0, 99.0)], records=[("r1", 97.0)], fossilized=1)
    saves = []
    for batch in ([first], [newer, reset], [late], [first, late]):
        save(archive, batch)
        saves += batch
        assert_outcomes(archive, run, saves)
    # The final snapshot stays the newest trained one (not the late one, nor the reset after
    # it); the late one still counts for the peak; the latest snapshot gives the counters.
    listed = queries.list_runs(archive, run_id=run).iloc[0]
    assert listed["final_accuracy"] == 70.0
    assert listed["growth_ratio"] == 1.5
    assert listed["peak_accuracy"] == 99.0
    assert (listed["batches_done"], listed["fossilized"], listed["pruned"]) == (2, 2, 2)
    assert listed["snapshot_count"] == 4


def test_a_best_run_record_rewritten_lower_lowers_the_peak(archive):
    run = "record"
    saves = [
        snapshot(run, 0, 0, [env(1, 40.0)], records=[("r1", 90.0)]),
        snapshot(run, 1, 0, [env(2, 45.0)], records=[("r1", 60.0)]),
    ]
    for s in saves:
        save(archive, [s])
    assert queries.list_runs(archive, run_id=run).loc[0, "peak_accuracy"] == 60.0
    assert_outcomes(archive, run, saves)


def test_stored_outcomes_equal_a_recomputation_from_every_snapshot(archive):
    for i, run in enumerate(("a", "b", "c")):
        save(archive, [snapshot(run, 5 - m, m % 2, [env(m, 10.0 * m + i)]) for m in range(4)])
    runs = Base.metadata.tables["runs"]
    columns = [runs.c[name] for name in summary.OUTCOME_COLUMNS]
    query = sa.select(runs.c.run_id, *columns).order_by(runs.c.run_id)
    with archive.engine.connect() as conn:
        kept = conn.execute(query).all()
        conn.execute(sa.update(runs).values(dict.fromkeys(summary.OUTCOME_COLUMNS)))
        summary.refresh_run_outcomes(conn)
        assert conn.execute(query).all() == kept
        conn.rollback()


@pytest.mark.parametrize(
    ("accuracies", "expected"),
    [
        ([sys.float_info.max, sys.float_info.max], sys.float_info.max),
        ([1.7976931348623151e308], 1.7976931348623151e308),  # found by hypothesis
        ([sys.float_info.max, -sys.float_info.max, 1e300], 1e300 / 3),
        ([sys.float_info.max, math.inf], math.inf),
        ([1e305, 3e305, 5.0], (1e305 + 3e305 + 5.0) / 3),
        ([0.0, 5e-324], 0.0),  # "underflow" on PostgreSQL (5e-324 / 2), found by hypothesis
        ([0.25, 73.5, 1e-310], (0.25 + 73.5) / 3),
    ],
)
def test_the_mean_of_the_largest_doubles_is_a_double(archive, accuracies, expected):
    # PostgreSQL raised "out of range for type double precision" (the mean went through a
    # numeric of 15 digits, rounded past the largest double) and refused the whole batch.
    save(archive, [snapshot("edge", 0, 0, [env(1, a, reward=a) for a in accuracies])])
    listed = queries.list_runs(archive, run_id="edge").iloc[0]
    for name in ("final_accuracy", "mean_reward"):
        assert listed[name] == pytest.approx(expected, rel=1e-12, abs=1e-300), name


def test_values_past_double_arithmetic_are_stored_and_summarized(archive):
    # PostgreSQL's avg() of doubles fails past 1e154 (it sums squares), and the sum of two
    # BIGINTs past 2**63: neither may refuse a snapshot, or make its run's outcomes differ.
    run = "huge"
    envs = [
        env(1, 1e200, reward=2e250, params=2**62, fossilized=2**62),
        env(1, 3e200, reward=4e250, params=2**62, fossilized=2**62),
    ]
    saves = [snapshot(run, 0, 0, envs)]
    save(archive, saves)
    listed = queries.list_runs(archive, run_id=run).iloc[0]
    assert listed["final_accuracy"] == pytest.approx(2e200)
    assert listed["mean_reward"] == pytest.approx(3e250)
    assert listed["growth_ratio"] == 2.0
    assert_outcomes(archive, run, saves)


# ---------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------


def lifecycle(run: str) -> list[dict]:
    """Two batches of one env and two slots, snapshots in time order."""
    return [
        snapshot(run, 0, 0, [env(1, seeds={"a": seed("GERMINATED", epochs_in_stage=0),
                                           "b": seed("TRAINING", "norm", epochs_in_stage=2)})]),
        snapshot(run, 1, 0, [env(2, seeds={"a": seed("TRAINING", epochs_in_stage=1),
                                           "b": seed("PRUNED", "norm", epochs_total=4,
                                                     prune_reason="policy")})]),
        snapshot(run, 2, 0, [env(3, seeds={"a": seed("FOSSILIZED", epochs_total=6),
                                           "b": seed("GERMINATED", "mlp")})]),
        snapshot(run, 3, 0, [env(4, seeds={"a": seed("FOSSILIZED", epochs_total=7)})]),
        snapshot(run, 4, 1, [env(1, seeds={"a": seed("TRAINING", "lora", epochs_in_stage=3)})]),
        snapshot(run, 5, 1, [env(2, seeds={"a": seed("BLENDING", "lora", epochs_in_stage=1)})]),
        snapshot(run, 6, 1, [env(3)]),
    ]  # fmt: skip


def test_seed_answers_follow_a_growing_run_and_late_snapshots(archive):
    run = "grow"
    snapshots = lifecycle(run)
    order = [0, 2, 4, 1, 6, 3, 5]  # out of time order, across batches
    saves = []
    for i in order:
        save(archive, [snapshots[i]])
        saves.append(snapshots[i])
        assert_answers(archive, run, saves)
    save(archive, snapshots)  # all again: stored once
    assert_answers(archive, run, saves)
    # The writer keeps the seeds of the batch that ended; the running one is derived when
    # asked about (without keeping it), and kept when the run finishes.
    ended = [s for s in saves if s["current_batch"] == 0]
    assert cached(archive, "seed_lives", run) == len(expected_seeds(ended)[0])
    archive.finish_run(run)
    assert cached(archive, "seed_lives", run) == len(expected_seeds(saves)[0])
    assert_answers(archive, run, saves)


def test_only_changed_batches_are_derived_again(archive):
    run = "batches"
    snapshots = lifecycle(run)
    save(archive, snapshots[:5])  # batch 0 ends: the writer derives it
    with archive.engine.begin() as conn:
        (run_pk,) = summary.stale_seed_runs(conn)
        assert summary.stale_batches(conn) == {run_pk: [1]}  # the running batch
        assert summary.refresh_seeds(conn, [run_pk]) == 1
        assert summary.refresh_seeds(conn, [run_pk]) == 0
    save(archive, snapshots[5:])
    with archive.engine.begin() as conn:
        assert summary.stale_seed_runs(conn) == [run_pk]
        assert summary.refresh_seeds(conn, [run_pk]) == 1  # batch 1 only
        assert summary.stale_seed_runs(conn) == []
    assert_answers(archive, run, snapshots)


def test_finished_runs_have_their_seeds_ready(archive, monkeypatch):
    run = "done"
    save(archive, lifecycle(run))
    assert cached(archive, "seed_lives", run) == 3  # batch 0 ended; batch 1 still running
    archive.finish_run(run)
    assert cached(archive, "seed_lives", run) == 4
    assert cached(archive, "seed_batches", run) == 2

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run needs no refresh")

    monkeypatch.setattr(summary, "refresh_seeds", refuse)
    assert_answers(archive, run, lifecycle(run))


def test_an_archive_the_reader_cannot_write_is_answered_from_the_snapshots(archive):
    run = "read-only"
    save(archive, lifecycle(run)[:4])
    archive.finish_run(run)
    save(archive, lifecycle(run)[4:])  # batch 1 is not in the cache yet
    reader = sa.create_engine(archive.url)

    @sa.event.listens_for(reader, "connect")
    def read_only(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        if reader.dialect.name == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            dbapi_connection.commit()  # or the SET goes with the transaction it began
        cursor.close()

    try:
        assert_answers(reader, run, lifecycle(run))
    finally:
        reader.dispose()
    with archive.engine.connect() as conn:
        assert summary.stale_seed_runs(conn) != []  # nothing was written


def test_deleting_a_run_deletes_what_was_derived_from_it(archive):
    for run in ("keep", "drop"):
        save(archive, lifecycle(run))
        archive.finish_run(run)
    assert all(cached(archive, table, "drop") > 0 for table in SEED_TABLES)
    before = {table: cached(archive, table, "keep") for table in SEED_TABLES}
    archive.delete_run("drop")
    with archive.engine.connect() as conn:
        for table in SEED_TABLES:
            t = Base.metadata.tables[table]
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() == before[table]
            ), table
    assert_answers(archive, "keep", lifecycle("keep"))


# ---------------------------------------------------------------------------------------------
# Random runs
# ---------------------------------------------------------------------------------------------

SEED_STATES = st.fixed_dictionaries(
    {
        "stage": st.sampled_from([*STAGES, *PRUNED, "DORMANT", "ODD"]),
        "blueprint_id": st.sampled_from(["conv", "conv", "norm", None]),
        "epochs_in_stage": st.integers(0, 4),
        "epochs_total": st.integers(0, 9),
        "prune_reason": st.sampled_from(["", "decay", "policy"]),
        "auto_pruned": st.booleans(),
    }
)
ACCURACY = st.one_of(st.floats(0, 100), st.just(NAN))
ENVS = st.builds(
    env,
    st.integers(0, 3),
    ACCURACY,
    ACCURACY,
    reward=st.floats(-5, 5),
    params=st.integers(0, 3),
    fossilized=st.integers(0, 3),
    seeds=st.dictionaries(st.sampled_from(["a", "b"]), SEED_STATES, max_size=2),
)
MOMENTS = st.lists(
    st.tuples(
        st.integers(0, 2),  # batch
        st.lists(ENVS, min_size=1, max_size=2),
        st.lists(st.tuples(st.sampled_from(["r1", "r2"]), ACCURACY), max_size=2),
        st.integers(0, 5),  # cumulative counters
    ),
    min_size=1,
    max_size=7,
)
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    # One archive for all examples is intended: each example writes its own run.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@PROPERTY
@given(moments=MOMENTS, data=st.data())
def test_random_runs_answer_as_their_snapshots_say(archive, moments, data):
    run = f"prop-{uuid.uuid4().hex[:8]}"
    snapshots = [
        snapshot(run, minute, batch, envs, records=records, fossilized=n, pruned=n // 2)
        for minute, (batch, envs, records, n) in enumerate(moments)
    ]
    # Saved in any order, in batches of any size, some twice (a changed copy of a moment
    # already stored is ignored), with questions asked in between (partly filling the cache).
    order = data.draw(st.permutations(snapshots))
    repeats = data.draw(st.lists(st.sampled_from(snapshots), max_size=2))
    saves = [*order, *({**s, "cumulative_pruned": 99} for s in repeats)]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(saves)), max_size=3)) | {len(saves)})
    start = 0
    for cut in cuts:
        save(archive, saves[start:cut])
        start = cut
        if data.draw(st.booleans()):
            assert_answers(archive, run, saves[:cut])
    assert_outcomes(archive, run, saves)
    assert_answers(archive, run, saves)
