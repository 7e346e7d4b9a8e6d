"""Experiment verdicts (sanctum_store.experiments): the statistics against exact computations,
the stratified bootstrap, the preregistered decisions on planted effects, the confounder ledger
on a real archive, and the CLI's numbers against the API's."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from sanctum_store import demo, experiments, queries
from sanctum_store.archive import Archive
from sanctum_store.bootstrap import Strata, above, iqm, mean, median
from sanctum_store.cli import main
from sanctum_store.experiments import Thresholds, evaluate_frame
from sanctum_store.queries import confounders

FIXTURES = Path(__file__).parent / "fixtures"


def runs_frame(cohorts: dict[str, list[float]], *, strata=None, pair_keys=None, mode="shaped"):
    """One row per run: cohort label -> outcomes (strata and pair keys per run, optional)."""
    rows = []
    for label, values in cohorts.items():
        for i, value in enumerate(values):
            rows.append(
                {
                    "run_id": f"{label}-{i}",
                    "cohort": label,
                    "stratum": strata[label][i] if strata else "all",
                    "pair_key": pair_keys[label][i] if pair_keys else None,
                    "value": value,
                    "reward_mode": mode,
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------- statistics from counts


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 13, 40])
def test_each_statistic_from_resample_counts_equals_it_computed_on_the_resample(n):
    """The bootstrap works on counts of each run; every statistic computed that way equals the
    statistic of the explicit resample (IQM as scipy's trim_mean, which rliable uses)."""
    rng = np.random.default_rng(n)
    values = np.round(rng.normal(70, 5, size=n), 1)  # rounded: ties occur
    s = Strata(pd.DataFrame({"stratum": "all", "value": values}))
    counts = s.counts(50, rng)
    for row in counts:
        resample = np.repeat(s.sorted, row.astype(int))
        assert resample.size == n
        c = row[None, :]
        assert iqm(s.sorted, c)[0] == pytest.approx(sps.trim_mean(resample, 0.25), abs=1e-9)
        assert median(s.sorted, c)[0] == pytest.approx(np.median(resample), abs=1e-9)
        assert mean(s.sorted, c)[0] == pytest.approx(resample.mean(), abs=1e-9)


def test_each_resample_draws_every_stratum_as_many_runs_as_it_has():
    values = [5.0, 1.0, 3.0, 2.0, 9.0, 4.0, 7.0]
    strata = ["a", "b", "a", "b", "b", "a", "a"]
    s = Strata(pd.DataFrame({"stratum": strata, "value": values}))
    counts = s.counts(200, np.random.default_rng(0))
    a, b = s.per_stratum(counts)
    assert (a.sum(axis=1) == 4).all() and (b.sum(axis=1) == 3).all()
    assert (counts.sum(axis=0) > 0).all()  # every run is drawn in some resample
    assert s.sorted.tolist() == sorted(values)
    assert [s.sorted[c].tolist() for c in s.columns] == [[3.0, 4.0, 5.0, 7.0], [1.0, 2.0, 9.0]]


def test_probability_of_improvement_is_mann_whitney_u_over_n_m_averaged_over_strata():
    x = {"a": [1.0, 2.0, 2.0, 5.0], "b": [10.0, 11.0, 12.0]}
    y = {"a": [2.0, 3.0], "b": [9.0, 11.0, 13.0, 14.0]}
    frame = runs_frame(
        {"new": x["a"] + x["b"], "base": y["a"] + y["b"]},
        strata={"new": ["a"] * 4 + ["b"] * 3, "base": ["a"] * 2 + ["b"] * 4},
    )
    result = evaluate_frame(frame, baseline="base", thresholds=Thresholds(min_runs=2), n_boot=200)
    expected = np.mean(
        [sps.mannwhitneyu(x[t], y[t]).statistic / (len(x[t]) * len(y[t])) for t in ("a", "b")]
    )
    assert result.comparisons.loc[0, "p_improvement"] == pytest.approx(expected, abs=1e-12)
    low, high = result.comparisons.loc[0, ["p_improvement_ci_low", "p_improvement_ci_high"]]
    assert 0 <= low <= expected <= high <= 1


def test_estimates_and_intervals_agree_with_rliables_own():
    """rliable's IQM, probability of improvement and performance profile of a 3-task study,
    and their stratified-bootstrap intervals (frozen: tests/fixtures/rliable): the estimates
    are equal, the intervals' bounds agree within 3 % of their width (Monte Carlo)."""
    reference = json.loads((FIXTURES / "rliable" / "reference.json").read_text())
    scores = {label: np.array(reference[label]) for label in ("x", "y")}  # runs x tasks
    frame = pd.DataFrame(
        [
            (f"{label}-{run}-{task}", label, f"task{task}", None, value, "shaped")
            for label, matrix in scores.items()
            for (run, task), value in np.ndenumerate(matrix)
        ],
        columns=list(experiments.RUN_FRAME_COLUMNS),
    )
    result = evaluate_frame(
        frame, baseline="y", pair_by="none", thresholds=Thresholds(min_runs=2), n_boot=50_000
    )
    cohorts = result.cohorts.set_index("cohort")
    for label in ("x", "y"):
        assert cohorts.loc[label, "iqm"] == pytest.approx(reference["iqm"][label], abs=1e-12)
        low, high = reference["iqm_ci"][label]
        ours = cohorts.loc[label, ["iqm_ci_low", "iqm_ci_high"]].tolist()
        assert ours == pytest.approx([low, high], abs=0.03 * (high - low))
    row = result.comparisons.iloc[0]
    assert row["p_improvement"] == pytest.approx(reference["p"], abs=1e-12)
    low, high = reference["p_ci"]
    ours = [row["p_improvement_ci_low"], row["p_improvement_ci_high"]]
    assert ours == pytest.approx([low, high], abs=0.03 * (high - low))
    x = Strata(frame[frame["cohort"] == "x"])
    at = np.searchsorted(x.sorted, reference["taus"], "right")
    assert above(np.cumsum(x.ones(), axis=1), at, x.n)[0] == pytest.approx(reference["profile"])


def test_the_bootstrap_resamples_runs_within_each_stratum():
    """Two tasks on different scales: resampled within tasks, every resample keeps five runs
    of each, so the mean's interval stays near 50.5; resampled across them, it would span
    tens of points."""
    values = [0.0, 0.25, 0.5, 0.75, 1.0, 100.0, 100.25, 100.5, 100.75, 101.0]
    tasks = ["easy"] * 5 + ["hard"] * 5
    frame = runs_frame(
        {"base": values, "new": [v + 1 for v in values]},
        strata={"base": tasks, "new": tasks},
    )
    result = evaluate_frame(frame, baseline="base", thresholds=Thresholds(min_runs=2), n_boot=2000)
    row = result.cohorts.set_index("cohort").loc["base"]
    assert row["mean"] == pytest.approx(50.5)
    assert 50.0 <= row["mean_ci_low"] < 50.5 < row["mean_ci_high"] <= 51.0
    diff = result.comparisons.loc[0]
    assert diff["diff_mean"] == pytest.approx(1.0)
    assert 0.0 < diff["diff_mean_ci_low"] <= 1.0 <= diff["diff_mean_ci_high"] < 2.0


def test_welch_hedges_g_and_the_minimum_detectable_effect_are_the_textbook_ones():
    x = [71.0, 73.5, 72.0, 75.0, 74.0, 72.5]
    y = [70.0, 71.0, 69.5, 72.0, 70.5]
    frame = runs_frame({"new": x, "base": y})
    row = evaluate_frame(
        frame, baseline="base", pair_by="none", thresholds=Thresholds(min_runs=2), n_boot=500
    ).comparisons.loc[0]
    assert row["test"] == "welch" and not row["paired"]
    assert row["p_value"] == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue)
    xa, ya = np.array(x), np.array(y)
    pooled = math.sqrt((5 * xa.var(ddof=1) + 4 * ya.var(ddof=1)) / 9)
    assert row["hedges_g"] == pytest.approx(
        (1 - 3 / (4 * 11 - 9)) * (xa.mean() - ya.mean()) / pooled
    )
    vx, vy = xa.var(ddof=1) / 6, ya.var(ddof=1) / 5
    df = (vx + vy) ** 2 / (vx**2 / 5 + vy**2 / 4)
    se = math.sqrt(vx + vy)
    assert row["mde"] == pytest.approx((sps.t.ppf(0.975, df) + sps.t.ppf(0.8, df)) * se)
    assert row["diff_mean"] == pytest.approx(xa.mean() - ya.mean())


def test_runs_with_the_same_seed_are_paired_and_tested_with_wilcoxon():
    seeds = [1, 2, 3, 4, 5, 6]
    base = [70.0, 72.0, 68.0, 75.0, 71.0, 69.0]
    new = [71.0, 73.5, 68.2, 76.0, 72.5, 69.1]  # every seed a little better
    frame = runs_frame({"new": new, "base": base}, pair_keys={"new": seeds, "base": seeds})
    result = evaluate_frame(frame, baseline="base", thresholds=Thresholds(min_runs=5), n_boot=2000)
    row = result.comparisons.loc[0]
    d = np.array(new) - np.array(base)
    assert row["paired"] and row["n_pairs"] == 6 and row["test"] == "wilcoxon"
    assert row["diff_mean"] == pytest.approx(d.mean())
    assert row["p_value"] == pytest.approx(sps.wilcoxon(d).pvalue)
    assert d.min() <= row["diff_mean_ci_low"] <= d.mean() <= row["diff_mean_ci_high"] <= d.max()
    # Unpaired, the spread between seeds swamps the same differences.
    unpaired = evaluate_frame(
        frame, baseline="base", pair_by="none", thresholds=Thresholds(min_runs=5), n_boot=2000
    )
    assert unpaired.decisions.loc[0, "decision"] == "REVISE"
    assert result.decisions.loc[0, "decision"] == "CONTINUE"
    assert "paired mean improvement" in result.decisions.loc[0, "reason"]


# ----------------------------------------------------------------- decisions


def planted(rng, effect: float, n: int, spread: float = 2.0) -> pd.DataFrame:
    return runs_frame(
        {
            "base": list(rng.normal(70, spread, n)),
            "new": list(rng.normal(70 + effect, spread, n)),
        }
    )


def decision(frame, **thresholds) -> str:
    result = evaluate_frame(
        frame, baseline="base", thresholds=Thresholds(**thresholds), n_boot=1000
    )
    return result.decisions.loc[0, "decision"]


def test_a_planted_effect_is_found_at_sufficient_n_and_not_claimed_at_small_n():
    rng = np.random.default_rng(7)
    assert decision(planted(rng, 3.0, 20)) == "CONTINUE"
    assert decision(planted(rng, -3.0, 20)) == "STOP"
    assert decision(planted(rng, 3.0, 3), min_runs=5) == "BLOCKED"
    # An effect well inside the noise at small N: the interval straddles the threshold.
    assert decision(planted(rng, 0.5, 5), min_runs=5) == "REVISE"
    # The declared minimum effect decides: +3 is no evidence of at least +10.
    assert decision(planted(rng, 3.0, 20), min_effect=10.0) == "STOP"


def test_lower_is_better_flips_what_counts_as_improvement():
    rng = np.random.default_rng(3)
    frame = planted(rng, -3.0, 20)  # the new cohort's values are lower: better for a loss
    result = evaluate_frame(frame, baseline="base", direction="lower", n_boot=1000)
    assert result.decisions.loc[0, "decision"] == "CONTINUE"
    assert "IQM improvement +" in result.decisions.loc[0, "reason"]


@pytest.mark.slow
def test_under_no_effect_continue_is_said_in_at_most_about_five_percent_of_repetitions():
    """200 seeded studies with no effect at N = 10 per cohort: CONTINUE needs the 95 %
    interval entirely above 0, which should happen in about 2.5 % of them."""
    rng = np.random.default_rng(2026)
    said = [decision(planted(rng, 0.0, 10), min_runs=5) for _ in range(200)]
    rate = said.count("CONTINUE") / len(said)
    assert rate <= 0.06, rate
    assert said.count("REVISE") > 150  # and it mostly says it can't tell


def test_a_reward_based_outcome_across_reward_modes_is_blocked():
    frame = runs_frame({"base": [1.0, 2, 3, 4, 5], "new": [6.0, 7, 8, 9, 10]})
    frame.loc[frame["cohort"] == "new", "reward_mode"] = "sparse"
    result = evaluate_frame(frame, baseline="base", reward_based=True, n_boot=500)
    assert result.decisions.loc[0, "decision"] == "BLOCKED"
    assert "reward definitions differ" in result.decisions.loc[0, "reason"]


def test_confounded_runs_are_excluded_listed_and_block_the_decision_when_included():
    rng = np.random.default_rng(11)
    frame = planted(rng, 4.0, 8)
    frame.loc[frame["run_id"] == "new-0", "value"] = 20.0  # the rollback's outcome
    frame.loc[frame["run_id"] == "base-3", "value"] = math.nan
    ledger = pd.DataFrame(
        {"run_id": ["new-0", "new-0"], "reason": ["governor rollback", "NaN gradients"]}
    )
    result = evaluate_frame(frame, baseline="base", confounders=ledger, n_boot=1000)
    assert result.decisions.loc[0, "decision"] == "CONTINUE"
    excluded = result.excluded.set_index("run_id")["reasons"].to_dict()
    assert excluded == {"new-0": "governor rollback; NaN gradients", "base-3": "no finite outcome"}
    counts = result.cohorts.set_index("cohort")[["n", "n_excluded"]]
    assert counts.loc["new"].tolist() == [7, 1] and counts.loc["base"].tolist() == [7, 1]
    # The other way round, kept beside: the rollback is in, and no decision may be stated.
    assert result.sensitivity.loc[0, "n"] == 8
    assert result.sensitivity.loc[0, "decision"] == "BLOCKED"
    included = evaluate_frame(
        frame, baseline="base", confounders=ledger, exclude_confounded=False, n_boot=1000
    )
    assert included.decisions.loc[0, "decision"] == "BLOCKED"
    assert "1 confounded runs are included" in included.decisions.loc[0, "reason"]


def test_results_reproduce_and_a_new_cohort_leaves_the_others_unchanged():
    rng = np.random.default_rng(5)
    two = planted(rng, 1.0, 8)
    extra = runs_frame({"other": list(rng.normal(75, 2, 8))})
    three = pd.concat([two, extra], ignore_index=True)
    a = evaluate_frame(two, baseline="base", n_boot=1000, seed=4)
    b = evaluate_frame(two, baseline="base", n_boot=1000, seed=4)
    c = evaluate_frame(three, baseline="base", n_boot=1000, seed=4)
    pd.testing.assert_frame_equal(a.comparisons, b.comparisons)
    same = ["diff_iqm_ci_low", "diff_iqm_ci_high", "p_improvement_ci_low", "diff_mean_ci_high"]
    new_row = c.comparisons.set_index("cohort").loc["new", same]
    assert new_row.tolist() == a.comparisons.set_index("cohort").loc["new", same].tolist()
    assert (
        c.cohorts.set_index("cohort").loc["base"].equals(a.cohorts.set_index("cohort").loc["base"])
    )


def test_profiles_and_curves_show_each_cohorts_runs():
    frame = runs_frame({"base": [60.0, 65, 70, 75, 80], "new": [70.0, 72, 74, 76, 78]})
    episodes = pd.DataFrame(
        [
            (r, b, v + b)
            for r, v in zip(frame["run_id"], frame["value"], strict=True)
            for b in (1, 2)
        ],
        columns=["run_id", "batch", "value"],
    )
    result = evaluate_frame(frame, baseline="base", episodes=episodes, n_boot=500)
    profile = result.profiles[result.profiles["cohort"] == "base"].reset_index()
    assert profile["tau"].iloc[0] == 60.0 and profile["tau"].iloc[-1] == 80.0
    for tau, fraction in zip(profile["tau"], profile["fraction"], strict=True):
        assert fraction == pytest.approx(np.mean(np.array([60, 65, 70, 75, 80]) > tau))
    assert (profile["ci_low"] <= profile["fraction"]).all()
    assert (profile["fraction"] <= profile["ci_high"]).all()
    curve = result.curves.set_index(["cohort", "batch"])
    assert curve.loc[("new", 2), "iqm"] == pytest.approx(sps.trim_mean([72, 74, 76, 78, 80], 0.25))
    assert curve.loc[("base", 1), "n"] == 5


def test_bad_settings_are_refused_naming_the_setting():
    frame = runs_frame({"base": [1.0, 2, 3], "new": [2.0, 3, 4]})
    with pytest.raises(ValueError, match="baseline 'nope' is not a cohort"):
        evaluate_frame(frame, baseline="nope")
    with pytest.raises(ValueError, match="confidence"):
        Thresholds(confidence=1.5)
    with pytest.raises(ValueError, match="trade-off"):
        experiments.evaluate(None, by="reward_mode", baseline="a", metric="growth_ratio")
    with pytest.raises(ValueError, match="by='colour' is not a cohort attribute"):
        experiments.evaluate(None, by="colour", baseline="a", metric="final_accuracy")


# ----------------------------------------------------------------- the archive


def confounded_runs(url: str) -> dict[str, str | None]:
    """Runs of a few snapshots each, one per confounder kind and two clean ones; returns
    run id -> the reason the ledger should give (None: clean)."""
    base = list(demo.snapshot_stream(2, 2, 3, seed=4))
    disturb = {
        "rolled-back": (
            "governor rollback",
            lambda s: setattr(next(iter(s.envs.values())), "rolled_back", True),
        ),
        "nan-grads": ("NaN gradients", lambda s: setattr(s.tamiyo, "nan_grad_count", 3)),
        "inf-latch": ("Inf gradients", lambda s: s.tamiyo.head_inf_latch.update(slot=True)),
        "collapsed": ("entropy collapse", lambda s: setattr(s.tamiyo, "entropy_collapsed", True)),
        "anomaly": (
            "anomaly event RATIO_EXPLOSION_DETECTED",
            lambda s: add_event(s, "RATIO_EXPLOSION_DETECTED"),
        ),
        "improving": (None, lambda s: add_event(s, "IMPROVEMENT_DETECTED")),
        "clean": (None, lambda s: None),
    }
    with Archive(url) as archive:
        for run_id, (_, change) in disturb.items():
            for i, snapshot in enumerate(base):
                snapshot = copy.deepcopy(snapshot)
                if i == 1:
                    change(snapshot)
                archive.save(snapshot, run_id=run_id)
            archive.finish_run(run_id)  # a running run's outcome is not final: in the ledger
    return {run_id: reason for run_id, (reason, _) in disturb.items()}


def add_event(snapshot, event_type: str) -> None:
    entry = copy.deepcopy(snapshot.event_log[0])
    entry.event_type = event_type
    entry.message = event_type
    snapshot.event_log.append(entry)


def test_the_confounder_ledger_names_each_disturbed_run_and_no_clean_one(db_url):
    expected = confounded_runs(db_url)
    with Archive(db_url, create=False) as archive:
        ledger = queries.run_confounders(archive)
    found = dict(zip(ledger["run_id"], ledger["reason"], strict=True))
    assert found == {run_id: reason for run_id, reason in expected.items() if reason}
    assert len(ledger) == len(found)  # one reason each here


def test_evaluate_on_the_demo_archive_and_the_verdict_cli_give_the_same_numbers(db_url):
    demo.write_demo(db_url, n_runs=15, seed=1)
    with Archive(db_url, create=False) as archive:
        result = experiments.evaluate(
            archive,
            by="reward_mode",
            baseline="shaped",
            metric="final_accuracy",
            min_runs=3,
            n_boot=2000,
        )
        outcomes = queries.run_outcomes(archive)
    # The demo leaves one run crashed (and its running one turns stale two minutes on).
    bad = outcomes[outcomes["status"].isin([s.value for s in confounders.CONFOUNDING_STATUSES])]
    expected = {
        r: f"status {status}" for r, status in zip(bad["run_id"], bad["status"], strict=True)
    }
    assert "status crashed" in expected.values()
    assert dict(zip(result.excluded["run_id"], result.excluded["reasons"], strict=True)) == expected
    assert set(result.decisions["cohort"]) == {"simplified", "sparse"}
    shaped = outcomes.loc[
        (outcomes["reward_mode"] == "shaped") & ~outcomes["run_id"].isin(expected)
    ]
    row = result.cohorts.set_index("cohort").loc["shaped"]
    assert row["n"] == len(shaped)
    assert row["iqm"] == pytest.approx(sps.trim_mean(shaped["final_accuracy"], 0.25))
    out = CliRunner().invoke(
        main,
        [
            "verdict",
            "--db",
            db_url,
            "--by",
            "reward_mode",
            "--baseline",
            "shaped",
            "--metric",
            "final_accuracy",
            "--min-runs",
            "3",
            "--n-boot",
            "2000",
            "--format",
            "json",
        ],
    )
    assert out.exit_code == 0, out.output
    tables = json.loads(out.output)
    for name in ("decisions", "cohorts", "comparisons", "excluded"):
        pd.testing.assert_frame_equal(
            pd.DataFrame(tables[name], columns=list(getattr(result, name).columns)),
            getattr(result, name),
            check_dtype=False,
        )


def test_strata_cohorts_share_or_miss_are_said_and_never_drop_runs_silently():
    values = {"base": [70.0, 71, 72, 73, 74, 75], "new": [73.0, 74, 75, 76, 77, 78]}
    # A run without a stratum value is a stratum of its own, not dropped.
    with_none = runs_frame(
        values,
        strata={
            "base": ["a", "a", "a", None, None, None],
            "new": ["a", "a", "a", None, None, None],
        },
    )
    result = evaluate_frame(with_none, baseline="base", n_boot=500)
    assert result.comparisons.loc[0, ["n", "n_baseline"]].tolist() == [6, 6]
    # Disjoint strata: nothing to compare within, and each cohort's real N.
    disjoint = runs_frame(values, strata={"base": ["a"] * 6, "new": ["b"] * 6})
    reason = evaluate_frame(disjoint, baseline="base", n_boot=500).decisions.loc[0, "reason"]
    assert "share no stratum" in reason and "clean runs" not in reason
    # A stratum only the cohort holds: compared within the shared one, and the reason says so.
    partial = runs_frame(
        {"base": values["base"], "new": values["new"] + [90.0, 91.0]},
        strata={"base": ["a"] * 6, "new": ["a"] * 6 + ["b", "b"]},
    )
    decided = evaluate_frame(partial, baseline="base", n_boot=500).decisions.loc[0]
    assert decided["decision"] != "BLOCKED"
    assert decided["reason"].endswith("(within the strata both hold: 2 runs of new left out)")


def test_numeric_cohorts_sort_by_value_and_a_cohort_is_never_its_own_stratum():
    frame = runs_frame({"base": [1.0] * 3, "x": [2.0] * 3, "y": [3.0] * 3})
    frame["cohort"] = frame["cohort"].map(
        {"base": np.int64(10), "x": np.int64(3), "y": np.int64(9)}
    )
    result = evaluate_frame(frame, baseline="10", thresholds=Thresholds(min_runs=2), n_boot=200)
    assert result.cohorts["cohort"].tolist() == [3, 9, 10]  # and the baseline, given as text
    with pytest.raises(ValueError, match="stratify='task_name' is the cohort attribute"):
        experiments.evaluate(
            None, by="task_name", baseline="a", metric="final_accuracy", stratify="task_name"
        )
