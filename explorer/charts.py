"""Chart builders: pure functions, a tidy DataFrame in, an Altair chart out.

No Streamlit here, so every chart is unit-testable. Builders never draw more than
:data:`MAX_POINTS` marks per series: the query layer downsamples long runs, and the builders
refuse rather than silently ship a 100k-point chart to the browser.

Sizing. Streamlit gives a chart without its own ``autosize`` the Vega-Lite autosize ``fit``,
which makes ``height`` the height of the whole chart, title, axes and legend included: a small
height leaves no room for the plot and Vega drops the category labels that no longer fit.
Every builder therefore ends in :func:`_sized`, which fits the width to the page and keeps
``height`` for the plot alone; charts with a category axis get a fixed band per category
(:data:`BAND`), so a category is never thinner than its label.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import altair as alt
import pandas as pd

MAX_POINTS = 2_000
#: Pixels per category of a category axis: room for one label at the theme's font size.
BAND = 22
#: Longest label drawn in full; longer ones (run ids) are shortened in the middle.
LABEL_CHARS = 28

#: One categorical palette everywhere, colour-blind safe (distinct under protanopia,
#: deuteranopia and tritanopia) and visible on light and dark backgrounds alike (contrast of
#: at least 3:1 against both white and Streamlit's dark background): Okabe and Ito's blue,
#: vermillion, bluish green and reddish purple, then violet, brown and magenta.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#9600F0", "#964B2D", "#FF2DE1")
#: For "nothing there" (an empty slot), equally visible on both backgrounds.
NEUTRAL = "#888888"

#: Seed stages in lifecycle order, with the colours used everywhere.
STAGE_COLORS = {
    "DORMANT": NEUTRAL,
    "GERMINATED": PALETTE[4],
    "TRAINING": PALETTE[0],
    "BLENDING": PALETTE[1],
    "HOLDING": PALETTE[5],
    "FOSSILIZED": PALETTE[2],
    "PRUNED": PALETTE[6],
    "EMBARGOED": PALETTE[3],
    "RESETTING": NEUTRAL,
}
POSITIVE, NEGATIVE = PALETTE[2], PALETTE[1]

#: Axis and legend titles, with their unit, for the columns charts are drawn from.
TITLES = {
    "batch": "batch (episode)",
    "epoch": "epoch (across episodes)",
    "time": "time (UTC)",
    "captured_ts": "time (UTC)",
    "elapsed": "elapsed (s)",
    "host_accuracy": "host accuracy (%)",
    "accuracy": "accuracy (%)",
    "final_accuracy": "final accuracy (%)",
    "peak_accuracy": "peak accuracy (%)",
    "best_accuracy": "best accuracy (%)",
    "cumulative_reward": "episode reward (return so far)",
    "mean_reward": "mean episode reward",
    "growth_ratio": "growth ratio (× host parameters)",
    "fossilize_rate": "fossilize rate (fossilized ÷ ended)",
    "fossilized": "seeds fossilized",
    "pruned": "seeds pruned",
    "seeds": "seeds",
    "epochs_total": "lifespan (epochs)",
    "mean_epochs": "mean epochs in stage",
    "mean_value": "mean Shapley value (accuracy points)",
    "synergy": "synergy (accuracy points)",
    "expected_value": "value estimate",
    "actual_reward": "actual reward",
    "mean_confidence": "mean confidence (0–1)",
    "positive_rate": "share with positive reward (0–1)",
    "entropy": "entropy (nats)",
    "n": "decisions",
}
#: Column names that say nothing on an axis: a builder given one needs an explicit title.
GENERIC = frozenset({"x", "y", "value", "mean", "label", "count", "share", "low", "high"})


#: How a missing category (a run without a group, say) is labelled.
MISSING = "(none)"


def labels(values: pd.Series) -> pd.Series:
    """Category values as the text charts show: ``str(v)``, a missing value :data:`MISSING`
    (pandas' ``astype(str)`` keeps missing values missing, which a chart draws as "null")."""
    return values.map(lambda v: MISSING if v is None or v is pd.NA or v != v else str(v)).astype(
        object
    )


def title_for(column: str, given: str | None = None) -> str:
    """``given``, else the known title of ``column`` (with its unit), else its words; a
    generic column name ("x", "value", "mean") without a title is a bug in the caller."""
    if given:
        return given
    if column in TITLES:
        return TITLES[column]
    if column in GENERIC:
        raise ValueError(f"column {column!r} needs an axis title")
    return column.replace("_", " ")


def abbreviate(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` shortened from the middle to ``limit`` characters (its start and end are what
    tells run ids apart)."""
    text = str(text)
    if len(text) <= limit:
        return text
    keep = max(limit - 1, 1)
    head, tail = (keep + 1) // 2, keep // 2
    return f"{text[:head]}…{text[-tail:]}" if tail else f"{text[:head]}…"


def short_labels(values: Iterable[object], limit: int = LABEL_CHARS) -> dict[str, str]:
    """Distinct labels of at most ``limit`` characters for distinct values, each shortened
    from the middle; values that would collide keep more of their ends."""
    values = sorted({str(v) for v in values})
    out: dict[str, str] = {}
    for size in range(limit, max(len(v) for v in values) + 1 if values else limit + 1):
        out = {v: abbreviate(v, size) for v in values}
        if len(set(out.values())) == len(out):
            return out
    return {v: v for v in values}


def color_scale(domain: Sequence[object] | None) -> alt.Scale:
    """The palette over ``domain`` in order: give the same domain (all values the attribute
    takes in the archive) on every page and a cohort keeps its colour everywhere."""
    if not domain:
        return alt.Scale(range=list(PALETTE))
    return alt.Scale(
        domain=[str(v) for v in domain],
        range=[PALETTE[i % len(PALETTE)] for i in range(len(domain))],
    )


def _sized(
    chart: alt.TopLevelMixin, builder: str, *, title: str, height: int | alt.Step
) -> alt.TopLevelMixin:
    """Width fitted to the page, ``height`` the plot's own (see the module docstring); the
    spec names its ``builder`` (Vega-Lite ``usermeta``), so tests can tell charts apart."""
    return chart.properties(
        title=title,
        height=height,
        autosize=alt.AutoSizeParams(type="fit-x", contains="padding"),
        usermeta={"builder": builder},
    )


def _labelled(
    df: pd.DataFrame, field: str, domain: Sequence[object] | None = None
) -> tuple[pd.DataFrame, str, list[str] | None]:
    """``df``, the field to draw for ``field`` and ``domain`` as drawn: the field itself, or a
    middle-shortened copy when its values (or the domain's) are too long to show in full (the
    full value stays in the tooltip), the domain shortened alike so that it names what is drawn."""
    values = labels(df[field])
    names = None if domain is None else labels(pd.Series(list(domain), dtype=object)).tolist()
    every = [*values, *(names or [])]
    if not every or max(len(v) for v in every) <= LABEL_CHARS:
        return df.assign(**{field: values}), field, names
    mapping = short_labels(every)
    short = f"{field} (short)"
    drawn = None if names is None else [mapping[n] for n in names]
    return df.assign(**{field: values, short: values.map(mapping)}), short, drawn


def _check_size(df: pd.DataFrame, per: str | None = None) -> None:
    sizes = df.groupby(per).size() if per and per in df and not df.empty else pd.Series([len(df)])
    if len(sizes) and sizes.max() > MAX_POINTS:
        raise ValueError(f"{sizes.max()} points in one series: downsample to {MAX_POINTS} first")


def _x_encoding(x: str, title: str | None = None) -> alt.X:
    kind = "T" if x in ("time", "captured_ts", "first_seen", "last_seen") else "Q"
    if x == "batch":  # whole batches (episodes): integer ticks
        return alt.X(f"{x}:Q", title=title_for(x, title), axis=alt.Axis(tickMinStep=1, format="d"))
    return alt.X(f"{x}:{kind}", title=title_for(x, title))


def smoothed(df: pd.DataFrame, columns: Sequence[str], *, by: str, weight: float) -> pd.DataFrame:
    """``columns`` smoothed by an exponential moving average along each ``by`` group's rows
    (TensorBoard's: each point is ``weight`` × the previous smoothed one + (1 − weight) × its
    own, debiased at the start); ``weight`` 0 leaves them as they are. A weighted mean of
    values: what lies within a domain stays within it."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    if weight == 0 or df.empty:
        return df
    smooth = df.groupby(by, sort=False)[list(columns)].transform(
        lambda s: s.ewm(alpha=1 - weight, adjust=True, ignore_na=True).mean()
    )
    return df.assign(**{c: smooth[c] for c in columns})


def thinned(df: pd.DataFrame, *, x: str, y: str, by: str, max_points: int = MAX_POINTS):
    """At most ``max_points`` rows per ``by`` group, chosen to keep each curve's shape
    (largest-triangle buckets over ``x``, ``y``; the rows keep every other column, bands
    included): a long run's thousands of batches drawn as a curve the builders take."""
    from sanctum_store.queries import downsample_indices

    if df.empty or df.groupby(by).size().max() <= max_points:
        return df
    parts = []
    for _, group in df.groupby(by, sort=False):
        group = group.sort_values(x, kind="stable")
        keep = downsample_indices(group[x].to_numpy(float), group[y].to_numpy(float), max_points)
        parts.append(group.iloc[keep])
    return pd.concat(parts, ignore_index=True)


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
    color_title: str | None = None,
    domain: Sequence[object] | None = None,
    height: int = 220,
) -> alt.Chart:
    """Lines of ``y`` against ``x``, one per ``color`` value (coloured by ``domain`` when
    given), with an optional shaded band (mean ± std across envs, a 95 % CI across runs)."""
    _check_size(df, color)
    tooltip = [c for c in (color, x, y) if c]
    if color:
        df, shown, drawn = _labelled(df, color, domain)
        color_enc = alt.Color(
            f"{shown}:N",
            title=title_for(color, color_title),
            scale=color_scale(drawn),
            # Lines in the legend, at full colour (not the pale band's swatch).
            legend=alt.Legend(
                labelLimit=0, symbolType="stroke", symbolStrokeWidth=3, symbolOpacity=1
            ),
        )
    else:
        color_enc = alt.value(PALETTE[0])
    base = alt.Chart(df).encode(x=_x_encoding(x, x_title))
    line = base.mark_line(point=len(df) < 60).encode(
        y=alt.Y(f"{y}:Q", title=title_for(y, y_title), scale=alt.Scale(zero=False)),
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
    return _sized(alt.layer(*layers), "curves", title=title, height=height)


def sparkline(df: pd.DataFrame, *, x: str = "x", y: str = "value", height: int = 60) -> alt.Chart:
    """A small axis-less line for a metric tile (PPO health)."""
    _check_size(df)
    chart = (
        alt.Chart(df)
        .mark_line(color=PALETTE[0])
        .encode(
            x=alt.X(f"{x}:Q", axis=None),
            y=alt.Y(f"{y}:Q", axis=None, scale=alt.Scale(zero=False)),
            tooltip=[x, y],
        )
    )
    return _sized(chart, "sparkline", title="", height=height)


#: The most runs per group drawn as points (the statistics use every run).
POINTS_PER_GROUP = 300


def _runs_by_group(df: pd.DataFrame, group: str, value: str, domain: Sequence[object] | None):
    """The runs with a value, labelled by group, at most :data:`POINTS_PER_GROUP` per group (a
    fixed random sample), and the groups in drawing order (the domain's, else sorted)."""
    df = df.dropna(subset=[value]).assign(**{group: lambda d: labels(d[group])})
    df = df.sample(frac=1.0, random_state=0).groupby(group, sort=False).head(POINTS_PER_GROUP)
    _check_size(df, group)
    order = [str(v) for v in domain] if domain else sorted(df[group].unique())
    return df, [v for v in order if v in set(df[group])]


def distribution(
    df: pd.DataFrame,
    *,
    group: str,
    value: str,
    title: str = "",
    group_title: str | None = None,
    value_title: str | None = None,
    domain: Sequence[object] | None = None,
    height: int = 220,
) -> alt.Chart:
    """Per-run outcomes by group: a box plot with every run drawn as a point over it (at most
    :data:`POINTS_PER_GROUP` per group, a fixed random sample)."""
    df, order = _runs_by_group(df, group, value, domain)
    base = alt.Chart(df).encode(
        x=alt.X(f"{group}:N", title=title_for(group, group_title), sort=order),
        color=alt.Color(f"{group}:N", legend=None, scale=color_scale(domain or order)),
    )
    box = base.mark_boxplot(opacity=0.35, extent="min-max", size=28).encode(
        y=alt.Y(f"{value}:Q", title=title_for(value, value_title), scale=alt.Scale(zero=False))
    )
    tooltip = [c for c in ("run_id", group, value) if c in df.columns]
    # Jitter within the middle third of the group's band, so a point stays by its own box.
    points = (
        base.mark_circle(size=60, opacity=0.85)
        .encode(
            y=f"{value}:Q",
            xOffset=alt.XOffset("jitter:Q", scale=alt.Scale(domain=[-1.5, 1.5])),
            tooltip=tooltip,
        )
        .transform_calculate(jitter="random() - 0.5")
    )
    return _sized(alt.layer(box, points), "distribution", title=title, height=height)


def paired_outcomes(
    df: pd.DataFrame,
    *,
    group: str,
    value: str,
    pair: str,
    title: str = "",
    group_title: str | None = None,
    value_title: str | None = None,
    domain: Sequence[object] | None = None,
    height: int = 220,
) -> alt.Chart:
    """Per-run outcomes by group, every run a point (at most :data:`POINTS_PER_GROUP` per
    group); the runs of one pair (``pair``: the same seed in every group) joined by a line."""
    df, order = _runs_by_group(df, group, value, domain)
    base = alt.Chart(df).encode(
        x=alt.X(f"{group}:N", title=title_for(group, group_title), sort=order),
        y=alt.Y(f"{value}:Q", title=title_for(value, value_title), scale=alt.Scale(zero=False)),
    )
    paired = df[df[pair].notna()]
    lines = (
        alt.Chart(paired)
        .mark_line(color=NEUTRAL, opacity=0.5, strokeWidth=1)
        .encode(
            x=alt.X(f"{group}:N", sort=order),
            y=f"{value}:Q",
            detail=f"{pair}:N",
            order=alt.Order(f"{group}:N", sort="ascending"),
        )
    )
    tooltip = [c for c in ("run_id", group, value, pair) if c in df.columns]
    points = base.mark_circle(size=60, opacity=0.9).encode(
        color=alt.Color(f"{group}:N", legend=None, scale=color_scale(domain or order)),
        tooltip=tooltip,
    )
    return _sized(alt.layer(lines, points), "paired_outcomes", title=title, height=height)


def stacked_bars(
    df: pd.DataFrame,
    *,
    x: str,
    y: str,
    color: str,
    title: str = "",
    x_title: str | None = None,
    y_title: str | None = None,
    normalize: bool = False,
    colors: dict[str, str] | None = None,
    horizontal: bool = False,
    height: int = 220,
) -> alt.Chart:
    """Counts stacked by category (action mix over batches, stages per blueprint).

    ``horizontal``: ``x`` is a category axis down the side, one :data:`BAND` per category.
    """
    _check_size(df)
    if colors:
        scale = alt.Scale(domain=list(colors), range=list(colors.values()))
    else:
        scale = color_scale(sorted(labels(df[color]).unique()))
    stack = "normalize" if normalize else True
    value_title = title_for(y, y_title)
    if horizontal:
        df, shown, _ = _labelled(df, x)
        value = alt.X(f"{y}:Q", stack=stack, title=value_title)
        category = alt.Y(
            f"{shown}:N", title=title_for(x, x_title), sort=None, axis=alt.Axis(labelLimit=0)
        )
        encoding = {"y": category, "x": value}
    else:
        # x is a position (batches): a continuous axis, each bar spanning its step to the next.
        steps = pd.Series(sorted(df[x].unique())).diff().dropna()
        step = float(steps.min()) if len(steps) else 1.0
        df = df.assign(**{f"{x}_end": df[x] + step})
        value = alt.Y(f"{y}:Q", stack=stack, title=value_title)
        encoding = {
            # "binned": the bars are vertical, stacked in y, each spanning x to x2.
            "x": alt.X(f"{x}:Q", bin="binned", title=title_for(x, x_title)),
            "x2": f"{x}_end:Q",
            "y": value,
        }
    chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            **encoding,
            color=alt.Color(f"{color}:N", scale=scale, title=title_for(color)),
            tooltip=[x, color, y],
        )
    )
    return _sized(
        chart, "stacked_bars", title=title, height=alt.Step(BAND) if horizontal else height
    )


def grouped_bars(
    df: pd.DataFrame,
    *,
    category: str,
    group: str,
    value: str,
    colors: dict[str, str],
    title: str = "",
    category_title: str | None = None,
    value_title: str | None = None,
) -> alt.Chart:
    """One horizontal bar per ``group`` value within each ``category``, side by side and never
    summed (seeds reaching each stage, per blueprint): ``colors`` gives the groups' order and
    colours. Each category gets one :data:`BAND` per group."""
    _check_size(df)
    df, shown, _ = _labelled(df, category)
    order = list(colors)
    chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y(
                f"{shown}:N",
                title=title_for(category, category_title),
                sort=None,
                axis=alt.Axis(labelLimit=0),
            ),
            yOffset=alt.YOffset(f"{group}:N", sort=order),
            x=alt.X(f"{value}:Q", stack=None, title=title_for(value, value_title)),
            color=alt.Color(
                f"{group}:N",
                sort=order,
                scale=alt.Scale(domain=order, range=list(colors.values())),
                title=title_for(group),
            ),
            tooltip=[category, group, value],
        )
    )
    step = alt.Step(max(BAND // 2, 8), **{"for": "offset"})
    return _sized(chart, "grouped_bars", title=title, height=step)


def ranking(
    df: pd.DataFrame,
    *,
    label: str,
    value: str,
    title: str = "",
    label_title: str | None = None,
    value_title: str | None = None,
    error: str | None = None,
) -> alt.Chart:
    """Horizontal bars sorted by value (Shapley rankings, synergy, reward components), green
    when positive, vermillion when negative, with optional ± ``error`` bars."""
    _check_size(df)
    tooltip = list(df.columns)
    df, shown, _ = _labelled(df, label)
    base = alt.Chart(df).encode(
        y=alt.Y(
            f"{shown}:N",
            sort="-x",
            title=title_for(label, label_title),
            axis=alt.Axis(labelLimit=0),
        )
    )
    bars = base.mark_bar().encode(
        x=alt.X(f"{value}:Q", title=title_for(value, value_title)),
        color=alt.condition(f"datum['{value}'] >= 0", alt.value(POSITIVE), alt.value(NEGATIVE)),
        tooltip=tooltip,
    )
    layers = [bars]
    if error:
        layers.append(
            base.mark_errorbar()
            .encode(x=alt.X(f"{value}_low:Q"), x2=f"{value}_high:Q")
            .transform_calculate(
                **{
                    f"{value}_low": f"datum['{value}'] - datum['{error}']",
                    f"{value}_high": f"datum['{value}'] + datum['{error}']",
                }
            )
        )
    return _sized(alt.layer(*layers), "ranking", title=title, height=alt.Step(BAND))


def calibration(df: pd.DataFrame, *, title: str = "Confidence versus outcome") -> alt.Chart:
    """Reliability diagram: mean confidence per bin against the observed success rate, with
    the diagonal a perfectly calibrated policy would follow; point size is the bin's count."""
    _check_size(df)
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]}))
        .mark_line(strokeDash=[4, 4], color=NEUTRAL)
        .encode(x="x:Q", y="y:Q")
    )
    base = alt.Chart(df).encode(
        x=alt.X(
            "mean_confidence:Q", title=title_for("mean_confidence"), scale=alt.Scale(domain=[0, 1])
        ),
        y=alt.Y(
            "positive_rate:Q", title=title_for("positive_rate"), scale=alt.Scale(domain=[0, 1])
        ),
    )
    line = base.mark_line(color=PALETTE[0])
    points = base.mark_circle(color=PALETTE[0], opacity=0.9).encode(
        size=alt.Size("n:Q", title="decisions", scale=alt.Scale(range=[30, 400])),
        tooltip=list(df.columns),
    )
    return _sized(alt.layer(diagonal, line, points), "calibration", title=title, height=260)


def scatter(
    df: pd.DataFrame,
    *,
    x: str,
    y: str,
    color: str | None = None,
    title: str = "",
    x_title: str | None = None,
    y_title: str | None = None,
) -> alt.Chart:
    """Points, e.g. value estimate against actual reward."""
    _check_size(df)
    encoding = {
        "x": alt.X(f"{x}:Q", title=title_for(x, x_title)),
        "y": alt.Y(f"{y}:Q", title=title_for(y, y_title)),
        "tooltip": list(df.columns),
    }
    if color:
        df = df.assign(**{color: labels(df[color])})
        domain = sorted(df[color].unique())
        encoding["color"] = alt.Color(
            f"{color}:N", title=title_for(color), scale=color_scale(domain)
        )
    chart = alt.Chart(df).mark_circle(opacity=0.6, color=PALETTE[0]).encode(**encoding)
    return _sized(chart, "scatter", title=title, height=260)


def histogram(
    df: pd.DataFrame,
    *,
    value: str,
    color: str | None = None,
    title: str = "",
    count_title: str = "seeds",
    colors: dict[str, str] | None = None,
) -> alt.Chart:
    """Binned counts of a value (lifespans), optionally stacked by a category."""
    _check_size(df)
    encoding = {
        "x": alt.X(f"{value}:Q", bin=alt.Bin(maxbins=30), title=title_for(value)),
        "y": alt.Y("count():Q", title=count_title),
    }
    if color:
        scale = (
            alt.Scale(domain=list(colors), range=list(colors.values()))
            if colors
            else color_scale(sorted(labels(df[color]).unique()))
        )
        encoding["color"] = alt.Color(f"{color}:N", title=title_for(color), scale=scale)
    chart = alt.Chart(df).mark_bar(opacity=0.85, color=PALETTE[0]).encode(**encoding)
    return _sized(chart, "histogram", title=title, height=220)


def slot_grid(seeds: pd.DataFrame, *, title: str = "Seed slots") -> alt.Chart:
    """Envs × slots, each cell coloured by the seed's stage and labelled with its blueprint.

    ``seeds`` has columns env, slot, stage, blueprint (None for an empty slot), alpha. The
    legend lists every stage present, in lifecycle order.
    """
    _check_size(seeds)
    present = set(seeds["stage"])
    stages = [s for s in STAGE_COLORS if s in present] + sorted(present - set(STAGE_COLORS))
    scale = alt.Scale(domain=stages, range=[STAGE_COLORS.get(s, NEUTRAL) for s in stages])
    many = seeds["slot"].nunique() > 6
    base = alt.Chart(seeds).encode(
        x=alt.X("slot:N", title="slot", axis=alt.Axis(labelAngle=-90 if many else 0)),
        y=alt.Y("env:O", title="env"),
    )
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("stage:N", scale=scale, title="stage", sort=stages),
        tooltip=[
            c
            for c in ("env", "slot", "stage", "blueprint", "alpha", "epochs_in_stage")
            if c in seeds
        ],
    )
    labels = base.mark_text(fontSize=11, color="white").encode(text=alt.Text("blueprint:N"))
    return _sized(alt.layer(cells, labels), "slot_grid", title=title, height=alt.Step(28))


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
