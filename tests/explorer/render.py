"""Charts drawn the way a person sees them: Vega-Lite rendered to a scene (vl-convert, no
browser) at the width of a page column, with Streamlit's own spec preparation and a
configuration close to its theme, then read back: axis labels and titles, legend entries, marks.

:func:`problems` lists what a reader would notice is wrong with a drawn chart; a chart test
asserts it finds nothing.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from dataclasses import dataclass, field

import pyarrow as pa
import vl_convert as vlc

#: The narrowest column a page draws a chart in (two columns of a 1280-px window).
WIDTH = 320
#: Streamlit's theme for Vega-Lite charts (its frontend, 1.67), where it decides what fits:
#: fonts, label padding, label limits.
STREAMLIT_THEME = {
    "font": "sans-serif",
    "title": {"fontSize": 16, "anchor": "start", "offset": 26},
    "axis": {
        "labelFontSize": 12,
        "titleFontSize": 14,
        "labelLimit": 100,
        "labelPadding": 16,
        "titlePadding": 16,
        "labelSeparation": 4,
        "labelOverlap": True,
        "ticks": False,
        "domain": False,
    },
    "legend": {"labelFontSize": 14, "titleFontSize": 14, "labelPadding": 16},
    "view": {"continuousHeight": 350, "continuousWidth": 400},
}
#: A category band narrower than this cannot carry a label.
MIN_BAND = 12
#: Taller than this, a chart is a scroll, not a picture (a layout gone wrong).
MAX_HEIGHT = 2_500
BAD_LABELS = {"undefined", "null", "nan", "none", ""}
GENERIC_TITLES = {"x", "y", "value", "mean", "label", "count", "share", "low", "high"}


@dataclass
class Axis:
    orient: str
    title: str = ""
    labels: list[dict] = field(default_factory=list)  # {text, x, y, visible, truncated}

    @property
    def channel(self) -> str:
        return "x" if self.orient in ("bottom", "top") else "y"

    def shown(self) -> list[str]:
        return [label["text"] for label in self.labels if label["visible"]]


@dataclass
class Legend:
    title: str = ""
    labels: list[dict] = field(default_factory=list)

    def shown(self) -> list[str]:
        return [label["text"] for label in self.labels if label["visible"]]


@dataclass
class Drawn:
    """What a chart put on the screen."""

    spec: dict
    axes: list[Axis]
    legends: list[Legend]
    marks: dict[str, int]  # drawn data-mark items per mark type
    svg: str
    height: float = 0.0

    def axis(self, channel: str) -> Axis:
        found = [a for a in self.axes if a.channel == channel and a.labels]
        assert found, f"no {channel} axis with labels drawn"
        return found[0]

    @property
    def mark_count(self) -> int:
        return sum(self.marks.values())


def _text(item: dict) -> str:
    text = item.get("text", "")
    return " ".join(map(str, text)) if isinstance(text, list) else str(text)


def _truncated(item: dict) -> bool:
    limit = item.get("limit") or 0
    # Vega cuts a text longer than its limit (pixels) with an ellipsis when it draws it.
    return bool(limit) and 0.58 * item.get("fontSize", 11) * len(_text(item)) > limit


def _label(item: dict) -> dict:
    return {
        "text": _text(item),
        "x": item.get("x", 0.0),
        "y": item.get("y", 0.0),
        "visible": item.get("opacity", 1) != 0 and item.get("fillOpacity", 1) != 0,
        "truncated": _truncated(item),
    }


def _drawn_items(mark: dict) -> int:
    if mark.get("marktype") in ("line", "area", "trail"):
        # One item is a point of the path: a path of one point draws nothing.
        return len(mark.get("items", [])) if len(mark.get("items", [])) >= 2 else 0
    count = 0
    for item in mark.get("items", []):
        if item.get("opacity", 1) == 0:
            continue
        if mark.get("marktype") == "text" and not _text(item).strip():
            continue
        if mark.get("marktype") == "rect" and not (item.get("width") and item.get("height")):
            continue
        count += 1
    return count


def _walk(mark: dict, out: Drawn, axis: Axis | None = None, legend: Legend | None = None):
    role = mark.get("role", "")
    for item in mark.get("items", []):
        here_axis, here_legend = axis, legend
        if role == "axis":
            here_axis = Axis(orient=item.get("orient", ""))
            out.axes.append(here_axis)
        elif role == "legend":
            here_legend = Legend()
            out.legends.append(here_legend)
        elif role == "axis-label" and axis is not None:
            axis.labels.append(_label(item))
        elif role == "axis-title" and axis is not None:
            axis.title = _text(item)
        elif role == "legend-label" and legend is not None:
            legend.labels.append(_label(item))
        elif role == "legend-title" and legend is not None:
            legend.title = _text(item)
        for child in item.get("items", []) if isinstance(item.get("items"), list) else []:
            if isinstance(child, dict) and "marktype" in child:
                _walk(child, out, here_axis, here_legend)
    if role == "mark" and mark.get("marktype") != "group":
        out.marks[mark["marktype"]] = out.marks.get(mark["marktype"], 0) + _drawn_items(mark)


def prepare(spec: dict, width: int = WIDTH) -> dict:
    """``spec`` as Streamlit's frontend draws it in a column ``width`` pixels wide: Streamlit's
    own preparation (the autosize it injects when a chart sets none), the container width,
    and its theme under the chart's own configuration."""
    from streamlit.elements.vega_charts import _prepare_vega_lite_spec

    spec = _prepare_vega_lite_spec(dict(spec), use_container_width=True)
    spec["width"] = width
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in STREAMLIT_THEME.items()}
    for key, value in (spec.get("config") or {}).items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    spec["config"] = config
    return spec


def draw(chart_or_spec, width: int = WIDTH) -> Drawn:
    """Render an Altair chart (or a Vega-Lite spec) and read back what it shows."""
    spec = chart_or_spec if isinstance(chart_or_spec, dict) else chart_or_spec.to_dict()
    spec = prepare(spec, width)
    scene = vlc.vegalite_to_scenegraph(spec)
    drawn = Drawn(
        spec=spec,
        axes=[],
        legends=[],
        marks={},
        svg=vlc.vegalite_to_svg(spec),
        height=scene.get("height", 0.0),
    )
    _walk(scene["scenegraph"], drawn)
    return drawn


def from_streamlit(proto) -> dict:
    """The Vega-Lite spec of an AppTest ``vega_lite_chart`` element, its datasets inlined
    (Streamlit sends them as Arrow IPC streams beside the spec)."""
    spec = json.loads(proto.spec)
    datasets = {}
    for named in proto.datasets:
        table = pa.ipc.open_stream(io.BytesIO(named.data.data)).read_all().to_pandas()
        datasets[named.name] = json.loads(table.to_json(orient="records", date_format="iso"))
    if proto.HasField("data") and proto.data.data:
        table = pa.ipc.open_stream(io.BytesIO(proto.data.data)).read_all().to_pandas()
        spec["data"] = {"values": json.loads(table.to_json(orient="records", date_format="iso"))}
    if datasets:
        spec["datasets"] = datasets
    return spec


def _layers(spec: dict) -> list[dict]:
    if "layer" in spec:
        return [leaf for layer in spec["layer"] for leaf in _layers(layer)]
    return [spec]


def _values(spec: dict, layer: dict) -> list[dict]:
    data = layer.get("data") or spec.get("data") or {}
    if "values" in data:
        return data["values"]
    return (spec.get("datasets") or {}).get(data.get("name"), [])


def _shown(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def categories(spec: dict) -> dict[str, set[str]]:
    """Per channel (x, y, color), the categories the data holds for its nominal or ordinal
    fields: what a reader expects to find on that axis or in that legend."""
    out: dict[str, set[str]] = {}
    for layer in _layers(spec):
        values = _values(spec, layer)
        for channel in ("x", "y", "color"):
            enc = (layer.get("encoding") or {}).get(channel) or {}
            if enc.get("type") not in ("nominal", "ordinal") or "field" not in enc:
                continue
            if enc.get("legend", {}) is None or enc.get("axis", {}) is None or "bin" in enc:
                continue
            seen = {
                _shown(row[enc["field"]])
                for row in values
                if row.get(enc["field"]) is not None
                and not (isinstance(row[enc["field"]], float) and math.isnan(row[enc["field"]]))
            }
            out.setdefault(channel, set()).update(seen)
    return out


def problems(drawn: Drawn) -> list[str]:
    """What is wrong with a drawn chart, as a reader would see it: no marks; a category axis
    or legend missing a category the data holds, or showing undefined/null; a category
    band too thin for its label; a label cut short; an axis without a telling title."""
    found: list[str] = []
    if drawn.mark_count == 0:
        found.append("the plot draws no marks")
    if drawn.height > MAX_HEIGHT:
        found.append(f"the chart is {drawn.height:.0f} px tall")
    expected = categories(drawn.spec)
    for axis in drawn.axes:
        if not axis.labels:
            continue
        shown = axis.shown()
        bad = [t for t in shown if t.strip().lower() in BAD_LABELS]
        if bad:
            found.append(f"{axis.channel} axis shows {bad}")
        if not axis.title.strip() or axis.title.strip().lower() in GENERIC_TITLES:
            found.append(f"{axis.channel} axis title {axis.title!r} says nothing")
        want = expected.get(axis.channel)
        if want:
            missing = sorted(want - set(shown))
            if missing:
                found.append(f"{axis.channel} axis omits {missing[:10]} ({len(missing)} in all)")
            positions = sorted(lab[axis.channel] for lab in axis.labels)
            gaps = [b - a for a, b in itertools.pairwise(positions)]
            if gaps and min(gaps) < MIN_BAND:
                found.append(f"{axis.channel} axis bands are {min(gaps):.1f} px (< {MIN_BAND})")
            cut = [lab["text"] for lab in axis.labels if lab["truncated"]]
            if cut:
                found.append(f"{axis.channel} axis labels cut short: {cut[:5]}")
    want = expected.get("color")
    if want:
        shown = {t for legend in drawn.legends for t in legend.shown()}
        missing = sorted(want - shown)
        if missing:
            found.append(f"legend omits {missing[:10]} ({len(missing)} in all)")
        bad = [t for t in shown if t.strip().lower() in BAD_LABELS]
        if bad:
            found.append(f"legend shows {bad}")
        cut = [lab["text"] for legend in drawn.legends for lab in legend.labels if lab["truncated"]]
        if cut:
            found.append(f"legend labels cut short: {cut[:5]}")
    return found
