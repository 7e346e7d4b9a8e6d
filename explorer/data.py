"""The explorer's access to the archive: which archive is open, and cached query results.

The only module of the explorer that caches; pages call it and never open engines themselves.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

import charts
import pandas as pd
import sqlalchemy as sa
import streamlit as st
import text

from sanctum_store import queries
from sanctum_store.archive import Archive
from sanctum_store.db import resolve_url

#: Seconds a cached query result stays fresh (runs may be recording while we look).
FRESH_FOR = 10
#: Seconds between refreshes of a running run's page.
LIVE_EVERY = 5
#: The most snapshots the time slider offers (evenly spread, always the latest).
MAX_MOMENTS = 1_000


def archive_url() -> str:
    """``streamlit run explorer/app.py -- --db PATH_OR_URL``, else $SANCTUM_DB, else ./sanctum.db."""
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--db" and i + 1 < len(args):
            return resolve_url(args[i + 1])
        if arg.startswith("--db="):
            return resolve_url(arg.split("=", 1)[1])
    return resolve_url(None)


def unsafe_writable_role() -> bool:
    """``streamlit run explorer/app.py -- --unsafe-writable-role``: the SQL page runs even as a
    PostgreSQL superuser or a role that may write (the operator's explicit choice)."""
    return "--unsafe-writable-role" in sys.argv[1:]


def display_url(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


@st.cache_resource(show_spinner=False)
def archive(url: str) -> Archive:
    """One Archive (and engine pool) per archive URL for the whole server."""
    return Archive(url)


def archive_state(url: str) -> tuple[str, str]:
    """("ready", ""), ("empty", "") for a new or run-less archive, or ("error", why) when it
    cannot be opened (unreachable, or at an older schema: the message names the fix)."""
    try:
        count = _run_count(url)
    except Exception as e:  # shown on the page, never a traceback
        return "error", str(e)
    return ("ready", "") if count else ("empty", "")


@st.cache_data(ttl=FRESH_FOR, show_spinner=False)
def _run_count(url: str) -> int:
    return int(queries.count_runs(archive(url).engine))


@st.cache_data(ttl=FRESH_FOR, show_spinner=False, max_entries=512)
def _query(url: str, name: str, args: tuple, kwargs: dict[str, Any], tick: int) -> Any:
    return getattr(queries, name)(archive(url).engine, *args, **kwargs)


_LIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("live", default=False)


@contextlib.contextmanager
def live() -> Iterator[None]:
    """Within it (a running run's page refreshing itself), questions get answers at most
    :data:`LIVE_EVERY` seconds old instead of :data:`FRESH_FOR`."""
    token = _LIVE.set(True)
    try:
        yield
    finally:
        _LIVE.reset(token)


P = ParamSpec("P")
R = TypeVar("R")


def _on_archive(question: Callable[Concatenate[Any, P], R]) -> Callable[P, R]:
    """``question(engine, ...)`` of :mod:`sanctum_store.queries` asked of the open archive,
    its answer cached briefly: same parameters, same answer type."""
    name = question.__name__

    @functools.wraps(question)
    def ask(*args: P.args, **kwargs: P.kwargs) -> R:
        url = archive_url()
        state, problem = archive_state(url)
        if state == "error":  # a page reached by its URL while the archive is unusable
            st.error(text.literal(problem))
            st.stop()
        tick = int(time.time() // LIVE_EVERY) if _LIVE.get() else 0
        return _query(url, name, args, kwargs, tick)

    return ask


# The questions pages ask, each a typed function (its parameters are the query's).
action_mix = _on_archive(queries.action_mix)
calibration = _on_archive(queries.calibration)
episode_curves = _on_archive(queries.episode_curves)
run_episode_means = _on_archive(queries.run_episode_means)
conversion_rates = _on_archive(queries.conversion_rates)
count_runs = _on_archive(queries.count_runs)
decision_table = _on_archive(queries.decision_table)
head_entropy = _on_archive(queries.head_entropy)
leaderboard = _on_archive(queries.leaderboard)
lifecycle_totals = _on_archive(queries.lifecycle_totals)
list_runs = _on_archive(queries.list_runs)
prune_reasons = _on_archive(queries.prune_reasons)
run_index = _on_archive(queries.run_index)
run_outcomes = _on_archive(queries.run_outcomes)
facets = _on_archive(queries.run_facets)  # filter choices: reward_mode, group_id, task_name
run_series = _on_archive(queries.run_series)
search_events = _on_archive(queries.search_events)
seed_funnel = _on_archive(queries.seed_funnel)
seed_lifespans = _on_archive(queries.seed_lifespans)
shapley_ranking = _on_archive(queries.shapley_ranking)
synergy = _on_archive(queries.synergy)
time_in_stage = _on_archive(queries.time_in_stage)
value_vs_reward = _on_archive(queries.value_vs_reward)
_snapshot_times = _on_archive(queries.snapshot_times)


@st.cache_data(ttl=3600, show_spinner=False, max_entries=64)
def _snapshot(url: str, run_id: str, snapshot_id: int) -> dict:
    return archive(url).load_dict(run_id, at=snapshot_id)


def snapshot(run_id: str, snapshot_id: int) -> dict:
    """A stored snapshot in JSON form (stored snapshots never change: cached long)."""
    return _snapshot(archive_url(), run_id, snapshot_id)


def snapshot_times(run_id: str) -> pd.DataFrame:
    """The run's stored snapshots (snapshot_id, captured_ts, current_batch, current_epoch),
    thinned evenly to at most :data:`MAX_MOMENTS` rows, the latest always kept."""
    times = _snapshot_times(run_id)
    if len(times) <= MAX_MOMENTS:
        return times
    step = len(times) / MAX_MOMENTS
    keep = sorted({int(i * step) for i in range(MAX_MOMENTS - 1)} | {len(times) - 1})
    return times.iloc[keep].reset_index(drop=True)


def clear() -> None:
    """Forget cached results (after creating the demo archive, or on the refresh button)."""
    st.cache_data.clear()


@st.cache_data(ttl=3600, show_spinner=False, max_entries=256)
def _best_run(url: str, run_id: str, record_id: str) -> dict:
    return queries.best_run_record(archive(url).engine, run_id, record_id)


def best_run(run_id: str, record_id: str) -> dict:
    """A best-run record in full (JSON form): seeds, histories, reward components."""
    return _best_run(archive_url(), run_id, record_id)


@st.cache_data(ttl=FRESH_FOR, show_spinner=False, max_entries=256)
def _run_config(url: str, run_id: str) -> dict:
    latest = archive(url).load_dict(run_id)
    return {f"config.{k}": v for k, v in (latest["run_config"] or {}).items()} | {
        "slots": ", ".join(latest["slot_ids"] or []),
        "envs": len(latest["envs"]),
        "max_epochs": latest["max_epochs"],
    }


def run_config(run_id: str) -> dict:
    """The run's configuration as shown side by side on the Compare page."""
    return _run_config(archive_url(), run_id)


@st.cache_data(ttl=FRESH_FOR, show_spinner=False, max_entries=64)
def cohort_statistics(
    outcomes: pd.DataFrame, metric: str, baseline: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cohort summary and pairwise comparisons (``sanctum_store.stats``) of one outcome,
    ``b − a`` or, with ``baseline``, cohort − baseline. ``outcomes`` has a ``cohort`` column and
    the runs' ``reward_mode``: the outcome's direction and reward dependence come from
    ``sanctum_store.metrics``, and a reward-based outcome is not compared across reward modes.
    Cached: the bootstrap takes a moment."""
    from sanctum_store import metrics, stats

    declared = metrics.outcome(metric)
    outcomes = outcomes.assign(cohort=charts.labels(outcomes["cohort"]))
    return (
        stats.describe_cohorts(outcomes, "cohort", metric),
        # The default resamples, as the CLI and README's recipe: the same intervals everywhere.
        stats.compare_cohorts(
            outcomes,
            "cohort",
            metric,
            baseline=baseline,
            direction=declared.direction,
            reward_based=declared.reward_based,
        ),
    )


@st.cache_data(ttl=FRESH_FOR, show_spinner=False, max_entries=64)
def _experiment(url: str, settings: dict[str, Any]):
    from sanctum_store import experiments

    return experiments.evaluate(archive(url).engine, **settings)


def experiment(**settings: Any):
    """``sanctum_store.experiments.evaluate`` of the open archive, its settings as given (the
    CLI's ``verdict`` takes the same, so page and CLI show the same numbers). Cached: the
    bootstrap takes a moment on many runs."""
    return _experiment(archive_url(), settings)


@st.cache_data(ttl=FRESH_FOR, show_spinner=False)
def _saved_names(url: str) -> list[str]:
    from sanctum_store import saved_experiments

    return saved_experiments.names(archive(url).engine)


def saved_experiment_names() -> list[str]:
    """The experiments saved in the archive (``sanctum-store verdict --save NAME``)."""
    return _saved_names(archive_url())


@st.cache_data(ttl=FRESH_FOR, show_spinner=False, max_entries=16)
def _saved_experiment(url: str, name: str):
    from sanctum_store import saved_experiments

    return saved_experiments.evaluate(archive(url).engine, name)


def saved_experiment(name: str):
    """A saved experiment (its definition and every version) and its evaluation on the runs
    the archive holds now: what ``sanctum-store verdict --experiment NAME`` prints."""
    return _saved_experiment(archive_url(), name)


def cohort_domain(attribute: str) -> list[str]:
    """Every value ``attribute`` takes across the archive's runs (as text, sorted): the order
    cohorts take the palette's colours in, so a cohort has one colour on every page."""
    return sorted(set(charts.labels(run_outcomes()[attribute])))


@st.cache_data(ttl=300, show_spinner=False)
def _schema_overview(url: str) -> pd.DataFrame:
    from sanctum_store import sql

    return sql.schema_overview(url)


def schema_overview() -> pd.DataFrame:
    """Tables and views with their columns, for the SQL page's schema browser."""
    return _schema_overview(archive_url())


#: Whole-archive pages (lifecycle, attribution, decisions) look at this many recent runs by
#: default: decision and attribution questions read every observation, which on a 10,000-run
#: archive takes many seconds; seed questions read the seeds the archive keeps, but first derive
#: those of runs not derived yet (an archive upgraded from an earlier schema: every run).
RECENT_RUNS = 200


def scope_filter(choice: str) -> dict[str, Any]:
    """Run filters for a page's scope picker (see :func:`scope_picker`)."""
    if choice == "all runs":
        return {}
    ids = run_index(limit=RECENT_RUNS)["run_id"].tolist()
    return {"run_id": ids}


def scope_picker(column, key: str) -> dict[str, Any]:
    """A "which runs" picker: the recent runs (fast) or all runs; returns the run filters."""
    total = count_runs()
    options = (
        ["all runs"] if total <= RECENT_RUNS else [f"{RECENT_RUNS} most recent runs", "all runs"]
    )
    choice = column.selectbox(
        "Runs", options, key=key, help=f"{total} runs in the archive; all of them may take a while."
    )
    return scope_filter(choice)
