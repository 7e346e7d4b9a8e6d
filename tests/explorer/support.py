"""Fixtures for the explorer tests: one demo archive per session, fresh caches per test."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import streamlit as st

from sanctum_store import Archive, demo

APP = Path(__file__).resolve().parents[2] / "explorer" / "app.py"
sys.path.insert(0, str(APP.parent))  # the explorer's own modules, as its pages import them
import navigation  # noqa: E402

#: Every page that shows the archive (the app's own list).
PAGES = navigation.SCRIPTS
XSS = "<script>alert('owned')</script> <b>bold?</b>"
#: A run whose name is markdown and HTML, and whose event log carries HTML: shown as typed.
HTML_RUN = "html-<i>in</i>-**events**"


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory) -> str:
    """A small demo archive (6 runs, 3 cohorts), plus one run whose event log carries HTML."""
    url = f"sqlite:///{tmp_path_factory.mktemp('explorer') / 'demo.db'}"
    demo.write_demo(url, 6, seed=3, now=datetime.now(UTC))
    with Archive(url) as archive:
        snapshot = archive.load_dict(archive.runs()["run_id"].iloc[-1])
        snapshot["run_id"] = HTML_RUN
        snapshot["captured_at"] = datetime.now(UTC).isoformat()
        snapshot["event_log"][-1]["message"] = XSS
        archive.save(json.loads(json.dumps(snapshot)))
    return url


@pytest.fixture(autouse=True)
def fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
