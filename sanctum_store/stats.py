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
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

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

COMPARE_COLUMNS: tuple[str, ...] = (
    "a",
    "b",
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "welch_t",
    "welch_p",
    "mwu_u",
    "mwu_p",
    "hedges_g",
    "p_improvement",
    "p_adjusted",
    "significant",
    "verdict",
)

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
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """Pairwise A/B comparisons of ``metric`` between cohorts, one row per pair.

    Pairs are every two cohorts in label order, or each cohort against ``baseline`` (always
    column ``a``). For each pair ``(a, b)``:

    * ``diff = mean_b - mean_a`` with a percentile-bootstrap interval (``n_boot`` resamples
      within each cohort, deterministic for ``seed``; a pair's interval does not depend on which
      other cohorts are in the table);
    * ``welch_t``/``welch_p``: Welch's t-test of b vs a; ``mwu_u``/``mwu_p``: two-sided
      Mann-Whitney U of b vs a;
    * ``hedges_g``: pooled-std Cohen's d of b vs a times ``1 - 3 / (4 (n_a + n_b) - 9)``;
    * ``p_improvement``: probability that a random run of b beats a random run of a (ties count
      half), i.e. ``U_b / (n_a n_b)``; "beats" means "is lower" when ``higher_is_better`` is
      False;
    * ``p_adjusted``: Holm-Bonferroni over the Welch p-values of all pairs in the table;
      ``significant`` is ``p_adjusted < 1 - confidence``; ``verdict`` says it in words.

    Tests need at least two finite runs per cohort; below that, and for two zero-variance
    cohorts, p-values are NaN and the verdict explains why.

    Raises ``ValueError`` when ``cohort`` or ``metric`` is not a column of ``df`` or
    ``baseline`` is not one of its cohorts.
    """
    _check_confidence(confidence)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    samples = {s.label: s for s in _samples(df, cohort, metric)}
    if baseline is None:
        pairs = list(itertools.combinations(samples, 2))
    elif baseline not in samples:
        known = ", ".join(map(str, samples)) or "none"
        raise ValueError(f"baseline {baseline!r} is not a cohort of {cohort!r} (cohorts: {known})")
    else:
        pairs = [(baseline, label) for label in samples if label != baseline]

    root = np.random.SeedSequence(seed)
    boot_means: dict[object, np.ndarray] = {}
    rows = []
    for la, lb in pairs:
        a, b = samples[la], samples[lb]
        for s in (a, b):
            if s.label not in boot_means and s.n >= 2:
                boot_means[s.label] = _bootstrap_means(s, root, n_boot)
        rows.append(_compare_pair(a, b, boot_means, confidence, higher_is_better))

    out = pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))
    out["p_adjusted"] = holm(out["welch_p"].to_numpy(dtype=float))
    alpha = _alpha(confidence)
    out["significant"] = (out["p_adjusted"] < alpha).astype(bool)
    n_tests = int(out["welch_p"].notna().sum())
    out["verdict"] = [
        _verdict(samples[r.a], samples[r.b], r, metric, confidence, higher_is_better, n_tests)
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
    higher_is_better: bool,
) -> dict:
    nan = math.nan
    row = {
        "a": a.label,
        "b": b.label,
        "n_a": a.n,
        "n_b": b.n,
        "mean_a": a.mean,
        "mean_b": b.mean,
        "diff": b.mean - a.mean,
        "diff_ci_low": nan,
        "diff_ci_high": nan,
        "welch_t": nan,
        "welch_p": nan,
        "mwu_u": nan,
        "mwu_p": nan,
        "hedges_g": nan,
        "p_improvement": nan,
    }
    if a.n >= 1 and b.n >= 1:
        # U and P(improvement) are descriptive and meaningful even for one run each.
        u = float(sps.mannwhitneyu(b.values, a.values, alternative="two-sided").statistic)
        p_b_higher = u / (a.n * b.n)
        row["mwu_u"] = u
        row["p_improvement"] = p_b_higher if higher_is_better else 1 - p_b_higher
    if a.n < 2 or b.n < 2:
        return row

    row["mwu_p"] = float(sps.mannwhitneyu(b.values, a.values, alternative="two-sided").pvalue)
    diffs = boot_means[b.label] - boot_means[a.label]
    alpha = _alpha(confidence)
    row["diff_ci_low"], row["diff_ci_high"] = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])

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


def _verdict(
    a: _Sample,
    b: _Sample,
    r,
    metric: str,
    confidence: float,
    higher_is_better: bool,
    n_tests: int,
) -> str:
    """One plain-language sentence; claims a winner only when ``r.significant``."""
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
        if a.mean == b.mean:
            return (
                f"No difference between {a.label} and {b.label} on {what}: every run of both "
                f"scored {_num(a.mean)} (zero variance, no test needed)"
            )
        hi, lo = (b, a) if b.mean > a.mean else (a, b)
        return (
            f"{a.label} and {b.label} differ deterministically on {what}: every {hi.label} run "
            f"scored {_num(hi.mean)} and every {lo.label} run {_num(lo.mean)}, but with zero "
            f"variance no test is possible and N={n_min} is small; collect more runs before "
            f"calling a winner"
        )

    if not math.isfinite(r.p_adjusted):  # not expected past the checks above; never guess
        return f"No test possible between {a.label} and {b.label} on {what}"
    p_text = _p_text(r.p_adjusted, alpha)
    if n_tests > 1:
        p_text += f", Holm-adjusted over {n_tests} tests"
        if r.welch_p < alpha <= r.p_adjusted:
            # Say why a difference that looks significant on its own is not called one.
            p_text += f"; unadjusted {_p_text(r.welch_p, alpha)}"
    conf = f"{confidence * 100:g}%"
    if not r.significant:
        return (
            f"No significant difference between {a.label} and {b.label} on {what} "
            f"(diff {_num(r.diff, signed=True)}, {conf} CI {_num(r.diff_ci_low, signed=True)} "
            f"to {_num(r.diff_ci_high, signed=True)}; {p_text}); the data cannot tell them "
            f"apart{low_power}{', so a real difference could be missed' if low_power else ''}"
        )

    b_wins = (r.diff > 0) == higher_is_better
    winner, loser = (b, a) if b_wins else (a, b)
    # Orient every number as winner minus loser, so the sentence reads left to right.
    sign = 1 if winner is b else -1
    d = sign * r.diff
    lo, hi = sorted((sign * r.diff_ci_low, sign * r.diff_ci_high))
    g = sign * r.hedges_g
    direction = "" if higher_is_better else "lower is better; "
    return (
        f"{winner.label} beats {loser.label} on {what} by {_num(d, signed=True)} "
        f"({direction}{conf} CI {_num(lo, signed=True)} to {_num(hi, signed=True)}; {p_text}; "
        f"{_effect_size_label(g)} effect, g={_num(g)}){low_power}"
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


def _num(x: float, *, signed: bool = False) -> str:
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
