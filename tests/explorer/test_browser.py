"""The explorer in a real browser: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from support import APP, HTML_RUN, XSS, demo_archive, navigation  # noqa: F401  (fixtures)

from sanctum_store import Archive, demo

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


@contextlib.contextmanager
def streamlit_server(db: str, log: Path):
    """The explorer served on a free port for the archive ``db``: yields its base URL."""
    port = free_port()
    env = {**os.environ, "SANCTUM_DB": db}
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
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def server(demo_archive, tmp_path_factory):
    with streamlit_server(
        demo_archive, tmp_path_factory.mktemp("streamlit") / "server.log"
    ) as base:
        yield base


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
    "experiment": ("experiment", CHART, 3),
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


class Requests(http.server.BaseHTTPRequestHandler):
    """A local web server that records every request made of it (and answers with a pixel)."""

    seen: list[str] = []

    def do_GET(self):
        Requests.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()
        self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def trap():
    """A web server that no page may ever make the browser ask for anything: its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Requests)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def planted(trap: str, what: str) -> str:
    """Text that, shown as markdown or HTML, would fetch from the trap or link to it."""
    return (
        f"{what} ![img]({trap}/md-{what}.png) <img src='{trap}/html-{what}.png'> "
        f"{trap}/bare-{what} [link]({trap}/link-{what}) **{what}**"
    )


@pytest.fixture(scope="module")
def planted_archive(trap, tmp_path_factory) -> str:
    """A demo archive whose every run's id, task, reward mode, group, event messages and event
    metadata would fetch from the trap if any element rendered them as markdown or HTML."""
    url = f"sqlite:///{tmp_path_factory.mktemp('planted') / 'planted.db'}"
    demo.write_demo(url, 4, seed=5, now=datetime.now(UTC))
    with Archive(url) as archive:
        runs = archive.runs()
        for n, (run_id, mode) in enumerate(zip(runs["run_id"], runs["reward_mode"], strict=True)):
            renamed = planted(trap, f"run{n}")
            for snapshot_id in archive.snapshot_ids(run_id):
                tree = archive.load_dict(run_id, snapshot_id)
                tree["run_id"] = renamed
                tree["task_name"] = planted(trap, "task")
                tree["reward_mode"] = planted(trap, mode)
                for env in tree["envs"].values():
                    env["reward_mode"] = planted(trap, mode)
                for record in tree["best_runs"]:
                    record["reward_mode"] = planted(trap, mode)
                tree["tamiyo"]["group_id"] = planted(trap, f"group{n % 2}")
                for event in tree["event_log"]:
                    event["message"] = planted(trap, "message")
                    event["metadata"] = {**(event["metadata"] or {}), "note": planted(trap, "meta")}
                archive.save(json.loads(json.dumps(tree)))
            archive.finish_import(renamed)
            archive.delete_run(run_id)
    return url


def test_archive_text_never_fetches_or_links(chromium, trap, planted_archive, tmp_path):
    """Every page, with the archive's every label planted with markdown images, HTML images,
    links and bare URLs: the browser never asks the trap for anything and links nowhere."""
    with Archive(planted_archive) as archive:
        runs = archive.runs()
    run_id = runs["run_id"].iloc[0]
    context = chromium.new_context(viewport={"width": 1280, "height": 2200})
    page = context.new_page()
    shown: dict[str, str] = {}
    found: dict[str, int] = {}  # links and images to the trap, per page
    with streamlit_server(planted_archive, tmp_path / "server.log") as base:
        for name, (path, expect, charts) in PAGES.items():
            visit(page, base, path.format(finished=quote(run_id)), expect)
            page.wait_for_timeout(1500 if charts else 800)  # charts and tables draw late
            if name == "leaderboard":  # select the best record: its detail shows its run
                box = page.locator(TABLE).first.bounding_box()
                page.mouse.click(box["x"] + 18, box["y"] + 35 + 18)  # the first row's marker
                settle(page, "h3")
                page.wait_for_timeout(1500)
            shown[name] = page.inner_text("body")
            if name == "sql":
                editor = page.locator("textarea").first
                for kind, query in (
                    ("error", f'SELECT * FROM "{planted(trap, "table")}"'),  # an error naming it
                    ("result", "SELECT run_id, task_name, reward_mode, group_id FROM v_runs"),
                ):
                    editor.fill(query)
                    editor.press("Control+Enter")
                    settle(page)
                    page.get_by_role("button", name="Run").click()
                    settle(page)
                    page.wait_for_timeout(800)
                    shown[f"sql {kind}"] = page.inner_text("body")
            found[name] = page.locator(f"a[href*='{trap}'], img[src*='{trap}']").count()
        ARTIFACTS.mkdir(exist_ok=True)
        page.goto(f"{base}/cohorts")
        settle(page, CHART)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "planted-cohorts.png"))
    context.close()
    assert {name: n for name, n in found.items() if n} == {}
    assert Requests.seen == [], Requests.seen
    # The planted text is shown as typed, not hidden: the run's title, the cohorts' verdicts,
    # the database's error message.
    assert f"{run_id}\n" in shown["run_detail"]
    assert planted(trap, "task") in shown["run_detail"]
    assert re.search(r"run\d !\[img\]\(.* · env \d+ · episode \d+", shown["leaderboard"])
    assert "![img](" in shown["cohorts"] and "<img src=" in shown["cohorts"]
    assert planted(trap, "table") in shown["sql error"]
