"""Attribution: which slots and blueprints carry the accuracy (Shapley), and how seeds interact
(counterfactual synergy)."""

import charts
import data
import streamlit as st
import tables

from sanctum_store.queries import COHORT_ATTRIBUTES

st.title("Attribution")
left, middle, right = st.columns(3)
scope = data.scope_picker(left, "attr_scope")
by = middle.radio("Rank", ["blueprint", "slot"], horizontal=True, key="attr_by")
split = right.selectbox("Split by cohort", ["(none)", *COHORT_ATTRIBUTES], key="attr_cohort")
cohort = None if split == "(none)" else split

ranking = data.shapley_ranking(by=by, cohort=cohort, **scope)
if ranking.empty:
    st.info("No Shapley estimates recorded yet.")
else:
    label = "blueprint_id" if by == "blueprint" else "slot_id"
    shown = ranking.assign(
        label=charts.labels(ranking[label])
        + (" · " + charts.labels(ranking["cohort"]) if cohort else "")
    )
    st.altair_chart(
        charts.ranking(
            shown[["label", "mean_value", "n", "share_significant"]],
            label="label",
            value="mean_value",
            title="Which seeds carry the accuracy (Shapley)",
            label_title=by + (f" · {split.replace('_', ' ')}" if cohort else ""),
        ),
        width="stretch",
    )
    tables.show(ranking, key="attr_ranking")

st.subheader("Counterfactual synergy")
synergy = data.synergy(limit=2000, **scope)
if synergy.empty:
    st.info("No counterfactual matrices recorded yet.")
else:
    per_run = synergy.groupby("run_id", as_index=False)["synergy"].mean()
    st.altair_chart(
        charts.ranking(
            per_run.head(40),
            label="run_id",
            value="synergy",
            title="Mean synergy per run (combined − baseline − Σ solo gains)",
            label_title="run",
        ),
        width="stretch",
    )
    tables.show(synergy.head(500), key="attr_synergy")
