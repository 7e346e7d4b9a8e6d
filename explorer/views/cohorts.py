"""Cohorts (A/B): did the reward cohort really make a difference?"""

import charts
import data
import streamlit as st

from sanctum_store.queries import COHORT_ATTRIBUTES, OUTCOME_METRICS
from sanctum_store.stats import LOW_POWER_N

st.title("Cohorts (A/B)")
left, middle, right = st.columns(3)
attribute = left.selectbox("Cohorts by", COHORT_ATTRIBUTES, key="cohort_attribute")
metric = middle.selectbox("Outcome", OUTCOME_METRICS, key="cohort_metric")
finished_only = right.toggle(
    "Finished runs only",
    value=True,
    key="cohort_finished",
    help="Running and crashed runs have not reached their final accuracy yet.",
)
filters = {"status": "finished"} if finished_only else {}
higher_is_better = True

outcomes = data.query("run_outcomes", **filters)
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
curves = data.query("cohort_curves", attribute=attribute, metric=curve_metric, x="batch", **filters)
curves = curves.assign(cohort=curves["cohort"].astype(str))
st.altair_chart(
    charts.curves(
        curves,
        x="x",
        y="mean",
        color="cohort",
        band=("ci_low", "ci_high"),
        title=f"{curve_metric.replace('_', ' ')}: mean per cohort with 95 % CI",
    ),
    width="stretch",
)

dots = outcomes.assign(cohort=outcomes[attribute].astype(str))[["run_id", "cohort", metric]]
# The statistics use every run; the plot shows at most 300 per cohort (a fixed random sample).
dots = (
    dots.dropna()
    .groupby("cohort", group_keys=False)
    .apply(lambda group: group.sample(min(len(group), 300), random_state=0))
)
left, right = st.columns([2, 3])
left.altair_chart(
    charts.distribution(dots, group="cohort", value=metric, title=f"{metric} per run"),
    width="stretch",
)
right.dataframe(
    described,
    hide_index=True,
    key="cohort_describe",
    column_config={
        c: st.column_config.NumberColumn(format="%.3f")
        for c in ("mean", "median", "std", "iqm", "ci_low", "ci_high")
    },
)

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
    st.dataframe(
        compared.drop(columns=["verdict"]),
        hide_index=True,
        key="cohort_compare",
        column_config={
            c: st.column_config.NumberColumn(format="%.4g")
            for c in compared.columns
            if c not in ("a", "b", "significant", "n_a", "n_b")
        },
    )
