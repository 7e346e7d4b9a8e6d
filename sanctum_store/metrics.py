"""What each run outcome means: which way is better, whether it depends on the reward
definition, its range, and its form per episode (the end-of-episode curve).

No package imports: the queries, the statistics, the CLI and the explorer all read it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Directions an outcome can have. ``tradeoff``: neither end is better (more growth buys
#: accuracy with parameters), so a comparison reports the difference and names no winner.
DIRECTIONS = ("higher", "lower", "tradeoff")


@dataclass(frozen=True)
class Outcome:
    """One run-level outcome of ``queries.run_outcomes``."""

    name: str
    direction: str
    #: Computed from the reward: runs with different reward modes measure different things,
    #: so it is never compared across them.
    reward_based: bool
    #: ``(lo, hi)``; ``None`` for an open end.
    domain: tuple[float | None, float | None]
    #: The same outcome for each episode (``queries.episode_outcomes``; ``fossilize_rate`` is
    #: computed from an episode's ``fossilized`` and ``pruned``): the end-of-episode curve.
    episode: str

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")


OUTCOMES: dict[str, Outcome] = {
    o.name: o
    for o in (
        Outcome("final_accuracy", "higher", False, (0.0, 100.0), "final_accuracy"),
        Outcome("peak_accuracy", "higher", False, (0.0, 100.0), "peak_accuracy"),
        Outcome("mean_reward", "higher", True, (None, None), "episode_reward"),
        Outcome("growth_ratio", "tradeoff", False, (1.0, None), "growth_ratio"),
        # Fossilizing a seed keeps its parameters: more growth, the same trade-off as growth
        # ratio. Per episode: its fossilized / (fossilized + pruned) seeds.
        Outcome("fossilize_rate", "tradeoff", False, (0.0, 1.0), "fossilize_rate"),
    )
}


def outcome(name: str) -> Outcome:
    """The declaration of outcome ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return OUTCOMES[name]
    except KeyError:
        raise ValueError(f"unknown outcome {name!r} (known: {', '.join(OUTCOMES)})") from None
