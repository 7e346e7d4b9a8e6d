"""v_cohorts and v_best_runs answer for every double: means and differences never overflow

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:30:00

v_cohorts averaged with avg(): on PostgreSQL avg(double precision) raises "value out of range"
once two runs' outcomes differ by more than about 1e154 (it sums squares), and on SQLite a sum
past the largest double made the mean infinite. Its means are now taken as the run outcomes
are (the writer's ``mean``: large values summed scaled by 2^-20, small ones as they are, +inf
beside -inf NULL). v_best_runs' ``trajectory`` (final - peak) raised "value out of range" on
PostgreSQL past the largest double; it is now ±inf there, as in Python and on SQLite. Nothing
stored changes.
"""

import sys
from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OTHER_STATUSES = ("running", "incomplete", "stale", "crashed", "failed")
FINISHED = "CASE WHEN status = 'finished' THEN {x} END"

# A frozen copy of the package's SQL mean (expressions.mean) as of this revision.
_SCALE, _UNSCALE = "9.5367431640625e-07", "1048576.0"
_CAP = repr(sys.float_info.max * 2**-20)
DIALECTS = {
    "sqlite": {"number": "{}", "infinity": "9e999", "least": "min", "greatest": "max"},
    "postgresql": {
        "number": "{}::float8",
        "infinity": "'Infinity'::float8",
        "least": "LEAST",
        "greatest": "GREATEST",
    },
}


def mean(x: str, dialect: str) -> str:
    d = DIALECTS[dialect]
    infinity, least, greatest = d["infinity"], d["least"], d["greatest"]

    def number(v: str) -> str:
        return d["number"].format(v)

    infinite = f"(abs({x}) = {infinity})"
    large = f"(abs({x}) >= 1 AND NOT {infinite})"
    n = f"count({x})"
    cap = number(_CAP)
    big = f"sum(CASE WHEN {large} THEN {x} * {number(_SCALE)} END)"
    small = f"sum(CASE WHEN abs({x}) < 1 THEN {x} END)"
    big_mean = f"{least}({greatest}(coalesce({big}, 0) / {n}, -{cap}), {cap}) * {number(_UNSCALE)}"
    tiny = number("5e-324")
    small_mean = (
        f"(CASE WHEN 2 * abs(coalesce({small}, 0)) > {n} * {tiny} THEN {small} / {n} ELSE 0 END)"
    )
    return (
        f"(CASE WHEN {n} = 0 THEN NULL "
        f"WHEN count(CASE WHEN {x} = {infinity} THEN 1 END) > 0 "
        f"AND count(CASE WHEN {x} = -{infinity} THEN 1 END) > 0 THEN NULL "
        f"WHEN count(CASE WHEN {infinite} THEN 1 END) > 0 "
        f"THEN sum(CASE WHEN {infinite} THEN {x} END) / {n} "
        f"ELSE {big_mean} + {small_mean} END)"
    )


def v_cohorts(average) -> str:
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
    {average(FINISHED.format(x="final_accuracy"))} AS mean_final_accuracy,
    min({FINISHED.format(x="final_accuracy")}) AS min_final_accuracy,
    max({FINISHED.format(x="final_accuracy")}) AS max_final_accuracy,
    {average(FINISHED.format(x="peak_accuracy"))} AS mean_peak_accuracy,
    {average(FINISHED.format(x="mean_reward"))} AS mean_reward,
    {average(FINISHED.format(x="growth_ratio"))} AS mean_growth_ratio,
    {average(FINISHED.format(x="fossilize_rate"))} AS mean_fossilize_rate
FROM v_runs
GROUP BY task_name, reward_mode, group_id
"""


# A frozen copy of the package's SQL difference (expressions.difference, PostgreSQL).
def difference_pg(a: str, b: str) -> str:
    inf = "'Infinity'::float8"

    def half(x: str) -> str:
        return f"(CASE WHEN abs({x}) >= 1 THEN {x} * 0.5::float8 ELSE 0::float8 END)"

    halves = f"({half(a)} - {half(b)})"
    return (
        f"(CASE WHEN abs({a}) = {inf} OR abs({b}) = {inf} "
        f"OR (abs({a}) <= 1e300::float8 AND abs({b}) <= 1e300::float8) THEN {a} - {b} "
        f"WHEN {halves} >= 8.98846567431158e307::float8 THEN {inf} "
        f"WHEN {halves} <= -8.98846567431158e307::float8 THEN -{inf} "
        f"ELSE {a} - {b} END)"
    )


SEEDS_IN_STAGE = (
    "(SELECT count(*) FROM seed_states ss WHERE ss.seed_set_id = b.seeds_id "
    "AND ss.stage = '{stage}')"
)


def v_best_runs(trajectory: str) -> str:
    """0002's definition, with its trajectory expression."""
    return f"""
CREATE VIEW v_best_runs AS
SELECT
    r.run_id, b.record_key AS record_id, b.env_id, b.episode, b.epoch,
    b.peak_accuracy, b.final_accuracy, {trajectory} AS trajectory,
    b.growth_ratio, b.host_params, b.fossilized_count, b.pruned_count,
    {SEEDS_IN_STAGE.format(stage="FOSSILIZED")} AS seeds_fossilized,
    {SEEDS_IN_STAGE.format(stage="HOLDING")} AS seeds_holding,
    {SEEDS_IN_STAGE.format(stage="BLENDING")} AS seeds_blending,
    COALESCE(b.reward_mode, r.reward_mode) AS reward_mode, r.group_id
FROM best_runs b
JOIN runs r ON r.id = b.run_pk
"""


PLAIN_TRAJECTORY = "b.final_accuracy - b.peak_accuracy"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW v_cohorts")
    op.execute(v_cohorts(lambda x: mean(x, dialect)))
    if dialect == "postgresql":  # SQLite overflows to infinity by itself
        op.execute("DROP VIEW v_best_runs")
        op.execute(v_best_runs(difference_pg("b.final_accuracy", "b.peak_accuracy")))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW v_cohorts")
    op.execute(v_cohorts(lambda x: f"avg({x})"))
    if dialect == "postgresql":
        op.execute("DROP VIEW v_best_runs")
        op.execute(v_best_runs(PLAIN_TRAJECTORY))
