"""Runs: every run in the archive, filterable and sortable; pick runs to open or compare."""

import data
import streamlit as st
import tables

from sanctum_store.status import STATUSES, label

PAGE_SIZE = 50
SORTABLE = {
    "last seen": "last_seen",
    "final accuracy": "final_accuracy",
    "peak accuracy": "peak_accuracy",
    "mean reward": "mean_reward",
    "growth": "growth_ratio",
    "duration": "duration_s",
    "run id": "run_id",
}

st.title("Runs")
facets = data.facets()
left, middle, right, far = st.columns([3, 2, 2, 2])
search = left.text_input("Search", key="runs_search", placeholder="run id, task, cohort…")
modes = middle.multiselect("Reward mode", facets.get("reward_mode", []), key="runs_mode")
statuses = right.multiselect("Status", STATUSES, key="runs_status")
groups = far.multiselect("Group", facets.get("group_id", []), key="runs_group")
sort_label = left.selectbox("Sort by", list(SORTABLE), key="runs_sort")
descending = middle.toggle("Descending", value=True, key="runs_desc")

filters = {
    "search": search or None,
    "reward_mode": modes or None,
    "status": statuses or None,
    "group_id": groups or None,
}
total = data.count_runs(**filters)
pages = max(1, -(-total // PAGE_SIZE))
page = right.number_input("Page", 1, pages, 1, key="runs_page") if pages > 1 else 1
runs = data.list_runs(
    **filters,
    sort=SORTABLE[sort_label],
    descending=descending,
    limit=PAGE_SIZE,
    offset=(page - 1) * PAGE_SIZE,
)
st.caption(f"{total} runs match" + (f" — page {page} of {pages}" if pages > 1 else ""))

table = runs.assign(status=runs["status"].map(label))
selection = tables.show(
    table,
    key="runs_table",
    on_select="rerun",
    selection_mode="multi-row",
    column_order=[
        "run_id",
        "status",
        "reward_mode",
        "group_id",
        "task_name",
        "final_accuracy",
        "peak_accuracy",
        "mean_reward",
        "growth_ratio",
        "batches_done",
        "max_batches",
        "fossilized",
        "pruned",
        "duration_s",
        "last_seen",
    ],
    column_config={
        "run_id": st.column_config.TextColumn("run"),
        "final_accuracy": st.column_config.NumberColumn("final acc %", format="%.4g"),
        "peak_accuracy": st.column_config.NumberColumn("peak acc %", format="%.4g"),
        "mean_reward": st.column_config.NumberColumn("mean reward", format="%.4g"),
        "growth_ratio": st.column_config.NumberColumn("growth", format="%.4g×"),
        "duration_s": st.column_config.NumberColumn("duration s", format="%.0f"),
        "last_seen": st.column_config.DatetimeColumn("last seen (UTC)", format=tables.TIME_FORMAT),
    },
)
chosen = [runs.iloc[i]["run_id"] for i in selection.selection.rows]
if chosen:
    st.session_state["selected_runs"] = chosen

open_col, compare_col, _ = st.columns([1, 2, 4])
if open_col.button("Open run", key="open_run", disabled=len(chosen) != 1):
    st.session_state["run_id"] = chosen[0]
    st.switch_page("views/run_detail.py")
if compare_col.button("Compare selected", key="compare_runs", disabled=len(chosen) < 2):
    st.switch_page("views/compare.py")
if not chosen:
    st.caption("Select one run to open it, or several to compare them.")
