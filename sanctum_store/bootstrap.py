"""The stratified bootstrap behind experiment verdicts (:mod:`sanctum_store.experiments`).

A cohort's runs are grouped by stratum (task); a resample draws, within each stratum, as many
runs as it holds, with replacement. Resamples are kept as counts of each run over the cohort's
outcomes in value order, so that every statistic of thousands of resamples is a few array
operations: the mean a product, the median and the interquartile mean (IQM, as
``scipy.stats.trim_mean(x, 0.25)``, rliable's) and the fraction above a threshold read from the
counts' running sum, the probability of improvement (rliable's: Mann-Whitney U / (n·m) within
each stratum, ties counting half, averaged over strata) from where the baseline's outcomes fall
among the cohort's. Each set of resamples draws from its own seeded stream.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import numbers

import numpy as np
import pandas as pd

# Bound on one bootstrap chunk's count matrix (elements), and the resamples a chunk draws of
# every cohort at once (fewer when a cohort has over CHUNK_ELEMENTS / CHUNK_ROWS runs).
CHUNK_ELEMENTS = 2_000_000
CHUNK_ROWS = 200


def sort_key(label: object) -> tuple:
    """Cohort and stratum labels in order: numbers (numpy's too) first, by value, then text."""
    if isinstance(label, numbers.Real) and not isinstance(label, (bool, np.bool_)):
        return (0, label, "")
    return (1, 0, str(label))


class Strata:
    """One cohort's finite outcomes, grouped by stratum, with a stratified bootstrap."""

    def __init__(self, runs: pd.DataFrame, strata: list | None = None):
        groups = dict(iter(runs.groupby("stratum", sort=True, dropna=False)["value"]))
        keys = sorted(groups, key=sort_key) if strata is None else strata
        self.values = [np.sort(groups[k].to_numpy(dtype=float)) for k in keys if k in groups]
        self.keys = [k for k in keys if k in groups]
        pooled = np.concatenate(self.values) if self.values else np.empty(0)
        self.order = np.argsort(pooled, kind="stable")
        self.sorted = pooled[self.order]
        self.n = int(pooled.size)

        # Where each stratum's runs (in its own value order) sit among all of them.
        position = np.empty(self.n, dtype=np.int64)
        position[self.order] = np.arange(self.n)
        bounds = np.cumsum([0, *(v.size for v in self.values)])
        self.columns = [position[lo:hi] for lo, hi in itertools.pairwise(bounds)]

    def counts(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``(size, n)`` counts of each run (in :attr:`sorted` order) in ``size`` resamples,
        each stratum's runs drawn from that stratum. Floats (exact: whole numbers far below
        2**53), so that the statistics below are BLAS products."""
        drawn = [rng.integers(0, c.size, size=(size, c.size)) for c in self.columns]
        if len(drawn) == 1:  # one stratum: its order is the cohort's
            draws = drawn[0]
        else:
            draws = np.concatenate([c[d] for c, d in zip(self.columns, drawn, strict=True)], axis=1)
        draws += (np.arange(size) * self.n)[:, None]
        counts = np.bincount(draws.ravel(), minlength=size * self.n).reshape(size, self.n)
        return counts.astype(np.float64)

    def ones(self) -> np.ndarray:
        return np.ones((1, self.n))

    def per_stratum(self, counts: np.ndarray) -> list[np.ndarray]:
        """The counts of each stratum's runs, in the stratum's value order."""
        if len(self.columns) == 1:  # one stratum: its order is the cohort's
            return [counts]
        return [counts[:, columns] for columns in self.columns]


def stream(root: tuple, *labels: object) -> np.random.Generator:
    digest = hashlib.blake2b(repr(labels).encode(), digest_size=8).digest()
    return np.random.default_rng([*root, int.from_bytes(digest, "little")])


def chunks(n_boot: int, n: int):
    step = max(1, CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_boot, step):
        yield min(step, n_boot - start)


def mean(v: np.ndarray, c: np.ndarray, upto: np.ndarray | None = None) -> np.ndarray:
    return c @ v / c[0].sum()


def iqm(v: np.ndarray, c: np.ndarray, upto: np.ndarray | None = None) -> np.ndarray:
    """The 25 %-trimmed mean of each resample (counts ``c`` over sorted ``v``; ``upto``: their
    running sum), cutting ``int(0.25 n)`` runs at each end as ``scipy.stats.trim_mean`` does."""
    n = int(c[0].sum())
    low = int(0.25 * n)
    high = n - low
    upto = np.cumsum(c, axis=1) if upto is None else upto
    overlap = np.minimum(upto, high) - np.maximum(upto - c, low)
    return np.maximum(overlap, 0, out=overlap) @ v / (high - low)


def median(v: np.ndarray, c: np.ndarray, upto: np.ndarray | None = None) -> np.ndarray:
    n = int(c[0].sum())
    upto = np.cumsum(c, axis=1) if upto is None else upto
    at = [v[np.argmax(upto > p, axis=1)] for p in {(n - 1) // 2, n // 2}]
    return sum(at) / len(at)


def above(upto: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """The fraction of each resample's runs above each τ (``at``: runs <= τ among the sorted
    values)."""
    below = np.where(at > 0, upto[:, np.maximum(at - 1, 0)], 0)
    return 1 - below / n


STATISTICS = {"mean": mean, "median": median, "iqm": iqm}


def interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    alpha = 1 - confidence
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def p_improvement(x: Strata, y: Strata, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """P(X > Y) per resample: within each stratum U / (n·m) from counts, ties half;
    averaged over the strata both cohorts hold (both built over the same strata)."""
    per_stratum = []
    strata = zip(x.values, y.values, x.per_stratum(cx), y.per_stratum(cy), strict=True)
    for xv, yv, cxs, cys in strata:
        upto = np.concatenate([np.zeros((cxs.shape[0], 1)), np.cumsum(cxs, axis=1)], axis=1)
        below = upto[:, np.searchsorted(xv, yv, "left")]
        at_or_below = upto[:, np.searchsorted(xv, yv, "right")]
        wins = (xv.size - at_or_below) + 0.5 * (at_or_below - below)
        per_stratum.append(np.einsum("ij,ij->i", wins, cys) / (xv.size * yv.size))
    return np.mean(per_stratum, axis=0)
