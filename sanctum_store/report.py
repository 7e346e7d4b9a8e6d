"""An experiment's report: one self-contained HTML file a researcher can attach to a review.

The charts are Vega-Lite rendered to SVG (vl-convert, part of the ``explorer`` extra) and
embedded in the page: it needs no network, no script and no other file to be read. Everything
that came from the archive is escaped: it shows as typed, never as markup.
"""

from __future__ import annotations

import html
import json

import pandas as pd

from sanctum_store.experiments import Evaluation
from sanctum_store.saved_experiments import Saved

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; }
.decision { padding: 0.6em 1em; margin: 0.5em 0; border-radius: 6px; background: #eef2f7; }
.CONTINUE { background: #e3f4ea; } .STOP { background: #fbe7e1; } .REVISE { background: #fdf3d8; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ddd; padding: 3px 6px; text-align: right; }
th { background: #f5f5f5; } .charts { display: flex; flex-wrap: wrap; gap: 1em; }
"""
_PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#9600F0", "#964B2D", "#FF2DE1"]


def _records(df: pd.DataFrame) -> list:
    return json.loads(df.to_json(orient="records", double_precision=15))


def _line_with_band(df: pd.DataFrame, x: str, y: str, title: str, x_title: str, y_title: str):
    color = {"field": "cohort", "type": "nominal", "scale": {"range": _PALETTE}}
    x_enc = {"field": x, "type": "quantitative", "title": x_title}
    if x == "batch":  # whole batches (episodes)
        x_enc["axis"] = {"tickMinStep": 1, "format": "d"}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": title,
        "width": 460,
        "height": 240,
        "data": {"values": _records(df)},
        "layer": [
            {
                "mark": {"type": "area", "opacity": 0.18},
                "encoding": {
                    "x": x_enc,
                    "y": {"field": "ci_low", "type": "quantitative"},
                    "y2": {"field": "ci_high"},
                    "color": {**color, "legend": None},  # the lines' legend, at full colour
                },
            },
            {
                "mark": {"type": "line", "point": len(df) < 60},
                "encoding": {
                    "x": x_enc,
                    "y": {
                        "field": y,
                        "type": "quantitative",
                        "title": y_title,
                        "scale": {"zero": False},
                    },
                    "color": color,
                },
            },
        ],
    }


def _paired(runs: pd.DataFrame, metric: str):
    x = {"field": "cohort", "type": "nominal", "title": "cohort"}
    y = {"field": "value", "type": "quantitative", "title": metric, "scale": {"zero": False}}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": f"{metric} per run, seeds joined",
        "width": 460,
        "height": 240,
        "data": {"values": _records(runs[["run_id", "cohort", "value", "pair"]])},
        "layer": [
            {
                "transform": [{"filter": "isValid(datum.pair)"}],
                "mark": {"type": "line", "color": "#888888", "opacity": 0.5},
                "encoding": {"x": x, "y": y, "detail": {"field": "pair", "type": "nominal"}},
            },
            {
                "mark": {"type": "circle", "size": 60},
                "encoding": {
                    "x": x,
                    "y": y,
                    "color": {"field": "cohort", "type": "nominal", "scale": {"range": _PALETTE}},
                },
            },
        ],
    }


def charts(result: Evaluation, metric: str) -> list[dict]:
    """The report's charts as Vega-Lite specs: sample efficiency, profiles, per-run outcomes."""
    what = metric.replace("_", " ")
    specs = []
    if not result.curves.empty:
        curves = result.curves.assign(cohort=result.curves["cohort"].astype(str))
        specs.append(
            _line_with_band(
                curves,
                "batch",
                "iqm",
                "Sample efficiency: IQM per batch (95 % CI)",
                "batch (episode)",
                f"{what} at episode end (IQM)",
            )
        )
    if not result.profiles.empty:
        profiles = result.profiles.assign(cohort=result.profiles["cohort"].astype(str))
        specs.append(
            _line_with_band(
                profiles,
                "tau",
                "fraction",
                "Performance profile: runs above τ (95 % CI)",
                f"τ ({what})",
                "fraction of runs above τ",
            )
        )
    used = result.runs[result.runs["used"]].assign(cohort=lambda d: d["cohort"].astype(str))
    if not used.empty:
        specs.append(_paired(used, what))
    return specs


def _table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p>none</p>"
    return df.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.4g}")


def render(saved: Saved, result: Evaluation) -> str:
    """The report as one HTML document."""
    import vl_convert

    e = html.escape
    decisions = "".join(
        f'<div class="decision {e(r.decision)}"><b>{e(r.decision)}</b>: {e(str(r.cohort))}'
        f" against {e(str(saved.definition['baseline']))}<br>{e(r.reason)}</div>"
        for r in result.decisions.itertuples()
    )
    svgs = "".join(
        f"<div>{vl_convert.vegalite_to_svg(spec)}</div>"
        for spec in charts(result, saved.definition["metric"])
    )
    definition = pd.DataFrame(
        [(k, json.dumps(v)) for k, v in saved.definition.items()], columns=["setting", "value"]
    )
    sections = [
        ("Cohorts", result.cohorts),
        ("Comparisons with the baseline", result.comparisons),
        ("Excluded runs (confounded or without an outcome)", result.excluded),
        ("With the other choice of confounded runs", result.sensitivity),
        ("Definition (current version)", definition),
        ("Every version of the definition", saved.history),
    ]
    body = "".join(f"<h2>{e(title)}</h2>{_table(df)}" for title, df in sections)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Experiment {e(saved.name)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Experiment {e(saved.name)}</h1>"
        f"<p class='meta'>version {saved.version}, created {e(str(saved.created_at))} UTC;"
        f" {int(result.cohorts['n'].sum())} runs used, {len(result.excluded)} excluded</p>"
        f"{decisions}<div class='charts'>{svgs}</div>{body}</body></html>"
    )
