"""The Cohorts page, v_cohorts and README's statistics recipe describe the same runs, with the
same numbers: the finished runs, by default."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from support import demo_archive, fresh_caches  # noqa: F401
from test_pages import open_page, table

from sanctum_store import Archive, queries

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_recipe() -> str:
    """README's Python block that computes cohort statistics."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (recipe,) = [b for b in blocks if "cohort_summary(" in b]
    return recipe


def test_page_view_and_readme_recipe_give_the_same_cohort_means(monkeypatch, demo_archive):
    with Archive(demo_archive) as archive:
        statuses = set(queries.list_runs(archive, limit=None)["status"])
    # The demo has runs that did not finish: the populations could differ.
    assert statuses - {"finished"}, statuses

    at = open_page(monkeypatch, demo_archive, "views/cohorts.py")
    page = table(at, "iqm").set_index("cohort")[["n", "mean"]].sort_index()

    scope = {}
    exec(readme_recipe().replace('"runs.db"', repr(demo_archive)), scope)
    recipe = scope["described"].set_index("cohort")[["n", "mean"]].sort_index()
    pd.testing.assert_frame_equal(recipe, page, check_dtype=False)
    # ...and the same comparisons: every number, every verdict.
    shown = table(at, "p_adjusted").reset_index(drop=True)
    pd.testing.assert_frame_equal(
        scope["compared"][shown.columns].reset_index(drop=True), shown, check_dtype=False
    )
    assert list(shown.columns[:6]) == ["a", "b", "n_a", "n_b", "p_adjusted", "significant"]

    with sa.create_engine(demo_archive).connect() as conn:
        view = pd.read_sql(
            "SELECT reward_mode AS cohort, sum(finished) AS n,"
            " sum(mean_final_accuracy * finished) / sum(finished) AS mean"
            " FROM v_cohorts WHERE finished > 0 GROUP BY reward_mode ORDER BY reward_mode",
            conn,
        ).set_index("cohort")
    pd.testing.assert_frame_equal(view, page, check_dtype=False, check_index_type=False)
