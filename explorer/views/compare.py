"""Compare: overlaid curves of selected runs, and their configurations side by side."""

import charts
import data
import pandas as pd
import streamlit as st
import tables

from sanctum_store.queries import EPISODE_METRICS, SERIES_METRICS

st.title("Compare runs")
runs = data.run_index()
if runs.empty:
    st.info("No runs in this archive yet.")
    st.stop()
run_ids = list(runs["run_id"])
default = [r for r in st.session_state.get("selected_runs", []) if r in run_ids] or run_ids[:3]
chosen = st.multiselect("Runs", run_ids, default=default, key="compare_runs", max_selections=12)
if not chosen:
    st.info("Pick runs to compare (or select them on the Runs page).")
    st.stop()

kind = st.radio(
    "Curve",
    ["end of episode", "within episode"],
    horizontal=True,
    key="compare_curve",
    help="End of episode: each batch's outcome (the runs' mean over envs), as the policy "
    "learns. Within episode: the host's training, epoch by epoch, restarting every batch.",
)
left, middle, right = st.columns(3)
if kind == "end of episode":
    metric = left.selectbox("Metric", EPISODE_METRICS, key="compare_episode_metric")
    smoothing = middle.slider("Smoothing (EMA)", 0.0, 0.99, 0.0, 0.01, key="compare_smoothing")
    curves = data.run_episode_means(metric=metric, run_id=chosen)
    curves = charts.smoothed(
        curves.rename(columns={"run_id": "run"}), ["value"], by="run", weight=smoothing
    )
    curves = charts.thinned(curves, x="batch", y="value", by="run")
    what = metric.replace("_", " ")
    chart = charts.curves(
        curves,
        x="batch",
        color="run",
        title=f"End-of-episode {what}: mean across envs, per batch",
        x_title="batch (episode)",
        y_title=f"{what} at episode end",
    )
    if curves.empty:
        st.info("No episode of these runs has been seen to end yet.")
else:
    metrics = sorted(name for name in SERIES_METRICS if "." not in name)
    metric = left.selectbox(
        "Metric", metrics, index=metrics.index("host_accuracy"), key="compare_metric"
    )
    x = middle.radio("x axis", ["batch", "epoch", "time"], horizontal=True, key="compare_x")
    curves = pd.concat(
        [
            data.run_series(run_id=run_id, metric=metric, x=x, max_points=1000).assign(run=run_id)
            for run_id in chosen
        ],
        ignore_index=True,
    )
    curves = curves[curves["env"].astype(str) == "mean"]
    chart = charts.curves(
        curves,
        x="x",
        color="run",
        title=f"{metric.replace('_', ' ')}: mean across envs",
        x_title=charts.title_for(x),
        y_title=charts.title_for(metric),
    )
st.altair_chart(chart, width="stretch")

st.subheader("Outcomes and configuration")
table = data.list_runs(run_id=chosen, limit=None).set_index("run_id").loc[chosen]
configs = pd.DataFrame({run_id: data.run_config(run_id) for run_id in chosen})
side_by_side = pd.concat([table.T, configs]).map(tables.as_text)
if st.toggle("Only rows that differ", key="compare_diff_only"):
    side_by_side = side_by_side[side_by_side.nunique(axis=1) > 1]
tables.show(side_by_side, key="compare_table", hide_index=False)
