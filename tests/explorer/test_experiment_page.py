"""The Experiment page under AppTest: its decisions, tables and charts are
``experiments.evaluate``'s for the same settings, drawn as they should be."""

from __future__ import annotations

import pandas as pd
import pytest
from support import demo_archive, fresh_caches  # noqa: F401
from test_pages import curve_rows, open_page, table
from text import literal

from sanctum_store import Archive, experiments

PAGE = "views/experiment.py"


def evaluated(url: str, **settings) -> experiments.Evaluation:
    with Archive(url) as archive:
        return experiments.evaluate(archive, **settings)


def open_experiment(monkeypatch, url: str, min_runs: int = 2):
    at = open_page(monkeypatch, url, PAGE)
    at.number_input(key="exp_min_runs").set_value(min_runs).run()
    assert not at.exception, at.exception
    return at


def test_the_banner_states_each_decision_with_its_rule_as_the_api_does(monkeypatch, demo_archive):
    at = open_experiment(monkeypatch, demo_archive)
    baseline = at.selectbox(key="exp_baseline").value
    expected = evaluated(
        demo_archive, by="reward_mode", baseline=baseline, metric="final_accuracy", min_runs=2
    )
    shown = [a.value for a in (*at.success, *at.warning, *at.info)]
    for row in expected.decisions.itertuples():
        assert f"**{row.decision}**: {literal(row.cohort)} against {literal(baseline)}" in shown
    reasons = [t.value for t in at.text]
    assert expected.decisions["reason"].tolist() == [
        r for r in reasons if r in set(expected.decisions["reason"])
    ]
    # The tables are the API's, number for number.
    pd.testing.assert_frame_equal(
        table(at, "iqm_ci_low").reset_index(drop=True), expected.cohorts, check_dtype=False
    )
    pd.testing.assert_frame_equal(
        table(at, "diff_iqm").reset_index(drop=True), expected.comparisons, check_dtype=False
    )


def test_a_new_baseline_compares_every_other_cohort_with_it(monkeypatch, demo_archive):
    at = open_experiment(monkeypatch, demo_archive)
    options = at.selectbox(key="exp_baseline").options
    at.selectbox(key="exp_baseline").select(options[-1]).run()
    compared = table(at, "diff_iqm")
    assert set(compared["baseline"]) == {options[-1]}
    assert set(compared["cohort"]) == set(options) - {options[-1]}


def test_excluded_runs_are_listed_with_their_reasons(monkeypatch, demo_archive):
    at = open_experiment(monkeypatch, demo_archive)
    baseline = at.selectbox(key="exp_baseline").value
    expected = evaluated(
        demo_archive, by="reward_mode", baseline=baseline, metric="final_accuracy", min_runs=2
    )
    assert not expected.excluded.empty  # the demo's crashed run
    shown = table(at, "reasons").reset_index(drop=True)
    pd.testing.assert_frame_equal(shown, expected.excluded, check_dtype=False)
    other = table(at, "decision").reset_index(drop=True)  # the other way round, beside
    assert other["n"].tolist() == expected.sensitivity["n"].tolist()
    assert other["decision"].tolist() == expected.sensitivity["decision"].tolist()
    at.toggle(key="exp_include").set_value(True).run()
    included = evaluated(
        demo_archive,
        by="reward_mode",
        baseline=baseline,
        metric="final_accuracy",
        min_runs=2,
        exclude_confounded=False,
    )
    shown = [a.value for a in (*at.success, *at.warning, *at.info)]
    for row in included.decisions.itertuples():
        assert f"**{row.decision}**: {literal(row.cohort)} against {literal(baseline)}" in shown
    assert "confounded runs are included" in " ".join(included.decisions["reason"])


def test_the_charts_show_curves_profiles_and_paired_runs(monkeypatch, demo_archive):
    at = open_experiment(monkeypatch, demo_archive)
    baseline = at.selectbox(key="exp_baseline").value
    expected = evaluated(
        demo_archive, by="reward_mode", baseline=baseline, metric="final_accuracy", min_runs=2
    )
    spec, curve = curve_rows(at, "Sample efficiency: IQM")
    layers = {layer["mark"]["type"]: layer["encoding"] for layer in spec["layer"]}
    assert layers["line"]["x"]["field"] == "batch" and layers["line"]["y"]["field"] == "iqm"
    assert layers["area"]["y"]["field"] == "ci_low" and layers["area"]["y2"]["field"] == "ci_high"
    assert set(curve["cohort"]) == set(expected.curves["cohort"])
    assert len(curve) == len(expected.curves)

    spec, profile = curve_rows(at, "Performance profile")
    assert spec["layer"][1]["encoding"]["x"]["field"] == "tau"
    assert profile["fraction"].between(0, 1).all()
    assert len(profile) == len(expected.profiles)

    from render import from_streamlit

    (spec,) = [
        s
        for s in (from_streamlit(e.proto) for e in at.get("vega_lite_chart"))
        if str(s.get("title", "")).startswith("final accuracy per run")
    ]
    lines, points = spec["layer"]
    assert lines["mark"]["type"] == "line" and lines["encoding"]["detail"]["field"] == "pair"
    assert points["mark"]["type"] == "circle"
    used = expected.runs[expected.runs["used"]]
    drawn = pd.DataFrame(spec["datasets"][points["data"]["name"]])
    assert sorted(drawn["run_id"]) == sorted(used["run_id"])
    joined = pd.DataFrame(spec["datasets"][lines["data"]["name"]])
    assert sorted(joined["run_id"]) == sorted(used.loc[used["pair"].notna(), "run_id"])


@pytest.mark.parametrize("metric", ["peak_accuracy", "mean_reward"])
def test_every_directed_outcome_renders(monkeypatch, demo_archive, metric):
    at = open_experiment(monkeypatch, demo_archive)
    at.selectbox(key="exp_metric").select(metric).run()
    assert not at.exception, at.exception
    if metric == "mean_reward":  # reward modes differ between reward-mode cohorts
        assert at.info and not at.success and not at.warning
        assert all(a.value.startswith("**BLOCKED**") for a in at.info)
        assert all("reward definitions differ" in t.value for t in at.text[: len(at.info)])


def test_a_saved_experiment_is_decided_by_its_own_rules_and_shows_its_versions(
    monkeypatch, demo_archive, tmp_path
):
    import shutil
    import sqlite3

    from sanctum_store import saved_experiments

    source = demo_archive.removeprefix("sqlite:///")
    with sqlite3.connect(source) as conn:  # the whole archive in its main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(source, tmp_path / "copy.db")
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    rules = {"by": "reward_mode", "baseline": "sparse", "metric": "final_accuracy"}
    with Archive(url) as archive:
        saved_experiments.save(archive, "<b>ab</b>", **rules, min_runs=2)
        saved_experiments.save(archive, "<b>ab</b>", **rules, min_runs=2, min_effect=0.5)
        _, expected = saved_experiments.evaluate(archive, "<b>ab</b>")
    at = open_page(monkeypatch, url, PAGE)
    assert at.selectbox(key="exp_saved").options == ["(set here)", "<b>ab</b>"]
    at.selectbox(key="exp_saved").select("<b>ab</b>").run()
    assert not at.exception, at.exception
    history = table(at, "changed")
    assert history["changed"].tolist() == ["first version", "min_effect: 0.0 -> 0.5"]
    shown = [a.value for a in (*at.success, *at.warning, *at.info)]
    for row in expected.decisions.itertuples():
        assert f"**{row.decision}**: {literal(row.cohort)} against {literal('sparse')}" in shown
    assert "min_effect = 0.5" in at.text[0].value  # the current definition
    pd.testing.assert_frame_equal(
        table(at, "diff_iqm").reset_index(drop=True), expected.comparisons, check_dtype=False
    )
