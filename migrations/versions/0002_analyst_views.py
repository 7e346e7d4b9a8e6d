"""analyst views, and an index for run peaks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 05:00:00

Views give analysts stable names over the normalized tables (README: "SQL for analysts"). Their
SQL is frozen here: later revisions that change a view drop and recreate it. The definitions
follow the package's queries module (trained env = current_epoch > 0; a run's final snapshot = its
latest snapshot with a trained env); v_runs' effective status uses the staleness thresholds of
this revision (2 and 30 minutes without a heartbeat).

SQLite: a later batch migration (table rebuild) of a table these views read must drop the views
first and recreate them after, or SQLite refuses the rename at the end of the rebuild.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONFIG = (
    "config_seed, config_n_episodes, config_lr, config_clip_ratio, config_entropy_coef, "
    "config_param_budget, config_resume_path"
)

# Dialect-specific pieces: "now" in UTC (the archive's times are naive UTC), and seconds between
# two DateTime columns.
NOW_MINUS = {
    "sqlite": "strftime('%Y-%m-%d %H:%M:%f', 'now', '-{minutes} minutes')",
    "postgresql": "((now() AT TIME ZONE 'UTC') - interval '{minutes} minutes')",
}
SECONDS_BETWEEN = {
    "sqlite": "((julianday({b}) - julianday({a})) * 86400.0)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM ({b} - {a})) AS DOUBLE PRECISION)",
}

FINAL_ENVS = (
    "(SELECT {aggregate} FROM env_states e "
    "WHERE e.snapshot_id = p.final_id AND e.current_epoch > 0)"
)


def v_runs(dialect: str) -> str:
    heartbeat = "COALESCE(r.heartbeat_at, r.last_seen)"
    crashed = NOW_MINUS[dialect].format(minutes=30)
    stale = NOW_MINUS[dialect].format(minutes=2)
    growth = (
        "CASE WHEN e.host_params > 0 THEN CAST(e.host_params + e.fossilized_params AS "
        "DOUBLE PRECISION) / e.host_params ELSE 1.0 END"
    )
    return f"""
CREATE VIEW v_runs AS
SELECT
    r.run_id, r.task_name, r.reward_mode, r.group_id,
    CASE WHEN r.status <> 'running' THEN r.status
         WHEN {heartbeat} < {crashed} THEN 'crashed'
         WHEN {heartbeat} < {stale} THEN 'stale'
         ELSE 'running' END AS status,
    r.first_seen, r.last_seen, r.heartbeat_at, r.finished_at,
    {SECONDS_BETWEEN[dialect].format(a="r.first_seen", b="r.last_seen")} AS duration_s,
    r.snapshot_count, last.current_batch AS batches_done, r.max_batches, r.max_epochs,
    p.final_id AS final_snapshot_id,
    {FINAL_ENVS.format(aggregate="CAST(avg(e.host_accuracy) AS DOUBLE PRECISION)")} AS final_accuracy,
    CASE WHEN p.peak IS NULL OR p.peak < {FINAL_ENVS.format(aggregate="max(e.host_accuracy)")}
         THEN {FINAL_ENVS.format(aggregate="max(e.host_accuracy)")} ELSE p.peak END AS peak_accuracy,
    {FINAL_ENVS.format(aggregate="CAST(avg(e.cumulative_reward) AS DOUBLE PRECISION)")} AS mean_reward,
    {FINAL_ENVS.format(aggregate=f"CAST(avg({growth}) AS DOUBLE PRECISION)")} AS growth_ratio,
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


V_ENV_EPOCHS = """
CREATE VIEW v_env_epochs AS
SELECT
    r.run_id, s.id AS snapshot_id, s.captured_ts, s.current_batch AS batch,
    e.current_epoch AS epoch, e.env_key AS env,
    e.host_accuracy, e.host_loss, e.best_accuracy, e.cumulative_reward,
    e.host_params, e.fossilized_params,
    CASE WHEN e.host_params > 0 THEN CAST(e.host_params + e.fossilized_params AS
        DOUBLE PRECISION) / e.host_params ELSE 1.0 END AS growth_ratio,
    e.active_seed_count, e.fossilized_count, e.pruned_count, e.status, e.reward_mode
FROM env_states e
JOIN snapshots s ON s.id = e.snapshot_id
JOIN runs r ON r.id = e.run_pk
WHERE e.current_epoch > 0
"""

V_SEEDS = """
CREATE VIEW v_seeds AS
SELECT
    r.run_id, s.id AS snapshot_id, s.captured_ts, s.current_batch AS batch,
    e.current_epoch AS epoch, e.env_key AS env, ss.slot_key AS slot_id,
    ss.blueprint_id, ss.stage, ss.alpha, ss.epochs_in_stage, ss.epochs_total,
    ss.accuracy_delta, ss.improvement, ss.counterfactual, ss.seed_params,
    ss.prune_reason, ss.auto_pruned
FROM env_states e
JOIN snapshots s ON s.id = e.snapshot_id
JOIN runs r ON r.id = e.run_pk
JOIN seed_states ss ON ss.seed_set_id = e.seeds_id
"""

V_DECISIONS = """
CREATE VIEW v_decisions AS
SELECT
    r.run_id, r.reward_mode, r.group_id, d.decision_key AS decision_id, d.timestamp,
    d.batch, d.epoch, d.env_id, d.chosen_action, d.chosen_slot, d.chosen_blueprint,
    d.confidence, d.expected_value, d.actual_reward, d.value_residual, d.td_advantage,
    d.decision_entropy, d.host_accuracy,
    d.op_entropy, d.slot_entropy, d.blueprint_entropy
FROM decisions d
JOIN runs r ON r.id = d.run_pk
"""

SEEDS_IN_STAGE = (
    "(SELECT count(*) FROM seed_states ss WHERE ss.seed_set_id = b.seeds_id "
    "AND ss.stage = '{stage}')"
)

V_BEST_RUNS = f"""
CREATE VIEW v_best_runs AS
SELECT
    r.run_id, b.record_key AS record_id, b.env_id, b.episode, b.epoch,
    b.peak_accuracy, b.final_accuracy, b.final_accuracy - b.peak_accuracy AS trajectory,
    b.growth_ratio, b.host_params, b.fossilized_count, b.pruned_count,
    {SEEDS_IN_STAGE.format(stage="FOSSILIZED")} AS seeds_fossilized,
    {SEEDS_IN_STAGE.format(stage="HOLDING")} AS seeds_holding,
    {SEEDS_IN_STAGE.format(stage="BLENDING")} AS seeds_blending,
    COALESCE(b.reward_mode, r.reward_mode) AS reward_mode, r.group_id
FROM best_runs b
JOIN runs r ON r.id = b.run_pk
"""

V_LIFECYCLE = """
CREATE VIEW v_lifecycle AS
SELECT
    r.run_id, r.reward_mode, r.group_id, bc.blueprint_id,
    COALESCE(bc.spawns, 0) AS spawns,
    COALESCE(bc.fossilized, 0) AS fossilized,
    COALESCE(bc.prunes, 0) AS prunes,
    CAST(COALESCE(bc.fossilized, 0) AS DOUBLE PRECISION)
        / NULLIF(COALESCE(bc.fossilized, 0) + COALESCE(bc.prunes, 0), 0) AS blend_success_rate
FROM runs r
JOIN blueprint_counts bc ON bc.snapshot_id = (
    SELECT s.id FROM snapshots s WHERE s.run_pk = r.id
    ORDER BY s.captured_ts DESC, s.id DESC LIMIT 1)
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

VIEWS = (
    "v_runs",
    "v_env_epochs",
    "v_seeds",
    "v_decisions",
    "v_best_runs",
    "v_lifecycle",
    "v_cohorts",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Run peaks: max(best_accuracy) of a run is one index seek.
    with op.batch_alter_table("env_states", schema=None) as batch_op:
        batch_op.create_index(
            "ix_env_states_run_pk_best_accuracy", ["run_pk", "best_accuracy"], unique=False
        )
    for sql in (
        v_runs(dialect),
        V_ENV_EPOCHS,
        V_SEEDS,
        V_DECISIONS,
        V_BEST_RUNS,
        V_LIFECYCLE,
        V_COHORTS,
    ):
        op.execute(sql)


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("env_states", schema=None) as batch_op:
        batch_op.drop_index("ix_env_states_run_pk_best_accuracy")
