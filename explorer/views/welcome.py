"""Onboarding: the archive is missing or empty."""

from datetime import UTC, datetime

import data
import streamlit as st

from sanctum_store import demo

st.title("Sanctum run archive")
st.markdown(
    "This archive has no runs yet. Record one from training, import a snapshot dump, "
    "or look around a demo archive first."
)
st.text(data.display_url(data.archive_url()))

st.subheader("Record from training")
st.code(
    """import sanctum_store

recorder = sanctum_store.record(backend.get_all_snapshots, "sanctum.db", every=5.0)
try:
    train()
finally:
    recorder.stop()""",
    language="python",
)
st.caption(
    "Each A/B group becomes its own run. Snapshot dumps import with "
    "`sanctum-store import FILE.jsonl`."
)

st.subheader("Or start with demo data")
st.write(
    "Twelve simulated runs in three reward cohorts (shaped, simplified, sparse): seeds "
    "through their lifecycle, decisions, PPO metrics, one run still running, one crashed."
)
if st.button("Create the demo archive", key="create_demo", type="primary"):
    status = st.status("Simulating and recording 12 training runs…")
    done = {"n": 0}

    def progress(n: int) -> None:
        done["n"] += n
        status.update(label=f"Recording snapshots… {done['n']} written")

    demo.write_demo(data.archive_url(), 12, 0, now=datetime.now(UTC), progress=progress)
    data.clear()
    st.switch_page("views/runs.py")
