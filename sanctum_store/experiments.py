"""Experiment verdicts: should we keep this change? An answer that would survive review.

An experiment compares cohorts of runs (by reward mode, group, task, any RunConfig field) with a
baseline cohort on one outcome, and decides per cohort by rules declared before the data is seen.
The method is the RL-evaluation literature's (Agarwal et al. 2021, the rliable library; Colas et
al. 2019), and esper's own plans ask for it:

* The unit is the **run**: each run gives one outcome (its run-level outcome, or an episode
  outcome averaged over its last K batches). Envs and episodes are never counted as samples.
* **Interval estimates**: each cohort's mean, median and interquartile mean (IQM: the mean of
  the middle 50 % of runs, ``scipy.stats.trim_mean(x, 0.25)``, as rliable) with 95 %
  percentile-bootstrap intervals, runs resampled within each stratum (task): the **stratified
  bootstrap**. Every bootstrap is seeded, per cohort label, so results reproduce exactly and
  adding a cohort leaves the others' unchanged.
* **Comparisons with the baseline**: the difference in IQM and in mean, each with its
  stratified-bootstrap interval (the two cohorts resampled independently); the **probability of
  improvement** P(cohort > baseline) as rliable defines it (Mann-Whitney U / (n·m) within each
  stratum, ties counting half, averaged over strata) with its interval; Welch's t-test, or with
  **pairing** by seed (``RunConfig.seed``, within a stratum) the paired mean difference (mean of
  the pair differences, pairs resampled) and the Wilcoxon signed-rank test; Hedges' g;
  Holm-adjusted p-values across cohorts; and the **minimum detectable effect** at 80 % power for
  the present N and spread, so "not significant" is told apart from "can't tell".
* **Evidence integrity**: runs the confounder ledger names (:mod:`.queries.confounders`:
  rollbacks, NaN/Inf gradients, entropy collapse, anomaly events, a crashed or incomplete run)
  or that have no outcome are excluded by default, listed with their reasons; the result the
  other way is kept beside (``Evaluation.sensitivity``).
* **Preregistered decision** per cohort, from the interval of its improvement over the baseline
  (the paired mean difference when paired, else the IQM difference; sign-flipped for an outcome
  where lower is better) against the declared minimum effect δ: ``CONTINUE`` (interval entirely
  above δ), ``STOP`` (entirely below: the change does not deliver the declared effect),
  ``REVISE`` (it straddles δ), ``BLOCKED`` (too few clean runs or pairs, confounded runs
  included, or an outcome the cohorts' reward definitions make incomparable): then no other
  outcome is stated.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from sanctum_store import metrics, queries
from sanctum_store.bootstrap import (
    CHUNK_ELEMENTS,
    CHUNK_ROWS,
    STATISTICS,
    Strata,
    above,
    chunks,
    interval,
    iqm,
    mean,
    p_improvement,
    sort_key,
    stream,
)
from sanctum_store.stats import holm

DECISIONS = ("CONTINUE", "STOP", "REVISE", "BLOCKED")
POWER = 0.8
#: Points of a performance profile's threshold grid.
PROFILE_POINTS = 51
#: Resamples per batch for a sample-efficiency curve's band (at most ``n_boot``).
CURVE_BOOT = 1_000

COHORT_COLUMNS = (
    "cohort",
    "n",
    "n_excluded",
    "mean",
    "mean_ci_low",
    "mean_ci_high",
    "median",
    "median_ci_low",
    "median_ci_high",
    "iqm",
    "iqm_ci_low",
    "iqm_ci_high",
)
COMPARISON_COLUMNS = (
    "cohort",
    "baseline",
    "n",
    "n_baseline",
    "paired",
    "n_pairs",
    "diff_iqm",
    "diff_iqm_ci_low",
    "diff_iqm_ci_high",
    "diff_mean",
    "diff_mean_ci_low",
    "diff_mean_ci_high",
    "p_improvement",
    "p_improvement_ci_low",
    "p_improvement_ci_high",
    "test",
    "p_value",
    "p_adjusted",
    "hedges_g",
    "mde",
)
DECISION_COLUMNS = ("cohort", "decision", "reason")
EXCLUDED_COLUMNS = ("run_id", "cohort", "reasons")
PROFILE_COLUMNS = ("cohort", "tau", "fraction", "ci_low", "ci_high")
CURVE_COLUMNS = ("cohort", "batch", "n", "iqm", "ci_low", "ci_high")
#: What :func:`evaluate_frame` reads, one row per run.
RUN_FRAME_COLUMNS = ("run_id", "cohort", "stratum", "pair_key", "value", "reward_mode")
#: The stratum of runs that have no value of the stratifying attribute.
NO_STRATUM = "(none)"
RUNS_COLUMNS = ("run_id", "cohort", "stratum", "value", "used", "pair")


@dataclass(frozen=True)
class Thresholds:
    """The rules an experiment declares before it is evaluated."""

    min_effect: float = 0.0
    confidence: float = 0.95
    min_runs: int = 5
    min_pairs: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, got {self.confidence}")
        if self.min_runs < 2 or self.min_pairs < 2:
            raise ValueError("min_runs and min_pairs must be at least 2")
        if not math.isfinite(self.min_effect):
            raise ValueError(f"min_effect must be a finite number, got {self.min_effect}")


@dataclass
class Evaluation:
    """An experiment's result: its tables (columns: the ``*_COLUMNS`` above)."""

    decisions: pd.DataFrame
    cohorts: pd.DataFrame
    comparisons: pd.DataFrame
    excluded: pd.DataFrame
    profiles: pd.DataFrame
    curves: pd.DataFrame
    #: Comparisons and decisions the other way: confounded runs included when they were
    #: excluded, and the reverse (columns: :data:`COMPARISON_COLUMNS`, then ``decision``).
    sensitivity: pd.DataFrame
    #: Every run considered (:data:`RUNS_COLUMNS`): ``used`` when its outcome counts, ``pair``
    #: (``stratum/seed``) when it pairs with a baseline run.
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    settings: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "decisions": self.decisions,
            "cohorts": self.cohorts,
            "comparisons": self.comparisons,
            "excluded": self.excluded,
            "profiles": self.profiles,
            "curves": self.curves,
            "sensitivity": self.sensitivity,
            "runs": self.runs,
        }

    def to_json(self) -> str:
        """The tables as JSON records under their names (NaN as null), and the settings."""

        def records(df: pd.DataFrame) -> list:
            return json.loads(df.to_json(orient="records", double_precision=15))

        settings = {
            k: dataclasses.asdict(v) if k == "thresholds" else v for k, v in self.settings.items()
        }
        tables = {name: records(df) for name, df in self.tables().items()}
        return json.dumps({**tables, "settings": settings}, default=str, indent=1)

    def text(self) -> str:
        """The decisions first, each with the rule that produced it, then the tables."""
        lines = [f"{r.cohort}: {r.decision} ({r.reason})" for r in self.decisions.itertuples()]
        for title, df in (
            ("Cohorts", self.cohorts),
            ("Comparisons with the baseline", self.comparisons),
            ("Excluded runs", self.excluded),
        ):
            body = (
                df.to_string(index=False, float_format=lambda x: f"{x:.4g}") if len(df) else "none"
            )
            lines += ["", f"{title}:", body]
        return "\n".join(lines)


# --------------------------------------------------------------------------- the archive


def evaluate(
    source,
    *,
    by: str,
    baseline: object,
    metric: str,
    filters: Mapping | None = None,
    last_k: int | None = None,
    stratify: str = "auto",
    pair_by: str = "auto",
    min_effect: float = 0.0,
    confidence: float = 0.95,
    min_runs: int = 5,
    min_pairs: int | None = None,
    exclude_confounded: bool = True,
    n_boot: int = 10_000,
    seed: int = 0,
) -> Evaluation:
    """Evaluate an experiment on the archive's runs (see the module's doc for the method).

    ``by``: a cohort attribute (:data:`~sanctum_store.queries.COHORT_ATTRIBUTES`);
    ``baseline``: one of its values; ``metric``: a run outcome
    (:data:`~sanctum_store.metrics.OUTCOMES`), or with ``last_k`` its episode form averaged over
    each run's last ``last_k`` batches; ``filters``: the run filters of
    :func:`~sanctum_store.queries.list_runs`; ``stratify``: ``"auto"`` (by ``task_name`` when
    the runs hold more than one task), ``"none"`` or a cohort attribute; ``pair_by``:
    ``"auto"`` (by seed where at least ``min_pairs`` seeds repeat), ``"seed"`` or ``"none"``.
    """
    filters = dict(filters or {})
    outcome = _check(by, metric, last_k, stratify, pair_by)
    runs = queries.run_outcomes(source, **filters)
    per_batch = queries.run_episode_means(source, outcome.episode, **filters)
    if stratify == "auto":  # by task, unless the cohorts are tasks
        several = runs["task_name"].nunique(dropna=False) > 1
        stratify = "task_name" if several and by != "task_name" else "none"
    return evaluate_frame(
        _run_frame(runs, per_batch, by, metric, last_k, stratify, pair_by),
        baseline=baseline,
        direction=outcome.direction,
        reward_based=outcome.reward_based,
        confounders=queries.run_confounders(source, **filters),
        episodes=per_batch[["run_id", "batch", "value"]],
        pair_by=pair_by,
        thresholds=Thresholds(min_effect, confidence, min_runs, min_pairs or min_runs),
        exclude_confounded=exclude_confounded,
        n_boot=n_boot,
        seed=seed,
        settings={
            "by": by,
            "baseline": baseline,
            "metric": metric,
            "last_k": last_k,
            "stratify": stratify,
            "pair_by": pair_by,
            "filters": filters,
        },
    )


def _check(by: str, metric: str, last_k, stratify: str, pair_by: str) -> metrics.Outcome:
    """The outcome an experiment's settings name; ``ValueError`` naming a bad setting."""
    outcome = metrics.outcome(metric)
    if outcome.direction == "tradeoff":
        raise ValueError(
            f"{metric} is a trade-off (neither end is better): an experiment needs an outcome"
            " with a better direction"
        )
    for name, value in (("by", by), ("stratify", stratify)):
        if value not in queries.COHORT_ATTRIBUTES and not (
            name == "stratify" and value in ("auto", "none")
        ):
            raise ValueError(
                f"{name}={value!r} is not a cohort attribute"
                f" (choose one of {', '.join(queries.COHORT_ATTRIBUTES)})"
            )
    if stratify == by:
        raise ValueError(
            f"stratify={stratify!r} is the cohort attribute: the cohorts would share no stratum"
        )
    if pair_by not in ("auto", "seed", "none"):
        raise ValueError(f"pair_by must be auto, seed or none, got {pair_by!r}")
    if last_k is not None and last_k < 1:
        raise ValueError(f"last_k must be at least 1, got {last_k}")
    return outcome


def _run_frame(runs, per_batch, by, metric, last_k, stratify, pair_by) -> pd.DataFrame:
    """:data:`RUN_FRAME_COLUMNS` from the archive's run outcomes (and, with ``last_k``, each
    run's mean over its last ``last_k`` batches' end-of-episode outcomes)."""
    if last_k is None:
        value = runs[metric].astype(float)
    else:
        last = per_batch.sort_values(["run_id", "batch"]).groupby("run_id").tail(last_k)
        value = runs["run_id"].map(last.groupby("run_id")["value"].mean()).astype(float)
    return pd.DataFrame(
        {
            "run_id": runs["run_id"],
            "cohort": runs[by],
            "stratum": runs[stratify] if stratify != "none" else "all",
            "pair_key": runs["config_seed"] if pair_by != "none" else None,
            "value": value,
            "reward_mode": runs["reward_mode"],
        }
    )


# --------------------------------------------------------------------------- the method


def evaluate_frame(
    runs: pd.DataFrame,
    *,
    baseline: object,
    direction: str = "higher",
    reward_based: bool = False,
    confounders: pd.DataFrame | None = None,
    episodes: pd.DataFrame | None = None,
    pair_by: str = "auto",
    thresholds: Thresholds | None = None,
    exclude_confounded: bool = True,
    n_boot: int = 10_000,
    seed: int = 0,
    settings: dict | None = None,
) -> Evaluation:
    """:func:`evaluate` on a frame with one row per run (:data:`RUN_FRAME_COLUMNS`;
    ``pair_key`` None where a run pairs with none), ``confounders`` its ledger (``run_id,
    reason``) and ``episodes`` its end-of-episode outcomes (``run_id, batch, value``)."""
    thresholds = thresholds or Thresholds()
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100, got {n_boot}")
    missing = [c for c in RUN_FRAME_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"the runs frame lacks the columns {missing}")
    # Runs without a stratum value form one stratum of their own (NaN would match no other).
    strata = runs["stratum"].astype(object)
    runs = runs.assign(stratum=strata.where(strata.notna(), NO_STRATUM))
    reasons = _reasons(runs, confounders)
    confounded_ids = {run_id for run_id, why in reasons.items() if why}
    unusable = runs["cohort"].isna() | ~np.isfinite(runs["value"].astype(float))
    labels = sorted(runs.loc[runs["cohort"].notna(), "cohort"].unique(), key=sort_key)
    if baseline not in labels:  # from a command line: the label that reads the same
        baseline = next((label for label in labels if str(label) == str(baseline)), baseline)
    if baseline not in labels:
        known = ", ".join(map(str, labels)) or "none"
        raise ValueError(f"baseline {baseline!r} is not a cohort (cohorts: {known})")
    study = _Study(
        labels, baseline, direction, reward_based, pair_by, thresholds, n_boot, (seed, n_boot)
    )
    usable = runs[~unusable]
    clean = usable[~usable["run_id"].isin(confounded_ids)]
    kept = clean if exclude_confounded else usable
    taus = _taus(kept)
    boots = _resampled(kept, study, taus)
    comparisons, decisions = _comparisons(
        study, kept, set() if exclude_confounded else confounded_ids, boots
    )
    if len(clean) < len(usable):
        other_kept = usable if exclude_confounded else clean
        other, other_decisions = _comparisons(
            study, other_kept, confounded_ids if exclude_confounded else set()
        )
    else:  # no usable run is confounded: the other way is the same
        other, other_decisions = comparisons.copy(), decisions
    other["decision"] = other_decisions["decision"].to_numpy()
    out = runs[~runs["run_id"].isin(kept["run_id"])]
    n_excluded = out.groupby("cohort").size()
    cohorts, profiles = _cohort_tables(boots, n_excluded, study, taus)
    excluded = [
        (r.run_id, r.cohort, "; ".join(_run_reasons(r, reasons)))
        for r in out.itertuples(index=False)
    ]
    curve_study = dataclasses.replace(study, n_boot=min(n_boot, CURVE_BOOT))
    return Evaluation(
        decisions=decisions,
        cohorts=cohorts,
        comparisons=comparisons,
        excluded=pd.DataFrame(excluded, columns=list(EXCLUDED_COLUMNS)),
        profiles=profiles,
        curves=_curves(kept, episodes, curve_study),
        sensitivity=other,
        runs=_runs_table(runs, kept, study),
        settings={
            **(settings or {}),
            "thresholds": thresholds,
            "exclude_confounded": exclude_confounded,
        },
    )


def _cohort_tables(boots: dict, n_excluded: pd.Series, study: _Study, taus) -> tuple:
    """The cohorts' table and their performance profiles."""
    described = [
        _describe(boots[label], label, int(n_excluded.get(label, 0)), study, taus)
        for label in study.labels
    ]
    profiles = [profile for _, profile in described if not profile.empty]
    return (
        pd.DataFrame([row for row, _ in described], columns=list(COHORT_COLUMNS)),
        pd.concat(profiles, ignore_index=True)
        if profiles
        else pd.DataFrame(columns=list(PROFILE_COLUMNS)),
    )


def _taus(kept: pd.DataFrame) -> np.ndarray:
    """The performance profiles' τ grid: spanning every cohort's outcomes."""
    values = kept["value"].to_numpy(dtype=float)
    return np.linspace(values.min(), values.max(), PROFILE_POINTS) if values.size else values


def _runs_table(runs: pd.DataFrame, kept: pd.DataFrame, study: _Study) -> pd.DataFrame:
    keys = kept[kept["pair_key"].notna()]
    key = keys["stratum"].astype(str) + "/" + keys["pair_key"].astype(str)
    in_base = set(key[keys["cohort"] == study.baseline])
    elsewhere = set(key[keys["cohort"] != study.baseline])
    paired = pd.Series(key.where(key.isin(in_base & elsewhere)), index=keys.index)
    return runs.assign(used=runs["run_id"].isin(kept["run_id"]), pair=paired)[list(RUNS_COLUMNS)]


@dataclass(frozen=True)
class _Study:
    """What every estimate of one evaluation shares."""

    labels: list
    baseline: object
    direction: str
    reward_based: bool
    pair_by: str
    thresholds: Thresholds
    n_boot: int
    root: tuple  # the bootstrap streams' seed


def _comparisons(study: _Study, kept: pd.DataFrame, confounded: set, boots=None) -> tuple:
    """Each cohort against the baseline over the runs ``kept`` (``confounded``: those of them
    the ledger names; ``boots``: their :func:`_resampled`): the comparison table,
    Holm-adjusted, and the decisions."""
    boots = boots or _resampled(kept, study, _taus(kept))
    rows, decisions = [], []
    base = kept[kept["cohort"] == study.baseline]
    for label in study.labels:
        if label == study.baseline:
            continue
        cohort = kept[kept["cohort"] == label]
        row = _compare(cohort, base, label, study, boots)
        included = int(pd.concat([cohort["run_id"], base["run_id"]]).isin(confounded).sum())
        decisions.append(_decide(row, cohort, base, study, included))
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    table["p_adjusted"] = holm(table["p_value"].to_numpy(dtype=float)) if rows else []
    return table, pd.DataFrame(decisions, columns=list(DECISION_COLUMNS))


def _reasons(runs: pd.DataFrame, confounders: pd.DataFrame | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if confounders is not None:
        for run_id, reason in confounders[["run_id", "reason"]].itertuples(index=False):
            out.setdefault(run_id, []).append(reason)
    return out


def _run_reasons(run, reasons: dict[str, list[str]]) -> list[str]:
    out = []
    if pd.isna(run.cohort):
        out.append("no cohort value")
    if not math.isfinite(float(run.value)):
        out.append("no finite outcome")
    return out + reasons.get(run.run_id, [])


# --------------------------------------------------------------------------- bootstrap


def _resampled(kept: pd.DataFrame, study: _Study, taus: np.ndarray) -> dict[object, dict]:
    """Every cohort's stratified bootstrap, drawn once from the cohort's own stream and shared
    by its estimates and its comparison: per cohort its ``strata`` and, per resample, its
    statistics (mean, median, iqm), its profile over ``taus`` and, when it holds the
    baseline's strata, ``p``: P(cohort > baseline)."""
    names = (*STATISTICS, "profile", "p")
    out = {}
    for label in study.labels:
        strata = Strata(kept[kept["cohort"] == label])
        at = np.searchsorted(strata.sorted, taus, "right")  # runs <= each tau
        out[label] = {"strata": strata, "at": at, **{name: [] for name in names}}
    base = out[study.baseline]["strata"]
    drawn = [label for label, e in out.items() if e["strata"].n > 1]
    rngs = {label: stream(study.root, "cohort", label) for label in drawn}
    largest = max((out[label]["strata"].n for label in drawn), default=1)
    rows = max(1, min(CHUNK_ROWS, CHUNK_ELEMENTS // largest))
    for start in range(0, study.n_boot if drawn else 0, rows):
        size = min(rows, study.n_boot - start)
        counts = {}
        for label in drawn:
            e = out[label]
            s, c = e["strata"], e["strata"].counts(size, rngs[label])
            upto = np.cumsum(c, axis=1)
            for name, statistic in STATISTICS.items():
                e[name].append(statistic(s.sorted, c, upto))
            e["profile"].append(above(upto, e["at"], s.n))
            counts[label] = c
        for label in drawn if study.baseline in counts else ():
            x = out[label]["strata"]
            if label != study.baseline and x.keys == base.keys:
                out[label]["p"].append(
                    p_improvement(x, base, counts[label], counts[study.baseline])
                )
    for e in out.values():
        for name in names:
            e[name] = np.concatenate(e[name]) if e[name] else None
    return out


def _describe(e: dict, label, n_excluded: int, study: _Study, taus: np.ndarray) -> tuple:
    """A cohort's row of :data:`COHORT_COLUMNS` and its performance profile over ``taus``
    (:data:`PROFILE_COLUMNS`), from its resamples (:func:`_resampled`)."""
    s = e["strata"]
    row = {"cohort": label, "n": s.n, "n_excluded": n_excluded}
    if s.n == 0:
        return row | dict.fromkeys(COHORT_COLUMNS[3:], math.nan), pd.DataFrame()
    ones = s.ones()
    for name, statistic in STATISTICS.items():
        row[name] = float(statistic(s.sorted, ones)[0])
        low, high = (
            interval(e[name], study.thresholds.confidence)
            if e[name] is not None
            else (math.nan, math.nan)
        )
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = low, high
    fraction = above(np.cumsum(ones, axis=1), e["at"], s.n)[0]
    profile = pd.DataFrame({"cohort": label, "tau": taus, "fraction": fraction})
    profile["ci_low"] = profile["ci_high"] = math.nan
    if e["profile"] is not None:
        alpha = 1 - study.thresholds.confidence
        bands = np.quantile(e["profile"], [alpha / 2, 1 - alpha / 2], axis=0)
        profile["ci_low"], profile["ci_high"] = bands
    return row, profile


# --------------------------------------------------------------------------- comparisons


def _pairs(cohort: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """``stratum, pair_key, x, y``: each key both cohorts hold (duplicates averaged)."""

    def keyed(runs):
        runs = runs[runs["pair_key"].notna()]
        return runs.groupby(["stratum", "pair_key"], dropna=False)["value"].mean()

    joined = pd.concat([keyed(cohort).rename("x"), keyed(base).rename("y")], axis=1, join="inner")
    return joined.reset_index()


def _compare(cohort, base, label, study: _Study, resampled: dict) -> dict:
    baseline, pair_by, thresholds = study.baseline, study.pair_by, study.thresholds
    n_boot, root = study.n_boot, study.root
    shared = sorted(set(cohort["stratum"]) & set(base["stratum"]), key=sort_key)
    x = Strata(cohort[cohort["stratum"].isin(shared)], shared)
    y = Strata(base[base["stratum"].isin(shared)], shared)
    pairs = _pairs(cohort, base)
    paired = pair_by == "seed" or (pair_by == "auto" and len(pairs) >= thresholds.min_pairs)
    row = dict.fromkeys(COMPARISON_COLUMNS, math.nan)
    row.update(
        cohort=label, baseline=baseline, n=x.n, n_baseline=y.n, paired=paired, n_pairs=len(pairs)
    )
    if x.n == 0 or y.n == 0:
        row["test"] = "none"
        return row
    ones_x, ones_y = x.ones(), y.ones()
    row["diff_iqm"] = float(iqm(x.sorted, ones_x)[0] - iqm(y.sorted, ones_y)[0])
    row["p_improvement"] = float(p_improvement(x, y, x.ones(), y.ones())[0])
    diffs = _differences(x, y, label, study, resampled)
    for name, column in (("iqm", "diff_iqm"), ("p", "p_improvement")):
        if diffs[name] is not None:
            row[f"{column}_ci_low"], row[f"{column}_ci_high"] = interval(
                diffs[name], thresholds.confidence
            )
    xs, ys = np.concatenate(x.values), np.concatenate(y.values)
    row["hedges_g"] = _hedges_g(xs, ys)
    if paired:
        row.update(_paired(pairs, thresholds, n_boot, stream(root, "pairs", label, baseline)))
    else:
        row["diff_mean"] = float(xs.mean() - ys.mean())
        if diffs["mean"] is not None:
            row["diff_mean_ci_low"], row["diff_mean_ci_high"] = interval(
                diffs["mean"], thresholds.confidence
            )
        row.update(_welch(xs, ys, thresholds.confidence))
    return row


def _differences(x: Strata, y: Strata, label, study: _Study, resampled: dict) -> dict:
    """Per resample, cohort minus baseline in IQM and mean, and P(cohort > baseline): from
    the cohorts' own resamples when the two hold the same strata, else drawn over the strata
    they share (None where either has fewer than two runs)."""
    ex, ey = resampled[label], resampled[study.baseline]
    if x.n < 2 or y.n < 2:
        return dict.fromkeys(("iqm", "mean", "p"))
    if ex["strata"].keys == ey["strata"].keys:
        return {"iqm": ex["iqm"] - ey["iqm"], "mean": ex["mean"] - ey["mean"], "p": ex["p"]}
    out: dict[str, list] = {"iqm": [], "mean": [], "p": []}
    rng = stream(study.root, "compare", label, study.baseline)
    for size in chunks(study.n_boot, x.n + y.n):
        cx, cy = x.counts(size, rng), y.counts(size, rng)
        out["iqm"].append(iqm(x.sorted, cx) - iqm(y.sorted, cy))
        out["mean"].append(mean(x.sorted, cx) - mean(y.sorted, cy))
        out["p"].append(p_improvement(x, y, cx, cy))
    return {name: np.concatenate(values) for name, values in out.items()}


def _paired(pairs: pd.DataFrame, thresholds: Thresholds, n_boot: int, rng) -> dict:
    out = {"test": "wilcoxon", "p_value": math.nan, "mde": math.nan}
    if pairs.empty:
        return out
    d = (pairs["x"] - pairs["y"]).to_numpy(dtype=float)
    out["diff_mean"] = float(d.mean())
    strata = Strata(pairs.assign(value=d))
    if d.size > 1:
        boots = [mean(strata.sorted, strata.counts(size, rng)) for size in chunks(n_boot, d.size)]
        out["diff_mean_ci_low"], out["diff_mean_ci_high"] = interval(
            np.concatenate(boots), thresholds.confidence
        )
        if np.any(d != 0):
            out["p_value"] = float(sps.wilcoxon(d).pvalue)
        sd = float(d.std(ddof=1))
        df = d.size - 1
        out["mde"] = _mde(sd / math.sqrt(d.size), df, thresholds.confidence)
    return out


def _welch(x: np.ndarray, y: np.ndarray, confidence: float) -> dict:
    out = {"test": "welch", "p_value": math.nan, "mde": math.nan}
    if x.size < 2 or y.size < 2:
        return out
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    if se == 0:
        return out
    out["p_value"] = float(sps.ttest_ind(x, y, equal_var=False).pvalue)
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    out["mde"] = _mde(se, df, confidence)
    return out


def _mde(se: float, df: float, confidence: float) -> float:
    """The smallest true difference a two-sided test at ``1 - confidence`` detects with 80 %
    power, given the standard error ``se`` of the difference (t approximation)."""
    if not se > 0:
        return math.nan
    return float((sps.t.ppf(1 - (1 - confidence) / 2, df) + sps.t.ppf(POWER, df)) * se)


def _hedges_g(x: np.ndarray, y: np.ndarray) -> float:
    nx, ny = x.size, y.size
    if nx < 2 or ny < 2:
        return math.nan
    pooled = math.sqrt(((nx - 1) * x.var(ddof=1) + (ny - 1) * y.var(ddof=1)) / (nx + ny - 2))
    if pooled == 0:
        return math.nan
    return float((1 - 3 / (4 * (nx + ny) - 9)) * (x.mean() - y.mean()) / pooled)


# --------------------------------------------------------------------------- decisions


def _decide(row, cohort, base, study: _Study, confounded_included: int) -> tuple:
    label, baseline, thresholds = row["cohort"], row["baseline"], study.thresholds
    blocked = []
    if study.reward_based:
        modes = set(cohort["reward_mode"].dropna()) | set(base["reward_mode"].dropna())
        if len(modes) != 1:
            blocked.append(
                "the outcome is reward-based and the cohorts' reward definitions differ"
                f" ({', '.join(sorted(map(str, modes))) or 'unknown'})"
            )
    shared = set(cohort["stratum"]) & set(base["stratum"])
    if len(cohort) and len(base) and not shared:
        blocked.append(f"{label} and {baseline} share no stratum: nothing to compare within")
    for name, n in ((label, len(cohort)), (baseline, len(base))):
        if n < thresholds.min_runs:
            blocked.append(
                f"{name} has {n} clean runs, fewer than min_runs = {thresholds.min_runs}"
            )
    if row["paired"] and row["n_pairs"] < thresholds.min_pairs:
        blocked.append(f"{row['n_pairs']} pairs, fewer than min_pairs = {thresholds.min_pairs}")
    if confounded_included:
        blocked.append(f"{confounded_included} confounded runs are included")
    effect, low, high, what = _effect(row, study.direction)
    if not blocked and not (math.isfinite(low) and math.isfinite(high)):
        blocked.append(f"no interval for the {what}")
    left_out = [
        f"{len(runs) - int(runs['stratum'].isin(shared).sum())} runs of {name}"
        for name, runs in ((label, cohort), (baseline, base))
        if not runs["stratum"].isin(shared).all()
    ]
    note = f" (within the strata both hold: {' and '.join(left_out)} left out)"
    note = note if left_out and shared else ""
    if blocked:
        return label, "BLOCKED", "; ".join(blocked)
    level = f"{thresholds.confidence * 100:g}% CI"
    delta = thresholds.min_effect
    stated = f"{what} {effect:+.4g} ({level} {low:+.4g} to {high:+.4g})"
    if low > delta:
        return label, "CONTINUE", f"{stated} is entirely above δ = {delta:g}{note}"
    if high < delta:
        return label, "STOP", f"{stated} is entirely below δ = {delta:g}{note}"
    return label, "REVISE", f"{stated} straddles δ = {delta:g}{note}"


def _effect(row: dict, direction: str) -> tuple[float, float, float, str]:
    """The improvement a decision rests on: ``(estimate, low, high, what)``."""
    if row["paired"]:
        names, what = (
            ("diff_mean", "diff_mean_ci_low", "diff_mean_ci_high"),
            "paired mean improvement",
        )
    else:
        names, what = ("diff_iqm", "diff_iqm_ci_low", "diff_iqm_ci_high"), "IQM improvement"
    effect, low, high = (float(row[n]) for n in names)
    if direction == "lower":
        effect, low, high = -effect, -high, -low
    return effect, low, high, what


# --------------------------------------------------------------------------- charts


def _curves(kept: pd.DataFrame, episodes: pd.DataFrame | None, study: _Study) -> pd.DataFrame:
    """Sample efficiency: per cohort and batch, the IQM over runs of each run's end-of-episode
    outcome in that batch (mean over its envs), with its stratified-bootstrap band."""
    if episodes is None or episodes.empty:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    joined = episodes.merge(kept[["run_id", "cohort", "stratum"]], on="run_id")
    joined = joined[np.isfinite(joined["value"].astype(float))]
    rows = []
    for (label, batch), runs in joined.groupby(["cohort", "batch"], sort=False):
        if len(runs) == 1:  # one run got this far (a long run's late batches): no band
            rows.append((label, int(batch), 1, float(runs["value"].iloc[0]), math.nan, math.nan))
            continue
        s = Strata(runs)
        rng = stream(study.root, "curve", label, int(batch))
        boots = (
            [iqm(s.sorted, s.counts(size, rng)) for size in chunks(study.n_boot, s.n)]
            if s.n > 1
            else []
        )
        low, high = (
            interval(np.concatenate(boots), study.thresholds.confidence)
            if boots
            else (math.nan, math.nan)
        )
        rows.append((label, int(batch), s.n, float(iqm(s.sorted, s.ones())[0]), low, high))
    out = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    order = {label: i for i, label in enumerate(study.labels)}
    return out.sort_values(
        ["cohort", "batch"],
        key=lambda c: c.map(order) if c.name == "cohort" else c,
        ignore_index=True,
    )
