"""The explorer in a real browser: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
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
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from support import APP, HTML_RUN, XSS, demo_archive, navigation  # noqa: F401  (fixtures)

from sanctum_store import Archive

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


#: What each chart on the page drew: its data marks with a visible size (text excluded), and
#: the colours of its axis labels. Vega draws into SVG: one element per mark item.
DRAWN = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].map(chart => {
    const items = [...chart.querySelectorAll('g.role-mark > :not(text)')].filter(el => {
        const box = el.getBoundingClientRect();
        return box.width > 0 || box.height > 0;
    });
    const labels = [...chart.querySelectorAll('g.role-axis-label text')];
    return {marks: items.length, label_colors: [...new Set(labels.map(l => getComputedStyle(l).fill))]};
})"""

# Per page (every page of the app's list): its URL, what it shows, how many charts.
PAGES = {
    "runs": ("", TABLE, 0),
    "run_detail": ("run_detail?run={finished}", CHART, 9),
    "compare": ("compare", CHART, 1),
    "leaderboard": ("leaderboard", TABLE, 0),
    "cohorts": ("cohorts", CHART, 2),
    "lifecycle": ("lifecycle", CHART, 3),
    "decisions": ("decisions", CHART, 4),
    "attribution": ("attribution", CHART, 2),
    "sql": ("sql", "textarea", 0),
}


assert list(PAGES) == [page.name for page in navigation.PAGES], "a page without expectations"


def _luminance(css: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css)[:3])
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def choose_theme(page, name: str) -> None:
    """The app's own theme switch: the main menu's Light / Dark choice."""
    page.get_by_test_id("stMainMenu").click()
    page.get_by_test_id(f"stMainMenuItem-theme-{name}").click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(800)


@pytest.fixture
def tall_tab(chromium):
    """A window tall enough that a page's screenshot shows most of it (the main area
    scrolls inside the page, so full-page screenshots would not)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 2200})
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("theme", ["Light", "Dark"])
@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_draws_its_charts_readably_and_is_saved(
    tall_tab, server, demo_archive, name, theme
):
    path, expect, charts = PAGES[name]
    with Archive(demo_archive) as archive:
        runs = archive.runs()
    finished = runs[runs["status"] == "finished"]["run_id"].iloc[0]
    visit(tall_tab, server, path.format(finished=quote(finished)), expect)
    choose_theme(tall_tab, theme)
    settle(tall_tab, expect)
    if charts:  # charts draw a moment after the script run ends
        # On a timeout the assertions below say what is missing.
        with contextlib.suppress(PlaywrightTimeout):
            tall_tab.wait_for_function(
                f"(() => {{ const drawn = ({DRAWN})(); "
                f"return drawn.length >= {charts} && drawn.every(c => c.marks > 0); }})()",
                timeout=30_000,
            )
    tall_tab.wait_for_timeout(1000)
    background = tall_tab.evaluate(
        "getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor"
    )
    assert (_luminance(background) < 0.1) == (theme == "Dark"), background
    drawn = tall_tab.evaluate(DRAWN)
    ARTIFACTS.mkdir(exist_ok=True)
    tall_tab.screenshot(path=str(ARTIFACTS / f"{name}-{theme.lower()}.png"))
    assert len(drawn) >= charts, drawn
    assert all(chart["marks"] > 0 for chart in drawn), drawn
    for chart in drawn:  # axis labels stand out from the background in either theme
        assert all(_contrast(color, background) >= 3 for color in chart["label_colors"]), (
            chart,
            background,
        )


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
