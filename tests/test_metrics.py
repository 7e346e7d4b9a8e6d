"""Each run outcome declares its direction, reward dependence, range and curve."""

from __future__ import annotations

import pytest

from sanctum_store import metrics, queries


def test_every_outcome_of_run_outcomes_is_declared_and_only_those():
    names = ("final_accuracy", "peak_accuracy", "mean_reward", "growth_ratio", "fossilize_rate")
    assert names == queries.OUTCOME_METRICS == tuple(metrics.OUTCOMES)
    assert {o.direction for o in metrics.OUTCOMES.values()} <= set(metrics.DIRECTIONS)


def test_declarations_say_what_the_issue_asked():
    o = metrics.OUTCOMES
    assert [name for name, d in o.items() if d.reward_based] == ["mean_reward"]
    assert o["growth_ratio"].direction == "tradeoff"
    assert o["final_accuracy"].direction == o["peak_accuracy"].direction == "higher"
    assert o["final_accuracy"].domain == (0.0, 100.0) and o["growth_ratio"].domain == (1.0, None)
    assert o["fossilize_rate"].domain == (0.0, 1.0)


def test_each_outcome_has_its_episode_form_for_the_curves():
    episodes = {name: d.episode for name, d in metrics.OUTCOMES.items()}
    assert episodes == {
        "final_accuracy": "final_accuracy",
        "peak_accuracy": "peak_accuracy",
        "mean_reward": "episode_reward",
        "growth_ratio": "growth_ratio",
        "fossilize_rate": "fossilize_rate",
    }
    assert set(episodes.values()) <= set(queries.EPISODE_METRICS)


def test_unknown_outcomes_and_directions_are_refused():
    with pytest.raises(ValueError, match="unknown outcome 'loss'"):
        metrics.outcome("loss")
    with pytest.raises(ValueError, match="direction must be one of"):
        metrics.Outcome("x", "up", False, (None, None), "x")
