"""run outcomes kept on runs, seeds kept in seed_lives

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:00:00

Whole-archive questions read what used to be derived from every snapshot on each asking:

* ``runs`` gains each run's outcomes (the columns of v_runs that came from its snapshots), which
  the writer keeps current from now on; this revision fills them in for the runs already stored,
  with the definitions of 0002's v_runs (a run's final snapshot: its latest with a trained env,
  current_epoch > 0), and v_runs now reads them;
* ``seed_lives``, ``seed_visits`` and ``seed_batches`` cache seeds derived from the snapshots, per
  (run, batch); they start empty (``runs.seeds_counted_at`` NULL: nothing derived yet) and fill
  as runs finish or their seeds are asked about;
* the index on ``snapshots (run_pk, captured_ts)`` gains ``id``, the tie-breaker of "a run's
  newest snapshot", so that the writer finds it with every batch in one index step rather than
  sorting the run's snapshots (a cost that grew with the run).

SQLite: the columns are added and dropped with ALTER TABLE (no table rebuild), so the views
reading ``runs`` stay valid (see 0002).
"""

import sys
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = (
    ("last_snapshot_id", sa.BigInteger()),
    ("final_snapshot_id", sa.BigInteger()),
    ("batches_done", sa.BigInteger()),
    ("final_accuracy", sa.Double()),
    ("peak_accuracy", sa.Double()),
    ("mean_reward", sa.Double()),
    ("growth_ratio", sa.Double()),
    ("fossilized", sa.BigInteger()),
    ("pruned", sa.BigInteger()),
    ("seeds_counted_at", sa.Integer()),
)

# The run outcomes, as the writer computes them (two steps: pick each run's latest and final
# snapshots, then aggregate them). Portable: the same text runs on SQLite and PostgreSQL.
PICK_SNAPSHOTS = """
UPDATE runs SET
    last_snapshot_id = (
        SELECT s.id FROM snapshots s WHERE s.run_pk = runs.id
        ORDER BY s.captured_ts DESC, s.id DESC LIMIT 1),
    final_snapshot_id = (
        SELECT s.id FROM snapshots s WHERE s.run_pk = runs.id
            AND EXISTS (SELECT 1 FROM env_states e
                        WHERE e.snapshot_id = s.id AND e.current_epoch > 0)
        ORDER BY s.captured_ts DESC, s.id DESC LIMIT 1)
"""

FINAL_ENVS = (
    "(SELECT {aggregate} FROM env_states e "
    "WHERE e.snapshot_id = runs.final_snapshot_id AND e.current_epoch > 0)"
)
LATEST = "(SELECT s.{column} FROM snapshots s WHERE s.id = runs.last_snapshot_id)"
# The mean of a double, never failing: PostgreSQL's avg() sums squares and fails past 1e154, and
# a double cast to numeric keeps 15 digits (the largest double becomes larger than itself, and
# the mean could not be cast back); SQLite's avg() turns a sum past the largest double into
# infinity. Large values are summed scaled by 2^-20 (exact), small ones as they are (divided
# unless the quotient rounds to 0), +inf beside -inf is NULL: the package's SQL mean as of
# 0006, frozen here (a backfill must not fail on any stored double).
_SCALE, _UNSCALE = "9.5367431640625e-07", "1048576.0"
_CAP = repr(sys.float_info.max * 2**-20)
_DIALECTS = {
    "sqlite": ("{}", "9e999", "min", "max"),
    "postgresql": ("{}::float8", "'Infinity'::float8", "LEAST", "GREATEST"),
}


def _mean(x: str, dialect: str) -> str:
    form, infinity, least, greatest = _DIALECTS[dialect]
    infinite = f"(abs({x}) = {infinity})"
    large = f"(abs({x}) >= 1 AND NOT {infinite})"
    n = f"count({x})"
    cap = form.format(_CAP)
    big = f"sum(CASE WHEN {large} THEN {x} * {form.format(_SCALE)} END)"
    small = f"sum(CASE WHEN abs({x}) < 1 THEN {x} END)"
    big_mean = (
        f"{least}({greatest}(coalesce({big}, 0) / {n}, -{cap}), {cap}) * {form.format(_UNSCALE)}"
    )
    small_mean = (
        f"(CASE WHEN 2 * abs(coalesce({small}, 0)) > {n} * {form.format('5e-324')} "
        f"THEN {small} / {n} ELSE 0 END)"
    )
    return (
        f"(CASE WHEN {n} = 0 THEN NULL "
        f"WHEN count(CASE WHEN {x} = {infinity} THEN 1 END) > 0 "
        f"AND count(CASE WHEN {x} = -{infinity} THEN 1 END) > 0 THEN NULL "
        f"WHEN count(CASE WHEN {infinite} THEN 1 END) > 0 "
        f"THEN sum(CASE WHEN {infinite} THEN {x} END) / {n} "
        f"ELSE {big_mean} + {small_mean} END)"
    )


# Templates over {x}: the generated SQL has no braces of its own.
MEAN = {dialect: _mean("{x}", dialect) for dialect in _DIALECTS}
# The params summed as numeric: two BIGINTs may overflow on PostgreSQL.
GROWTH = (
    "CASE WHEN e.host_params > 0 THEN CAST(CAST(e.host_params AS NUMERIC) + e.fossilized_params "
    "AS DOUBLE PRECISION) / e.host_params ELSE 1.0 END"
)


def aggregate(dialect: str) -> str:
    mean = MEAN[dialect]
    return f"""
UPDATE runs SET
    batches_done = {LATEST.format(column="current_batch")},
    final_accuracy = {FINAL_ENVS.format(aggregate=mean.format(x="e.host_accuracy"))},
    peak_accuracy = (
        SELECT max(p.peak) FROM (
            SELECT max(e.best_accuracy) AS peak FROM env_states e WHERE e.run_pk = runs.id
            UNION ALL
            SELECT max(b.peak_accuracy) FROM best_runs b WHERE b.run_pk = runs.id
            UNION ALL
            SELECT max(e.host_accuracy) FROM env_states e
            WHERE e.snapshot_id = runs.final_snapshot_id AND e.current_epoch > 0
        ) p),
    mean_reward = {FINAL_ENVS.format(aggregate=mean.format(x="e.cumulative_reward"))},
    growth_ratio = {FINAL_ENVS.format(aggregate=f"CAST(avg({GROWTH}) AS DOUBLE PRECISION)")},
    fossilized = {LATEST.format(column="cumulative_fossilized")},
    pruned = {LATEST.format(column="cumulative_pruned")}
"""


CONFIG = (
    "config_seed, config_n_episodes, config_lr, config_clip_ratio, config_entropy_coef, "
    "config_param_budget, config_resume_path"
)
NOW_MINUS = {
    "sqlite": "strftime('%Y-%m-%d %H:%M:%f', 'now', '-{minutes} minutes')",
    "postgresql": "((now() AT TIME ZONE 'UTC') - interval '{minutes} minutes')",
}
SECONDS_BETWEEN = {
    "sqlite": "((julianday({b}) - julianday({a})) * 86400.0)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM ({b} - {a})) AS DOUBLE PRECISION)",
}


def _status(dialect: str) -> str:
    heartbeat = "COALESCE(r.heartbeat_at, r.last_seen)"
    crashed = NOW_MINUS[dialect].format(minutes=30)
    stale = NOW_MINUS[dialect].format(minutes=2)
    return f"""CASE WHEN r.status <> 'running' THEN r.status
         WHEN {heartbeat} < {crashed} THEN 'crashed'
         WHEN {heartbeat} < {stale} THEN 'stale'
         ELSE 'running' END"""


def v_runs(dialect: str) -> str:
    """v_runs over the outcomes kept on runs (same columns, same answers as 0002's)."""
    return f"""
CREATE VIEW v_runs AS
SELECT
    r.run_id, r.task_name, r.reward_mode, r.group_id,
    {_status(dialect)} AS status,
    r.first_seen, r.last_seen, r.heartbeat_at, r.finished_at,
    {SECONDS_BETWEEN[dialect].format(a="r.first_seen", b="r.last_seen")} AS duration_s,
    r.snapshot_count, r.batches_done, r.max_batches, r.max_epochs,
    r.final_snapshot_id, r.final_accuracy, r.peak_accuracy, r.mean_reward, r.growth_ratio,
    r.fossilized, r.pruned,
    CAST(r.fossilized AS DOUBLE PRECISION) / NULLIF(r.fossilized + r.pruned, 0) AS fossilize_rate,
    {CONFIG}
FROM runs r
"""


GROWTH_0002 = (
    "CASE WHEN e.host_params > 0 THEN CAST(e.host_params + e.fossilized_params AS "
    "DOUBLE PRECISION) / e.host_params ELSE 1.0 END"
)


def v_runs_0002(dialect: str) -> str:
    """0002's v_runs, which derives the outcomes from the snapshots (for the downgrade)."""
    final_envs = (
        "(SELECT {aggregate} FROM env_states e "
        "WHERE e.snapshot_id = p.final_id AND e.current_epoch > 0)"
    )
    return f"""
CREATE VIEW v_runs AS
SELECT
    r.run_id, r.task_name, r.reward_mode, r.group_id,
    {_status(dialect)} AS status,
    r.first_seen, r.last_seen, r.heartbeat_at, r.finished_at,
    {SECONDS_BETWEEN[dialect].format(a="r.first_seen", b="r.last_seen")} AS duration_s,
    r.snapshot_count, last.current_batch AS batches_done, r.max_batches, r.max_epochs,
    p.final_id AS final_snapshot_id,
    {final_envs.format(aggregate="CAST(avg(e.host_accuracy) AS DOUBLE PRECISION)")} AS final_accuracy,
    CASE WHEN p.peak IS NULL OR p.peak < {final_envs.format(aggregate="max(e.host_accuracy)")}
         THEN {final_envs.format(aggregate="max(e.host_accuracy)")} ELSE p.peak END AS peak_accuracy,
    {final_envs.format(aggregate="CAST(avg(e.cumulative_reward) AS DOUBLE PRECISION)")} AS mean_reward,
    {final_envs.format(aggregate=f"CAST(avg({GROWTH_0002}) AS DOUBLE PRECISION)")} AS growth_ratio,
    last.cumulative_fossilized AS fossilized,
    last.cumulative_pruned AS pruned,
    CAST(last.cumulative_fossilized AS DOUBLE PRECISION)
        / NULLIF(last.cumulative_fossilized + last.cumulative_pruned, 0) AS fossilize_rate,
    {CONFIG}
FROM runs r
JOIN (
    SELECT q.run_pk, q.last_id, q.final_id,
        CASE WHEN q.record_peak IS NULL OR q.env_peak >= q.record_peak
             THEN q.env_peak ELSE q.record_peak END AS peak
    FROM (
        SELECT r2.id AS run_pk,
            (SELECT s.id FROM snapshots s WHERE s.run_pk = r2.id
             ORDER BY s.captured_ts DESC, s.id DESC LIMIT 1) AS last_id,
            (SELECT s.id FROM snapshots s WHERE s.run_pk = r2.id
                 AND EXISTS (SELECT 1 FROM env_states e
                             WHERE e.snapshot_id = s.id AND e.current_epoch > 0)
             ORDER BY s.captured_ts DESC, s.id DESC LIMIT 1) AS final_id,
            (SELECT max(e.best_accuracy) FROM env_states e WHERE e.run_pk = r2.id) AS env_peak,
            (SELECT max(b.peak_accuracy) FROM best_runs b WHERE b.run_pk = r2.id) AS record_peak
        FROM runs r2
    ) q
) p ON p.run_pk = r.id
LEFT JOIN snapshots last ON last.id = p.last_id
"""


V_COHORTS = """
CREATE VIEW v_cohorts AS
SELECT
    task_name, reward_mode, group_id,
    count(*) AS runs,
    sum(CASE WHEN status = 'finished' THEN 1 ELSE 0 END) AS finished,
    avg(final_accuracy) AS mean_final_accuracy,
    min(final_accuracy) AS min_final_accuracy,
    max(final_accuracy) AS max_final_accuracy,
    avg(peak_accuracy) AS mean_peak_accuracy,
    avg(mean_reward) AS mean_reward,
    avg(growth_ratio) AS mean_growth_ratio,
    avg(fossilize_rate) AS mean_fossilize_rate
FROM v_runs
GROUP BY task_name, reward_mode, group_id
"""


def _run_key() -> sa.Column:
    return sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_pk"], ["runs.id"], name=op.f(f"fk_{table}_run_pk_runs"), ondelete="CASCADE"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("runs", schema=None) as batch_op:
        for name, type_ in OUTCOMES:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        "seed_batches",
        _run_key(),
        sa.Column("batch", sa.BigInteger(), nullable=False),
        sa.Column("snapshots", sa.Integer(), nullable=False),
        _run_fk("seed_batches"),
        sa.PrimaryKeyConstraint("run_pk", "batch", name=op.f("pk_seed_batches")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "seed_lives",
        _run_key(),
        sa.Column("batch", sa.BigInteger(), nullable=False),
        sa.Column("env_key", sa.BigInteger(), nullable=False),
        sa.Column("slot_key", sa.Text(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("blueprint_id", sa.Text(), nullable=True),
        sa.Column("furthest_rank", sa.Integer(), nullable=True),
        sa.Column("fossilized", sa.Integer(), nullable=False),
        sa.Column("pruned_seen", sa.Integer(), nullable=False),
        sa.Column("pruned", sa.Integer(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("epochs_total", sa.BigInteger(), nullable=True),
        sa.Column("prune_reason", sa.Text(), nullable=True),
        sa.Column("auto_pruned", sa.Integer(), nullable=True),
        _run_fk("seed_lives"),
        sa.PrimaryKeyConstraint(
            "run_pk", "batch", "env_key", "slot_key", "seed", name=op.f("pk_seed_lives")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "seed_visits",
        _run_key(),
        sa.Column("batch", sa.BigInteger(), nullable=False),
        sa.Column("env_key", sa.BigInteger(), nullable=False),
        sa.Column("slot_key", sa.Text(), nullable=False),
        sa.Column("snapshot_id", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("blueprint_id", sa.Text(), nullable=True),
        sa.Column("epochs_in_stage", sa.BigInteger(), nullable=False),
        _run_fk("seed_visits"),
        sa.PrimaryKeyConstraint(
            "run_pk", "batch", "env_key", "slot_key", "snapshot_id", name=op.f("pk_seed_visits")
        ),
        sqlite_with_rowid=False,
    )
    op.drop_index("ix_snapshots_run_pk_captured_ts", table_name="snapshots")
    op.create_index(
        "ix_snapshots_run_pk_captured_ts_id", "snapshots", ["run_pk", "captured_ts", "id"]
    )
    op.execute(PICK_SNAPSHOTS)
    op.execute(aggregate(dialect))
    op.execute("DROP VIEW v_cohorts")
    op.execute("DROP VIEW v_runs")
    op.execute(v_runs(dialect))
    op.execute(V_COHORTS)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW v_cohorts")
    op.execute("DROP VIEW v_runs")
    op.execute(v_runs_0002(dialect))
    op.execute(V_COHORTS)
    op.drop_table("seed_visits")
    op.drop_table("seed_lives")
    op.drop_table("seed_batches")
    op.drop_index("ix_snapshots_run_pk_captured_ts_id", table_name="snapshots")
    op.create_index("ix_snapshots_run_pk_captured_ts", "snapshots", ["run_pk", "captured_ts"])
    # Not a batch operation: on SQLite that would rebuild runs, under the views reading it.
    for name, _ in reversed(OUTCOMES):
        op.drop_column("runs", name)
