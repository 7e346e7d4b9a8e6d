"""Sanctum run archive explorer: ``streamlit run explorer/app.py [-- --db PATH_OR_URL]``."""

import data
import navigation
import streamlit as st

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


def page(entry: navigation.Page, **kwargs) -> st.Page:
    visibility = kwargs.pop("visibility", shown)
    return st.Page(entry.script, title=entry.title, visibility=visibility, **kwargs)


pages: dict[str, list[st.Page]] = {}
for entry in navigation.PAGES:
    first = entry is navigation.PAGES[0]
    pages.setdefault(entry.section, []).append(page(entry, default=ready and first))
pages[""] = [
    page(
        navigation.WELCOME,
        default=state == "empty",
        visibility="visible" if state == "empty" else "hidden",
    ),
    page(
        navigation.UNAVAILABLE,
        default=state == "error",
        visibility="visible" if state == "error" else "hidden",
    ),
]
st.navigation(pages).run()
