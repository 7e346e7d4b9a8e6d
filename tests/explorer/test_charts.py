"""Every chart as a reader sees it: rendered (vl-convert, no browser) at a page column's width
and read back — category labels, legend entries, marks, band sizes, axis titles.

The page tests render every chart each page sends to the browser, from a demo archive plus
the real esper run, so each builder in ``explorer/charts.py`` is drawn with realistic data;
the builder tests below add the cases a demo does not reach (long run ids, many categories).
"""

from __future__ import annotations

import inspect
import shutil
import sys
from pathlib import Path

import altair as alt
import pandas as pd
import pytest
from conftest import fixture_snapshots
from render import draw, from_streamlit, problems
from streamlit.testing.v1 import AppTest
from support import APP, HTML_RUN, demo_archive, fresh_caches  # noqa: F401  (fixtures)

from sanctum_store import Archive

sys.path.insert(0, str(APP.parent))
import charts  # the explorer's own module, as its pages import it

REAL_RUN = "run-default-42"


@pytest.fixture(scope="module")
def archive_url(demo_archive, tmp_path_factory) -> str:
    """The demo archive with esper's own 4-env run added (real seeds, rewards, decisions)."""
    path = tmp_path_factory.mktemp("charts") / "charts.db"
    shutil.copy(demo_archive.split("///", 1)[1], path)
    url = f"sqlite:///{path}"
    with Archive(url) as archive:
        for snapshot in fixture_snapshots():
            archive.save(snapshot)
    return url


def page_charts(monkeypatch, url: str, page: str, act=None) -> list[tuple[str, dict]]:
    """(builder, Vega-Lite spec) of every chart ``page`` sends, after ``act(at)``."""
    monkeypatch.setenv("SANCTUM_DB", url)
    at = AppTest.from_file(str(APP), default_timeout=90).run()
    at.switch_page(page).run()
    if act:
        act(at)
    assert not at.exception, at.exception
    out = []
    for element in at.get("vega_lite_chart"):
        spec = from_streamlit(element.proto)
        out.append(((spec.get("usermeta") or {}).get("builder", "?"), spec))
    return out


def _real_run_moment_with_seeds(at):
    at.selectbox(key="detail_run").select(REAL_RUN).run()
    at.select_slider(key="detail_moment").set_value(16).run()  # three seeds HOLDING


def _one_snapshot_run(at):
    at.selectbox(key="detail_run").select(HTML_RUN).run()


def _per_env(at):
    at.toggle(key="detail_per_env").set_value(True).run()


def _split(key):
    return lambda at: at.selectbox(key=key).select("reward_mode").run()


def _one_run(at):
    at.selectbox(key="dec_scope").select(REAL_RUN).run()


VIEWS = {
    "runs": ("views/runs.py", None),
    "run detail": ("views/run_detail.py", None),
    "run detail, real run with seeds": ("views/run_detail.py", _real_run_moment_with_seeds),
    "run detail, per env": ("views/run_detail.py", _per_env),
    "run detail, one snapshot": ("views/run_detail.py", _one_snapshot_run),
    "compare": ("views/compare.py", None),
    "leaderboard": ("views/leaderboard.py", None),
    "experiment": (
        "views/experiment.py",
        lambda at: at.number_input(key="exp_min_runs").set_value(2).run(),
    ),
    "cohorts": ("views/cohorts.py", None),
    "cohorts by group": (
        "views/cohorts.py",
        lambda at: at.selectbox(key="cohort_attribute").select("group_id").run(),
    ),
    "lifecycle": ("views/lifecycle.py", None),
    "lifecycle by cohort": ("views/lifecycle.py", _split("life_cohort")),
    "decisions": ("views/decisions.py", None),
    "decisions, one run": ("views/decisions.py", _one_run),
    "attribution": ("views/attribution.py", None),
    "attribution by cohort": ("views/attribution.py", _split("attr_cohort")),
}
SEEN: set[str] = set()


@pytest.mark.parametrize("view", list(VIEWS))
def test_every_chart_a_page_sends_draws_what_its_data_holds(monkeypatch, archive_url, view):
    page, act = VIEWS[view]
    found = {}
    for i, (builder, spec) in enumerate(page_charts(monkeypatch, archive_url, page, act)):
        SEEN.add(builder)
        wrong = problems(draw(spec))
        if wrong:
            found[f"chart {i} ({builder}: {spec.get('title', '')!r})"] = wrong
    assert not found, found


def test_every_builder_was_drawn_by_a_page():
    """Runs after the page tests (file order): each public builder appeared on some page."""
    if not SEEN:
        pytest.skip("run with the page tests above")
    builders = {
        name
        for name, f in inspect.getmembers(charts, inspect.isfunction)
        if f.__module__ == charts.__name__
        and inspect.signature(f).return_annotation in ("alt.Chart", alt.Chart)
    }
    assert builders and builders <= SEEN, builders - SEEN


def test_the_slot_grid_shows_every_stage_of_the_moment_and_every_slot():
    frame = pd.DataFrame(
        [
            {"env": env, "slot": slot, "stage": stage, "blueprint": bp, "alpha": 0.5}
            for env in range(4)
            for slot, stage, bp in (
                ("r0c0", "BLENDING", "conv_heavy"),
                ("r0c1", "GERMINATED", "attention"),
                ("r0c2", "DORMANT", ""),
            )
        ]
    )
    drawn = draw(charts.slot_grid(frame))
    assert problems(drawn) == []
    assert set(drawn.legends[0].shown()) == {"BLENDING", "GERMINATED", "DORMANT"}
    assert drawn.axis("x").shown() == ["r0c0", "r0c1", "r0c2"]
    assert drawn.axis("y").shown() == ["0", "1", "2", "3"]
    assert drawn.marks["rect"] == 12


def test_a_ranking_of_many_runs_keeps_every_label_and_tells_long_ids_apart():
    ids = [f"exp-2026-11-30-reward-shaped-sweep-lr3e-4-seed{n:02d}" for n in range(40)]
    frame = pd.DataFrame({"run_id": ids, "synergy": [(-1) ** n * n / 10 for n in range(40)]})
    drawn = draw(charts.ranking(frame, label="run_id", value="synergy", label_title="run"))
    assert problems(drawn) == []
    labels = drawn.axis("y").shown()
    assert len(labels) == len(set(labels)) == 40
    assert all(len(label) <= charts.LABEL_CHARS for label in labels)
    assert all(label.endswith(f"seed{n:02d}") for n, label in enumerate(sorted(labels)))


def test_curves_of_long_run_ids_have_distinct_legend_entries():
    ids = [f"cifar10-shaped-sweep-2026-11-30T12:00:00-rank{r}" for r in range(5)]
    frame = pd.DataFrame(
        [
            {"run": r, "x": float(b), "value": 50.0 + b + i}
            for i, r in enumerate(ids)
            for b in range(8)
        ]
    )
    drawn = draw(
        charts.curves(
            frame, x="x", color="run", x_title="batch (episode)", y_title="host accuracy (%)"
        )
    )
    assert problems(drawn) == []
    assert len(set(drawn.legends[0].shown())) == 5


def test_curves_of_long_cohort_names_in_a_fixed_domain_draw_every_line():
    """A cohort domain (every cohort of the archive) of names too long for a legend: the
    legend and the lines name the same shortened cohorts, so every line is drawn."""
    names = [f"reward-mode-{c} " + "x" * 300 for c in "abc"]
    frame = pd.DataFrame(
        [
            {"cohort": name, "batch": b, "value": 50.0 + b + i}
            for i, name in enumerate(names[:2])
            for b in range(8)
        ]
    )
    chart = charts.curves(
        frame, x="batch", color="cohort", domain=names, y_title="final accuracy (%)"
    )
    drawn = draw(chart)
    assert problems(drawn) == []
    shown = drawn.legends[0].shown()
    assert len(shown) == 3 and all(len(label) <= charts.LABEL_CHARS for label in shown)
    assert drawn.marks == {"line": 16, "symbol": 16}  # two lines of 8 batches, each point drawn


def test_distribution_keeps_the_group_labels_and_samples_large_groups():
    runs = pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(900)],
            "cohort": ["shaped"] * 700 + ["sparse"] * 200,
            "final_accuracy": [60 + (i % 17) for i in range(900)],
        }
    )
    chart = charts.distribution(runs, group="cohort", value="final_accuracy")
    drawn = draw(chart)
    assert problems(drawn) == []
    assert drawn.axis("x").shown() == ["shaped", "sparse"]
    shown = pd.DataFrame(chart.to_dict()["datasets"].popitem()[1])
    assert shown["cohort"].value_counts().to_dict() == {"shaped": 300, "sparse": 200}


def test_a_generic_column_needs_a_title():
    frame = pd.DataFrame({"x": [0.0, 1.0], "value": [1.0, 2.0]})
    with pytest.raises(ValueError, match="'x' needs an axis title"):
        charts.curves(frame, x="x")


def test_problems_are_seen():
    """The checks themselves catch what went wrong before: labels Vega had to drop, an
    'undefined' category, a legend missing a series, a chart with no marks."""
    stages = pd.DataFrame({"stage": list("ABCDEF"), "mean_epochs": [1.0, 2, 3, 4, 5, 6]})
    squashed = (
        alt.Chart(stages)
        .mark_bar()
        .encode(y=alt.Y("stage:N", title="stage"), x=alt.X("mean_epochs:Q", title="epochs"))
        .properties(height=40)
    )
    assert any("bands" in p or "omits" in p for p in problems(draw(squashed)))
    undefined = (
        alt.Chart(pd.DataFrame({"v": [1.0, 2.0]}))
        .mark_boxplot()
        .encode(x=alt.X("cohort:N", title="cohort"), y=alt.Y("v:Q", title="accuracy (%)"))
    )
    assert any("undefined" in p or "null" in p for p in problems(draw(undefined)))
    seeds = pd.DataFrame({"slot": ["a", "b"], "env": [0, 0], "stage": ["BLENDING", "DORMANT"]})
    clipped = (
        alt.Chart(seeds)
        .mark_rect()
        .encode(
            x=alt.X("slot:N", title="slot"),
            y=alt.Y("env:O", title="env"),
            color=alt.Color("stage:N", scale=alt.Scale(domain=["DORMANT"])),
        )
    )
    assert any("legend omits" in p for p in problems(draw(clipped)))
    empty = alt.Chart(pd.DataFrame({"a": []})).mark_line().encode(x=alt.X("a:Q", title="t"))
    assert "the plot draws no marks" in problems(draw(empty))


def test_builders_are_pure():
    """charts.py never imports Streamlit: every chart is testable without a running app."""
    source = Path(charts.__file__).read_text(encoding="utf-8")
    assert "import streamlit" not in source


def _linear(hex_color: str) -> list[float]:
    channels = [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    return [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]


def _contrast(a: str, b: str) -> float:
    def luminance(color):
        r, g, b_ = _linear(color)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b_

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


#: Machado, Oliveira and Fernandes (2009), full severity: how a colour looks to a reader with
#: protanopia, deuteranopia or tritanopia (on linear RGB).
VISION = {
    "typical": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    "protanopia": [
        [0.152286, 1.052583, -0.204868],
        [0.114503, 0.786281, 0.099216],
        [-0.003882, -0.048116, 1.051998],
    ],
    "deuteranopia": [
        [0.367322, 0.860646, -0.227968],
        [0.280085, 0.672501, 0.047413],
        [-0.011820, 0.042940, 0.968881],
    ],
    "tritanopia": [
        [1.255528, -0.076749, -0.178779],
        [-0.078411, 0.930809, 0.147602],
        [0.004733, 0.691367, 0.303900],
    ],
}


def _lab(hex_color: str, vision: str) -> tuple[float, float, float]:
    rgb = [
        min(max(sum(m * c for m, c in zip(row, _linear(hex_color), strict=True)), 0), 1)
        for row in VISION[vision]
    ]
    xyz = [
        sum(m * c for m, c in zip(row, rgb, strict=True))
        for row in ([0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505])
    ]
    f = [
        t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116
        for t in (xyz[0] / 0.95047, xyz[1], xyz[2] / 1.08883)
    ]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


#: Streamlit's page backgrounds: light and dark themes.
BACKGROUNDS = {"light": "#ffffff", "dark": "#0e1117"}


def test_the_palette_is_colour_blind_safe_and_visible_on_both_themes():
    import itertools
    import math

    for color in (*charts.PALETTE, charts.NEUTRAL):
        for theme, background in BACKGROUNDS.items():
            assert _contrast(color, background) >= 3.0, (color, theme)
    for vision in VISION:
        closest = min(
            math.dist(_lab(a, vision), _lab(b, vision))
            for a, b in itertools.combinations(charts.PALETTE, 2)
        )
        assert closest >= 15, (vision, closest)  # ΔE*ab: clearly different at a glance
    assert set(charts.STAGE_COLORS.values()) <= {*charts.PALETTE, charts.NEUTRAL}


def test_a_cohort_keeps_its_colour_whichever_cohorts_are_shown():
    domain = ["escrow", "shaped", "simplified", "sparse"]
    all_four = charts.color_scale(domain).to_dict()
    assert (
        dict(zip(all_four["domain"], all_four["range"], strict=True))["sparse"] == charts.PALETTE[3]
    )
    runs = pd.DataFrame({"cohort": ["sparse"] * 3, "final_accuracy": [70.0, 71.0, 72.0]})
    spec = charts.distribution(
        runs, group="cohort", value="final_accuracy", domain=domain
    ).to_dict()
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True))["sparse"] == charts.PALETTE[3]


def test_a_long_runs_thousands_of_batches_are_thinned_to_a_curve_the_builders_draw():
    """A cohort with a 2,500-batch run: at most MAX_POINTS rows per curve, the first and last
    batches and the peak kept, each kept row whole (its band beside it)."""
    batches = range(2500)
    long = pd.DataFrame(
        {
            "cohort": "long",
            "batch": batches,
            "iqm": [50 + (b % 97) / 10 + (30 if b == 1234 else 0) for b in batches],
        }
    ).assign(ci_low=lambda d: d["iqm"] - 1, ci_high=lambda d: d["iqm"] + 1)
    short = pd.DataFrame({"cohort": "short", "batch": [0, 1], "iqm": [1.0, 2.0]})
    short = short.assign(ci_low=0.0, ci_high=3.0)
    thinned = charts.thinned(pd.concat([long, short]), x="batch", y="iqm", by="cohort")
    kept = thinned[thinned["cohort"] == "long"]
    assert charts.MAX_POINTS - 10 < len(kept) <= charts.MAX_POINTS
    assert {0, 1234, 2499} <= set(kept["batch"])
    assert (kept["ci_high"] - kept["ci_low"] == 2).all()
    assert len(thinned[thinned["cohort"] == "short"]) == 2
    with pytest.raises(ValueError, match="downsample"):
        charts.curves(long, x="batch", y="iqm", color="cohort")
    spec = charts.curves(thinned, x="batch", y="iqm", color="cohort").to_dict()
    assert spec["usermeta"]["builder"] == "curves"
