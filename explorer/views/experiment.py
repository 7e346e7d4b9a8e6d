"""Experiment (verdict): should we keep this change? Decided by rules declared up front."""

import charts
import data
import streamlit as st
import tables
import text

from sanctum_store import metrics
from sanctum_store.experiments import DECISIONS
from sanctum_store.queries import COHORT_ATTRIBUTES

st.title("Experiment (verdict)")
st.caption(
    "Runs (seeds) are the unit. Each cohort is compared with the baseline by the rules set "
    "below, before looking: CONTINUE when the 95 % CI of its improvement is entirely above "
    "the minimum effect δ, STOP when entirely below, REVISE when it straddles δ, BLOCKED when "
    "the evidence does not allow a decision (too few clean runs or pairs, confounded runs "
    "included). The same numbers as `sanctum-store verdict`."
)
DIRECTED = [name for name, o in metrics.OUTCOMES.items() if o.direction != "tradeoff"]
HERE = "(set here)"
names = data.saved_experiment_names()
chosen = (
    st.selectbox(
        "Experiment",
        [HERE, *names],
        key="exp_saved",
        help="A saved experiment (sanctum-store verdict --save NAME) is decided by the rules it "
        "was saved with, on the runs the archive holds now.",
    )
    if names
    else HERE
)
if chosen != HERE:
    saved, result = data.saved_experiment(chosen)
    definition = saved.definition
    by, baseline, metric = definition["by"], definition["baseline"], definition["metric"]
    include = not definition["exclude_confounded"]
    st.caption(f"Version {saved.version} of the definition; every version, with what it changed:")
    tables.show(saved.history, key="exp_history")
    with st.expander("Definition (current version)", expanded=False):
        st.text("\n".join(f"{key} = {value!r}" for key, value in definition.items()))
else:
    left, middle, right = st.columns(3)
    by = left.selectbox("Cohorts by", COHORT_ATTRIBUTES, key="exp_by")
    metric = middle.selectbox("Outcome", DIRECTED, key="exp_metric")
    outcomes = data.run_outcomes()
    choices = sorted(set(charts.labels(outcomes[by].dropna())))
    if len(choices) < 2:
        st.info(f"An experiment needs at least two cohorts; the runs hold {len(choices)} of {by}.")
        st.stop()
    baseline = right.selectbox("Baseline", choices, key="exp_baseline")

    with st.expander("Decision rules (declare before looking)", expanded=False):
        a, b, c, d = st.columns(4)
        min_effect = a.number_input("Minimum effect δ", value=0.0, step=0.5, key="exp_min_effect")
        min_runs = b.number_input("Minimum clean runs", min_value=2, value=5, key="exp_min_runs")
        pair_by = c.radio("Pair runs by seed", ["auto", "seed", "none"], key="exp_pair_by")
        last_k = d.number_input(
            "Last K batches (0: the run outcome)",
            min_value=0,
            value=0,
            key="exp_last_k",
            help="The outcome per episode, averaged over each run's last K batches.",
        )
        include = st.toggle(
            "Include confounded runs", value=False, key="exp_include", help="Then no decision."
        )

    result = data.experiment(
        by=by,
        baseline=baseline,
        metric=metric,
        last_k=int(last_k) or None,
        pair_by=pair_by,
        min_effect=float(min_effect),
        min_runs=int(min_runs),
        exclude_confounded=not include,
    )
ALERT = {
    "CONTINUE": (st.success, ":material/check_circle:"),
    "STOP": (st.warning, ":material/do_not_disturb_on:"),
    "REVISE": (st.warning, ":material/help:"),
    "BLOCKED": (st.info, ":material/block:"),
}
assert set(ALERT) == set(DECISIONS)
for row in result.decisions.itertuples():
    alert, icon = ALERT[row.decision]
    alert(
        f"**{row.decision}**: {text.literal(row.cohort)} against {text.literal(baseline)}",
        icon=icon,
    )
    st.text(row.reason)

domain = data.cohort_domain(by)
what = metric.replace("_", " ")
left, right = st.columns(2)
curves = charts.thinned(
    result.curves.assign(cohort=charts.labels(result.curves["cohort"])),
    x="batch",
    y="iqm",
    by="cohort",
)
if curves.empty:
    left.info("No episode of these runs has been seen to end yet.")
else:
    left.altair_chart(
        charts.curves(
            curves,
            x="batch",
            y="iqm",
            color="cohort",
            band=("ci_low", "ci_high"),
            title="Sample efficiency: IQM per batch",
            y_title=f"{what} at episode end (IQM)",
            color_title=by.replace("_", " "),
            domain=domain,
        ),
        width="stretch",
    )
profiles = result.profiles.assign(cohort=charts.labels(result.profiles["cohort"]))
if not profiles.empty:
    right.altair_chart(
        charts.curves(
            profiles,
            x="tau",
            y="fraction",
            color="cohort",
            band=("ci_low", "ci_high"),
            title="Performance profile: runs above τ",
            x_title=f"τ: {charts.title_for(metric)}",
            y_title="fraction of runs above τ",
            color_title=by.replace("_", " "),
            domain=domain,
        ),
        width="stretch",
    )

used = result.runs[result.runs["used"]]
left, right = st.columns([2, 3])
left.altair_chart(
    charts.paired_outcomes(
        used.rename(columns={"value": metric}),
        group="cohort",
        value=metric,
        pair="pair",
        title=f"{what} per run, seeds joined",
        group_title=by.replace("_", " "),
        domain=domain,
    ),
    width="stretch",
)
tables.show(result.cohorts, key="exp_cohorts", container=right)

st.subheader("Comparisons with the baseline")
tables.show(result.comparisons, key="exp_comparisons")
st.subheader("Excluded runs")
if result.excluded.empty:
    st.caption("None: no run of these cohorts is confounded or lacks an outcome.")
else:
    tables.show(result.excluded, key="exp_excluded")
    other = "included" if not include else "excluded"
    st.caption(f"With the confounded runs {other} instead (no decision may rest on them):")
    tables.show(result.sensitivity, key="exp_sensitivity")
