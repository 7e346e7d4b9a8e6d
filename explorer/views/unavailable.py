"""The archive cannot be opened: say why, and what to do."""

import data
import streamlit as st
import text

st.title("Archive unavailable")
st.text(data.display_url(data.archive_url()))
st.error(text.literal(st.session_state.get("archive_problem", "The archive could not be opened.")))
st.caption(
    "Point the explorer at another archive with `streamlit run explorer/app.py -- --db "
    "PATH_OR_URL` or the SANCTUM_DB environment variable."
)
