"""What the archive derives from its snapshots and keeps, so that whole-archive questions are
plain selects instead of a walk over every snapshot.

* **Run outcomes** on ``runs`` (``last_snapshot_id, final_snapshot_id, batches_done,
  final_accuracy, peak_accuracy, mean_reward, growth_ratio, fossilized, pruned``), with the
  definitions of :mod:`sanctum_store.queries`: the writer recomputes a run's outcomes with every
  batch it stores (:func:`picks` and :func:`outcomes`, a few index seeks, in its transaction),
  from what the run has stored, not from what just arrived; so a snapshot arriving late (older
  than the run's latest), one stored twice, or a best-run record rewritten by a later snapshot
  leaves them exactly what deriving them afresh gives.
* **Seeds** in ``seed_lives`` (one row per seed), ``seed_visits`` (each stage a seed was seen
  to leave) and ``seed_batches`` (which (run, batch) they were derived from, and from how many
  snapshots), filled per (run, batch) by :func:`refresh_seeds`: by the writer when a batch ends
  (a snapshot of a later batch arrives) or a late snapshot changes an ended one, by
  ``finish_run`` for the last batch, and by ``db upgrade``. A seed lives within one batch of
  one env, so a batch whose snapshot count changed is derived again whole, with the window
  functions that define a seed. Questions never write: the batches not derived yet (a running
  run's current one; :func:`stale_batches`) are derived in the question itself.
* **Episodes** in ``episodes`` (one row per (run, batch, env) episode whose end a snapshot saw,
  :func:`episodes_select`), derived with the seeds of the same (run, batch), at the same moments.

Everything here runs in the caller's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sanctum_store.expressions import (
    PRUNED_RANK,
    STAGES,
    as_double,
    flag,
    growth,
    mean,
    stage_rank,
    trained,
)
from sanctum_store.models import TABLES
from sanctum_store.status import RunStatus

RUNS, SNAPSHOTS, ENVS, BEST = (
    TABLES["runs"],
    TABLES["snapshots"],
    TABLES["env_states"],
    TABLES["best_runs"],
)
SEEDS = TABLES["seed_states"]
SEED_LIVES, SEED_VISITS, SEED_BATCHES = (
    TABLES["seed_lives"],
    TABLES["seed_visits"],
    TABLES["seed_batches"],
)
EPISODES = TABLES["episodes"]
_FINAL = SNAPSHOTS.alias("final")

#: The outcome columns :func:`run_outcome_updates` keeps on ``runs``.
OUTCOME_COLUMNS = (
    "last_snapshot_id",
    "final_snapshot_id",
    "batches_done",
    "final_accuracy",
    "peak_accuracy",
    "mean_reward",
    "growth_ratio",
    "fossilized",
    "pruned",
)

# Any fixed 64-bit number: serializes seed refreshes on one PostgreSQL database.
_SEEDS_LOCK_KEY = 0x5345454453
_CHUNK = 500

# ---------------------------------------------------------------------------------------------
# Run outcomes
# ---------------------------------------------------------------------------------------------


def _newest(snapshots, *where) -> sa.ScalarSelect:
    """The id of the run's (the ``runs`` row's) newest snapshot matching ``where``."""
    return (
        sa.select(snapshots.c.id)
        .where(snapshots.c.run_pk == RUNS.c.id, *where)
        .order_by(snapshots.c.captured_ts.desc(), snapshots.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def picks() -> dict[str, sa.ColumnElement]:
    """SET values naming a run's latest snapshot and its final one (latest with a trained env)."""
    return {
        "last_snapshot_id": _newest(SNAPSHOTS),
        "final_snapshot_id": _newest(_FINAL, trained(_FINAL)),
    }


def outcomes() -> dict[str, sa.ColumnElement]:
    """SET values of a run's outcomes, from the snapshots :func:`picks` named."""

    def final(aggregate) -> sa.ScalarSelect:
        """``aggregate`` over the trained envs of the run's final snapshot."""
        return (
            sa.select(aggregate)
            .where(ENVS.c.snapshot_id == RUNS.c.final_snapshot_id, ENVS.c.current_epoch > 0)
            .scalar_subquery()
        )

    def last(column: str) -> sa.ScalarSelect:
        return (
            sa.select(SNAPSHOTS.c[column])
            .where(SNAPSHOTS.c.id == RUNS.c.last_snapshot_id)
            .scalar_subquery()
        )

    # The best any env reached: any snapshot's env best_accuracy (one seek on
    # ix_env_states_run_pk_best_accuracy), a best-run record's peak, the final host accuracy.
    # max() over the three skips NULLs, as the definition does.
    peaks = sa.union_all(
        sa.select(sa.func.max(ENVS.c.best_accuracy).label("peak"))
        .where(ENVS.c.run_pk == RUNS.c.id)
        .correlate(RUNS),
        sa.select(sa.func.max(BEST.c.peak_accuracy))
        .where(BEST.c.run_pk == RUNS.c.id)
        .correlate(RUNS),
        sa.select(sa.func.max(ENVS.c.host_accuracy))
        .where(ENVS.c.snapshot_id == RUNS.c.final_snapshot_id, ENVS.c.current_epoch > 0)
        .correlate(RUNS),
    ).subquery("peaks")
    return {
        "batches_done": last("current_batch"),
        "final_accuracy": final(mean(ENVS.c.host_accuracy)),
        "peak_accuracy": sa.select(sa.func.max(peaks.c.peak)).scalar_subquery(),
        "mean_reward": final(mean(ENVS.c.cumulative_reward)),
        # A ratio of two integers: far from overflowing avg().
        "growth_ratio": final(as_double(sa.func.avg(growth(ENVS)))),
        "fossilized": last("cumulative_fossilized"),
        "pruned": last("cumulative_pruned"),
    }


def run_outcome_updates(*where: sa.ColumnElement) -> tuple[sa.Update, sa.Update]:
    """The two statements that recompute the outcomes of the runs matching ``where`` (every
    run without it): pick the snapshots, then aggregate them."""
    return (
        sa.update(RUNS).where(*where).values(**picks()),
        sa.update(RUNS).where(*where).values(**outcomes()),
    )


def refresh_run_outcomes(conn: Connection, *where: sa.ColumnElement) -> None:
    """Recompute the outcomes of the runs matching ``where`` (every run without it)."""
    for statement in run_outcome_updates(*where):
        conn.execute(statement)


# ---------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------


def scope(run_pks: Sequence[int], batches: Sequence[int] | None = None) -> list:
    """Conditions selecting the observations of some runs (and, given, some of their batches)."""
    conditions = [ENVS.c.run_pk.in_(list(run_pks)), SNAPSHOTS.c.run_pk.in_(list(run_pks))]
    if batches is not None:
        conditions.append(SNAPSHOTS.c.current_batch.in_(list(batches)))
    return conditions


def batch_scope(batches: dict[int, list[int]]) -> list:
    """Conditions selecting the observations of these (run: batches)."""
    return [
        ENVS.c.run_pk.in_(list(batches)),
        sa.or_(
            *(
                sa.and_(SNAPSHOTS.c.run_pk == pk, SNAPSHOTS.c.current_batch.in_(b))
                for pk, b in batches.items()
            )
        ),
    ]


def in_batches(table: sa.Table, batches: dict[int, list[int]]) -> sa.ColumnElement[bool]:
    """Rows of a seed table (``run_pk``, ``batch``) that belong to these (run: batches)."""
    return sa.or_(
        *(sa.and_(table.c.run_pk == pk, table.c.batch.in_(b)) for pk, b in batches.items())
    )


def _observations(where: list) -> sa.Subquery:
    """Every non-dormant seed slot seen in a snapshot, numbered into seeds (``seed``): within a
    (run, batch, env, slot), a new seed starts when the blueprint changes or the stage goes
    backwards (see the :mod:`sanctum_store.queries` docstring)."""
    stage = SEEDS.c.stage
    observed = (
        sa.select(
            ENVS.c.run_pk,
            SNAPSHOTS.c.current_batch.label("batch"),
            ENVS.c.env_key,
            SEEDS.c.slot_key,
            SEEDS.c.blueprint_id,
            stage.label("stage"),
            stage_rank(stage).label("rank"),
            SNAPSHOTS.c.captured_ts,
            SNAPSHOTS.c.id.label("snapshot_id"),
            SEEDS.c.epochs_in_stage,
            SEEDS.c.epochs_total,
            SEEDS.c.prune_reason,
            flag(SEEDS.c.auto_pruned).label("auto_pruned"),
        )
        .select_from(ENVS)
        .join(SNAPSHOTS, SNAPSHOTS.c.id == ENVS.c.snapshot_id)
        .join(SEEDS, SEEDS.c.seed_set_id == ENVS.c.seeds_id)
        .where(stage != "DORMANT", SEEDS.c.blueprint_id.is_not(None), *where)
        .subquery("observed")
    )
    o = observed.c
    slot = (o.run_pk, o.batch, o.env_key, o.slot_key)
    order = (o.captured_ts, o.snapshot_id)
    previous_blueprint = sa.func.lag(o.blueprint_id).over(partition_by=slot, order_by=order)
    previous_rank = sa.func.lag(o.rank).over(partition_by=slot, order_by=order)
    starts = sa.case(
        (previous_blueprint.is_(None), 1),
        (previous_blueprint != o.blueprint_id, 1),
        (o.rank < previous_rank, 1),
        else_=0,
    )
    flagged = sa.select(observed, starts.label("starts")).subquery("flagged")
    f = flagged.c
    seed = sa.func.sum(f.starts).over(
        partition_by=(f.run_pk, f.batch, f.env_key, f.slot_key),
        order_by=(f.captured_ts, f.snapshot_id),
        rows=(None, 0),
    )
    return sa.select(flagged, seed.label("seed")).subquery("numbered")


def seeds_select(where: list) -> sa.Select:
    """One row per seed of the observations ``where`` selects, in ``seed_lives``' columns.

    The furthest stage seen alive (``furthest_rank``); whether it fossilized, was seen pruned
    (``pruned_seen``, with its reason) or was pruned at all (``pruned``: also when it left its
    slot while its env was still observed in that batch; only a prune removes a seed
    mid-batch); its lifespan (``epochs_total`` seen in a terminal state).
    """
    o = _observations(where).c
    pruned = o.rank == PRUNED_RANK
    terminal = o.rank >= len(STAGES)
    tracked = (
        sa.select(
            o.run_pk,
            o.batch,
            o.env_key,
            o.slot_key,
            o.seed,
            sa.func.max(o.blueprint_id).label("blueprint_id"),
            sa.func.max(sa.case((o.rank <= len(STAGES), o.rank))).label("furthest_rank"),
            sa.func.max(flag(o.stage == "FOSSILIZED")).label("fossilized"),
            sa.func.max(flag(pruned)).label("pruned_seen"),
            sa.func.max(o.captured_ts).label("last_seen"),
            sa.func.max(sa.case((terminal, o.epochs_total))).label("epochs_total"),
            sa.func.max(sa.case((pruned, o.prune_reason))).label("prune_reason"),
            sa.func.max(sa.case((pruned, o.auto_pruned))).label("auto_pruned"),
        )
        .group_by(o.run_pk, o.batch, o.env_key, o.slot_key, o.seed)
        .subquery("tracked")
    )
    env_seen = (
        sa.select(
            ENVS.c.run_pk,
            SNAPSHOTS.c.current_batch.label("batch"),
            ENVS.c.env_key,
            sa.func.max(SNAPSHOTS.c.captured_ts).label("until"),
        )
        .join_from(ENVS, SNAPSHOTS, SNAPSHOTS.c.id == ENVS.c.snapshot_id)
        .where(ENVS.c.current_epoch > 0, *where)
        .group_by(ENVS.c.run_pk, SNAPSHOTS.c.current_batch, ENVS.c.env_key)
        .subquery("env_seen")
    )
    t = tracked.c
    vanished = sa.and_(t.fossilized == 0, t.last_seen < env_seen.c.until)
    columns = {c.name: t[c.name] for c in SEED_LIVES.columns if c.name != "pruned"}
    columns["pruned"] = sa.case((sa.or_(t.pruned_seen == 1, vanished), 1), else_=0)
    return sa.select(*(columns[c.name].label(c.name) for c in SEED_LIVES.columns)).outerjoin_from(
        tracked,
        env_seen,
        sa.and_(
            env_seen.c.run_pk == t.run_pk,
            env_seen.c.batch == t.batch,
            env_seen.c.env_key == t.env_key,
        ),
    )


def visits_select(where: list) -> sa.Select:
    """Every stage a seed was seen to leave (its next observation is in another stage), with the
    ``epochs_in_stage`` of its last observation there, in ``seed_visits``' columns."""
    o = _observations(where).c
    following = sa.func.lead(o.stage).over(
        partition_by=(o.run_pk, o.batch, o.env_key, o.slot_key, o.seed),
        order_by=(o.captured_ts, o.snapshot_id),
    )
    visits = sa.select(*(o[c.name] for c in SEED_VISITS.columns), following.label("next")).subquery(
        "visits"
    )
    v = visits.c
    return sa.select(*(v[c.name] for c in SEED_VISITS.columns)).where(
        v.next.is_not(None), v.next != v.stage
    )


def episodes_select(where: list) -> sa.Select:
    """One row per episode whose end the observations ``where`` selects saw, in ``episodes``'
    columns.

    An episode is one (run, batch, env): the env trains its host from scratch for
    ``max_epochs`` epochs, then esper resets it for the next batch. Its end is an observation of
    the env at epoch ``max_epochs`` (or later) in that batch; the latest one gives the final
    accuracy, loss, reward (the env's ``cumulative_reward``: the episode's return), fossilized
    and pruned counts and growth ratio. Its peak is the best accuracy any observation of the env
    in that batch showed (``best_accuracy``, the env's running maximum within the episode). An
    episode no snapshot saw at its end (sparse snapshots) has no row: it is never guessed.
    """
    e, s = ENVS.c, SNAPSHOTS.c
    observed = (
        sa.select(
            e.run_pk,
            s.current_batch.label("batch"),
            e.env_key,
            e.env_id,
            e.snapshot_id,
            e.host_accuracy,
            e.best_accuracy,
            e.host_loss,
            e.cumulative_reward,
            e.fossilized_count,
            e.pruned_count,
            growth(ENVS).label("growth_ratio"),
            sa.and_(s.max_epochs > 0, e.current_epoch >= s.max_epochs).label("at_end"),
            s.captured_ts,
        )
        .join_from(ENVS, SNAPSHOTS, SNAPSHOTS.c.id == ENVS.c.snapshot_id)
        .where(e.current_epoch > 0, *where)
        .subquery("observed")
    )
    o = observed.c
    episode = (o.run_pk, o.batch, o.env_key)
    latest_end = sa.func.row_number().over(
        partition_by=(*episode, o.at_end), order_by=(o.captured_ts.desc(), o.snapshot_id.desc())
    )
    peak = sa.func.max(sa.func.coalesce(o.best_accuracy, o.host_accuracy)).over(
        partition_by=episode
    )
    ranked = sa.select(observed, latest_end.label("latest_end"), peak.label("peak")).subquery(
        "ranked"
    )
    r = ranked.c
    columns = {
        "run_pk": r.run_pk,
        "batch": r.batch,
        "env_key": r.env_key,
        "env_id": r.env_id,
        "snapshot_id": r.snapshot_id,
        "final_accuracy": r.host_accuracy,
        "peak_accuracy": sa.case((r.peak < r.host_accuracy, r.host_accuracy), else_=r.peak),
        "final_loss": r.host_loss,
        "episode_reward": r.cumulative_reward,
        "fossilized": r.fossilized_count,
        "pruned": r.pruned_count,
        "growth_ratio": r.growth_ratio,
    }
    return sa.select(*(columns[c.name].label(c.name) for c in EPISODES.columns)).where(
        r.at_end, r.latest_end == 1
    )


def stale_seed_runs(conn: Connection, *where: sa.ColumnElement) -> list[int]:
    """The runs matching ``where`` whose seeds are not (all) in the cache."""
    behind = sa.or_(
        RUNS.c.seeds_counted_at.is_(None), RUNS.c.seeds_counted_at != RUNS.c.snapshot_count
    )
    query = sa.select(RUNS.c.id).where(behind, *where).order_by(RUNS.c.id)
    return list(conn.execute(query).scalars())


def derive_seeds(conn: Connection) -> int:
    """Derive every seed not kept yet: all batches of ended runs, the ended batches of running
    ones (``db upgrade``'s part). Returns how many batches were derived."""
    stale = stale_seed_runs(conn)
    if not stale:
        return 0
    running = dict(
        conn.execute(
            sa.select(SNAPSHOTS.c.run_pk, sa.func.max(SNAPSHOTS.c.current_batch))
            .join(RUNS, RUNS.c.id == SNAPSHOTS.c.run_pk)
            .where(RUNS.c.id.in_(stale), RUNS.c.status == RunStatus.RUNNING.value)
            .group_by(SNAPSHOTS.c.run_pk)
        ).all()
    )
    return refresh_seeds(conn, stale, before=running)


def stale_batches(conn: Connection, *where: sa.ColumnElement) -> dict[int, list[int]]:
    """The batches whose seeds are not derived (or were derived from fewer or other
    snapshots), of the runs matching ``where``: ``{run_pk: [batch, ...]}``. Reads only."""
    out: dict[int, list[int]] = {}
    pks = stale_seed_runs(conn, *where)
    for chunk in _chunks(pks, _CHUNK):
        now, done = _batch_counts(conn, chunk)
        for pk in chunk:
            changed = sorted(
                b for b in now[pk].keys() | done[pk].keys() if now[pk].get(b) != done[pk].get(b)
            )
            if changed:
                out[pk] = changed
    return out


def _batch_counts(conn: Connection, pks: list[int]) -> tuple[dict, dict]:
    """Per run and batch: snapshots stored now, and snapshots its seeds were derived from."""
    s = SNAPSHOTS.c
    now = _per_batch(
        conn,
        sa.select(s.run_pk, s.current_batch, sa.func.count())
        .where(s.run_pk.in_(pks))
        .group_by(s.run_pk, s.current_batch),
    )
    done = _per_batch(conn, sa.select(SEED_BATCHES).where(SEED_BATCHES.c.run_pk.in_(pks)))
    return now, done


def refresh_seeds(
    conn: Connection, run_pks: Iterable[int], *, before: dict[int, int] | None = None
) -> int:
    """Bring the seeds these runs keep up to date: every (run, batch) whose snapshot count
    changed since it was derived is derived again; ``before`` (the writer's, per run) leaves
    out batches from that one on (a running batch, still changing). Returns how many were."""
    pks = sorted(set(run_pks))
    if pks and conn.dialect.name == "postgresql":
        # One refresher at a time: two deriving the same batch would collide on its rows. The
        # window functions look costly to the planner, which would JIT-compile them for longer
        # than they run.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEEDS_LOCK_KEY})
        conn.exec_driver_sql("SET LOCAL jit = off")
    before = before or {}
    derived = 0
    for chunk in _chunks(pks, _CHUNK):
        now, done = _batch_counts(conn, chunk)
        for pk in chunk:  # batches left out count as not derived (in seeds_counted_at too)
            if pk in before:
                now[pk] = {b: n for b, n in now[pk].items() if b < before[pk]}
        # Runs never derived: all at once. The others (and the writer's): the batches whose
        # count changed.
        new = [pk for pk in chunk if now[pk] and not done[pk] and pk not in before]
        if new:
            _derive(conn, new, None, now)
            derived += sum(len(now[pk]) for pk in new)
        for pk in chunk:
            changed = [
                b for b in now[pk].keys() | done[pk].keys() if now[pk].get(b) != done[pk].get(b)
            ]
            if pk in before:
                changed = [b for b in changed if b < before[pk]]
            if pk in new or not changed:
                continue
            for batches in _chunks(sorted(changed), _CHUNK):
                _derive(conn, [pk], batches, now)
            derived += len(changed)
        conn.execute(
            sa.update(RUNS)
            .where(RUNS.c.id == sa.bindparam("pk"))
            .values(seeds_counted_at=sa.bindparam("counted")),
            [{"pk": pk, "counted": sum(now[pk].values())} for pk in chunk],
        )
    return derived


_SEED_TABLES = (SEED_LIVES, SEED_VISITS, EPISODES, SEED_BATCHES)


def _per_batch(conn: Connection, query: sa.Select) -> dict[int, dict[int, int]]:
    """``{run: {batch: n}}`` from a query's (run, batch, n) rows."""
    out: dict[int, dict[int, int]] = defaultdict(dict)
    for pk, batch, n in conn.execute(query):
        out[pk][batch] = n
    return out


def _derive(
    conn: Connection,
    pks: list[int],
    batches: list[int] | None,
    counts: dict[int, dict[int, int]],
) -> None:
    """Derive again the seeds of some runs (all their batches, or these), from ``counts``
    snapshots per (run, batch)."""
    for table in _SEED_TABLES:
        where = [table.c.run_pk.in_(pks)]
        if batches is not None:
            where.append(table.c.batch.in_(batches))
        conn.execute(sa.delete(table).where(*where))
    observations = scope(pks, batches)
    for table, select in (
        (SEED_LIVES, seeds_select(observations)),
        (SEED_VISITS, visits_select(observations)),
        (EPISODES, episodes_select(observations)),
    ):
        conn.execute(sa.insert(table).from_select([c.name for c in table.columns], select))
    wanted = None if batches is None else set(batches)
    rows = [
        {"run_pk": pk, "batch": b, "snapshots": n}
        for pk in pks
        for b, n in counts[pk].items()
        if wanted is None or b in wanted
    ]
    if rows:
        conn.execute(sa.insert(SEED_BATCHES), rows)


def _chunks(items: Sequence, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
