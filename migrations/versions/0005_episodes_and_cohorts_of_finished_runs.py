"""episodes kept with the seeds; v_episodes; v_cohorts summarizes the runs the Cohorts page
compares: finished ones

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 22:00:00

0003's v_cohorts averaged every run of a cohort, running, stale and crashed ones included, while
the Cohorts page (and README's statistics recipe) compare finished runs: SQL and the page told
different stories about the same cohorts. v_cohorts now averages finished runs only, as the page
does by default, and counts the runs of every status beside them (``runs`` = all of them,
``finished`` = those averaged, then one count per other status), so what was left out is in view.

``episodes`` keeps one row per (run, batch, env) episode whose end a snapshot saw, derived with
the seeds per (run, batch). The seed caches are emptied here (``seed_batches`` and
``runs.seeds_counted_at`` say nothing was derived), so ``db upgrade`` derives seeds and episodes
afresh for every run, as it derived seeds at 0003. ``v_episodes`` reads them by run id.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The statuses a run can have besides finished (as of this revision), counted apart.
OTHER_STATUSES = ("running", "incomplete", "stale", "crashed", "failed")

FINISHED = "CASE WHEN status = 'finished' THEN {x} END"


def v_cohorts() -> str:
    counts = ",\n    ".join(
        f"sum(CASE WHEN status = '{s}' THEN 1 ELSE 0 END) AS {s}" for s in OTHER_STATUSES
    )
    return f"""
CREATE VIEW v_cohorts AS
SELECT
    task_name, reward_mode, group_id,
    count(*) AS runs,
    sum(CASE WHEN status = 'finished' THEN 1 ELSE 0 END) AS finished,
    {counts},
    avg({FINISHED.format(x="final_accuracy")}) AS mean_final_accuracy,
    min({FINISHED.format(x="final_accuracy")}) AS min_final_accuracy,
    max({FINISHED.format(x="final_accuracy")}) AS max_final_accuracy,
    avg({FINISHED.format(x="peak_accuracy")}) AS mean_peak_accuracy,
    avg({FINISHED.format(x="mean_reward")}) AS mean_reward,
    avg({FINISHED.format(x="growth_ratio")}) AS mean_growth_ratio,
    avg({FINISHED.format(x="fossilize_rate")}) AS mean_fossilize_rate
FROM v_runs
GROUP BY task_name, reward_mode, group_id
"""


# 0003's definition, for the downgrade.
V_COHORTS_0003 = """
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


V_EPISODES = """
CREATE VIEW v_episodes AS
SELECT
    r.run_id, e.batch, e.env_id, e.final_accuracy, e.peak_accuracy, e.final_loss,
    e.episode_reward, e.growth_ratio, e.fossilized, e.pruned,
    r.task_name, r.reward_mode, r.group_id, e.snapshot_id
FROM episodes e JOIN runs r ON r.id = e.run_pk
"""


def upgrade() -> None:
    op.create_table(
        "episodes",
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("batch", sa.BigInteger(), nullable=False),
        sa.Column("env_key", sa.BigInteger(), nullable=False),
        sa.Column("env_id", sa.BigInteger(), nullable=True),
        sa.Column("snapshot_id", sa.BigInteger(), nullable=False),
        sa.Column("final_accuracy", sa.Double(), nullable=True),
        sa.Column("peak_accuracy", sa.Double(), nullable=True),
        sa.Column("final_loss", sa.Double(), nullable=True),
        sa.Column("episode_reward", sa.Double(), nullable=True),
        sa.Column("fossilized", sa.BigInteger(), nullable=True),
        sa.Column("pruned", sa.BigInteger(), nullable=True),
        sa.Column("growth_ratio", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_episodes_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_pk", "batch", "env_key", name=op.f("pk_episodes")),
        sqlite_with_rowid=False,
    )
    # Derive seeds and episodes afresh (db upgrade does, after the migrations).
    for table in ("seed_batches", "seed_lives", "seed_visits"):
        op.execute(f"DELETE FROM {table}")
    op.execute("UPDATE runs SET seeds_counted_at = NULL")
    op.execute(V_EPISODES)
    op.execute("DROP VIEW v_cohorts")
    op.execute(v_cohorts())


def downgrade() -> None:
    op.execute("DROP VIEW v_cohorts")
    op.execute(V_COHORTS_0003)
    op.execute("DROP VIEW v_episodes")
    op.drop_table("episodes")
