"""Leaderboard: the best-run records of every run, best peak first; pick one for its detail."""

import charts
import data
import pandas as pd
import streamlit as st
import tables
import text

st.title("Leaderboard")
facets = data.facets()
left, right = st.columns(2)
modes = left.multiselect("Reward mode", facets.get("reward_mode", []), key="board_mode")
limit = right.slider("Records", 10, 500, 100, step=10, key="board_limit")
board = data.leaderboard(reward_mode=modes or None, limit=limit)


def glyph(trajectory: float) -> str:
    """Where the episode ended relative to its peak: held (─) or fell back (▼)."""
    if pd.isna(trajectory):
        return ""
    return "─ held" if trajectory >= -0.5 else f"▼ {trajectory:+.2f}"


table = board.assign(trajectory_glyph=board["trajectory"].map(glyph))
selection = tables.show(
    table,
    key="board_table",
    on_select="rerun",
    selection_mode="single-row",
    column_order=[
        "run_id",
        "reward_mode",
        "env_id",
        "episode",
        "epoch",
        "peak_accuracy",
        "final_accuracy",
        "trajectory_glyph",
        "growth_ratio",
        "seeds_fossilized",
        "seeds_holding",
        "seeds_blending",
    ],
    column_config={
        "peak_accuracy": st.column_config.NumberColumn("peak %", format="%.4g"),
        "final_accuracy": st.column_config.NumberColumn("final %", format="%.4g"),
        "trajectory_glyph": st.column_config.TextColumn("trajectory"),
        "growth_ratio": st.column_config.NumberColumn("growth", format="%.4g×"),
    },
)
if not selection.selection.rows:
    st.caption("Select a record to see its detail.")
    st.stop()

row = board.iloc[selection.selection.rows[0]]
record = data.best_run(row["run_id"], row["record_id"])
st.subheader(f"{text.literal(row['run_id'])} · env {row['env_id']} · episode {row['episode']}")
cols = st.columns(4)
cols[0].metric(
    "Peak", f"{record['peak_accuracy']:.4g} %", f"epoch {record['epoch']}", delta_color="off"
)
cols[1].metric(
    "Final",
    f"{record['final_accuracy']:.4g} %",
    f"{record['final_accuracy'] - record['peak_accuracy']:+.4g}",
    delta_color="normal",
)
cols[2].metric("Growth", f"{record['growth_ratio']:.4g}×")
cols[3].metric("Fossilized / pruned", f"{record['fossilized_count']} / {record['pruned_count']}")
seeds = pd.DataFrame(
    [
        {
            "slot": slot,
            **{
                k: seed[k]
                for k in ("stage", "blueprint_id", "alpha", "accuracy_delta", "epochs_total")
            },
        }
        for slot, seed in record["seeds"].items()
    ]
)
if not seeds.empty:
    tables.show(seeds, key="board_seeds")
history = pd.DataFrame(
    {"epoch": range(len(record["accuracy_history"])), "value": record["accuracy_history"]}
)
if not history.empty:
    st.altair_chart(
        charts.curves(
            history,
            x="epoch",
            title="Accuracy up to the peak",
            x_title="epoch (within the episode)",
            y_title=charts.title_for("host_accuracy"),
        ),
        width="stretch",
    )
if record["action_history"]:
    st.text("Actions before the peak: " + " → ".join(record["action_history"][-12:]))
