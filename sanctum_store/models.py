"""The archive's normalized tables (SQLAlchemy 2 declarative).

Every scalar field of the schema is a typed column. The columns of a schema class are generated
from its dataclass (:mod:`sanctum_store.layouts`), so schema and tables cannot drift apart;
keys, references and indexes are written out by hand, and so is each table's storage role
(``__role__``, collected in :data:`ROLES`), which drives both writing and reading.

Storage choices, per kind of field (see :class:`~sanctum_store.layouts.Layout`):

* scalars -> typed columns. NaN is stored as NULL, so that SQL aggregates skip it;
  ``float_marks`` records what a column alone cannot: NaN in a ``float | None`` field (where
  NULL means None) and the sign of -0.0 (which SQLite drops);
* 1:1 nested records (seed lifecycle, vitals, PPO infrastructure, ...) -> prefixed columns;
* value records that repeat between snapshots (reward components, counterfactual matrices,
  Shapley snapshots, seed sets, run configs) -> rows stored once per run and content,
  referenced by ``<field>_id`` (no foreign key: they live and die with their run, and
  deleting a run stays one cheap cascade);
* histories (deques, action lists) -> windows ``(series id, start, length)`` over append-only
  ``series_points``: a sliding history stores each value once;
* the event log -> a window over the run's ``events``; decisions and best-run records ->
  rows keyed by their identity plus per-snapshot link rows;
* open-ended dicts (event metadata, unknown fields, free-form dicts) -> JSON.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from sanctum_store import schema
from sanctum_store.layouts import BigId, IsoDateTime, TaggedJSON, columns_of

# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# --------------------------------------------------------------------------------------------
# Storage roles: what each table holds, declared beside it (``__role__``), collected in ROLES.
# persist (writing) and reader (reading) are both driven by them.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Items:
    """A child table holding a collection of its parent's tree, a row per item (by
    ``position``): the whole tree (``field`` None) or one field of it; a dict's keys in
    ``key_column`` (None: a list); ``pair``: items are (text, float) pairs (action,
    probability) rather than records of the child's class."""

    table: str
    parent_column: str
    field: str | None = None
    key_column: str | None = None
    pair: tuple[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class Key:
    """How a keyed record is known within its run (the tree's ``field``, else a digest of the
    ``core`` fields, or of the whole record when None) and linked from each snapshot."""

    column: str
    field: str
    core: tuple[str, ...] | None
    link_table: str
    link_column: str


ROLE_KINDS = {
    "run": "one row per run",
    "snapshot": "one row per snapshot",
    "per_snapshot": "rows of one snapshot (its envs, policy state, GPUs, counts)",
    "value": "a record stored once per run and content (digest), referenced by id",
    "item": "a child row of a value or keyed record (see Items)",
    "keyed": "a record stored once per run and identity, completed as it changes",
    "link": "a snapshot's reference to a keyed record, at a position, with an overlay",
    "series": "histories: windows over append-only points",
    "window": "the event log: a window over the run's events",
    "derived": "what the writer derives from the snapshots (seed lives)",
    "experiment": "an experiment saved by name, every version of its definition kept",
}


@dataclasses.dataclass(frozen=True)
class Role:
    """A table's storage role (one of :data:`ROLE_KINDS`) and what reading and writing it
    needs: the schema class of a row, its child rows, a keyed record's key."""

    kind: str
    cls: type | None = None
    items: Items | None = None
    key: Key | None = None

    def __post_init__(self) -> None:
        if self.kind not in ROLE_KINDS:
            raise ValueError(f"unknown storage role {self.kind!r}")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _run_fk() -> Any:
    return mapped_column(BigId, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False)


class Run(columns_of(schema.RunConfig, "config_", all_nullable=True), Base):
    """One training run (one run_id): identity, cohort labels, lifecycle, latest config
    (``config_*``, NULL until the first snapshot)."""

    __tablename__ = "runs"
    __role__ = Role("run")
    __table_args__ = (
        sa.UniqueConstraint("run_id"),
        sa.Index("ix_runs_reward_mode_group_id", "reward_mode", "group_id"),
        sa.Index("ix_runs_task_name", "task_name"),
        sa.Index("ix_runs_last_seen", "last_seen"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.Text)
    task_name: Mapped[str] = mapped_column(sa.Text, default="")
    reward_mode: Mapped[str | None] = mapped_column(sa.Text)
    group_id: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="running")
    slot_ids: Mapped[Any] = mapped_column(TaggedJSON, nullable=True)
    max_batches: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    max_epochs: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    start_time: Mapped[datetime | None] = mapped_column(IsoDateTime)
    # UTC, naive: when the archive first and last heard of the run.
    first_seen: Mapped[datetime] = mapped_column(sa.DateTime)
    last_seen: Mapped[datetime] = mapped_column(sa.DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    snapshot_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    writer: Mapped[str | None] = mapped_column(sa.Text)  # host:pid of the last writer
    tags: Mapped[Any] = mapped_column(TaggedJSON, nullable=True)
    # The run's outcomes (sanctum_store.summary), kept current by the writer with every batch
    # it stores: what runs listings and cohort statistics read. NULL while nothing measures
    # them (no snapshot, no trained env).
    last_snapshot_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    final_snapshot_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    batches_done: Mapped[int | None] = mapped_column(sa.BigInteger)
    final_accuracy: Mapped[float | None] = mapped_column(sa.Double)
    peak_accuracy: Mapped[float | None] = mapped_column(sa.Double)
    mean_reward: Mapped[float | None] = mapped_column(sa.Double)
    growth_ratio: Mapped[float | None] = mapped_column(sa.Double)
    fossilized: Mapped[int | None] = mapped_column(sa.BigInteger)
    pruned: Mapped[int | None] = mapped_column(sa.BigInteger)
    # The snapshot_count seed_lives last caught up with (NULL: never): the seed cache is
    # current when the two agree.
    seeds_counted_at: Mapped[int | None] = mapped_column(sa.Integer)

    snapshots: Mapped[list[Snapshot]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )


class RunConfigRow(columns_of(schema.RunConfig), Base):
    """A RunConfig, stored once per run and content."""

    __tablename__ = "run_configs"
    __role__ = Role("value", schema.RunConfig)
    __table_args__ = (sa.UniqueConstraint("run_pk", "digest"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_pk: Mapped[int] = _run_fk()
    digest: Mapped[str] = mapped_column(sa.String(32))


class Snapshot(columns_of(schema.SanctumSnapshot), Base):
    """One stored SanctumSnapshot: its scalars and those of its 1:1 records."""

    __tablename__ = "snapshots"
    __role__ = Role("snapshot", schema.SanctumSnapshot)
    __table_args__ = (
        # A run's newest snapshot (captured_ts DESC, id DESC) is the first entry here: no sort.
        sa.Index("ix_snapshots_run_pk_captured_ts_id", "run_pk", "captured_ts", "id"),
        sa.Index("ix_snapshots_run_pk_current_batch", "run_pk", "current_batch", "current_epoch"),
        sa.Index("uq_snapshots_run_pk_dedup_key", "run_pk", "dedup_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_pk: Mapped[int] = _run_fk()
    # UTC, naive: captured_at when it parses, else the time the archive received the snapshot.
    captured_ts: Mapped[datetime] = mapped_column(sa.DateTime)
    # captured_at when non-empty: a second save of the same moment of a run is the same snapshot.
    dedup_key: Mapped[str | None] = mapped_column(sa.Text)
    event_log_start: Mapped[int | None] = mapped_column(sa.BigInteger)
    event_log_len: Mapped[int] = mapped_column(sa.Integer, default=0)
    # Per-position overrides of event fields that change while an event is shown
    # (relative_time, "(3s ago)"), as {position: {field: value}}.
    event_overrides: Mapped[Any] = mapped_column(TaggedJSON, nullable=True)

    run: Mapped[Run] = relationship(back_populates="snapshots")


class EnvStateRow(columns_of(schema.EnvState), Base):
    """One environment in one snapshot."""

    __tablename__ = "env_states"
    __role__ = Role("per_snapshot", schema.EnvState)
    __table_args__ = (
        sa.UniqueConstraint("snapshot_id", "env_key"),
        sa.Index("ix_env_states_run_pk_env_key", "run_pk", "env_key"),
        # A run's peak accuracy is one seek (best_accuracy is an env's running maximum).
        sa.Index("ix_env_states_run_pk_best_accuracy", "run_pk", "best_accuracy"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("snapshots.id", ondelete="CASCADE")
    )
    run_pk: Mapped[int] = _run_fk()
    env_key: Mapped[int] = mapped_column(sa.BigInteger)  # the key in SanctumSnapshot.envs
    position: Mapped[int] = mapped_column(sa.Integer)


class TamiyoStateRow(columns_of(schema.TamiyoState), Base):
    """The policy's state in one snapshot (PPO metrics and diagnostics)."""

    __tablename__ = "tamiyo_states"
    __role__ = Role("per_snapshot", schema.TamiyoState)

    snapshot_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )


class GPUStatsRow(columns_of(schema.GPUStats), Base):
    """One GPU in one snapshot's vitals."""

    __tablename__ = "gpu_stats"
    __role__ = Role("per_snapshot", schema.GPUStats)

    snapshot_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    device_key: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    position: Mapped[int] = mapped_column(sa.Integer)


class BlueprintCount(Base):
    """Cumulative per-blueprint counts of one snapshot (NULL: blueprint absent from that dict)."""

    __tablename__ = "blueprint_counts"
    __role__ = Role("per_snapshot")

    snapshot_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    blueprint_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    spawns: Mapped[int | None] = mapped_column(sa.BigInteger)
    fossilized: Mapped[int | None] = mapped_column(sa.BigInteger)
    prunes: Mapped[int | None] = mapped_column(sa.BigInteger)


class ActionCount(Base):
    """The policy's action counts in one snapshot: scope 'batch' or 'cumulative'."""

    __tablename__ = "action_counts"
    __role__ = Role("per_snapshot")

    snapshot_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    action: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    count: Mapped[int] = mapped_column(sa.BigInteger)


# Value records: stored once per run and content (digest), referenced by id.


class RewardComponentsRow(columns_of(schema.RewardComponents), Base):
    """A reward breakdown."""

    __tablename__ = "reward_components"
    __role__ = Role("value", schema.RewardComponents)
    __table_args__ = (sa.UniqueConstraint("run_pk", "digest"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_pk: Mapped[int] = _run_fk()
    digest: Mapped[str] = mapped_column(sa.String(32))


class SeedSet(Base):
    """A dict of seeds keyed by slot (an env's seeds, its best seeds, a best run's seeds)."""

    __tablename__ = "seed_sets"
    __role__ = Role("value", items=Items("seed_states", "seed_set_id", key_column="slot_key"))
    __table_args__ = (sa.UniqueConstraint("run_pk", "digest"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_pk: Mapped[int] = _run_fk()
    digest: Mapped[str] = mapped_column(sa.String(32))


class SeedStateRow(columns_of(schema.SeedState), Base):
    """One seed slot of a seed set."""

    __tablename__ = "seed_states"
    __role__ = Role("item", schema.SeedState)

    seed_set_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("seed_sets.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    slot_key: Mapped[str] = mapped_column(sa.Text)  # the key in the seeds dict


class CounterfactualRow(columns_of(schema.CounterfactualSnapshot), Base):
    """A counterfactual (full factorial) matrix."""

    __tablename__ = "counterfactuals"
    __role__ = Role(
        "value",
        schema.CounterfactualSnapshot,
        items=Items("counterfactual_configs", "counterfactual_id", field="configs"),
    )
    __table_args__ = (sa.UniqueConstraint("run_pk", "digest"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_pk: Mapped[int] = _run_fk()
    digest: Mapped[str] = mapped_column(sa.String(32))


class CounterfactualConfigRow(columns_of(schema.CounterfactualConfig), Base):
    """One configuration of a counterfactual matrix; seed_mask as '1'/'0' per slot."""

    __tablename__ = "counterfactual_configs"
    __role__ = Role("item", schema.CounterfactualConfig)

    counterfactual_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("counterfactuals.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    seed_mask: Mapped[str] = mapped_column(sa.Text)


class ShapleySnapshotRow(columns_of(schema.ShapleySnapshot), Base):
    """A Shapley attribution snapshot."""

    __tablename__ = "shapley_snapshots"
    __role__ = Role(
        "value",
        schema.ShapleySnapshot,
        items=Items("shapley_estimates", "shapley_id", field="values", key_column="slot_id"),
    )
    __table_args__ = (sa.UniqueConstraint("run_pk", "digest"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_pk: Mapped[int] = _run_fk()
    digest: Mapped[str] = mapped_column(sa.String(32))


class ShapleyEstimateRow(columns_of(schema.ShapleyEstimate), Base):
    """One slot's Shapley estimate."""

    __tablename__ = "shapley_estimates"
    __role__ = Role("item", schema.ShapleyEstimate)

    shapley_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("shapley_snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    slot_id: Mapped[str] = mapped_column(sa.Text)  # the key in ShapleySnapshot.values


# Histories


class Series(Base):
    """One history of a run (e.g. env 3's reward_history); its values are series_points."""

    __tablename__ = "series"
    __role__ = Role("series")
    __table_args__ = (sa.UniqueConstraint("run_pk", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_pk: Mapped[int] = _run_fk()
    name: Mapped[str] = mapped_column(sa.Text)


class SeriesPoint(Base):
    """One value of a history; a snapshot's history is a window [start, start+len)."""

    __tablename__ = "series_points"
    __role__ = Role("series")
    __table_args__ = {"sqlite_with_rowid": False}

    series_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("series.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    # Float histories use num (NULL = NaN, or -0.0 when txt is "-0.0"); action histories txt.
    num: Mapped[float | None] = mapped_column(sa.Double)
    txt: Mapped[str | None] = mapped_column(sa.Text)


# Identity-keyed records shared by many snapshots


class Event(columns_of(schema.EventLogEntry), Base):
    """One event of a run's event log, stored once; snapshots show a window of them."""

    __tablename__ = "events"
    __role__ = Role("window", schema.EventLogEntry)
    __table_args__ = (
        sa.UniqueConstraint("run_pk", "seq"),
        sa.Index("ix_events_run_pk_event_type", "run_pk", "event_type"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_pk: Mapped[int] = _run_fk()
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    # metadata["event_id"] in 16 bytes, when it is a UUID in its canonical text and the first
    # key (esper's way): a third of an event's bytes otherwise (see forms.pack_event_id).
    event_uuid: Mapped[bytes | None] = mapped_column(sa.LargeBinary(16))


class Decision(columns_of(schema.DecisionSnapshot), Base):
    """One Tamiyo decision, stored once per run and decision key, completed as outcomes arrive."""

    __tablename__ = "decisions"
    __role__ = Role(
        "keyed",
        schema.DecisionSnapshot,
        items=Items(
            "decision_alternatives",
            "decision_pk",
            field="alternatives",
            pair=("action", "probability"),
        ),
        key=Key(
            "decision_key",
            "decision_id",
            ("timestamp", "env_id", "epoch", "batch", "chosen_action", "chosen_slot"),
            "snapshot_decisions",
            "decision_pk",
        ),
    )
    __table_args__ = (
        sa.UniqueConstraint("run_pk", "decision_key"),
        sa.Index("ix_decisions_run_pk_batch", "run_pk", "batch"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_pk: Mapped[int] = _run_fk()
    decision_key: Mapped[str] = mapped_column(sa.Text)  # decision_id, or a content digest


class DecisionAlternative(Base):
    """An alternative action the policy weighed for a decision."""

    __tablename__ = "decision_alternatives"
    __role__ = Role("item")

    decision_pk: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("decisions.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    action: Mapped[str] = mapped_column(sa.Text)
    probability: Mapped[float | None] = mapped_column(sa.Double)  # NULL = NaN
    float_marks: Mapped[str | None] = mapped_column(sa.Text)  # "probability=-0"


class SnapshotDecision(Base):
    """A decision shown in a snapshot's recent_decisions, at a position.

    ``overlay`` holds the fields whose value in this snapshot differs from the decision row
    (e.g. an actual_reward still pending here and known later).
    """

    __tablename__ = "snapshot_decisions"
    __role__ = Role("link")

    snapshot_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    decision_pk: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("decisions.id", ondelete="CASCADE"), index=True
    )
    overlay: Mapped[Any] = mapped_column(TaggedJSON, nullable=True)


class BestRun(columns_of(schema.BestRunRecord), Base):
    """A best-run record (leaderboard entry), stored once per run and record key."""

    __tablename__ = "best_runs"
    __role__ = Role(
        "keyed",
        schema.BestRunRecord,
        key=Key("record_key", "record_id", None, "snapshot_best_runs", "best_run_pk"),
    )
    __table_args__ = (
        sa.UniqueConstraint("run_pk", "record_key"),
        sa.Index("ix_best_runs_peak_accuracy", "peak_accuracy"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_pk: Mapped[int] = _run_fk()
    record_key: Mapped[str] = mapped_column(sa.Text)  # record_id, or a content digest


class SnapshotBestRun(Base):
    """A best-run record shown in a snapshot's best_runs, at a position (overlay as above)."""

    __tablename__ = "snapshot_best_runs"
    __role__ = Role("link")

    snapshot_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    best_run_pk: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("best_runs.id", ondelete="CASCADE"), index=True
    )
    overlay: Mapped[Any] = mapped_column(TaggedJSON, nullable=True)


# Seeds, derived from the snapshots (sanctum_store.summary) one (run, batch) at a time: a seed
# lives and dies within one batch of one env, so a batch is recomputed whole when it changes.


def _run_key() -> Any:
    return mapped_column(
        BigId, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, nullable=False
    )


class SeedLife(Base):
    """One seed (an occupant of a slot; see sanctum_store.queries): how far it got, how it ended.

    ``furthest_rank`` is the furthest stage it was seen alive in (1..5, NULL when only seen
    pruned); the flags are 0/1; ``epochs_total`` is taken in a terminal stage, and
    ``prune_reason``/``auto_pruned`` when seen pruned.
    """

    __tablename__ = "seed_lives"
    __role__ = Role("derived")
    __table_args__ = {"sqlite_with_rowid": False}

    run_pk: Mapped[int] = _run_key()
    batch: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    env_key: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    slot_key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    seed: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)  # 1, 2, ... in its slot
    blueprint_id: Mapped[str | None] = mapped_column(sa.Text)
    furthest_rank: Mapped[int | None] = mapped_column(sa.Integer)
    fossilized: Mapped[int] = mapped_column(sa.Integer)
    pruned_seen: Mapped[int] = mapped_column(sa.Integer)
    pruned: Mapped[int] = mapped_column(sa.Integer)  # seen pruned, or vanished mid-batch
    last_seen: Mapped[datetime] = mapped_column(sa.DateTime)
    epochs_total: Mapped[int | None] = mapped_column(sa.BigInteger)
    prune_reason: Mapped[str | None] = mapped_column(sa.Text)
    auto_pruned: Mapped[int | None] = mapped_column(sa.Integer)


class SeedVisit(Base):
    """A stage a seed was seen to leave: its last observation in that stage (time_in_stage)."""

    __tablename__ = "seed_visits"
    __role__ = Role("derived")
    __table_args__ = {"sqlite_with_rowid": False}

    run_pk: Mapped[int] = _run_key()
    batch: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    env_key: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    slot_key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    stage: Mapped[str] = mapped_column(sa.Text)
    blueprint_id: Mapped[str | None] = mapped_column(sa.Text)
    epochs_in_stage: Mapped[int] = mapped_column(sa.BigInteger)


class Episode(Base):
    """One episode: an env of a run training its host from scratch for one batch, as the last
    snapshot that saw it at its end (``epoch`` = the run's ``max_epochs``) left it. An episode
    whose end no snapshot saw has no row. Derived with the seeds, per (run, batch): see
    :mod:`sanctum_store.summary`."""

    __tablename__ = "episodes"
    __role__ = Role("derived")
    __table_args__ = {"sqlite_with_rowid": False}

    run_pk: Mapped[int] = _run_key()
    batch: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    env_key: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    env_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    snapshot_id: Mapped[int] = mapped_column(sa.BigInteger)  # the snapshot that saw the end
    final_accuracy: Mapped[float | None] = mapped_column(sa.Double)
    peak_accuracy: Mapped[float | None] = mapped_column(sa.Double)
    final_loss: Mapped[float | None] = mapped_column(sa.Double)
    episode_reward: Mapped[float | None] = mapped_column(sa.Double)
    fossilized: Mapped[int | None] = mapped_column(sa.BigInteger)
    pruned: Mapped[int | None] = mapped_column(sa.BigInteger)
    growth_ratio: Mapped[float | None] = mapped_column(sa.Double)


class SeedBatch(Base):
    """A (run, batch) whose seeds are in seed_lives, derived from ``snapshots`` snapshots."""

    __tablename__ = "seed_batches"
    __role__ = Role("derived")
    __table_args__ = {"sqlite_with_rowid": False}

    run_pk: Mapped[int] = _run_key()
    batch: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    snapshots: Mapped[int] = mapped_column(sa.Integer)


class Experiment(Base):
    """An experiment saved by name (:mod:`sanctum_store.experiments`); its definitions, each
    version kept, are in ``experiment_versions``: the newest is the one evaluated. Never
    touched by the training writer's path."""

    __tablename__ = "experiments"
    __role__ = Role("experiment")

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False)


class ExperimentVersion(Base):
    """One version of an experiment's definition (``experiments.evaluate``'s settings,
    thresholds included), saved when it changed."""

    __tablename__ = "experiment_versions"
    __role__ = Role("experiment")
    __table_args__ = (sa.UniqueConstraint("experiment_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    saved_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False)
    definition: Mapped[Any] = mapped_column(TaggedJSON, nullable=False)


#: Every table by name.
TABLES: dict[str, sa.Table] = Base.metadata.tables  # type: ignore[assignment]

#: Every table's storage role, by table name.
ROLES: dict[str, Role] = {
    mapper.local_table.name: mapper.class_.__role__ for mapper in Base.registry.mappers
}


def tables_of(kind: str) -> list[str]:
    """The tables of one storage role, in dependency order."""
    return [t.name for t in Base.metadata.sorted_tables if ROLES[t.name].kind == kind]
