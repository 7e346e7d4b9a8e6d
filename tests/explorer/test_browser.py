"""The explorer in a real browser: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from support import APP, HTML_RUN, XSS, demo_archive  # noqa: F401  (fixtures)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(demo_archive, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "SANCTUM_DB": demo_archive}
    with open(log, "w") as out:
        # Output to a file, never a pipe: a closed pipe makes Streamlit ignore SIGTERM.
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(APP),
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=APP.parent.parent,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail(f"streamlit did not start:\n{log.read_text()}")
    yield base
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def tab(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()


def settle(page, expect: str | None = None) -> None:
    """Wait for the script run to finish (and for an element), then check for exceptions."""
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000
    )
    if expect:
        page.wait_for_selector(expect, timeout=60_000)
    page.wait_for_timeout(500)
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000
    )
    assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")[:2000]


CHART = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
TABLE = '[data-testid="stDataFrame"]'


def visit(page, server, path: str, expect: str) -> None:
    page.goto(f"{server}/{path}")
    settle(page, expect)


def test_runs_search(tab, server):
    visit(tab, server, "", TABLE)
    matches = tab.get_by_text(re.compile(r"\d+ runs match"))
    before = matches.inner_text()
    search = tab.get_by_role("textbox", name="Search")
    search.fill("shaped")
    search.press("Enter")
    settle(tab, TABLE)
    after = matches.inner_text()
    assert int(after.split()[0]) < int(before.split()[0])


def test_run_detail_shows_html_as_text_and_screenshot(tab, server):
    visit(tab, server, f"run_detail?run={quote(HTML_RUN)}", TABLE)
    assert tab.locator("h1").first.inner_text() == HTML_RUN  # the name as typed, no markup
    tab.wait_for_timeout(1500)  # dataframes draw a moment after the run ends
    cells = tab.locator(
        '[data-testid="stDataFrame"] td, [data-testid="stDataFrame"] [role="gridcell"]'
    )
    texts = cells.all_inner_texts()
    assert any("<script>alert('owned')</script>" in t for t in texts), texts[:20]
    injected = tab.evaluate("[...document.scripts].filter(s => s.text.includes('owned')).length")
    assert injected == 0 and tab.dialogs == []
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "run_detail.png"))


def test_cohorts_switch_attribute_and_screenshot(tab, server):
    visit(tab, server, "cohorts", CHART)
    tab.get_by_label("Cohorts by").click()
    tab.get_by_role("option", name="group_id").click()
    settle(tab, CHART)
    assert tab.get_by_role("combobox", name="Cohorts by").input_value() == "group_id"
    assert "shaped" not in tab.get_by_test_id("stDataFrame").first.inner_text()
    tab.wait_for_timeout(1000)
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "cohorts.png"))


@pytest.mark.parametrize(
    ("path", "expect", "control", "choice"),
    [
        ("compare", CHART, "Only rows that differ", None),
        ("leaderboard", TABLE, "Reward mode", "shaped"),
        ("lifecycle", CHART, "slot", None),
        ("decisions", CHART, "Runs", HTML_RUN),
        ("attribution", CHART, "slot", None),
    ],
)
def test_page_with_one_interaction(tab, server, path, expect, control, choice):
    visit(tab, server, path, expect)
    if choice is None:
        tab.get_by_text(control, exact=True).first.click()
    else:
        tab.get_by_label(control).first.click()
        tab.get_by_role("option", name=choice).first.click()
    settle(tab)


def test_sql_console(tab, server):
    visit(tab, server, "sql", "textarea")
    editor = tab.locator("textarea").first
    editor.fill("SELECT run_id, reward_mode FROM runs ORDER BY run_id")
    editor.press("Control+Enter")  # commit the text: Streamlit reruns and enables Run
    settle(tab)
    tab.get_by_role("button", name="Run").click()
    settle(tab, TABLE)
    assert "rows in" in tab.inner_text("body")
