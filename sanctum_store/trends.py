"""Trend and health utilities over metric histories (part of the Sanctum schema's API).

Re-exported by :mod:`sanctum_store.schema`, where esper keeps them.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

#: Relative change over a 10-sample window that counts as a trend, per metric.
TREND_THRESHOLDS: dict[str, float] = {
    "episode_return": 0.15,
    "entropy": 0.08,
    "policy_loss": 0.20,
    "value_loss": 0.20,
    "kl_divergence": 0.30,
    "clip_fraction": 0.30,
    "grad_norm": 0.25,
    "expl_var": 0.15,
    "default": 0.15,
}

#: Number of samples in one trend / velocity window.
TREND_WINDOW = 10


def _finite_tail(values, n: int = TREND_WINDOW) -> np.ndarray:
    tail = np.asarray(list(values)[-n:], dtype=float)
    return tail[np.isfinite(tail)]


def compute_entropy_velocity(entropy_history: deque[float] | list[float]) -> float:
    """d(entropy)/d(batch) by least squares over the last 10 samples (non-finite ones skipped,
    the others keep their batch positions).

    Negative means entropy is declining. Fewer than 2 usable samples give 0.0.
    """
    tail = np.asarray(list(entropy_history)[-TREND_WINDOW:], dtype=float)
    x = np.arange(len(tail), dtype=float)
    mask = np.isfinite(tail)
    if mask.sum() < 2:
        return 0.0
    x, y = x[mask], tail[mask]
    # The closed-form slope (the same fit as np.polyfit(x, y, 1)) is exactly 0.0 for a flat
    # history, where polyfit's solver leaves ~1e-17 that would read as a decline. Fitting y
    # scaled into [-1, 1] keeps huge values from overflowing.
    scale = float(np.max(np.abs(y)))
    if scale == 0.0:
        return 0.0
    y = y / scale
    dx = x - x.mean()
    return scale * float(np.dot(dx, y - y.mean()) / np.dot(dx, dx))


def compute_correlation(x_values, y_values) -> float:
    """Pearson correlation of two metric histories, aligned on their most recent samples.

    Pairs with a non-finite member are dropped. Returns 0.0 with fewer than 3 pairs or when
    either side has zero variance (is constant).
    """
    x = np.asarray(list(x_values), dtype=float)
    y = np.asarray(list(y_values), dtype=float)
    n = min(len(x), len(y))
    if n < 3:
        return 0.0
    x, y = x[-n:], y[-n:]
    mask = np.isfinite(x) & np.isfinite(y)
    x, y = x[mask], y[mask]
    # Constant, not np.std(x) == 0: a constant's mean carries rounding error, so its computed
    # std is ~1e-17 and corrcoef would return noise instead of 0.0.
    if len(x) < 3 or x.min() == x.max() or y.min() == y.max():
        return 0.0
    # Correlation ignores scale; rescaling keeps squares of values near 1e200 from overflowing.
    x, y = x / np.max(np.abs(x)), y / np.max(np.abs(y))
    r = float(np.corrcoef(x, y)[0, 1])
    return r if math.isfinite(r) else 0.0


def compute_collapse_risk(
    entropy_history: deque[float] | list[float],
    critical_threshold: float = 0.3,
    warning_threshold: float = 0.5,
    max_healthy_entropy: float = 1.39,
    previous_risk: float = 0.0,
    hysteresis: float = 0.08,
) -> float:
    """Entropy-collapse risk in [0, 1] from the entropy level and its velocity.

    * Proximity: 0 at or above ``max_healthy_entropy``, rising linearly to 0.7 at
      ``warning_threshold`` and to 1.0 at ``critical_threshold`` and below.
    * Velocity: a declining entropy adds up to 0.3, scaled so that the decline would reach
      the critical threshold within 10 batches at full weight; a rising entropy adds nothing.
    * Hysteresis: a new value within ``hysteresis`` of ``previous_risk`` returns
      ``previous_risk`` unchanged, so the score does not flap around a boundary.

    An empty (or all non-finite) history gives ``previous_risk`` back (0.0 by default).
    """
    tail = _finite_tail(entropy_history)
    if len(tail) == 0:
        return float(previous_risk)
    current = float(tail[-1])
    if current <= critical_threshold:
        proximity = 1.0
    elif current <= warning_threshold:
        span = warning_threshold - critical_threshold
        proximity = 0.7 + 0.3 * (warning_threshold - current) / span
    elif current < max_healthy_entropy:
        span = max_healthy_entropy - warning_threshold
        proximity = 0.7 * (max_healthy_entropy - current) / span
    else:
        proximity = 0.0

    velocity = compute_entropy_velocity(entropy_history)
    velocity_risk = 0.0
    if velocity < 0:
        distance = max(current - critical_threshold, 1e-9)
        velocity_risk = min(1.0, -velocity * TREND_WINDOW / distance)
    risk = min(1.0, max(0.0, proximity + 0.3 * velocity_risk))

    if abs(risk - previous_risk) < hysteresis:
        return float(previous_risk)
    return float(risk)


def detect_trend(values, metric_name: str = "default", metric_type: str = "loss") -> str:
    """Classify the recent direction of a metric: improving / stable / volatile / warning.

    Compares the mean of the last 10 samples with the mean of the 10 before them (with fewer
    than 20 samples: the two halves of what there is; fewer than 4 samples is ``"stable"``).
    The relative change is judged against ``TREND_THRESHOLDS[metric_name]`` (``"default"`` for
    unknown metrics). ``metric_type`` says which direction is good: ``"loss"`` (lower is
    better) or anything else, e.g. ``"accuracy"`` (higher is better). A change beyond the
    threshold in the good direction is ``"improving"``, in the bad direction ``"warning"``.
    Without such a change, the metric is ``"volatile"`` when the recent window's coefficient of
    variation exceeds twice the threshold, else ``"stable"``: a clear direction outranks noise.
    Non-finite samples are ignored.
    """
    data = np.asarray(list(values), dtype=float)
    data = data[np.isfinite(data)]
    if len(data) < 4:
        return "stable"
    if len(data) >= 2 * TREND_WINDOW:
        recent, older = data[-TREND_WINDOW:], data[-2 * TREND_WINDOW : -TREND_WINDOW]
    else:
        half = len(data) // 2
        recent, older = data[half:], data[:half]
    threshold = TREND_THRESHOLDS.get(metric_name, TREND_THRESHOLDS["default"])
    recent_mean, older_mean = float(np.mean(recent)), float(np.mean(older))
    scale = max(abs(older_mean), 1e-8)
    change = (recent_mean - older_mean) / scale

    spread = float(np.std(recent))
    if spread / max(abs(recent_mean), 1e-8) > 2 * threshold and abs(change) <= threshold:
        return "volatile"
    if abs(change) <= threshold:
        return "stable"
    lower_is_better = metric_type == "loss"
    good = change < 0 if lower_is_better else change > 0
    return "improving" if good else "warning"


_TREND_INDICATORS: dict[str, tuple[str, str]] = {
    "improving": ("▲", "green"),
    "stable": ("─", "dim"),
    "volatile": ("~", "yellow"),
    "warning": ("▼", "red"),
}


def trend_to_indicator(trend: str) -> tuple[str, str]:
    """Display character and Rich colour for a trend label; unknown labels get ``("?", "dim")``."""
    return _TREND_INDICATORS.get(trend, ("?", "dim"))


_SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def make_sparkline(values, width: int = 8) -> str:
    """A ``width``-character sparkline of the last ``width`` values, right-aligned.

    Missing leading positions are padded with spaces; non-finite values show as a space; a
    flat series shows as mid-height blocks. Empty input gives ``width`` spaces.
    """
    if width <= 0:
        return ""
    tail = [float(v) for v in list(values)[-width:]]
    finite = [v for v in tail if math.isfinite(v)]
    pad = " " * (width - len(tail))
    if not finite:
        return " " * width
    low, high = min(finite), max(finite)
    # A range wider than the largest float (-1e308..1e308) is taken halved; halving a tiny one
    # (subnormals) would make it 0.
    scale = 0.5 if math.isinf(high - low) else 1.0
    chars = []
    for v in tail:
        if not math.isfinite(v):
            chars.append(" ")
        elif high == low:
            chars.append(_SPARK_BLOCKS[len(_SPARK_BLOCKS) // 2 - 1])
        else:
            fraction = (v * scale - low * scale) / (high * scale - low * scale)
            index = min(int(fraction * (len(_SPARK_BLOCKS) - 1)), len(_SPARK_BLOCKS) - 1)
            chars.append(_SPARK_BLOCKS[index])
    return pad + "".join(chars)
