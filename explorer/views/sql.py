"""SQL: read-only queries against the archive, through the safe SQL layer."""

import io

import data
import streamlit as st
import tables
import text

from sanctum_store import errors, sql

EXAMPLES = {
    "Runs by final accuracy": (
        "SELECT run_id, reward_mode, final_accuracy, peak_accuracy\n"
        "FROM v_runs\nORDER BY final_accuracy DESC\nLIMIT 20"
    ),
    "Mean accuracy per cohort": (
        "SELECT reward_mode, count(*) AS runs, avg(final_accuracy) AS mean_final\n"
        "FROM v_runs\nGROUP BY reward_mode\nORDER BY mean_final DESC"
    ),
    # esper's counters at each run's latest snapshot, summed over runs: the Lifecycle page's
    # numbers (seed_states rows are observations, not seeds: a seed seen pruned twice counts
    # twice, one pruned between snapshots not at all).
    "Pruned seeds per blueprint": (
        "SELECT blueprint_id, sum(prunes) AS pruned\nFROM v_lifecycle\n"
        "GROUP BY blueprint_id\nORDER BY pruned DESC, blueprint_id"
    ),
    "Latest events": (
        "SELECT r.run_id, e.timestamp, e.event_type, e.message\n"
        "FROM events e JOIN runs r ON r.id = e.run_pk\nORDER BY e.id DESC\nLIMIT 50"
    ),
}

st.title("SQL")
url = data.archive_url()
st.caption("Read-only: SELECT, WITH and EXPLAIN only, with a time limit, a row cap and a byte cap.")

editor, browser = st.columns([3, 2])
with browser:
    st.markdown("**Schema**")
    overview = data.schema_overview()
    objects = sorted(overview["object"].unique())
    kinds = overview.drop_duplicates("object").set_index("object")["kind"]
    shown = st.selectbox(
        "Table or view",
        objects,
        key="sql_object",
        format_func=lambda name: f"{name} ({kinds[name]})",
    )
    tables.show(
        overview[overview["object"] == shown][["column", "type"]], key="sql_columns", height=300
    )

with editor:
    example = st.selectbox("Examples", ["—", *EXAMPLES], key="sql_example")
    if example != "—" and st.session_state.get("sql_loaded") != example:
        st.session_state["sql_text"] = EXAMPLES[example]
        st.session_state["sql_loaded"] = example
    query = st.text_area(
        "Query", key="sql_text", height=200, placeholder="SELECT * FROM v_runs LIMIT 10"
    )
    left, middle, right = st.columns(3)
    timeout = left.number_input("Time limit (s)", 1, 120, 10, key="sql_timeout")
    max_rows = middle.number_input("Row cap", 10, 100_000, 5_000, step=1_000, key="sql_rows")
    max_mb = right.number_input("Byte cap (MB)", 1, 1024, 64, step=16, key="sql_mb")
    run = st.button("Run", key="sql_run", type="primary", disabled=not (query or "").strip())

if run:
    try:
        result = sql.run_query(
            url,
            query,
            timeout_s=float(timeout),
            max_rows=int(max_rows),
            max_bytes=int(max_mb) * 2**20,
            unsafe_writable_role=data.unsafe_writable_role(),
        )
    except errors.QueryInterrupted as e:
        st.error(f"Interrupted: {text.literal(e)}")
    except errors.QueryRefused as e:
        st.error(f"Refused: {text.literal(e)}")
    except errors.SQLError as e:
        st.error(f"Query failed: {text.literal(e)}")
    else:
        st.session_state["sql_result"] = result

result = st.session_state.get("sql_result")
if result is not None:
    note = f"{len(result.frame)} rows in {result.elapsed_s:.3f} s"
    if result.truncated_by == sql.BYTE_CAP:
        st.warning(
            f"Truncated: showing the first {len(result.frame)} rows (byte cap); more were left."
        )
    elif result.truncated:
        st.warning(f"Truncated: showing the first {len(result.frame)} rows (row cap).")
    st.caption(note)
    tables.show(result.frame, key="sql_table")
    # Downloads take a column of mixed types (SQLite: SELECT 1 UNION ALL SELECT 'a') as text.
    downloadable = sql.arrow_safe(result.frame)
    left, right = st.columns(2)
    left.download_button(
        "Download CSV", downloadable.to_csv(index=False), "query.csv", "text/csv", key="sql_csv"
    )
    parquet = io.BytesIO()
    try:
        downloadable.to_parquet(parquet, index=False)
    except (ValueError, TypeError, NotImplementedError) as e:  # what Arrow still cannot hold
        right.caption(f"No Parquet download: {text.literal(e)}")
    else:
        right.download_button(
            "Download Parquet",
            parquet.getvalue(),
            "query.parquet",
            "application/octet-stream",
            key="sql_parquet",
        )
