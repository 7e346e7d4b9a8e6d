"""Cohorts (A/B): did the reward cohort really make a difference?"""

import charts
import data
import streamlit as st
import tables
import text

from sanctum_store import metrics
from sanctum_store.queries import COHORT_ATTRIBUTES, OUTCOME_METRICS
from sanctum_store.stats import COMPARE_COLUMNS, LOW_POWER_N
from sanctum_store.status import RunStatus

st.title("Cohorts (A/B)")
st.caption(
    "Explore how cohorts differ, every pair and every outcome. To decide whether to keep a "
    "change, use Experiment (verdict): confounded runs excluded, runs stratified by task and "
    "paired by seed, and rules declared before looking."
)
left, middle, right = st.columns(3)
attribute = left.selectbox("Cohorts by", COHORT_ATTRIBUTES, key="cohort_attribute")
metric = middle.selectbox("Outcome", OUTCOME_METRICS, key="cohort_metric")
finished_only = right.toggle(
    "Finished runs only",
    value=True,
    key="cohort_finished",
    help="Running, crashed and incomplete (imported, ended early) runs have not reached "
    "their final accuracy.",
)
filters = {"status": RunStatus.FINISHED.value} if finished_only else {}
declared = metrics.outcome(metric)

outcomes = data.run_outcomes(**filters)
ALL_PAIRS = "(all pairs)"
baseline = st.selectbox(
    "Baseline",
    [ALL_PAIRS, *sorted(set(charts.labels(outcomes[attribute])))],
    key="cohort_baseline",
    help="Compare every cohort with this one (cohort − baseline) instead of every pair (B − A).",
)
described, compared = data.cohort_statistics(
    # The runs' reward modes come along: a reward-based outcome is not compared across them.
    outcomes[["run_id", "reward_mode", metric]].assign(cohort=outcomes[attribute]),
    metric,
    None if baseline == ALL_PAIRS else baseline,
)

# Every cohort the attribute takes in the archive, in one order: a cohort's colour is the same
# whichever runs are shown.
domain = data.cohort_domain(attribute)
# The end-of-episode learning curve of the same outcome: per batch, each run's mean over its
# envs, then the cohort's mean or IQM across runs with a 95 % bootstrap CI.
left, right = st.columns(2)
statistic = left.radio(
    "Across runs",
    ["mean", "iqm"],
    horizontal=True,
    key="cohort_statistic",
    format_func=lambda s: "IQM" if s == "iqm" else s,
)
smoothing = right.slider(
    "Smoothing (EMA)",
    0.0,
    0.99,
    0.0,
    0.01,
    key="cohort_smoothing",
    help="Exponential moving average over batches; 0 shows the batches as they are.",
)
curves = data.episode_curves(
    attribute=attribute, metric=declared.episode, statistic=statistic, **filters
)
if curves.empty:
    st.info("No episode of these runs has been seen to end yet.")
else:
    curves = charts.smoothed(
        curves.assign(cohort=charts.labels(curves["cohort"])),
        ["value", "ci_low", "ci_high"],
        by="cohort",
        weight=smoothing,
    )
    curves = charts.thinned(curves, x="batch", y="value", by="cohort")
    what = declared.episode.replace("_", " ")
    st.altair_chart(
        charts.curves(
            curves,
            x="batch",
            y="value",
            color="cohort",
            band=("ci_low", "ci_high"),
            title=f"End-of-episode {what}: {'IQM' if statistic == 'iqm' else 'mean'} per cohort "
            "with 95 % CI across runs",
            x_title="batch (episode)",
            y_title=f"{what} at episode end",
            color_title=attribute.replace("_", " "),
            domain=domain,
        ),
        width="stretch",
    )

dots = outcomes.assign(cohort=charts.labels(outcomes[attribute]))[["run_id", "cohort", metric]]
left, right = st.columns([2, 3])
left.altair_chart(
    charts.distribution(
        dots,
        group="cohort",
        value=metric,
        title=f"{metric.replace('_', ' ')} per run",
        group_title=attribute.replace("_", " "),
        domain=domain,
    ),
    width="stretch",
)
tables.show(described, key="cohort_describe", container=right)

st.subheader("Is the difference real?")
if compared.empty:
    st.info("Comparisons need at least two cohorts.")
else:
    small = described[described["n"] < LOW_POWER_N]
    if not small.empty:
        st.warning(
            f"Small cohorts ({', '.join(f'{text.literal(c)}: N={n}' for c, n in zip(small['cohort'], small['n'], strict=True))}): "
            f"with fewer than {LOW_POWER_N} runs per cohort only large effects can be detected."
        )
    st.caption(
        "Each row reads b − a (cohort − baseline with a baseline); p_improvement is the "
        f"chance a run of b is better than a run of a. {metric.replace('_', ' ')}: "
        + {
            "higher": "higher is better",
            "lower": "lower is better",
            "tradeoff": "a trade-off, so no cohort is called better",
        }[declared.direction]
        + (
            ", and compared only between cohorts of one reward mode."
            if declared.reward_based
            else "."
        )
    )
    for verdict in compared["verdict"]:
        st.text(verdict)
    # Significance first, as stats orders the columns.
    shown = [c for c in COMPARE_COLUMNS if c != "verdict"]
    tables.show(compared[shown], key="cohort_compare")
