"""Experiments saved in the archive (versions kept), evaluated again as runs arrive, and their
self-contained HTML report, through the API and the CLI, on both backends."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from sanctum_store import Archive, demo, saved_experiments
from sanctum_store.cli import main

DEFINITION = {"by": "reward_mode", "baseline": "shaped", "metric": "final_accuracy"}


@pytest.fixture
def demo_db(db_url) -> str:
    demo.write_demo(db_url, n_runs=9, seed=1)
    return db_url


def test_a_changed_definition_is_a_new_version_and_the_old_one_is_kept(demo_db):
    with Archive(demo_db) as archive:
        assert saved_experiments.save(archive, "ab", **DEFINITION, min_runs=3) == 1
        # The same definition, a default spelled out: nothing new.
        assert saved_experiments.save(archive, "ab", **DEFINITION, min_runs=3, n_boot=10_000) == 1
        assert saved_experiments.save(archive, "ab", **DEFINITION, min_runs=3, min_effect=1.0) == 2
        saved = saved_experiments.load(archive, "ab")
    assert saved.version == 2 and saved.definition["min_effect"] == 1.0
    assert saved.history["version"].tolist() == [1, 2]
    assert saved.history["changed"].tolist() == ["first version", "min_effect: 0.0 -> 1.0"]
    assert saved.history["saved_at"].is_monotonic_increasing


def test_bad_definitions_and_unknown_names_are_refused_naming_what_is_wrong(demo_db):
    with Archive(demo_db) as archive:
        with pytest.raises(ValueError, match="unknown experiment settings \\['colour'\\]"):
            saved_experiments.save(archive, "x", **DEFINITION, colour="red")
        with pytest.raises(ValueError, match="an experiment needs baseline"):
            saved_experiments.save(archive, "x", by="reward_mode", metric="final_accuracy")
        with pytest.raises(ValueError, match="confidence"):
            saved_experiments.save(archive, "x", **DEFINITION, confidence=2.0)
        saved_experiments.save(archive, "kept", **DEFINITION)
        with pytest.raises(LookupError, match="no experiment is saved as 'nope' \\(saved: kept\\)"):
            saved_experiments.load(archive, "nope")
        assert saved_experiments.names(archive) == ["kept"]


def test_a_saved_experiment_is_evaluated_on_the_runs_the_archive_holds_now(demo_db):
    with Archive(demo_db) as archive:
        saved_experiments.save(archive, "ab", **DEFINITION, min_runs=2, n_boot=500)
        _, before = saved_experiments.evaluate(archive, "ab")
    demo.write_demo(demo_db, n_runs=6, seed=2)  # more runs arrive
    with Archive(demo_db) as archive:
        _, after = saved_experiments.evaluate(archive, "ab")
    assert after.settings["experiment"] == "ab" and after.settings["version"] == 1
    assert after.cohorts["n"].sum() > before.cohorts["n"].sum()


def cli(*args: str) -> str:
    out = CliRunner().invoke(main, list(args))
    assert out.exit_code == 0, out.output
    return out.stdout


def test_verdict_saves_and_evaluates_again_with_the_apis_numbers(demo_db):
    options = ["--by", "reward_mode", "--baseline", "shaped", "--metric", "final_accuracy"]
    options += ["--min-runs", "2", "--n-boot", "500", "--db", demo_db]
    first = json.loads(cli("verdict", *options, "--save", "ab", "--format", "json"))
    again = json.loads(cli("verdict", "--experiment", "ab", "--db", demo_db, "--format", "json"))
    with Archive(demo_db) as archive:
        _, result = saved_experiments.evaluate(archive, "ab")
    for tables in (first, again):
        assert tables["decisions"] == json.loads(result.decisions.to_json(orient="records"))
        assert tables["comparisons"][0]["diff_iqm"] == pytest.approx(
            result.comparisons["diff_iqm"].iloc[0]
        )
    assert again["settings"]["experiment"] == "ab"
    refused = CliRunner().invoke(main, ["verdict", "--experiment", "nope", "--db", demo_db])
    assert refused.exit_code != 0
    assert "no experiment is saved as 'nope' (saved: ab)" in refused.output


def test_the_report_is_one_self_contained_file_with_its_charts_and_escaped_text(demo_db, tmp_path):
    with Archive(demo_db) as archive:
        snapshot = archive.load_dict(archive.runs()["run_id"].iloc[0])
        snapshot.update(run_id="<script>alert(1)</script>", captured_at="2026-12-04T10:00:00+00:00")
        for env in snapshot["envs"].values():
            env["current_epoch"] = 0  # nothing measured: excluded, listed by its id
        archive.save(snapshot)
        saved_experiments.save(archive, "ab", **DEFINITION, min_runs=2, n_boot=500)
        _, result = saved_experiments.evaluate(archive, "ab")
    out = tmp_path / "report.html"
    assert "wrote" in cli("report", "ab", "-o", str(out), "--db", demo_db)
    page = out.read_text()
    # Nothing to fetch: no script, no stylesheet or image link, no URL but SVG namespaces.
    assert "<script" not in page and "<link" not in page and " src=" not in page
    urls = set(re.findall(r"https?://[^\"' )]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    assert page.count("<svg") == 3  # sample efficiency, profiles, per-run outcomes
    for reason in result.decisions["reason"]:
        assert reason in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the run id, as typed
    assert "min_runs" in page and "first version" in page


def test_a_definition_that_does_not_evaluate_is_not_saved_and_errors_are_one_line(demo_db):
    bad = ["--by", "reward_mode", "--baseline", "nope", "--metric", "final_accuracy"]
    refused = CliRunner().invoke(main, ["verdict", *bad, "--save", "ab", "--db", demo_db])
    assert refused.exit_code != 0 and "baseline 'nope' is not a cohort" in refused.output
    with Archive(demo_db) as archive:
        assert saved_experiments.names(archive) == []
        # Saved when its baseline had runs, since gone: the report says why, in one line.
        saved_experiments.save(
            archive, "gone", by="reward_mode", baseline="escrow", metric="final_accuracy"
        )
    out = CliRunner().invoke(main, ["report", "gone", "-o", "/dev/null", "--db", demo_db])
    assert out.exit_code != 0 and "baseline 'escrow' is not a cohort" in out.output
    assert "Traceback" not in out.output
