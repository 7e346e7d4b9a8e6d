"""Cohort statistics, checked against scipy.stats and hand-worked examples."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from sanctum_store.stats import (
    COMPARE_COLUMNS,
    DESCRIBE_COLUMNS,
    _p_text,
    cohort_summary,
    compare_cohorts,
    describe_cohorts,
    format_number,
    holm,
)

# A RuntimeWarning from numpy/scipy means an edge case reached a computation it should not have.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def runs(**cohorts) -> pd.DataFrame:
    """A tidy one-row-per-run frame: ``runs(shaped=[...], sparse=[...])``."""
    return pd.DataFrame(
        [{"mode": mode, "acc": v} for mode, values in cohorts.items() for v in values],
        columns=["mode", "acc"],
    )


def row(table: pd.DataFrame, a: str, b: str) -> pd.Series:
    (match,) = table.index[(table["a"] == a) & (table["b"] == b)]
    return table.loc[match]


def holm_by_rejection(p: list[float], alpha: float) -> set[int]:
    """Holm's step-down procedure as originally stated: which hypotheses are rejected at alpha."""
    m = len(p)
    rejected = set()
    for k, i in enumerate(sorted(range(m), key=lambda i: p[i])):
        if p[i] > alpha / (m - k):
            break
        rejected.add(i)
    return rejected


# --------------------------------------------------------------------------- describe


def test_describe_matches_scipy():
    rng = np.random.default_rng(1)
    data = {"shaped": rng.normal(70, 5, 12), "sparse": rng.normal(74, 3, 7)}
    df = runs(sparse=data["sparse"], shaped=data["shaped"])
    out = describe_cohorts(df, "mode", "acc", confidence=0.9)

    assert list(out.columns) == list(DESCRIBE_COLUMNS)
    assert list(out["cohort"]) == ["shaped", "sparse"]  # sorted, not in order of appearance
    for _, r in out.iterrows():
        x = data[r["cohort"]]
        assert r["n"] == len(x) and r["n_missing"] == 0
        assert r["mean"] == pytest.approx(np.mean(x))
        assert r["median"] == pytest.approx(np.median(x))
        assert r["std"] == pytest.approx(np.std(x, ddof=1))
        assert r["iqm"] == pytest.approx(sps.trim_mean(x, 0.25))
        lo, hi = sps.t.interval(0.9, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi))


def test_describe_ci_is_t_not_z():
    x = [1.0, 2.0, 4.0]
    (r,) = describe_cohorts(runs(a=x), "mode", "acc").itertuples()
    z_half = 1.959964 * np.std(x, ddof=1) / math.sqrt(3)
    assert r.ci_high - r.mean > 2 * z_half  # t with 2 dof is 4.30, more than twice z


def test_iqm_hand_worked():
    # 8 values: trimming 25 % drops 2 from each end, the mean of 3, 4, 5, 100 is 28.
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 100.0, 200.0, 300.0]
    (r,) = describe_cohorts(runs(a=x), "mode", "acc").itertuples()
    assert r.iqm == pytest.approx(28.0)


def test_describe_excludes_non_finite_and_counts_them():
    df = runs(a=[1.0, np.nan, 3.0, np.inf, -np.inf, 5.0], b=[np.nan, np.nan])
    out = describe_cohorts(df, "mode", "acc").set_index("cohort")
    assert out.loc["a", "n"] == 3 and out.loc["a", "n_missing"] == 3
    assert out.loc["a", "mean"] == pytest.approx(3.0)
    assert out.loc["b", "n"] == 0 and out.loc["b", "n_missing"] == 2
    assert out.loc["b", ["mean", "median", "std", "iqm", "ci_low", "ci_high"]].isna().all()


def test_describe_single_run():
    (r,) = describe_cohorts(runs(a=[7.5]), "mode", "acc").itertuples()
    assert (r.n, r.mean, r.median, r.iqm) == (1, 7.5, 7.5, 7.5)
    assert math.isnan(r.std) and math.isnan(r.ci_low) and math.isnan(r.ci_high)


def test_describe_zero_variance_gives_zero_width_ci():
    # 0.1 is not exact in binary: a naive np.std gives 1.7e-17 and a non-zero width.
    (r,) = describe_cohorts(runs(a=[0.1] * 4), "mode", "acc").itertuples()
    assert r.std == 0.0
    assert r.ci_low == r.ci_high == r.mean == 0.1


def test_describe_empty_frame():
    out = describe_cohorts(pd.DataFrame({"mode": [], "acc": []}), "mode", "acc")
    assert out.empty and list(out.columns) == list(DESCRIBE_COLUMNS)


@pytest.mark.parametrize("fn", [describe_cohorts, compare_cohorts])
@pytest.mark.parametrize(
    ("cohort", "metric", "missing"), [("nope", "acc", "nope"), ("mode", "nah", "nah")]
)
def test_missing_column_is_named(fn, cohort, metric, missing):
    with pytest.raises(ValueError, match=f"'{missing}'"):
        fn(runs(a=[1.0, 2.0]), cohort, metric)


def test_bad_confidence_rejected():
    with pytest.raises(ValueError, match="confidence"):
        describe_cohorts(runs(a=[1.0, 2.0]), "mode", "acc", confidence=95)


# --------------------------------------------------------------------------- compare


def test_compare_two_cohorts_matches_scipy():
    rng = np.random.default_rng(7)
    a, b = rng.normal(60, 4, 9), rng.normal(63, 7, 14)  # unequal sizes and variances
    out = compare_cohorts(runs(shaped=a, sparse=b), "mode", "acc", n_boot=2000)
    assert list(out.columns) == list(COMPARE_COLUMNS)
    (r,) = [r for _, r in out.iterrows()]
    assert (r["a"], r["b"], r["n_a"], r["n_b"]) == ("shaped", "sparse", 9, 14)
    assert r["diff"] == pytest.approx(b.mean() - a.mean())

    welch = sps.ttest_ind(b, a, equal_var=False)
    assert r["welch_t"] == pytest.approx(welch.statistic)
    assert r["welch_p"] == pytest.approx(welch.pvalue)
    mwu = sps.mannwhitneyu(b, a, alternative="two-sided")
    assert r["mwu_u"] == pytest.approx(mwu.statistic)
    assert r["mwu_p"] == pytest.approx(mwu.pvalue)
    # One pair: nothing to adjust for.
    assert r["p_adjusted"] == pytest.approx(r["welch_p"])
    assert r["significant"] == (welch.pvalue < 0.05)


def test_hedges_g_hand_worked():
    # Means 2 and 5, both variances 1 -> d = 3; J = 1 - 3 / (4 * 6 - 9) = 0.8 -> g = 2.4.
    (r,) = [r for _, r in compare_cohorts(runs(a=[1, 2, 3], b=[4, 5, 6]), "mode", "acc").iterrows()]
    assert r["hedges_g"] == pytest.approx(2.4)


def test_p_improvement_counts_pairs_with_ties_half():
    a, b = [1.0, 2.0, 3.0, 3.0], [3.0, 4.0, 0.5]
    wins = sum((y > x) + 0.5 * (y == x) for x in a for y in b)
    df = runs(a=a, b=b)
    (up,) = compare_cohorts(df, "mode", "acc")["p_improvement"]
    (down,) = compare_cohorts(df, "mode", "acc", higher_is_better=False)["p_improvement"]
    assert up == pytest.approx(wins / 12)
    assert down == pytest.approx(1 - wins / 12)


def test_higher_is_better_false_names_the_lower_cohort_the_winner():
    df = runs(fast=[10.0, 11.0, 12.0, 10.5, 11.5, 10.8], slow=[20.0, 21.0, 19.5, 20.5, 22.0, 21.2])
    (up,) = compare_cohorts(df, "mode", "acc")["verdict"]
    (down,) = compare_cohorts(df, "mode", "acc", higher_is_better=False)["verdict"]
    assert up.startswith("On acc, slow − fast = +") and up.endswith(
        "slow is better than fast (higher is better; large effect, g=11.1)"
    )
    assert down.startswith("On acc, slow − fast = +")
    assert "fast is better than slow (lower is better;" in down


def test_direction_names_the_same_rule_as_higher_is_better():
    df = runs(fast=[10.0, 11.0, 12.0, 10.5, 11.5, 10.8], slow=[20.0, 21.0, 19.5, 20.5, 22.0, 21.2])
    for direction, flag in (("higher", True), ("lower", False)):
        pd.testing.assert_frame_equal(
            compare_cohorts(df, "mode", "acc", direction=direction),
            compare_cohorts(df, "mode", "acc", higher_is_better=flag),
        )
    with pytest.raises(ValueError, match="direction must be one of"):
        compare_cohorts(df, "mode", "acc", direction="up")


def test_significant_verdict_keeps_the_rows_sign():
    df = runs(
        shaped=[70.0, 71.0, 69.5, 70.5, 70.2, 69.8], sparse=[60.0, 61.0, 59.0, 60.5, 59.5, 60.2]
    )
    (r,) = [r for _, r in compare_cohorts(df, "mode", "acc").iterrows()]
    assert r["diff"] < 0 and r["significant"]
    # diff is sparse - shaped (negative), and the sentence says exactly that, then who is better.
    assert r["verdict"].startswith("On acc, sparse − shaped = -")
    assert "95% CI -" in r["verdict"] and "large effect, g=-" in r["verdict"]
    assert "shaped is better than sparse (higher is better" in r["verdict"]
    assert "p<0.001" in r["verdict"] and "low power" not in r["verdict"]
    # P(improvement) is about b (sparse), the worse cohort: every sparse run is below every
    # shaped one.
    assert r["p_improvement"] == 0.0


def test_more_than_two_cohorts_applies_holm():
    rng = np.random.default_rng(3)
    data = {
        m: rng.normal(mu, 2, 6) for m, mu in [("simplified", 50), ("shaped", 51), ("sparse", 53)]
    }
    out = compare_cohorts(runs(**data), "mode", "acc", n_boot=500)
    assert [(r.a, r.b) for r in out.itertuples()] == [
        ("shaped", "simplified"),
        ("shaped", "sparse"),
        ("simplified", "sparse"),
    ]
    raw = out["welch_p"].tolist()
    for r in out.itertuples():
        assert r.welch_p == pytest.approx(
            sps.ttest_ind(data[r.b], data[r.a], equal_var=False).pvalue
        )
    # p_adjusted <= alpha exactly when Holm's step-down procedure rejects, for every alpha.
    for alpha in sorted({*raw, *out["p_adjusted"], 0.01, 0.05, 0.1}):
        expected = holm_by_rejection(raw, alpha)
        assert {i for i, p in enumerate(out["p_adjusted"]) if p <= alpha} == expected
    assert (out["p_adjusted"] >= out["welch_p"]).all()
    assert "Holm-adjusted over 3 tests" in out["verdict"].iloc[0]


def test_holm_hand_worked():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm([0.02]), [0.02])
    out = holm([0.01, np.nan, 0.04])  # NaN is not a test: m = 2
    np.testing.assert_allclose(out, [0.02, np.nan, 0.04])


@settings(max_examples=200, deadline=None)
@given(
    p=st.lists(st.floats(0, 1), min_size=1, max_size=8),
    alpha=st.floats(0.001, 0.2),
)
def test_holm_agrees_with_step_down_rejection(p, alpha):
    adjusted = holm(p)
    assert {i for i, q in enumerate(adjusted) if q <= alpha} == holm_by_rejection(p, alpha)
    assert all(q >= raw for q, raw in zip(adjusted, p, strict=True))


def test_baseline_mode():
    df = runs(shaped=[1.0, 2.0, 3.0], simplified=[2.0, 3.0, 4.0, 5.0], sparse=[0.0, 1.0, 1.5])
    out = compare_cohorts(df, "mode", "acc", baseline="sparse", n_boot=500)
    assert [(r.a, r.b) for r in out.itertuples()] == [
        ("sparse", "shaped"),
        ("sparse", "simplified"),
    ]
    assert row(out, "sparse", "simplified")["diff"] == pytest.approx(3.5 - 2.5 / 3)
    # Holm over the two pairs in this table, not the three possible ones.
    np.testing.assert_allclose(out["p_adjusted"], holm(out["welch_p"].to_numpy()))
    with pytest.raises(ValueError, match="baseline 'dense'"):
        compare_cohorts(df, "mode", "acc", baseline="dense")


def test_single_pair_and_single_cohort():
    assert compare_cohorts(runs(a=[1.0, 2.0]), "mode", "acc").empty
    out = compare_cohorts(runs(a=[1.0, 2.0], b=[2.0, 4.0]), "mode", "acc")
    assert out["p_adjusted"].iloc[0] == out["welch_p"].iloc[0]
    assert "Holm" not in out["verdict"].iloc[0]


# --------------------------------------------------------------------------- edge cases


def test_too_few_runs():
    out = compare_cohorts(runs(shaped=[1.0], sparse=[2.0, 3.0], empty=[np.nan]), "mode", "acc")
    r = row(out, "shaped", "sparse")
    assert r["verdict"] == "Too few runs to tell: shaped has N=1, at least 2 per cohort are needed"
    assert not r["significant"]
    for col in ["welch_p", "mwu_p", "p_adjusted", "hedges_g", "diff_ci_low", "diff_ci_high"]:
        assert math.isnan(r[col]), col
    assert r["p_improvement"] == 1.0  # still descriptive: both sparse runs beat the shaped one
    both = row(out, "empty", "shaped")
    assert "empty has N=0 and shaped has N=1" in both["verdict"]
    assert math.isnan(both["mean_a"]) and math.isnan(both["p_improvement"])


def test_identical_constants_are_no_difference():
    out = compare_cohorts(runs(a=[0.5, 0.5, 0.5], b=[0.5, 0.5]), "mode", "acc")
    (r,) = [r for _, r in out.iterrows()]
    assert r["verdict"].startswith("No difference between a and b")
    assert math.isnan(r["welch_p"]) and math.isnan(r["p_adjusted"]) and not r["significant"]
    assert r["diff"] == 0 and r["p_improvement"] == 0.5


def test_different_constants_differ_deterministically_without_a_p_value():
    # scipy's ttest_ind says t=-inf, p=0.0 here: exactly the spurious p we must not report.
    with pytest.warns(RuntimeWarning):  # ... after warning about catastrophic cancellation
        assert sps.ttest_ind([2.0] * 3, [1.0] * 3, equal_var=False).pvalue == 0.0
    out = compare_cohorts(runs(a=[2.0] * 3, b=[1.0] * 3), "mode", "acc")
    (r,) = [r for _, r in out.iterrows()]
    assert math.isnan(r["welch_p"]) and math.isnan(r["p_adjusted"]) and not r["significant"]
    assert math.isnan(r["hedges_g"])
    assert "differ deterministically" in r["verdict"] and "N=3 is small" in r["verdict"]
    assert "better than" not in r["verdict"] and "b − a = -1" in r["verdict"]
    assert r["diff_ci_low"] == r["diff_ci_high"] == -1.0


def test_one_constant_cohort_is_still_testable():
    a, b = [0.1, 0.1, 0.1, 0.1], [0.5, 0.7, 0.6, 0.9, 0.8]
    (r,) = [r for _, r in compare_cohorts(runs(a=a, b=b), "mode", "acc").iterrows()]
    with pytest.warns(RuntimeWarning):  # scipy's cancellation warning, which we avoid
        expected = sps.ttest_ind(b, a, equal_var=False)
    assert r["welch_p"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert r["significant"] and "b is better than a" in r["verdict"]


def test_nan_outcomes_are_dropped_before_testing():
    a, b = [1.0, 2.0, 3.0, 2.5], [3.0, 4.0, 5.0, 4.5]
    df = runs(a=[*a, np.nan], b=[np.inf, *b, np.nan])
    (r,) = [r for _, r in compare_cohorts(df, "mode", "acc").iterrows()]
    assert (r["n_a"], r["n_b"]) == (4, 4)
    assert r["welch_p"] == pytest.approx(sps.ttest_ind(b, a, equal_var=False).pvalue)


def test_low_power_warning():
    small = compare_cohorts(runs(a=[1.0, 2.0, 3.0], b=[1.5, 2.5, 3.5, 2.0, 3.0]), "mode", "acc")
    assert "low power: the smaller cohort has N=3" in small["verdict"].iloc[0]
    enough = compare_cohorts(
        runs(a=[1.0, 2.0, 3.0, 2.2, 1.7], b=[1.5, 2.5, 3.5, 2.0, 3.0]), "mode", "acc"
    )
    assert "low power" not in enough["verdict"].iloc[0]


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(11)
    df = runs(a=rng.normal(0, 1, 8), b=rng.normal(1, 1, 8))
    cols = ["diff_ci_low", "diff_ci_high"]
    first = compare_cohorts(df, "mode", "acc", seed=5)[cols]
    again = compare_cohorts(df, "mode", "acc", seed=5)[cols]
    other = compare_cohorts(df, "mode", "acc", seed=6)[cols]
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_bootstrap_of_a_pair_ignores_other_cohorts():
    rng = np.random.default_rng(12)
    df = runs(a=rng.normal(0, 1, 8), b=rng.normal(1, 1, 8))
    more = pd.concat([df, runs(c=rng.normal(2, 1, 8))])
    cols = ["diff_ci_low", "diff_ci_high"]
    alone = row(compare_cohorts(df, "mode", "acc"), "a", "b")[cols]
    among = row(compare_cohorts(more, "mode", "acc"), "a", "b")[cols]
    pd.testing.assert_series_equal(alone, among)


def test_bootstrap_ci_covers_truth_and_agrees_with_scipy():
    rng = np.random.default_rng(13)
    a, b = rng.normal(10, 2, 400), rng.normal(11.5, 3, 300)
    (r,) = [r for _, r in compare_cohorts(runs(a=a, b=b), "mode", "acc").iterrows()]
    assert r["diff_ci_low"] < 1.5 < r["diff_ci_high"]
    ref = sps.bootstrap(
        (a, b),
        lambda x, y, axis: y.mean(axis=axis) - x.mean(axis=axis),
        method="percentile",
        n_resamples=10_000,
        rng=np.random.default_rng(0),
    ).confidence_interval
    # Different random streams: agreement to Monte Carlo error, a few % of the width.
    width = ref.high - ref.low
    assert r["diff_ci_low"] == pytest.approx(ref.low, abs=0.05 * width)
    assert r["diff_ci_high"] == pytest.approx(ref.high, abs=0.05 * width)


def test_bootstrap_ci_shrinks_with_n():
    rng = np.random.default_rng(14)
    widths = []
    for n in (10, 100, 1000):
        out = compare_cohorts(runs(a=rng.normal(0, 1, n), b=rng.normal(0.5, 1, n)), "mode", "acc")
        widths.append(out["diff_ci_high"].iloc[0] - out["diff_ci_low"].iloc[0])
    assert widths[0] > widths[1] > widths[2]
    # Standard error scales as 1/sqrt(n): about sqrt(10) per step.
    assert widths[1] / widths[2] == pytest.approx(math.sqrt(10), rel=0.2)


# --------------------------------------------------------------------------- verdict property


# Few distinct values so ties, constants and NaNs are common; a per-cohort shift so that
# clear winners are common too.
small_cohort = st.builds(
    lambda shift, values: [shift + v for v in values],
    st.sampled_from([0.0, 2.0, 10.0]),
    st.lists(st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0, np.nan]), max_size=8),
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.fixed_dictionaries({"x": small_cohort, "y": small_cohort, "z": small_cohort}),
    higher_is_better=st.booleans(),
    confidence=st.sampled_from([0.9, 0.95, 0.99]),
)
def test_verdict_never_claims_a_winner_without_significance(data, higher_is_better, confidence):
    df = runs(**{k: v for k, v in data.items() if v})
    out = compare_cohorts(
        df,
        "mode",
        "acc",
        confidence=confidence,
        n_boot=100,
        higher_is_better=higher_is_better,
    )
    alpha = 1 - confidence
    for r in out.itertuples():
        claims = " is better than " in r.verdict
        assert claims == (r.p_adjusted < alpha) == r.significant
        if claims:
            winner = re.search(r"\): (.+?) is better than ", r.verdict).group(1)
            b_higher = r.mean_b > r.mean_a
            assert winner == (r.b if b_higher == higher_is_better else r.a)
        if min(r.n_a, r.n_b) < 2:
            assert r.verdict.startswith("Too few runs")
        if not math.isnan(r.welch_p):
            x, y = (df.loc[df["mode"] == c, "acc"].dropna() for c in (r.a, r.b))
            with warnings.catch_warnings():  # scipy's cancellation warning on a constant cohort
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = sps.ttest_ind(y, x, equal_var=False).pvalue
            assert r.welch_p == pytest.approx(expected)


def test_cohort_summary_returns_both():
    df = runs(a=[1.0, 2.0, 3.0], b=[2.0, 3.0, 5.0])
    described, compared = cohort_summary(df, "mode", "acc", confidence=0.9, n_boot=500)
    pd.testing.assert_frame_equal(described, describe_cohorts(df, "mode", "acc", confidence=0.9))
    pd.testing.assert_frame_equal(
        compared, compare_cohorts(df, "mode", "acc", confidence=0.9, n_boot=500)
    )
    assert "90% CI" in compared["verdict"].iloc[0]


# --------------------------------------------------------------------------- sign convention

#: The verdict's "b − a = d (95% CI lo to hi; p...)" part.
STATED = re.compile(
    r"(?P<b>\S+) − (?P<a>\S+) = (?P<diff>\S+) \(95% CI (?P<lo>\S+) to (?P<hi>\S+); (?P<p>p[=<][^,;)]+)"
)


def _three_cohorts() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return runs(
        shaped=rng.normal(70, 1, 6), simplified=rng.normal(70.3, 1, 6), sparse=rng.normal(60, 1, 6)
    )


@pytest.mark.parametrize("baseline", [None, "sparse", "shaped"])
@pytest.mark.parametrize("direction", ["higher", "lower"])
def test_the_verdict_states_the_rows_own_numbers(baseline, direction):
    out = compare_cohorts(
        _three_cohorts(), "mode", "acc", baseline=baseline, direction=direction, n_boot=500
    )
    # Both kinds of sentence: shaped and simplified are close, sparse far below both.
    assert out["significant"].any()
    assert out["significant"].all() == (baseline == "sparse")
    for r in out.itertuples():
        m = STATED.search(r.verdict)
        assert m, r.verdict
        assert (m["a"], m["b"]) == (r.a, r.b)
        if baseline is not None:
            assert r.a == baseline  # cohort − baseline
        assert float(m["diff"]) == pytest.approx(r.diff, rel=5e-3)
        assert m["diff"] == format_number(r.diff, signed=True)
        assert m["lo"] == format_number(r.diff_ci_low, signed=True)
        assert m["hi"] == format_number(r.diff_ci_high, signed=True)
        assert r.diff_ci_low <= r.diff <= r.diff_ci_high
        assert m["p"] == _p_text(r.p_adjusted, 0.05)
        assert r.diff == pytest.approx(r.mean_b - r.mean_a)
        if r.significant:
            b_better = (r.diff > 0) == (direction == "higher")
            better, worse = (r.b, r.a) if b_better else (r.a, r.b)
            assert f"{better} is better than {worse} ({direction} is better" in r.verdict
            # P(b better than a) agrees with who is called better.
            assert (r.p_improvement > 0.5) == b_better
        else:
            assert "better than" not in r.verdict


def test_compare_columns_put_significance_before_the_raw_statistics():
    assert COMPARE_COLUMNS == (
        "a", "b", "n_a", "n_b", "p_adjusted", "significant", "diff", "diff_ci_low",
        "diff_ci_high", "mean_a", "mean_b", "hedges_g", "p_improvement", "welch_t", "welch_p",
        "mwu_u", "mwu_p", "verdict",
    )  # fmt: skip
    out = compare_cohorts(_three_cohorts(), "mode", "acc", n_boot=100)
    assert tuple(out.columns) == COMPARE_COLUMNS


def test_a_tradeoff_reports_the_difference_but_never_a_better_cohort():
    df = runs(small=[1.1, 1.2, 1.15, 1.12, 1.18], big=[2.0, 2.2, 2.1, 1.9, 2.05])
    (r,) = compare_cohorts(df, "mode", "acc", direction="tradeoff").itertuples()
    assert (r.a, r.b) == ("big", "small") and r.significant and r.diff < 0
    assert STATED.search(r.verdict)["diff"] == format_number(r.diff, signed=True)
    assert "small − big = -" in r.verdict
    assert "small is significantly lower than big" in r.verdict
    assert "better than" not in r.verdict and "neither is better" in r.verdict
    assert math.isnan(r.p_improvement)


def test_declared_outcomes_bring_their_direction():
    df = pd.DataFrame(
        {
            "mode": ["a"] * 5 + ["b"] * 5,
            "growth_ratio": [1.1, 1.2, 1.15, 1.12, 1.18, 2.0, 2.2, 2.1, 1.9, 2.05],
        }
    )
    (r,) = compare_cohorts(df, "mode", "growth_ratio").itertuples()
    assert r.significant and "neither is better" in r.verdict and "better than" not in r.verdict
    # An explicit direction still wins over the declaration.
    (r,) = compare_cohorts(df, "mode", "growth_ratio", direction="lower").itertuples()
    assert "a is better than b (lower is better" in r.verdict


def _rewards() -> pd.DataFrame:
    rows = [("A", "shaped", v) for v in (5.0, 5.2, 5.1, 4.9, 5.05)]
    rows += [("B", "shaped", v) for v in (6.0, 6.2, 6.1, 5.9, 6.05)]
    rows += [("C", "sparse", v) for v in (0.1, 0.2, 0.15, 0.12, 0.18)]
    return pd.DataFrame(rows, columns=["group", "reward_mode", "mean_reward"])


def test_reward_based_outcomes_are_not_compared_across_reward_modes():
    out = compare_cohorts(_rewards(), "group", "mean_reward", n_boot=200)
    ab, ac = row(out, "A", "B"), row(out, "A", "C")
    assert ab["significant"] and "B is better than A" in ab["verdict"]
    assert ac["verdict"] == "not comparable: the reward definitions differ (A: shaped, C: sparse)"
    assert not ac["significant"]
    for col in ["p_adjusted", "welch_p", "mwu_p", "diff", "diff_ci_low", "hedges_g"]:
        assert math.isnan(ac[col]), col
    assert (ac["n_a"], ac["n_b"]) == (5, 5) and ac["mean_a"] == pytest.approx(5.05)
    # The incomparable pairs are no tests: Holm adjusts over A-B alone.
    assert ab["p_adjusted"] == ab["welch_p"]


def test_reward_modes_can_be_given_and_mixed_cohorts_are_not_comparable():
    df = _rewards().drop(columns="reward_mode")
    modes = {"A": {"shaped"}, "B": {"shaped", "sparse"}, "C": ["sparse"]}
    out = compare_cohorts(df, "group", "mean_reward", reward_modes=modes, n_boot=200)
    assert row(out, "A", "B")["verdict"].startswith("not comparable")
    assert "(A: shaped, B: shaped/sparse)" in row(out, "A", "B")["verdict"]
    assert out["p_adjusted"].isna().all() and not out["significant"].any()
    # Without modes nothing is known to differ; an outcome that is not reward-based ignores them.
    assert not compare_cohorts(df, "group", "mean_reward")["verdict"].str.startswith("not").any()
    plain = compare_cohorts(_rewards(), "group", "mean_reward", reward_based=False)
    assert not plain["verdict"].str.startswith("not comparable").any()
