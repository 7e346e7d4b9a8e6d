"""How often an experiment's decision is right: seeded studies with a planted effect.

    python bench/verdicts.py [--studies 400] [--n-boot 2000]

Each study draws two cohorts of runs (outcomes normal, spread 2 accuracy points) with a planted
difference, and decides with ``experiments.evaluate_frame`` (min_effect 0, 95 % CI, min_runs 5,
unpaired). Printed per planted effect and N: how often each decision came out. Targets: with no
effect, CONTINUE in at most ~5 % of studies (it needs the CI entirely above 0: about 2.5 %
expected); BLOCKED whenever N is below min_runs; with a large effect at N = 20, CONTINUE in
nearly every study.
"""

from __future__ import annotations

import argparse
import collections
import sys

import numpy as np
import pandas as pd

from sanctum_store.experiments import DECISIONS, Thresholds, evaluate_frame

SPREAD = 2.0


def study(rng: np.random.Generator, effect: float, n: int, n_boot: int, seed: int) -> str:
    rows = [
        (f"{label}-{i}", label, "all", None, value, "shaped")
        for label, center in (("base", 70.0), ("new", 70.0 + effect))
        for i, value in enumerate(rng.normal(center, SPREAD, n))
    ]
    runs = pd.DataFrame(
        rows, columns=["run_id", "cohort", "stratum", "pair_key", "value", "reward_mode"]
    )
    result = evaluate_frame(
        runs,
        baseline="base",
        pair_by="none",
        thresholds=Thresholds(min_runs=5),
        n_boot=n_boot,
        seed=seed,
    )
    return result.decisions.loc[0, "decision"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'effect':>7} {'N':>4}  " + "  ".join(f"{d:>9}" for d in DECISIONS) + "  target")
    for effect, n, target in (
        (0.0, 10, "CONTINUE <= 5 %"),
        (0.0, 30, "CONTINUE <= 5 %"),
        (-2.0, 20, "CONTINUE never"),
        (1.0, 10, "(information)"),
        (3.0, 20, "CONTINUE ~ always"),
        (3.0, 3, "BLOCKED always"),
    ):
        rng = np.random.default_rng([round(abs(effect) * 100), n, int(effect < 0)])
        said = collections.Counter(
            study(rng, effect, n, args.n_boot, seed) for seed in range(args.studies)
        )
        shares = "  ".join(f"{said[d] / args.studies:>8.1%}" for d in DECISIONS)
        print(f"{effect:>+7.1f} {n:>4}  {shares}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
