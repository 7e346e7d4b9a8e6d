"""v_cohorts summarizes the runs the Cohorts page compares: finished ones

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 22:00:00

0003's v_cohorts averaged every run of a cohort, running, stale and crashed ones included, while
the Cohorts page (and README's statistics recipe) compare finished runs: SQL and the page told
different stories about the same cohorts. v_cohorts now averages finished runs only, as the page
does by default, and counts the runs of every status beside them (``runs`` = all of them,
``finished`` = those averaged, then one count per other status), so what was left out is in view.
"""

from collections.abc import Sequence

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


def upgrade() -> None:
    op.execute("DROP VIEW v_cohorts")
    op.execute(v_cohorts())


def downgrade() -> None:
    op.execute("DROP VIEW v_cohorts")
    op.execute(V_COHORTS_0003)
