"""Decisions: what the policy chose over training, how sure it was, and how it turned out."""

import charts
import data
import streamlit as st
import tables

st.title("Decisions")
runs = data.run_index()
if runs.empty:
    st.info("No runs in this archive yet.")
    st.stop()
recent = f"{data.RECENT_RUNS} most recent runs"
scope = st.selectbox("Runs", [recent, "all runs", *runs["run_id"]], key="dec_scope")
if scope in (recent, "all runs"):
    filters = data.scope_filter(scope)
else:
    filters = {"run_id": scope}

mix = charts.coarsen(data.action_mix(**filters), x="batch", by="action", values={"count": "sum"})
if mix.empty:
    st.info("No action counts recorded for these runs yet.")
else:
    st.altair_chart(
        charts.stacked_bars(
            mix,
            x="batch",
            y="count",
            color="action",
            normalize=True,
            title="Action mix per batch",
            y_title="share of the batch's actions",
        ),
        width="stretch",
    )

left, right = st.columns(2)
left.altair_chart(charts.calibration(data.calibration(**filters)), width="stretch")
pairs = data.value_vs_reward(limit=1500, **filters)
if not pairs.empty:
    right.altair_chart(
        charts.scatter(
            pairs[["expected_value", "actual_reward", "chosen_action"]],
            x="expected_value",
            y="actual_reward",
            color="chosen_action",
            title="Value estimate versus actual reward",
        ),
        width="stretch",
    )
entropy = charts.coarsen(
    data.head_entropy(**filters), x="batch", by="head", values={"entropy": "mean"}
)
if not entropy.empty:
    st.altair_chart(
        charts.curves(
            entropy,
            x="batch",
            y="entropy",
            color="head",
            title="Per-head entropy",
            color_title="policy head",
        ),
        width="stretch",
    )

if scope not in (recent, "all runs"):
    st.subheader("Decision log")
    tables.show(data.decision_table(run_id=scope), key="dec_table")
else:
    st.caption("Pick one run to see its decision log with the alternatives the policy weighed.")
