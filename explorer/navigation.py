"""The explorer's pages, listed once: the app's navigation, the page tests and
``bench/explorer.py`` all read :data:`PAGES`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Page:
    """A page: its script (in ``views/``: Streamlit treats a ``pages/`` folder as the old
    file-based navigation), title and navigation section."""

    script: str
    title: str
    section: str

    @property
    def name(self) -> str:
        """The script's stem: the page's URL path (the default page's is empty)."""
        return Path(self.script).stem


#: The pages that show the archive, in navigation order; the first is the default.
PAGES: tuple[Page, ...] = (
    Page("views/runs.py", "Runs", "Runs"),
    Page("views/run_detail.py", "Run detail", "Runs"),
    Page("views/compare.py", "Compare", "Runs"),
    Page("views/leaderboard.py", "Leaderboard", "Runs"),
    Page("views/experiment.py", "Experiment (verdict)", "Analysis"),
    Page("views/cohorts.py", "Cohorts (A/B)", "Analysis"),
    Page("views/lifecycle.py", "Lifecycle", "Analysis"),
    Page("views/decisions.py", "Decisions", "Analysis"),
    Page("views/attribution.py", "Attribution", "Analysis"),
    Page("views/sql.py", "SQL", "Tools"),
)
#: Shown instead when the archive holds no run yet, or cannot be opened.
WELCOME = Page("views/welcome.py", "Welcome", "")
UNAVAILABLE = Page("views/unavailable.py", "Archive unavailable", "")

#: Every page script, for tests and benchmarks (relative to explorer/).
SCRIPTS: tuple[str, ...] = tuple(page.script for page in PAGES)
