"""Cohorts (A/B): did the reward cohort really make a difference?"""

import charts
import data
import streamlit as st
import tables

from sanctum_store.queries import COHORT_ATTRIBUTES, OUTCOME_METRICS
from sanctum_store.stats import LOW_POWER_N
from sanctum_store.status import RunStatus

st.title("Cohorts (A/B)")
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
higher_is_better = True

outcomes = data.run_outcomes(**filters)
described, compared = data.cohort_statistics(
    outcomes[["run_id", attribute, metric]].rename(columns={attribute: "cohort"}),
    metric,
    higher_is_better,
)

curve_metric = (
    "host_accuracy"
    if metric in ("final_accuracy", "peak_accuracy")
    else ("cumulative_reward" if metric == "mean_reward" else "growth_ratio")
)
curves = data.cohort_curves(attribute=attribute, metric=curve_metric, x="batch", **filters)
# Every cohort the attribute takes in the archive, in one order: a cohort's colour is the same
# whichever runs are shown.
domain = data.cohort_domain(attribute)
curves = curves.assign(cohort=charts.labels(curves["cohort"]))
st.altair_chart(
    charts.curves(
        curves,
        x="x",
        y="mean",
        color="cohort",
        band=("ci_low", "ci_high"),
        title=f"{curve_metric.replace('_', ' ')}: mean per cohort with 95 % CI",
        x_title=charts.title_for("batch"),
        y_title=charts.title_for(curve_metric),
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
            f"Small cohorts ({', '.join(f'{c}: N={n}' for c, n in zip(small['cohort'], small['n'], strict=True))}): "
            f"with fewer than {LOW_POWER_N} runs per cohort only large effects can be detected."
        )
    for verdict in compared["verdict"]:
        st.markdown(data.plain(verdict))
    tables.show(compared.drop(columns=["verdict"]), key="cohort_compare")
