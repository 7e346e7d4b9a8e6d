"""Sanctum run archive explorer: ``streamlit run explorer/app.py [-- --db PATH_OR_URL]``."""

import data
import streamlit as st

# Page scripts live in views/, not pages/: Streamlit treats a pages/ folder as the old
# file-based navigation and would run those scripts without this file.
st.set_page_config(page_title="Sanctum archive", page_icon="🌱", layout="wide")

url = data.archive_url()
with st.sidebar:
    st.caption("Archive")
    st.code(data.display_url(url), language=None, wrap_lines=True)
    if st.button("Refresh", key="refresh", help="Re-read the archive now"):
        data.clear()

state, problem = data.archive_state(url)
st.session_state["archive_problem"] = problem
ready = state == "ready"
# Every page is registered on every run (hidden when it cannot be used), so the welcome page
# can switch to the runs once it has created the demo archive.
shown = "visible" if ready else "hidden"


def page(path: str, title: str, **kwargs) -> st.Page:
    return st.Page(path, title=title, visibility=kwargs.pop("visibility", shown), **kwargs)


pages = {
    "Runs": [
        page("views/runs.py", "Runs", default=ready),
        page("views/run_detail.py", "Run detail"),
        page("views/compare.py", "Compare"),
        page("views/leaderboard.py", "Leaderboard"),
    ],
    "Analysis": [
        page("views/cohorts.py", "Cohorts (A/B)"),
        page("views/lifecycle.py", "Lifecycle"),
        page("views/decisions.py", "Decisions"),
        page("views/attribution.py", "Attribution"),
    ],
    "Tools": [page("views/sql.py", "SQL")],
    "": [
        page(
            "views/welcome.py",
            "Welcome",
            default=state == "empty",
            visibility="visible" if state == "empty" else "hidden",
        ),
        page(
            "views/unavailable.py",
            "Archive unavailable",
            default=state == "error",
            visibility="visible" if state == "error" else "hidden",
        ),
    ],
}
st.navigation(pages).run()
