"""Chart builders: pure functions, a tidy DataFrame in, an Altair chart out.

No Streamlit here, so every chart is unit-testable. Builders never draw more than
:data:`MAX_POINTS` marks per series: the query layer downsamples long runs, and the builders
refuse rather than silently ship a 100k-point chart to the browser.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

MAX_POINTS = 2_000

#: Seed stages in lifecycle order, with the colours used everywhere.
STAGE_COLORS = {
    "DORMANT": "#d9d9d9",
    "GERMINATED": "#c6dbef",
    "TRAINING": "#6baed6",
    "BLENDING": "#fd8d3c",
    "HOLDING": "#fdd0a2",
    "FOSSILIZED": "#31a354",
    "PRUNED": "#de2d26",
    "EMBARGOED": "#fcbba1",
    "RESETTING": "#bdbdbd",
}

STATUS_BADGES = {
    "running": "🟢 running",
    "finished": "✅ finished",
    "stale": "🟡 stale",
    "crashed": "🔴 crashed",
    "failed": "❌ failed",
}


def coarsen(
    df: pd.DataFrame, *, x: str, by: str, values: dict[str, str], max_x: int = 200
) -> pd.DataFrame:
    """At most ``max_x`` distinct ``x`` values: x is cut into equal-width buckets (each
    labelled by its first x) and ``values`` aggregated per bucket and ``by`` with the given
    functions ("sum", "mean"). Long runs have thousands of batches; a bar per batch is noise."""
    if df.empty or df[x].nunique() <= max_x:
        return df
    low, high = df[x].min(), df[x].max()
    width = max(1, -(-(high - low + 1) // max_x))
    bucketed = df.assign(**{x: low + (df[x] - low) // width * width})
    return bucketed.groupby([x, by], as_index=False).agg(values)


def _check_size(df: pd.DataFrame, per: str | None = None) -> None:
    sizes = df.groupby(per).size() if per and per in df and not df.empty else pd.Series([len(df)])
    if len(sizes) and sizes.max() > MAX_POINTS:
        raise ValueError(f"{sizes.max()} points in one series: downsample to {MAX_POINTS} first")


def _x_encoding(x: str, title: str | None = None) -> alt.X:
    kind = "T" if x in ("time", "captured_ts", "first_seen", "last_seen") else "Q"
    return alt.X(f"{x}:{kind}", title=title or x.replace("_", " "))


def curves(
    df: pd.DataFrame,
    *,
    x: str,
    y: str = "value",
    color: str | None = None,
    band: tuple[str, str] | None = None,
    title: str = "",
    y_title: str | None = None,
    x_title: str | None = None,
    height: int = 260,
) -> alt.Chart:
    """Lines of ``y`` against ``x``, one per ``color`` value, with an optional shaded band
    (e.g. mean ± std across envs, or a 95 % CI across runs)."""
    _check_size(df, color)
    base = alt.Chart(df).encode(x=_x_encoding(x, x_title))
    color_enc = (
        alt.Color(f"{color}:N", title=color.replace("_", " ")) if color else alt.value("#4c78a8")
    )
    tooltip = [c for c in (color, x, y) if c]
    line = base.mark_line(point=len(df) < 60).encode(
        y=alt.Y(f"{y}:Q", title=y_title or y.replace("_", " "), scale=alt.Scale(zero=False)),
        color=color_enc,
        tooltip=tooltip,
    )
    layers = [line]
    if band and not df.empty:
        lo, hi = band
        layers.insert(
            0,
            base.mark_area(opacity=0.18).encode(y=f"{lo}:Q", y2=f"{hi}:Q", color=color_enc),
        )
    return alt.layer(*layers).properties(title=title, height=height)


def sparkline(df: pd.DataFrame, *, x: str = "x", y: str = "value", height: int = 70) -> alt.Chart:
    """A small axis-less line for a metric tile (PPO health)."""
    _check_size(df)
    return (
        alt.Chart(df)
        .mark_line()
        .encode(
            x=alt.X(f"{x}:Q", axis=None),
            y=alt.Y(f"{y}:Q", axis=None, scale=alt.Scale(zero=False)),
            tooltip=[x, y],
        )
        .properties(height=height)
    )


def distribution(
    df: pd.DataFrame, *, group: str, value: str, title: str = "", height: int = 240
) -> alt.Chart:
    """Per-run outcomes by group: a box plot with every run drawn as a point over it."""
    _check_size(df, group)
    base = alt.Chart(df).encode(
        x=alt.X(f"{group}:N", title=group.replace("_", " ")),
        color=alt.Color(f"{group}:N", legend=None),
    )
    box = base.mark_boxplot(opacity=0.35, extent="min-max", size=40).encode(
        y=alt.Y(f"{value}:Q", title=value.replace("_", " "), scale=alt.Scale(zero=False))
    )
    tooltip = [c for c in ("run_id", group, value) if c in df.columns]
    points = (
        base.mark_circle(size=70, opacity=0.85)
        .encode(y=f"{value}:Q", xOffset="jitter:Q", tooltip=tooltip)
        .transform_calculate(jitter="(random() - 0.5) * 30")
    )
    return alt.layer(box, points).properties(title=title, height=height)


def stacked_bars(
    df: pd.DataFrame,
    *,
    x: str,
    y: str,
    color: str,
    title: str = "",
    normalize: bool = False,
    colors: dict[str, str] | None = None,
    horizontal: bool = False,
    height: int = 260,
) -> alt.Chart:
    """Counts stacked by category (action mix over batches, funnel stages per blueprint)."""
    _check_size(df)
    scale = alt.Scale(domain=list(colors), range=list(colors.values())) if colors else alt.Undefined
    stack = "normalize" if normalize else True
    value = (
        alt.X(f"{y}:Q", stack=stack, title=y)
        if horizontal
        else alt.Y(f"{y}:Q", stack=stack, title=y)
    )
    category = alt.Y(f"{x}:N", title=x) if horizontal else alt.X(f"{x}:O", title=x)
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            category,
            value,
            color=alt.Color(f"{color}:N", scale=scale, title=color.replace("_", " ")),
            tooltip=[x, color, y],
        )
        .properties(title=title, height=height)
    )


def ranking(
    df: pd.DataFrame, *, label: str, value: str, title: str = "", error: str | None = None
) -> alt.Chart:
    """Horizontal bars sorted by value (Shapley rankings, synergy), with optional error bars."""
    _check_size(df)
    base = alt.Chart(df).encode(y=alt.Y(f"{label}:N", sort="-x", title=label.replace("_", " ")))
    bars = base.mark_bar().encode(
        x=alt.X(f"{value}:Q", title=value.replace("_", " ")),
        color=alt.condition(f"datum.{value} >= 0", alt.value("#31a354"), alt.value("#de2d26")),
        tooltip=list(df.columns),
    )
    layers = [bars]
    if error:
        layers.append(
            base.mark_errorbar()
            .encode(x=alt.X(f"{value}_low:Q"), x2=f"{value}_high:Q")
            .transform_calculate(
                **{
                    f"{value}_low": f"datum.{value} - datum.{error}",
                    f"{value}_high": f"datum.{value} + datum.{error}",
                }
            )
        )
    return alt.layer(*layers).properties(title=title, height=max(120, 22 * len(df)))


def calibration(df: pd.DataFrame, *, title: str = "Confidence versus outcome") -> alt.Chart:
    """Reliability diagram: mean confidence per bin against the observed success rate, with
    the diagonal a perfectly calibrated policy would follow; point size is the bin's count."""
    _check_size(df)
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]}))
        .mark_line(strokeDash=[4, 4], color="#999999")
        .encode(x="x:Q", y="y:Q")
    )
    points = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("mean_confidence:Q", title="mean confidence", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y(
                "positive_rate:Q",
                title="share with positive reward",
                scale=alt.Scale(domain=[0, 1]),
            ),
            size=alt.Size("n:Q", title="decisions"),
            tooltip=list(df.columns),
        )
    )
    return alt.layer(diagonal, points).properties(title=title, height=300)


def scatter(
    df: pd.DataFrame, *, x: str, y: str, color: str | None = None, title: str = ""
) -> alt.Chart:
    """Points, e.g. value estimate against actual reward."""
    _check_size(df)
    encoding = {
        "x": alt.X(f"{x}:Q", title=x.replace("_", " ")),
        "y": alt.Y(f"{y}:Q", title=y.replace("_", " ")),
        "tooltip": list(df.columns),
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N")
    return (
        alt.Chart(df)
        .mark_circle(opacity=0.5)
        .encode(**encoding)
        .properties(title=title, height=300)
    )


def histogram(
    df: pd.DataFrame, *, value: str, color: str | None = None, title: str = ""
) -> alt.Chart:
    """Binned counts of a value (lifespans), optionally split by a category."""
    _check_size(df)
    encoding = {
        "x": alt.X(f"{value}:Q", bin=alt.Bin(maxbins=30), title=value.replace("_", " ")),
        "y": alt.Y("count():Q", title="seeds"),
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N")
    return (
        alt.Chart(df).mark_bar(opacity=0.8).encode(**encoding).properties(title=title, height=240)
    )


def slot_grid(seeds: pd.DataFrame, *, title: str = "Seed slots") -> alt.Chart:
    """Envs × slots, each cell coloured by the seed's stage and labelled with its blueprint.

    ``seeds`` has columns env, slot, stage, blueprint (None for an empty slot), alpha.
    """
    _check_size(seeds)
    scale = alt.Scale(domain=list(STAGE_COLORS), range=list(STAGE_COLORS.values()))
    base = alt.Chart(seeds).encode(x=alt.X("slot:N", title="slot"), y=alt.Y("env:O", title="env"))
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("stage:N", scale=scale, title="stage"),
        tooltip=[
            c
            for c in ("env", "slot", "stage", "blueprint", "alpha", "epochs_in_stage")
            if c in seeds
        ],
    )
    labels = base.mark_text(fontSize=11).encode(text=alt.Text("blueprint:N"))
    return alt.layer(cells, labels).properties(
        title=title, height=max(80, 28 * seeds["env"].nunique())
    )
