"""Every explorer page under Streamlit's AppTest, on a demo archive."""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from support import APP, HTML_RUN, PAGES, XSS, demo_archive, fresh_caches  # noqa: F401


def open_page(monkeypatch, url: str, page: str | None = None) -> AppTest:
    monkeypatch.setenv("SANCTUM_DB", url)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def table(at: AppTest, column: str):
    """The first dataframe shown with this column."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no dataframe with a {column!r} column")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_error(monkeypatch, demo_archive, page):
    at = open_page(monkeypatch, demo_archive, page)
    assert at.title, f"{page} has no title"
    assert not at.error, [e.value for e in at.error]


def test_sidebar_shows_the_open_archive(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive)
    assert any(demo_archive.split("///")[1] in code.value for code in at.sidebar.code)


def test_empty_archive_shows_onboarding_and_creates_the_demo(monkeypatch, tmp_path):
    from sanctum_store import demo

    real_plan = demo.plan_runs
    monkeypatch.setattr(demo, "plan_runs", lambda n, seed=0, now=None: real_plan(3, seed, now=now))
    at = open_page(monkeypatch, f"sqlite:///{tmp_path / 'empty.db'}")
    assert at.title[0].value == "Sanctum run archive"
    assert any("record" in c.value for c in at.code)
    at.button(key="create_demo").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Runs"  # the archive now has runs: the app's pages appear
    assert len(at.dataframe[0].value) == 3


def test_runs_filter_narrows_the_table(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/runs.py")
    everything = at.dataframe[0].value
    at.text_input(key="runs_search").input("shaped").run()
    narrowed = at.dataframe[0].value
    assert 0 < len(narrowed) < len(everything)
    assert set(narrowed["reward_mode"]) == {"shaped"}
    at.multiselect(key="runs_status").select("crashed").run()
    assert len(at.dataframe[0].value) <= 1


def test_run_detail_time_slider_shows_another_snapshot(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/run_detail.py")
    longest = table(
        AppTest.from_file(str(APP)).run().switch_page("views/runs.py").run(), "snapshot_count"
    )
    at.selectbox(key="detail_run").select(
        longest.sort_values("snapshot_count")["run_id"].iloc[-1]
    ).run()
    assert len(charts(at)) >= 3
    latest = [c.value for c in at.caption if c.value.startswith("snapshot ")]
    at.select_slider(key="detail_moment").set_value(0).run()
    assert not at.exception
    first = [c.value for c in at.caption if c.value.startswith("snapshot ")]
    assert latest and first and latest != first


def test_run_detail_shows_event_html_as_text(monkeypatch, demo_archive):
    monkeypatch.setenv("SANCTUM_DB", demo_archive)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["run_id"] = HTML_RUN
    at.run().switch_page("views/run_detail.py").run()
    assert not at.exception
    events = table(at, "message")
    assert XSS in set(events["message"])
    assert not any(XSS in m.value for m in at.markdown)  # never rendered as markdown/HTML


def test_cohort_attribute_changes_the_groups(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/cohorts.py")
    modes = set(table(at, "iqm")["cohort"])
    assert modes == {"shaped", "simplified", "sparse"}
    assert any(
        " is better than " in m.value or "No significant" in m.value or "Too few" in m.value
        for m in at.text
    )
    at.selectbox(key="cohort_attribute").select("group_id").run()
    groups = set(table(at, "iqm")["cohort"])
    assert groups == {"A", "B", "C"}


def test_cohort_comparisons_read_b_minus_a_with_significance_first(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/cohorts.py")
    compared = table(at, "p_adjusted")
    assert list(compared.columns[:6]) == ["a", "b", "n_a", "n_b", "p_adjusted", "significant"]
    assert at.selectbox(key="cohort_baseline").options == [
        "(all pairs)",
        "shaped",
        "simplified",
        "sparse",
    ]
    at.selectbox(key="cohort_baseline").select("sparse").run()
    assert not at.exception, at.exception
    compared = table(at, "p_adjusted")
    assert compared["a"].tolist() == ["sparse", "sparse"]
    assert compared["b"].tolist() == ["shaped", "simplified"]
    verdicts = [m.value for m in at.text if " − sparse" in m.value or "sparse has N" in m.value]
    assert len(verdicts) == 2, [m.value for m in at.text]


def test_mean_reward_is_not_compared_across_reward_modes(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/cohorts.py")
    at.selectbox(key="cohort_metric").select("mean_reward").run()
    compared = table(at, "p_adjusted")
    # Cohorts by reward mode: every pair has different reward definitions.
    assert compared["p_adjusted"].isna().all() and not compared["significant"].any()
    verdicts = [m.value for m in at.text if "reward definitions differ" in m.value]
    assert len(verdicts) == len(compared) == 3
    assert not any(" is better than " in m.value for m in at.text)


def curve_rows(at: AppTest, title_start: str) -> tuple[dict, pd.DataFrame]:
    """The spec and the data rows of the one chart whose title starts so."""
    from render import from_streamlit

    specs = [from_streamlit(element.proto) for element in charts(at)]
    found = [s for s in specs if str(s.get("title", "")).startswith(title_start)]
    assert len(found) == 1, [s.get("title") for s in specs]
    spec = found[0]
    data = spec.get("data", {})
    rows = data["values"] if "values" in data else spec["datasets"][data.get("name")]
    return spec, pd.DataFrame(rows)


def test_cohorts_draw_end_of_episode_curves_of_the_outcome(monkeypatch, demo_archive):
    from sanctum_store import Archive, queries

    at = open_page(monkeypatch, demo_archive, "views/cohorts.py")
    spec, shown = curve_rows(at, "End-of-episode final accuracy: mean")
    layers = {layer["mark"]["type"]: layer["encoding"] for layer in spec["layer"]}
    assert layers["line"]["x"]["field"] == "batch" and layers["line"]["y"]["field"] == "value"
    with Archive(demo_archive) as archive:
        expected = queries.episode_curves(
            archive, "reward_mode", "final_accuracy", status="finished"
        )
    # One point per cohort and batch: batches, not batch + epoch fractions (no sawtooth).
    assert len(shown) == len(expected) and set(shown["batch"]) == set(expected["batch"])
    got = shown.sort_values(["cohort", "batch"])["value"].to_numpy()
    assert got == pytest.approx(expected.sort_values(["cohort", "batch"])["value"].to_numpy())
    bands = shown[["ci_low", "ci_high"]].dropna()
    assert not bands.empty and bands.min().min() >= 0 and bands.max().max() <= 100

    at.slider(key="cohort_smoothing").set_value(0.9).run()
    _, smooth = curve_rows(at, "End-of-episode final accuracy: mean")
    assert smooth["value"].std() < shown["value"].std()  # smoothed, same points
    assert len(smooth) == len(shown)
    at.radio(key="cohort_statistic").set_value("iqm").run()
    curve_rows(at, "End-of-episode final accuracy: IQM")


def test_outcome_and_curve_show_the_same_metric(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/cohorts.py")
    for outcome, curve in [
        ("growth_ratio", "growth ratio"),
        ("fossilize_rate", "fossilize rate"),
        ("mean_reward", "episode reward"),
        ("peak_accuracy", "peak accuracy"),
    ]:
        at.selectbox(key="cohort_metric").select(outcome).run()
        assert not at.exception, at.exception
        _, shown = curve_rows(at, f"End-of-episode {curve}")
        if outcome == "growth_ratio":  # a growth ratio is at least 1, and so is its band
            assert shown[["value", "ci_low", "ci_high"]].min().min() >= 1.0
        if outcome == "fossilize_rate":
            assert shown[["value", "ci_low", "ci_high"]].max().max() <= 1.0


def test_compare_draws_each_runs_end_of_episode_curve(monkeypatch, demo_archive):
    from sanctum_store import Archive, queries

    at = open_page(monkeypatch, demo_archive, "views/compare.py")
    chosen = at.multiselect(key="compare_runs").value
    _, shown = curve_rows(at, "End-of-episode final accuracy")
    with Archive(demo_archive) as archive:
        expected = queries.run_episode_means(archive, "final_accuracy", run_id=chosen)
    assert set(shown["run"]) == set(expected["run_id"])
    got = shown.sort_values(["run", "batch"])["value"].to_numpy()
    assert got == pytest.approx(expected.sort_values(["run_id", "batch"])["value"].to_numpy())
    at.radio(key="compare_curve").set_value("within episode").run()
    assert not at.exception, at.exception
    curve_rows(at, "host accuracy: mean across envs")


def test_leaderboard_selection_shows_the_record(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/leaderboard.py")
    board = table(at, "record_id")
    assert board["peak_accuracy"].is_monotonic_decreasing
    assert not at.metric  # nothing selected yet


def test_compare_diff_only_hides_equal_rows(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/compare.py")
    full = at.dataframe[-1].value
    at.toggle(key="compare_diff_only").set_value(True).run()
    diff = at.dataframe[-1].value
    assert 0 < len(diff) < len(full)


def test_decisions_for_one_run_show_the_decision_log(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/decisions.py")
    assert len(charts(at)) >= 3
    run = at.selectbox(key="dec_scope").options[2]  # after "recent runs" and "all runs"
    at.selectbox(key="dec_scope").select(run).run()
    log = table(at, "alternatives")
    assert len(log) > 0 and "alternatives" in log.columns


def test_lifecycle_split_by_cohort(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/lifecycle.py")
    plain = table(at, "blend_success_rate")
    at.selectbox(key="life_cohort").select("reward_mode").run()
    split = table(at, "blend_success_rate")
    assert "cohort" in split.columns and len(split) > len(plain)


LIFECYCLE_STAGES = ["GERMINATED", "TRAINING", "BLENDING", "HOLDING", "FOSSILIZED", "PRUNED"]


def funnel_chart(at: AppTest) -> dict:
    from render import from_streamlit

    specs = [from_streamlit(element.proto) for element in charts(at)]
    found = [s for s in specs if (s.get("usermeta") or {}).get("builder") == "grouped_bars"]
    assert len(found) == 1, [s.get("usermeta") for s in specs]
    return found[0]


def test_lifecycle_funnel_shows_one_bar_per_stage_never_summed(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/lifecycle.py")
    spec = funnel_chart(at)
    encoding = spec["encoding"]
    # Stages are categories side by side within each blueprint, not a stack.
    assert encoding["yOffset"]["field"] == "stage" and encoding["color"]["field"] == "stage"
    assert encoding["yOffset"]["sort"] == LIFECYCLE_STAGES
    assert encoding["x"]["field"] == "seeds" and encoding["x"]["stack"] is None
    data = spec["data"]
    values = pd.DataFrame(data.get("values") or spec["datasets"][data["name"]])
    shown = values.pivot(index="label", columns="stage", values="seeds")
    funnel = table(at, "germinated").set_index("blueprint_id")
    assert sorted(shown.index) == sorted(funnel.index)
    for stage in LIFECYCLE_STAGES:
        assert shown[stage].to_dict() == funnel[stage.lower()].to_dict(), stage
    # One bar per stage: a seed that fossilized is in the fossilized bar once; the bars of a
    # blueprint are counts of one set of seeds, each at most the germinated count.
    assert (shown[LIFECYCLE_STAGES[1:]].le(shown["GERMINATED"], axis=0)).all().all()
    totals = table(at, "spawns")
    assert (totals["seen"].to_numpy() <= totals["spawns"].to_numpy()).all()
    line = f"{totals['seen'].sum()} of {totals['spawns'].sum()} seeds were seen by snapshots"
    assert any(line in t.value for t in at.text), [t.value for t in at.text]
    reasons = table(at, "prune_reason")
    assert reasons["n"].sum() == totals["prunes"].sum()
    assert "unrecorded" in reasons["prune_reason"].tolist()
    rates = table(at, "rate")
    assert set(rates["rate"]) == {"fossilized / spawns", "fossilized / (fossilized + prunes)"}
    assert (rates["ci_low"] <= rates["mean"]).all() and (rates["mean"] <= rates["ci_high"]).all()


def test_the_sql_example_gives_the_lifecycle_pages_prunes(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/lifecycle.py")
    totals = table(at, "spawns").set_index("blueprint_id")["prunes"].to_dict()
    at.switch_page("views/sql.py").run()
    at.selectbox(key="sql_example").select("Pruned seeds per blueprint").run()
    at.button(key="sql_run").click().run()
    assert not at.exception, at.exception
    result = table(at, "pruned").set_index("blueprint_id")["pruned"].to_dict()
    assert result == totals and sum(result.values()) > 0


def test_attribution_rankings(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/attribution.py")
    ranking = table(at, "mean_value")
    assert ranking["mean_value"].is_monotonic_decreasing
    at.radio(key="attr_by").set_value("slot").run()
    assert "slot_id" in table(at, "mean_value").columns


def test_sql_console_runs_reads_and_refuses_writes(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/sql.py")
    at.text_area(key="sql_text").input("SELECT run_id FROM runs ORDER BY run_id").run()
    at.button(key="sql_run").click().run()
    assert len(table(at, "run_id")) == 7
    at.text_area(key="sql_text").input("DELETE FROM runs").run()
    at.button(key="sql_run").click().run()
    assert any("Refused" in e.value for e in at.error)
    at.number_input(key="sql_rows").set_value(10).run()
    at.text_area(key="sql_text").input("SELECT * FROM events").run()
    at.button(key="sql_run").click().run()
    assert any("Truncated" in w.value for w in at.warning)


def test_sql_console_takes_a_column_of_mixed_types_and_recovers(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/sql.py")
    at.text_area(key="sql_text").input("SELECT 1 AS v UNION ALL SELECT 'text'").run()
    at.button(key="sql_run").click().run()
    assert not at.exception, at.exception
    assert table(at, "v")["v"].astype(str).tolist() == ["1", "text"]
    downloads = {b.proto.label for b in at.get("download_button")}
    assert downloads == {"Download CSV", "Download Parquet"}
    at.text_area(key="sql_text").input("SELECT count(*) AS n FROM runs").run()
    at.button(key="sql_run").click().run()
    assert not at.exception, at.exception
    assert table(at, "n")["n"].tolist() == [7]


def test_sql_console_stops_an_expensive_call_at_its_time_limit(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/sql.py")
    at.number_input(key="sql_timeout").set_value(1).run()
    calls = ", ".join(["instr(a, substr(a, 1, 60000) || 'b')"] * 500)
    query = f"WITH x(a) AS (SELECT printf('%.*c', 130000, 'a')) SELECT {calls} FROM x"
    at.text_area(key="sql_text").input(query).run()
    start = time.monotonic()
    at.button(key="sql_run").click().run()
    assert time.monotonic() - start < 2 + 1  # 1 s limit, + 1 s, + the page's own rerun
    errors = [e.value for e in at.error]
    assert any(e.startswith("Interrupted") and "after 1 s" in e for e in errors), errors


def test_sql_console_reports_the_byte_cap(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/sql.py")
    at.number_input(key="sql_mb").set_value(1).run()
    query = (
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000)"
        " SELECT n, randomblob(3000) AS b FROM c"
    )
    at.text_area(key="sql_text").input(query).run()
    at.button(key="sql_run").click().run()
    assert not at.exception, at.exception
    assert any("byte cap" in w.value for w in at.warning)
    assert 300 < len(table(at, "n")) < 350  # 1 MB in rows of 3 kB (and a few bytes more)


def test_an_outdated_archive_says_how_to_upgrade_it(monkeypatch, tmp_path):
    import sqlalchemy as sa

    from sanctum_store import Archive

    url = f"sqlite:///{tmp_path / 'old.db'}"
    Archive(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # pretend it was made by the first release
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    at = open_page(monkeypatch, url)
    assert at.title[0].value == "Archive unavailable"
    assert any("sanctum-store db upgrade" in e.value for e in at.error)


DECIMAL = re.compile(r"-?(\d+\.\d*)(e[+-]?\d+)?")


def significant_digits(text: str) -> int:
    """Significant digits of a number written with a decimal point ("0.07001": 4); 0 for
    anything else (integers, words)."""
    match = DECIMAL.fullmatch(text.strip())
    return len(match.group(1).replace(".", "").lstrip("0")) if match else 0


def shows_at_most_4_digits(fmt: str, values) -> bool:
    """A printf format shows the column's numbers to at most 4 significant digits."""
    if match := re.match(r"^%\.(\d)g", fmt):
        return int(match.group(1)) <= 4
    if match := re.match(r"^%\.(\d)f", fmt):
        largest = max((abs(v) for v in values if v == v), default=0.0)
        whole = len(str(int(largest))) if largest >= 1 else 0
        return whole + int(match.group(1)) <= 4
    return False


@pytest.mark.parametrize("page", PAGES)
def test_every_table_shows_4_significant_digits_times_to_the_second_and_whole_ids(
    monkeypatch, demo_archive, page
):
    at = open_page(monkeypatch, demo_archive, page)
    if page == "views/sql.py":
        query = "SELECT run_id, first_seen, final_accuracy FROM v_runs"
        at.text_area(key="sql_text").input(query).run()
        at.button(key="sql_run").click().run()
        assert len(at.dataframe) >= 2, "the query showed no result"
    for frame in at.dataframe:
        config, df = json.loads(frame.proto.columns or "{}"), frame.value
        for column in df.columns:
            kind = df[column].dtype.kind
            shown = (config.get(str(column)) or {}).get("type_config") or {}
            if kind == "f":
                fmt = shown.get("format", "")
                assert shows_at_most_4_digits(fmt, df[column]), (page, column, shown)
            elif kind == "M":
                assert shown.get("format") == "YYYY-MM-DD HH:mm:ss", (page, column, shown)
            elif kind == "O" and column not in ("metadata", "message"):  # not free text
                long = [t for t in df[column].dropna().astype(str) if significant_digits(t) > 4]
                assert not long, (page, column, long[:3])
            if column in ("run_id", "run"):
                width = (config.get(column) or {}).get("width")
                longest = df[column].astype(str).str.len().max()
                assert isinstance(width, int) and width >= 8 * longest, (page, column, width)


def test_status_is_text_never_an_emoji_alone(monkeypatch, demo_archive):
    at = open_page(monkeypatch, demo_archive, "views/runs.py")
    statuses = set(at.dataframe[0].value["status"])
    assert statuses and all(
        any(word in s for word in ("running", "finished", "stale", "crashed", "failed"))
        for s in statuses
    )
    assert not any(ch for s in statuses for ch in s if ord(ch) >= 0x1F000)  # no emoji


def test_an_imported_complete_run_is_in_the_cohorts_default_population(monkeypatch, tmp_path):
    from click.testing import CliRunner
    from conftest import fixture_snapshot_lines

    from sanctum_store.cli import main

    dump = tmp_path / "run.jsonl"
    dump.write_text("\n".join(fixture_snapshot_lines()) + "\n")
    url = f"sqlite:///{tmp_path / 'imported.db'}"
    assert CliRunner().invoke(main, ["import", str(dump), "--db", url]).exit_code == 0
    at = open_page(monkeypatch, url, "views/cohorts.py")
    assert at.toggle(key="cohort_finished").value  # the default: finished runs only
    assert table(at, "iqm")["n"].sum() == 1
    at = open_page(monkeypatch, url, "views/runs.py")
    assert "finished" in " ".join(map(str, table(at, "status")["status"]))
