"""Run detail: one run's curves, envs, seeds, PPO health, rewards and events, at any moment."""

import contextlib
from datetime import timedelta

import charts
import data
import pandas as pd
import streamlit as st
import tables
import text

from sanctum_store import status
from sanctum_store.schema import detect_trend, trend_to_indicator
from sanctum_store.status import RunStatus

PPO_METRICS = {
    "entropy": ("entropy", "accuracy"),  # higher entropy is the healthy direction
    "kl_divergence": ("kl_divergence", "loss"),
    "clip_fraction": ("clip_fraction", "loss"),
    "explained_variance": ("expl_var", "accuracy"),
    "grad_norm": ("grad_norm", "loss"),
    "collapse_risk_score": ("default", "loss"),
}

runs = data.run_index()
if runs.empty:
    st.info("No runs in this archive yet.")
    st.stop()
run_ids = list(runs["run_id"])
wanted = st.query_params.get("run") or st.session_state.get("run_id")
run_id = st.selectbox(
    "Run",
    run_ids,
    index=run_ids.index(wanted) if wanted in run_ids else 0,
    key="detail_run",
    # Another run: the time slider starts again at its latest snapshot.
    on_change=lambda: st.session_state.pop("detail_moment", None),
)
st.query_params["run"] = run_id
run = data.list_runs(run_id=run_id, limit=1).iloc[0]
live = run["status"] == RunStatus.RUNNING

st.title(text.literal(run_id))
top = st.columns(3)
top[0].metric("Status", status.label(run["status"]))
top[1].metric(
    "Cohort",
    f"{text.literal(run['reward_mode'] or '—')} · group {text.literal(run['group_id'] or '—')}",
)
top[2].metric("Task", text.literal(run["task_name"] or "—"))


def shown(value, suffix: str = "", digits: int = 2) -> str:
    return f"{value:.{digits}f}{suffix}" if pd.notna(value) else "—"


bottom = st.columns(3)
bottom[0].metric("Final accuracy", shown(run["final_accuracy"], " %"))
bottom[1].metric("Peak accuracy", shown(run["peak_accuracy"], " %"))
bottom[2].metric("Growth", shown(run["growth_ratio"], "×", 3))
done, total = int(run["batches_done"] or 0), int(run["max_batches"] or 0)
st.progress(min(done / total, 1.0) if total else 0.0, text=f"batch {done} of {total or '?'}")


@st.fragment(run_every=timedelta(seconds=5) if live else None)
def curves() -> None:
    """Accuracy and reward curves (refreshed every few seconds while the run is running)."""
    x = st.radio("x axis", ["batch", "epoch", "time"], horizontal=True, key="detail_x")
    per_env = st.toggle("Per env", key="detail_per_env")
    left, right = st.columns(2)
    for column, metric, title in (
        (left, "host_accuracy", "Host accuracy"),
        (right, "cumulative_reward", "Episode reward"),
    ):
        with data.live() if live else contextlib.nullcontext():
            series = data.run_series(run_id=run_id, metric=metric, x=x, per_env=per_env)
        if series["value"].notna().sum() < 2:
            column.caption(f"{title}: not enough trained-env values yet to draw a curve.")
            continue
        series = series.assign(
            env=series["env"].astype(str),
            low=series["value"] - series["std"].fillna(0),
            high=series["value"] + series["std"].fillna(0),
        )
        column.altair_chart(
            charts.curves(
                series,
                x="x",
                color="env",
                band=("low", "high"),
                title=title + (" per env" if per_env else ": mean across envs ± std"),
                x_title=charts.title_for(x),
                y_title=charts.title_for(metric),
            ),
            width="stretch",
        )


curves()

st.subheader("PPO health")
tiles = st.columns(3) + st.columns(3)
for column, (metric, (trend_name, kind)) in zip(tiles, PPO_METRICS.items(), strict=True):
    series = data.run_series(run_id=run_id, metric=metric, x="batch", max_points=300)
    values = series["value"].dropna().tolist()
    trend = detect_trend(values, trend_name, kind)
    glyph, _ = trend_to_indicator(trend)
    column.metric(
        metric.replace("_", " "),
        f"{values[-1]:.4g}" if values else "—",
        f"{glyph} {trend}",
        delta_color="off",
        delta_arrow="off",
    )
    if len(values) >= 2:  # a line needs two points
        column.altair_chart(charts.sparkline(series), width="stretch")

st.subheader("At a moment")
times = data.snapshot_times(run_id)
if times.empty:
    st.info("No snapshot stored yet.")
    st.stop()
labels = [
    f"{row.captured_ts:%Y-%m-%d %H:%M:%S} · batch {row.current_batch} epoch {row.current_epoch}"
    for row in times.itertuples()
]
position = st.select_slider(
    "Snapshot",
    options=list(range(len(labels))),
    value=len(labels) - 1,
    format_func=lambda i: labels[i],
    key="detail_moment",
)
snapshot_id = int(times.iloc[position]["snapshot_id"])
snap = data.snapshot(run_id, snapshot_id)
st.caption(
    f"snapshot {snapshot_id}: batch {snap['current_batch']}, epoch {snap['current_epoch']}, "
    f"captured {text.literal(snap['captured_at'] or '—')}"
)

envs = pd.DataFrame(
    [
        {
            "env": int(key),
            "status": env["status"],
            "accuracy": env["host_accuracy"],
            "best": env["best_accuracy"],
            "loss": env["host_loss"],
            "reward": env["cumulative_reward"],
            "seeds active": env["active_seed_count"],
            "fossilized": env["fossilized_count"],
            "pruned": env["pruned_count"],
            "reward mode": env["reward_mode"],
        }
        for key, env in snap["envs"].items()
    ]
)
left, right = st.columns([3, 2])
tables.show(envs, key="detail_envs", container=left)
slots = pd.DataFrame(
    [
        {
            "env": int(key),
            "slot": slot,
            "stage": (env["seeds"] or {}).get(slot, {}).get("stage", "DORMANT"),
            "blueprint": (env["seeds"] or {}).get(slot, {}).get("blueprint_id") or "",
            "alpha": (env["seeds"] or {}).get(slot, {}).get("alpha", 0.0),
            "epochs_in_stage": (env["seeds"] or {}).get(slot, {}).get("epochs_in_stage", 0),
        }
        for key, env in snap["envs"].items()
        for slot in (
            snap["slot_ids"]
            or sorted({s for e in snap["envs"].values() for s in (e["seeds"] or {})})
        )
    ]
)
if not slots.empty:
    right.altair_chart(charts.slot_grid(slots), width="stretch")

components = {
    k: v
    for k, v in (snap["rewards"] or {}).items()
    if isinstance(v, (int, float))
    and not isinstance(v, bool)
    and k not in ("env_id", "val_acc", "total", "scaffold_count")
}
nonzero = {k: v for k, v in components.items() if v}
if components and not nonzero:
    st.caption(f"Every reward component of env {snap['rewards']['env_id']} is 0 at this moment.")
elif nonzero:
    breakdown = pd.DataFrame({"component": list(nonzero), "value": list(nonzero.values())})
    st.altair_chart(
        charts.ranking(
            breakdown,
            label="component",
            value="value",
            title=f"Reward components of env {snap['rewards']['env_id']} "
            f"(total {snap['rewards']['total']:.4g}; components at 0 left out)",
            label_title="reward component",
            value_title="contribution to this step's reward",
        ),
        width="stretch",
    )

st.subheader("Event log")
search = st.text_input("Search events", key="detail_event_search")
events = data.search_events(run_id=run_id, text=search or None, limit=300)
tables.show(
    events.drop(columns=["run_id"], errors="ignore").assign(
        metadata=events["metadata"].astype(str)
    ),
    key="detail_events",
)
