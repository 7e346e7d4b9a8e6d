"""Cohort statistics: is one group of runs really better than another?

Input is a tidy DataFrame with one row per run, a cohort column (e.g. the reward mode) and a
run-level outcome column (final accuracy, mean reward, ...). Output is plain DataFrames the
explorer renders as tables, plus a one-sentence verdict per comparison.

Choices worth knowing:

* Only finite outcomes count. NaN/±inf runs are dropped and reported as ``n_missing``; runs with
  no cohort label are dropped.
* Confidence intervals of a mean are t-based (exact for normal data; z would be too narrow at the
  N = 3-10 runs typical of RL sweeps). Intervals of a difference use a percentile bootstrap.
* Significance is Welch's t-test, Holm-adjusted across every pair in the table, at
  ``1 - confidence``. Mann-Whitney U and the probability of improvement (as in rliable) are
  reported alongside but never decide the verdict.
* A cohort whose values are all identical has zero variance, where the t-test is undefined
  (scipy returns a spurious p = 0 for two different constants). Such pairs get no p-value.
* One sign convention: a row compares ``b`` with ``a`` as ``b - a`` (with a baseline, ``a`` is
  the baseline: cohort - baseline), and the verdict states that same number, with the row's own
  interval and p-value, before saying which cohort is better.
* An outcome has a direction (:mod:`sanctum_store.metrics`): higher or lower is better, or a
  trade-off, where a difference is reported but no cohort is called better. A reward-based
  outcome is never compared between cohorts whose reward modes differ.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from sanctum_store import metrics

DESCRIBE_COLUMNS: tuple[str, ...] = (
    "cohort",
    "n",
    "n_missing",
    "mean",
    "median",
    "std",
    "iqm",
    "ci_low",
    "ci_high",
)

#: Significance first, then the difference ``b - a`` and its interval, then the raw statistics.
COMPARE_COLUMNS: tuple[str, ...] = (
    "a",
    "b",
    "n_a",
    "n_b",
    "p_adjusted",
    "significant",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "mean_a",
    "mean_b",
    "hedges_g",
    "p_improvement",
    "welch_t",
    "welch_p",
    "mwu_u",
    "mwu_p",
    "verdict",
)

#: Prefix of the verdict of a pair a reward-based outcome cannot compare.
NOT_COMPARABLE = "not comparable: the reward definitions differ"

#: Fewer runs than this per cohort and the verdict warns that power is low.
LOW_POWER_N = 5

# Bound on the index matrix one bootstrap chunk materializes (elements, ~16 MB of int64).
_BOOT_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class _Sample:
    """The finite outcomes of one cohort and the summary numbers every comparison reuses."""

    label: object
    values: np.ndarray
    n_missing: int

    @property
    def n(self) -> int:
        return int(self.values.size)

    @property
    def constant(self) -> bool:
        # Exact test on the values, not std == 0: np.std([0.1] * 3) is 1.7e-17, not 0.
        return self.n >= 1 and bool(self.values.max() == self.values.min())

    @property
    def mean(self) -> float:
        if self.n == 0:
            return math.nan
        return float(self.values[0]) if self.constant else float(self.values.mean())

    @property
    def std(self) -> float:
        if self.n < 2:
            return math.nan
        return 0.0 if self.constant else float(self.values.std(ddof=1))


# --------------------------------------------------------------------------- public API


def describe_cohorts(
    df: pd.DataFrame, cohort: str, metric: str, *, confidence: float = 0.95
) -> pd.DataFrame:
    """One row per cohort (sorted by label) summarizing ``metric``.

    Columns: ``cohort, n, n_missing, mean, median, std, iqm, ci_low, ci_high``. ``n`` counts
    finite values; NaN/inf outcomes are excluded and counted in ``n_missing``. ``std`` is the
    sample standard deviation (ddof=1), NaN when n < 2. ``iqm`` is the interquartile mean
    (``scipy.stats.trim_mean(x, 0.25)``, as in rliable). ``ci_low``/``ci_high`` bound the mean
    with a t-interval at ``confidence`` (n - 1 degrees of freedom); NaN when n < 2.

    Raises ``ValueError`` when ``cohort`` or ``metric`` is not a column of ``df``.
    """
    _check_confidence(confidence)
    samples = _samples(df, cohort, metric)
    rows = []
    for s in samples:
        mean, std = s.mean, s.std
        if s.n >= 2:
            half = sps.t.ppf((1 + confidence) / 2, s.n - 1) * std / math.sqrt(s.n)
            ci_low, ci_high = mean - half, mean + half
        else:
            ci_low = ci_high = math.nan
        rows.append(
            {
                "cohort": s.label,
                "n": s.n,
                "n_missing": s.n_missing,
                "mean": mean,
                "median": float(np.median(s.values)) if s.n else math.nan,
                "std": std,
                "iqm": float(sps.trim_mean(s.values, 0.25)) if s.n else math.nan,
                "ci_low": ci_low,
                "ci_high": ci_high,
            }
        )
    out = pd.DataFrame(rows, columns=list(DESCRIBE_COLUMNS))
    return out.astype({"n": "int64", "n_missing": "int64"})


def compare_cohorts(
    df: pd.DataFrame,
    cohort: str,
    metric: str,
    *,
    baseline: object | None = None,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int | None = 0,
    higher_is_better: bool | None = None,
    direction: str | None = None,
    reward_based: bool | None = None,
    reward_modes: Mapping[object, Iterable[str]] | None = None,
) -> pd.DataFrame:
    """Pairwise A/B comparisons of ``metric`` between cohorts, one row per pair.

    Pairs are every two cohorts in label order, or each cohort against ``baseline`` (always
    column ``a``). Every number of a row ``(a, b)`` reads "b compared with a":

    * ``p_adjusted``: Holm-Bonferroni over the Welch p-values of all pairs in the table;
      ``significant`` is ``p_adjusted < 1 - confidence``;
    * ``diff = mean_b - mean_a`` (cohort - baseline) with a percentile-bootstrap interval
      (``n_boot`` resamples within each cohort, deterministic for ``seed``; a pair's interval
      does not depend on which other cohorts are in the table);
    * ``hedges_g``: pooled-std Cohen's d of b - a times ``1 - 3 / (4 (n_a + n_b) - 9)``;
    * ``p_improvement``: the probability that a random run of b is better than a random run of
      a, ties counting half: ``P(b > a) + P(b = a) / 2`` when higher is better (``U_b / (n_a
      n_b)``), ``P(b < a) + P(b = a) / 2`` when lower is better, NaN for a trade-off;
    * ``welch_t``/``welch_p``: Welch's t-test of b vs a; ``mwu_u``/``mwu_p``: two-sided
      Mann-Whitney U of b vs a (``mwu_u`` counts b > a, ties half);
    * ``verdict``: ``"b − a = diff (CI; p)"`` with the row's numbers, then which is better.

    ``direction`` is ``"higher"``, ``"lower"`` or ``"tradeoff"`` (no cohort is ever called
    better); without it, ``higher_is_better``, else the declaration of ``metric`` in
    :mod:`sanctum_store.metrics`, else higher. ``reward_based`` (default: from
    :mod:`sanctum_store.metrics`) with ``reward_modes`` (cohort -> its runs' reward modes;
    default: from a ``reward_mode`` column of ``df``, if any): a pair whose cohorts do not share
    one reward mode gets no difference and no test, and the verdict says it is not comparable.

    Tests need at least two finite runs per cohort; below that, and for two zero-variance
    cohorts, p-values are NaN and the verdict explains why.

    Raises ``ValueError`` when ``cohort`` or ``metric`` is not a column of ``df`` or
    ``baseline`` is not one of its cohorts.
    """
    _check_confidence(confidence)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    direction = _direction(metric, direction, higher_is_better)
    modes = _reward_modes(df, cohort, metric, reward_based, reward_modes)
    samples = {s.label: s for s in _samples(df, cohort, metric)}
    pairs = _pairs(samples, cohort, baseline)
    root = np.random.SeedSequence(seed)
    boot_means: dict[object, np.ndarray] = {}
    rows = []
    for la, lb in pairs:
        a, b = samples[la], samples[lb]
        if modes is not None and _incomparable(modes.get(la), modes.get(lb)):
            rows.append(_not_comparable_row(a, b))
            continue
        for s in (a, b):
            if s.label not in boot_means and s.n >= 2:
                boot_means[s.label] = _bootstrap_means(s, root, n_boot)
        rows.append(_compare_pair(a, b, boot_means, confidence, direction))

    out = pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))
    out["p_adjusted"] = holm(out["welch_p"].to_numpy(dtype=float))
    out["significant"] = (out["p_adjusted"] < _alpha(confidence)).astype(bool)
    n_tests = int(out["welch_p"].notna().sum())
    out["verdict"] = [
        _not_comparable(r.a, r.b, modes)
        if modes is not None and _incomparable(modes.get(r.a), modes.get(r.b))
        else _verdict(samples[r.a], samples[r.b], r, metric, confidence, direction, n_tests)
        for r in out.itertuples(index=False)
    ]
    return out.astype({"n_a": "int64", "n_b": "int64", "verdict": object})


def cohort_summary(
    df: pd.DataFrame, cohort: str, metric: str, **kw
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(describe_cohorts(...), compare_cohorts(...))`` for the same data.

    Keyword arguments go to :func:`compare_cohorts`; ``confidence`` goes to both.
    """
    described = describe_cohorts(df, cohort, metric, confidence=kw.get("confidence", 0.95))
    return described, compare_cohorts(df, cohort, metric, **kw)


#: What :func:`interval` can estimate.
STATISTICS = ("mean", "iqm")


def interval(
    values: np.ndarray,
    statistic: str = "mean",
    *,
    confidence: float = 0.95,
    n_boot: int = 2_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(estimate, ci_low, ci_high)`` of the mean or the interquartile mean (as rliable) of
    ``values`` (one per run), with a percentile-bootstrap interval: resampled runs, so the
    bounds lie within the values' range. NaN bounds below 2 values; all NaN for none."""
    _check_confidence(confidence)
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan

    def estimate(a: np.ndarray, axis: int | None = None):
        if statistic == "mean":
            return a.mean(axis=axis)
        return sps.trim_mean(a, 0.25, axis=axis if axis is not None else None)

    point = float(estimate(x))
    if x.size < 2:
        return point, math.nan, math.nan
    rng = np.random.default_rng(seed)
    resamples = x[rng.integers(0, x.size, size=(n_boot, x.size))]
    alpha = _alpha(confidence)
    lo, hi = np.quantile(estimate(resamples, axis=1), [alpha / 2, 1 - alpha / 2])
    return point, float(lo), float(hi)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values; NaN entries stay NaN and do not count as tests."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    # Step-down: the k-th smallest p is multiplied by (m - k); the running max keeps the
    # adjusted values monotone in the raw ones.
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


# --------------------------------------------------------------------------- internals


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")


def _alpha(confidence: float) -> float:
    # Rounded so that 1 - 0.95 is 0.05, not 0.050000000000000044 (which would call p = 0.05
    # significant).
    return round(1 - confidence, 12)


def _direction(metric: str, direction: str | None, higher_is_better: bool | None) -> str:
    if direction is not None:
        if direction not in metrics.DIRECTIONS:
            raise ValueError(f"direction must be one of {metrics.DIRECTIONS}, got {direction!r}")
        return direction
    if higher_is_better is not None:
        return "higher" if higher_is_better else "lower"
    declared = metrics.OUTCOMES.get(metric)
    return declared.direction if declared else "higher"


def _reward_modes(
    df: pd.DataFrame,
    cohort: str,
    metric: str,
    reward_based: bool | None,
    reward_modes: Mapping[object, Iterable[str]] | None,
) -> dict[object, frozenset[str]] | None:
    """Each cohort's reward modes when ``metric`` is reward-based, else ``None`` (no rule)."""
    if reward_based is None:
        declared = metrics.OUTCOMES.get(metric)
        reward_based = bool(declared and declared.reward_based)
    if not reward_based:
        return None
    if reward_modes is not None:
        return {_plain(k): frozenset(map(str, v)) for k, v in reward_modes.items()}
    if "reward_mode" not in df.columns or cohort not in df.columns:
        return None
    known = df[df[cohort].notna() & df["reward_mode"].notna()]
    groups = known.groupby(cohort, sort=False, observed=True)["reward_mode"]
    return {_plain(k): frozenset(map(str, v)) for k, v in groups}


def _incomparable(modes_a: frozenset[str] | None, modes_b: frozenset[str] | None) -> bool:
    """Comparable only when both cohorts' runs share one reward mode."""
    return modes_a != modes_b or modes_a is None or len(modes_a) != 1


def _not_comparable(a: object, b: object, modes: dict[object, frozenset[str]]) -> str:
    def named(label: object) -> str:
        return "/".join(sorted(modes.get(label) or ())) or "unknown"

    return f"{NOT_COMPARABLE} ({a}: {named(a)}, {b}: {named(b)})"


def _not_comparable_row(a: _Sample, b: _Sample) -> dict:
    row = dict.fromkeys(COMPARE_COLUMNS, math.nan)
    row.update(a=a.label, b=b.label, n_a=a.n, n_b=b.n, mean_a=a.mean, mean_b=b.mean)
    return row


def _pairs(samples: dict[object, _Sample], cohort: str, baseline: object | None) -> list:
    if baseline is None:
        return list(itertools.combinations(samples, 2))
    if baseline not in samples:
        known = ", ".join(map(str, samples)) or "none"
        raise ValueError(f"baseline {baseline!r} is not a cohort of {cohort!r} (cohorts: {known})")
    return [(baseline, label) for label in samples if label != baseline]


def _samples(df: pd.DataFrame, cohort: str, metric: str) -> list[_Sample]:
    """Split ``metric`` by ``cohort`` into finite-value samples, sorted by cohort label."""
    for name, role in ((cohort, "cohort"), (metric, "metric")):
        if name not in df.columns:
            raise ValueError(
                f"{role} column {name!r} is not in the DataFrame (columns: {list(df.columns)})"
            )
    try:
        values = pd.to_numeric(df[metric]).astype(float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"metric column {metric!r} is not numeric") from e
    labels = df[cohort]
    keep = labels.notna()
    groups = values[keep].groupby(labels[keep], sort=False, observed=True)
    samples = []
    for label, group in groups:
        x = group.to_numpy(dtype=float)
        finite = x[np.isfinite(x)]
        samples.append(_Sample(_plain(label), finite, int(x.size - finite.size)))
    try:
        return sorted(samples, key=lambda s: s.label)
    except TypeError:  # mixed label types, e.g. ints and strings
        return sorted(samples, key=lambda s: str(s.label))


def _plain(label: object) -> object:
    """numpy scalars to Python ones, so labels print and hash the same whatever the dtype."""
    return label.item() if isinstance(label, np.generic) else label


def _bootstrap_means(s: _Sample, root: np.random.SeedSequence, n_boot: int) -> np.ndarray:
    """``n_boot`` means of resamples (with replacement) of one cohort."""
    # Each cohort draws from its own stream, keyed by its label, so adding a cohort to the
    # table leaves every other pair's interval unchanged.
    digest = hashlib.blake2b(repr(s.label).encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "little")
    rng = np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(key,)))
    chunk = max(1, _BOOT_CHUNK_ELEMENTS // s.n)
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        idx = rng.integers(0, s.n, size=(stop - start, s.n))
        means[start:stop] = s.values[idx].mean(axis=1)
    return means


def _compare_pair(
    a: _Sample,
    b: _Sample,
    boot_means: dict[object, np.ndarray],
    confidence: float,
    direction: str,
) -> dict:
    row = dict.fromkeys(COMPARE_COLUMNS, math.nan)
    row.update(a=a.label, b=b.label, n_a=a.n, n_b=b.n, mean_a=a.mean, mean_b=b.mean)
    row["diff"] = b.mean - a.mean
    if a.n >= 1 and b.n >= 1:
        # U and P(improvement) are descriptive and meaningful even for one run each.
        u = float(sps.mannwhitneyu(b.values, a.values, alternative="two-sided").statistic)
        p_b_higher = u / (a.n * b.n)  # P(b > a) + P(b = a) / 2
        row["mwu_u"] = u
        row["p_improvement"] = {"higher": p_b_higher, "lower": 1 - p_b_higher}.get(
            direction, math.nan
        )
    if a.n < 2 or b.n < 2:
        return row

    row["mwu_p"] = float(sps.mannwhitneyu(b.values, a.values, alternative="two-sided").pvalue)
    diffs = boot_means[b.label] - boot_means[a.label]
    alpha = _alpha(confidence)
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    row["diff_ci_low"], row["diff_ci_high"] = float(low), float(high)

    if a.constant and b.constant:
        return row  # t is 0/0 or ±inf/∞: no test, see the module docstring

    # From the summary numbers, so a constant cohort has exactly zero variance (scipy's own
    # moment calculation warns about cancellation and leaves a tiny non-zero variance).
    t = sps.ttest_ind_from_stats(b.mean, b.std, b.n, a.mean, a.std, a.n, equal_var=False)
    row["welch_t"], row["welch_p"] = float(t.statistic), float(t.pvalue)
    pooled = math.sqrt(((a.n - 1) * a.std**2 + (b.n - 1) * b.std**2) / (a.n + b.n - 2))
    correction = 1 - 3 / (4 * (a.n + b.n) - 9)
    row["hedges_g"] = (b.mean - a.mean) / pooled * correction
    return row


# --------------------------------------------------------------------------- verdicts


def difference_text(r, confidence: float = 0.95) -> str:
    """``"b − a = +1.02 (95% CI +0.597 to +1.36"`` for comparison row ``r``: the row's own
    numbers, formatted by :func:`format_number`, as the verdict and the CLI state them."""
    conf = f"{confidence * 100:g}%"
    return (
        f"{r.b} − {r.a} = {format_number(r.diff, signed=True)} ({conf} CI "
        f"{format_number(r.diff_ci_low, signed=True)} to "
        f"{format_number(r.diff_ci_high, signed=True)}"
    )


def _verdict(
    a: _Sample,
    b: _Sample,
    r,
    metric: str,
    confidence: float,
    direction: str,
    n_tests: int,
) -> str:
    """One plain-language sentence stating ``b − a`` with the row's numbers; names a better
    cohort only when ``r.significant`` and the outcome has a better direction."""
    what = metric.replace("_", " ")
    alpha = _alpha(confidence)
    few = [s for s in (a, b) if s.n < 2]
    if few:
        who = " and ".join(f"{s.label} has N={s.n}" for s in few)
        return f"Too few runs to tell: {who}, at least 2 per cohort are needed"

    n_min = min(a.n, b.n)
    low_power = (
        f"; low power: the smaller cohort has N={n_min} (fewer than {LOW_POWER_N})"
        if n_min < LOW_POWER_N
        else ""
    )
    if a.constant and b.constant:
        return _constant_verdict(a, b, r, what, n_min)
    if not math.isfinite(r.p_adjusted):  # not expected past the checks above; never guess
        return f"No test possible between {a.label} and {b.label} on {what}"
    p_text = _p_text(r.p_adjusted, alpha)
    if n_tests > 1:
        p_text += f", Holm-adjusted over {n_tests} tests"
        if r.welch_p < alpha <= r.p_adjusted:
            # Say why a difference that looks significant on its own is not called one.
            p_text += f"; unadjusted {_p_text(r.welch_p, alpha)}"
    stated = f"{difference_text(r, confidence)}; {p_text})"
    if not r.significant:
        return (
            f"No significant difference on {what}: {stated}; the data cannot tell {a.label} "
            f"and {b.label} apart{low_power}"
            f"{', so a real difference could be missed' if low_power else ''}"
        )
    effect = f"{_effect_size_label(r.hedges_g)} effect, g={format_number(r.hedges_g)}"
    if direction == "tradeoff":
        side = "higher" if r.diff > 0 else "lower"
        return (
            f"On {what}, {stated}: {b.label} is significantly {side} than {a.label} ({effect}); "
            f"{what} is a trade-off, so neither is better{low_power}"
        )
    b_better = (r.diff > 0) == (direction == "higher")
    better, worse = (b, a) if b_better else (a, b)
    return (
        f"On {what}, {stated}: {better.label} is better than {worse.label} "
        f"({direction} is better; {effect}){low_power}"
    )


def _constant_verdict(a: _Sample, b: _Sample, r, what: str, n_min: int) -> str:
    if a.mean == b.mean:
        return (
            f"No difference between {a.label} and {b.label} on {what}: every run of both "
            f"scored {format_number(a.mean)} (zero variance, no test needed)"
        )
    return (
        f"{a.label} and {b.label} differ deterministically on {what}: {b.label} − {a.label} = "
        f"{format_number(r.diff, signed=True)} (every {b.label} run scored "
        f"{format_number(b.mean)} and every {a.label} run {format_number(a.mean)}), but with "
        f"zero variance no test is possible and N={n_min} is small; collect more runs before "
        f"calling either better"
    )


def _effect_size_label(g: float) -> str:
    """Cohen's conventional thresholds on |g|."""
    size = abs(g)
    if size < 0.2:
        return "negligible"
    if size < 0.5:
        return "small"
    if size < 0.8:
        return "medium"
    return "large"


def format_number(x: float, *, signed: bool = False) -> str:
    """Three significant digits, without scientific notation for ordinary magnitudes."""
    if not math.isfinite(x):
        return str(x)
    sign = "+" if signed else ""
    if abs(x) >= 1000:
        return f"{x:{sign},.0f}"
    return f"{x:{sign}.3g}"


def _p_text(p: float, alpha: float) -> str:
    """``p=0.004`` style, with enough digits that rounding never crosses ``alpha``."""
    if p < 0.001:
        return "p<0.001"
    for digits in range(2, 6):
        text = f"{p:.{digits}g}"
        if (float(text) < alpha) == (p < alpha):
            return f"p={text}"
    return f"p={p!r}"


def comparison_text(compared: pd.DataFrame) -> pd.DataFrame:
    """The table of :func:`compare_cohorts` without its verdicts, every number as text in the
    verdicts' own format (:func:`format_number`; differences signed), for a terminal."""

    def cell(column: str, value: object) -> str:
        if isinstance(value, bool | np.bool_) or column in ("a", "b", "n_a", "n_b"):
            return str(value)
        signed = column in ("diff", "diff_ci_low", "diff_ci_high", "hedges_g", "welch_t")
        return format_number(float(value), signed=signed)

    columns = [c for c in compared.columns if c != "verdict"]
    return pd.DataFrame({c: [cell(c, v) for v in compared[c]] for c in columns}, columns=columns)
