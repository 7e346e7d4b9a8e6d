"""The Sanctum snapshot schema: dataclasses and utilities.

A faithful implementation of ``shared/spec/schema_reference.md`` (esper-lite's
``esper.karn.sanctum.schema``). Field names, annotations and defaults are the contract with the
training framework; the archive stores and restores exactly these objects.

Conventions kept from the original:

* accuracies are percentages (0-100);
* ``deque(maxlen=N)`` fields keep the last N values;
* per-head fields exist once per action head in :data:`HEADS`;
* ``TamiyoState._previous_risk`` (the hysteresis state of :func:`compute_collapse_risk`) is a
  per-instance field, as in esper: its snapshots carry it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

import numpy as np

from sanctum_store.trends import (  # noqa: F401  (the schema module's API, as in esper)
    TREND_THRESHOLDS,
    TREND_WINDOW,
    compute_collapse_risk,
    compute_correlation,
    compute_entropy_velocity,
    detect_trend,
    make_sparkline,
    trend_to_indicator,
)

#: The eight factored action heads of the Tamiyo policy, in the policy's order.
HEADS: tuple[str, ...] = (
    "slot",
    "blueprint",
    "style",
    "tempo",
    "alpha_target",
    "alpha_speed",
    "alpha_curve",
    "op",
)

#: Base operations a factored action normalizes to (``GERMINATE_CONV_LIGHT`` -> ``GERMINATE``).
BASE_ACTIONS: tuple[str, ...] = (
    "WAIT",
    "GERMINATE",
    "SET_ALPHA_TARGET",
    "PRUNE",
    "FOSSILIZE",
    "ADVANCE",
)

#: Seed stages that count as contributing to the host when an env reaches a new accuracy peak.
CONTRIBUTING_STAGES: frozenset[str] = frozenset({"FOSSILIZED", "HOLDING", "BLENDING"})


def _head_latches() -> dict[str, bool]:
    return dict.fromkeys(HEADS, False)


def _action_counts() -> dict[str, int]:
    return dict.fromkeys(BASE_ACTIONS, 0)


def _history(maxlen: int):
    return field(default_factory=lambda: deque(maxlen=maxlen))


# --------------------------------------------------------------------------------------------
# Leaf records
# --------------------------------------------------------------------------------------------


@dataclass
class GPUStats:
    """Per-GPU statistics for multi-GPU support."""

    device_id: int = 0
    memory_used_gb: float = 0.0
    memory_total_gb: float = 0.0
    utilization: float = 0.0
    temperature: float = 0.0


@dataclass
class SystemVitals:
    """System resource metrics: GPU, RAM, throughput."""

    #: Fraction of a device's memory in use above which it raises an alarm.
    MEMORY_ALARM_THRESHOLD: ClassVar[float] = 0.90

    gpu_stats: dict[int, GPUStats] = field(default_factory=dict)
    gpu_memory_used_gb: float = 0.0
    gpu_memory_total_gb: float = 0.0
    gpu_utilization: float = 0.0
    gpu_temperature: float = 0.0
    cpu_percent: float | None = 0.0
    ram_used_gb: float | None = 0.0
    ram_total_gb: float | None = 0.0
    epochs_per_second: float = 0.0
    batches_per_hour: float = 0.0
    host_params: int = 0

    @property
    def memory_alarm_devices(self) -> list[str]:
        """Devices above 90 % memory use: ``"RAM"``, then ``"cuda:<key>"`` for each alarming
        entry of ``gpu_stats`` (named by its key, which is what the table is indexed by; the
        entry's ``device_id`` defaults to 0 and may not be filled in). Without ``gpu_stats`` the
        single-GPU convenience fields stand for ``cuda:0``. A device with no known total never
        alarms."""
        devices = []
        if self._over_threshold(self.ram_used_gb, self.ram_total_gb):
            devices.append("RAM")
        gpus = self.gpu_stats or {0: GPUStats(0, self.gpu_memory_used_gb, self.gpu_memory_total_gb)}
        devices += [
            f"cuda:{key}"
            for key, gpu in gpus.items()
            if self._over_threshold(gpu.memory_used_gb, gpu.memory_total_gb)
        ]
        return devices

    @classmethod
    def _over_threshold(cls, used: float | None, total: float | None) -> bool:
        if used is None or not total or total <= 0:
            return False
        return used / total > cls.MEMORY_ALARM_THRESHOLD

    @property
    def has_memory_alarm(self) -> bool:
        """True if any device uses more than 90 % of its memory."""
        return bool(self.memory_alarm_devices)


@dataclass
class RunConfig:
    """Training run configuration captured at TRAINING_STARTED."""

    seed: int | None = None
    n_episodes: int = 0
    lr: float = 0.0
    clip_ratio: float = 0.2
    entropy_coef: float = 0.01
    param_budget: int = 0
    resume_path: str = ""
    entropy_anneal: dict[str, float] = field(default_factory=dict)


@dataclass
class RewardComponents:
    """Esper-specific reward signal breakdown."""

    total: float = 0.0
    base_acc_delta: float = 0.0
    bounded_attribution: float = 0.0
    seed_contribution: float = 0.0
    compute_rent: float = 0.0
    alpha_shock: float = 0.0
    ratio_penalty: float = 0.0
    stage_bonus: float = 0.0
    fossilize_terminal_bonus: float = 0.0
    blending_warning: float = 0.0
    holding_warning: float = 0.0
    hindsight_credit: float = 0.0
    scaffold_count: int = 0
    avg_scaffold_delay: float = 0.0
    env_id: int = 0
    val_acc: float = 0.0
    last_action: str = ""


@dataclass
class ShapleyEstimate:
    """Shapley value estimate for a single slot."""

    mean: float = 0.0
    std: float = 0.0
    n_samples: int = 0


@dataclass
class ShapleySnapshot:
    """Shapley value attribution for all slots (permutation sampling at episode boundaries)."""

    slot_ids: tuple[str, ...] = ()
    values: dict[str, ShapleyEstimate] = field(default_factory=dict)
    epoch: int = 0
    timestamp: datetime | None = None

    def get_mean(self, slot_id: str) -> float:
        """Mean Shapley value of a slot; 0.0 for a slot without an estimate."""
        estimate = self.values.get(slot_id)
        return estimate.mean if estimate is not None else 0.0

    def get_significance(self, slot_id: str, z: float = 1.96) -> bool:
        """True if the slot's confidence interval ``mean ± z·std`` excludes zero.

        ``std`` is the uncertainty of the estimate itself (as esper reports it), so the interval
        is ``mean ± z·std``. A slot without an estimate, or with a NaN mean, is not significant.
        """
        estimate = self.values.get(slot_id)
        if estimate is None or math.isnan(estimate.mean) or math.isnan(estimate.std):
            return False
        half_width = z * abs(estimate.std)
        return estimate.mean - half_width > 0 or estimate.mean + half_width < 0

    def ranked_slots(self) -> list[tuple[str, float]]:
        """``(slot_id, mean)`` pairs by descending mean contribution; ties keep the order of
        ``values``, and slots whose mean is NaN (unknown) come last."""
        pairs = [(slot_id, est.mean) for slot_id, est in self.values.items()]
        # A NaN inside a plain sort would leave the order of everything around it undefined.
        return sorted(pairs, key=lambda p: (math.isnan(p[1]), 0.0 if math.isnan(p[1]) else -p[1]))


@dataclass
class CounterfactualConfig:
    """Single configuration result from factorial evaluation."""

    seed_mask: tuple[bool, ...]
    accuracy: float = 0.0


@dataclass
class CounterfactualSnapshot:
    """Full factorial counterfactual matrix of an environment (2^n configs for n seeds)."""

    slot_ids: tuple[str, ...] = ()
    configs: list[CounterfactualConfig] = field(default_factory=list)
    strategy: str = "unavailable"
    compute_time_ms: float = 0.0

    def get_accuracy(self, mask: tuple[bool, ...]) -> float | None:
        """Accuracy of the configuration with exactly this seed mask, or None if not evaluated."""
        wanted = tuple(bool(m) for m in mask)
        for config in self.configs:
            if tuple(config.seed_mask) == wanted:
                return config.accuracy
        return None

    @property
    def baseline_accuracy(self) -> float:
        """Accuracy with every seed disabled (0.0 if that configuration is missing)."""
        value = self.get_accuracy((False,) * len(self.slot_ids))
        return value if value is not None else 0.0

    @property
    def combined_accuracy(self) -> float:
        """Accuracy with every seed enabled (0.0 if that configuration is missing)."""
        value = self.get_accuracy((True,) * len(self.slot_ids))
        return value if value is not None else 0.0

    def _with_enabled(self, enabled: set[int]) -> float | None:
        return self.get_accuracy(tuple(i in enabled for i in range(len(self.slot_ids))))

    def individual_contributions(self) -> dict[str, float]:
        """Each seed's solo accuracy over the baseline, for seeds whose solo config exists."""
        baseline = self.baseline_accuracy
        result = {}
        for i, slot_id in enumerate(self.slot_ids):
            solo = self._with_enabled({i})
            if solo is not None:
                result[slot_id] = solo - baseline
        return result

    def pair_contributions(self) -> dict[tuple[str, str], float]:
        """Each pair's accuracy (both enabled, others disabled) over the baseline."""
        baseline = self.baseline_accuracy
        result = {}
        for i, first in enumerate(self.slot_ids):
            for j in range(i + 1, len(self.slot_ids)):
                both = self._with_enabled({i, j})
                if both is not None:
                    result[(first, self.slot_ids[j])] = both - baseline
        return result

    def total_synergy(self) -> float:
        """combined - baseline - sum(individual contributions); 0.0 without a matrix."""
        if not self.configs or not self.slot_ids:
            return 0.0
        individual = self.individual_contributions()
        return self.combined_accuracy - self.baseline_accuracy - sum(individual.values())


@dataclass(slots=True)
class SeedState:
    """State of a single seed slot."""

    slot_id: str
    stage: str = "DORMANT"
    blueprint_id: str | None = None
    alpha: float = 0.0
    accuracy_delta: float = 0.0
    seed_params: int = 0
    grad_ratio: float = 0.0
    has_vanishing: bool = False
    has_exploding: bool = False
    epochs_in_stage: int = 0
    improvement: float = 0.0
    prune_reason: str = ""
    auto_pruned: bool = False
    epochs_total: int = 0
    counterfactual: float = 0.0
    blend_tempo_epochs: int = 5
    alpha_curve: str = "LINEAR"
    contribution_velocity: float = 0.0
    interaction_sum: float = 0.0
    boost_received: float = 0.0
    upstream_alpha_sum: float = 0.0
    downstream_alpha_sum: float = 0.0


# --------------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------------


def normalize_action(action_name: str) -> str:
    """Map a factored action to its base operation: ``GERMINATE_CONV_LIGHT`` -> ``GERMINATE``.

    The longest base action that is the whole name or a ``_``-separated prefix wins, so
    ``SET_ALPHA_TARGET_HALF`` -> ``SET_ALPHA_TARGET``. Unknown names are returned unchanged.
    """
    for base in sorted(BASE_ACTIONS, key=len, reverse=True):
        if action_name == base or action_name.startswith(base + "_"):
            return base
    return action_name


@dataclass
class EnvState:
    """Per-environment state: seeds, metrics and history for one training environment.

    Status (updated by :meth:`add_accuracy`; accuracies in percent). After each epoch the first
    rule that holds decides:

    1. *degraded*: ``degraded_counter`` reached ``DEGRADED_EPOCHS`` (3). The counter counts
       epochs that lose more than ``DEGRADE_DROP`` (1.0) points from the epoch before; an epoch
       that improves on the one before resets it; flat epochs and smaller dips leave it alone.
    2. *stalled*: ``stall_counter`` reached ``STALL_EPOCHS`` (10): ten epochs in a row without
       a new best accuracy. A new best resets it.
    3. A *degraded* or *stalled* env keeps that status until it reaches a new best accuracy.
    4. *excellent* once the best accuracy reached ``EXCELLENT_ACCURACY`` (80), *healthy* once it
       reached ``HEALTHY_ACCURACY`` (10), *initializing* before that.

    The good statuses follow the best accuracy, which never falls, and the bad ones need
    repeated evidence to enter and a new best to leave: one noisy epoch never flips a status.
    """

    HEALTHY_ACCURACY: ClassVar[float] = 10.0
    EXCELLENT_ACCURACY: ClassVar[float] = 80.0
    STALL_EPOCHS: ClassVar[int] = 10
    DEGRADED_EPOCHS: ClassVar[int] = 3
    DEGRADE_DROP: ClassVar[float] = 1.0

    env_id: int
    current_epoch: int = 0
    host_accuracy: float = 0.0
    host_loss: float = 0.0
    host_params: int = 0
    seeds: dict[str, SeedState] = field(default_factory=dict)
    active_seed_count: int = 0
    fossilized_count: int = 0
    pruned_count: int = 0
    fossilized_params: int = 0
    blueprint_spawns: dict[str, int] = field(default_factory=dict)
    blueprint_prunes: dict[str, int] = field(default_factory=dict)
    blueprint_fossilized: dict[str, int] = field(default_factory=dict)
    reward_components: RewardComponents = field(default_factory=RewardComponents)
    counterfactual_matrix: CounterfactualSnapshot = field(default_factory=CounterfactualSnapshot)
    shapley_snapshot: ShapleySnapshot = field(default_factory=ShapleySnapshot)
    reward_history: deque[float] = _history(50)
    accuracy_history: deque[float] = _history(50)
    cumulative_reward: float = 0.0
    best_reward: float = float("-inf")
    best_reward_epoch: int = 0
    best_accuracy: float = 0.0
    best_accuracy_epoch: int = 0
    best_accuracy_episode: int = 0
    best_seeds: dict[str, SeedState] = field(default_factory=dict)
    best_reward_components: RewardComponents | None = None
    best_counterfactual_matrix: CounterfactualSnapshot | None = None
    best_shapley_snapshot: ShapleySnapshot | None = None
    best_action_history: list[str] = field(default_factory=list)
    action_history: deque[str] = _history(10)
    action_counts: dict[str, int] = field(default_factory=_action_counts)
    total_actions: int = 0
    gaming_trigger_count: int = 0
    total_reward_steps: int = 0
    status: str = "initializing"
    last_update: datetime | None = None
    epochs_since_improvement: int = 0
    stall_counter: int = 0
    degraded_counter: int = 0
    reward_mode: str | None = None
    rolled_back: bool = False
    rollback_reason: str = ""
    rollback_timestamp: datetime | None = None

    @property
    def current_reward(self) -> float:
        """Most recent reward, 0.0 before the first."""
        return self.reward_history[-1] if self.reward_history else 0.0

    @property
    def mean_reward(self) -> float:
        """Mean reward over the history window, 0.0 when empty."""
        return float(np.mean(self.reward_history)) if self.reward_history else 0.0

    @property
    def gaming_rate(self) -> float:
        """Fraction of reward steps that triggered an anti-gaming penalty."""
        if self.total_reward_steps <= 0:
            return 0.0
        return self.gaming_trigger_count / self.total_reward_steps

    @property
    def growth_ratio(self) -> float:
        """``(host_params + fossilized_params) / host_params``; 1.0 when host_params is 0."""
        if self.host_params <= 0:
            return 1.0
        return (self.host_params + self.fossilized_params) / self.host_params

    def add_reward(self, reward: float, epoch: int) -> None:
        """Record a reward: history, cumulative sum and best reward (with its epoch)."""
        self.reward_history.append(reward)
        self.cumulative_reward += reward
        if reward > self.best_reward:
            self.best_reward = reward
            self.best_reward_epoch = epoch

    def add_accuracy(self, accuracy: float, epoch: int, episode: int = 0) -> None:
        """Record an accuracy; at a new peak, snapshot what produced it; update the status.

        At a new best accuracy the env keeps copies of its contributing seeds (stages in
        :data:`CONTRIBUTING_STAGES`), reward components, counterfactual matrix, Shapley values
        and action history, so the leaderboard can explain the peak later.
        """
        # The previous *recorded* epoch: the aggregator may already have set host_accuracy.
        previous = self.accuracy_history[-1] if self.accuracy_history else 0.0
        self.host_accuracy = accuracy
        self.accuracy_history.append(accuracy)
        self.current_epoch = epoch
        if accuracy > self.best_accuracy:
            self.best_accuracy = accuracy
            self.best_accuracy_epoch = epoch
            self.best_accuracy_episode = episode
            self.epochs_since_improvement = 0
            self.best_seeds = {
                slot_id: _copy_seed(seed)
                for slot_id, seed in self.seeds.items()
                if seed.stage in CONTRIBUTING_STAGES
            }
            self.best_reward_components = _copy_dataclass(self.reward_components)
            self.best_counterfactual_matrix = _copy_dataclass(self.counterfactual_matrix)
            self.best_shapley_snapshot = _copy_dataclass(self.shapley_snapshot)
            self.best_action_history = list(self.action_history)
        else:
            self.epochs_since_improvement += 1
        self._update_status(previous, accuracy)

    def add_action(self, action_name: str) -> None:
        """Record an action under its base name (factored actions are normalized)."""
        base = normalize_action(action_name)
        self.action_history.append(base)
        self.action_counts[base] = self.action_counts.get(base, 0) + 1
        self.total_actions += 1

    def _update_status(self, prev_acc: float, curr_acc: float) -> None:
        """Apply the status rules of the class docstring to one epoch (``prev_acc`` ->
        ``curr_acc``). Called by :meth:`add_accuracy` after it updated the best accuracy and
        ``epochs_since_improvement``."""
        if curr_acc < prev_acc - self.DEGRADE_DROP:
            self.degraded_counter += 1
        elif curr_acc > prev_acc:
            self.degraded_counter = 0
        new_best = self.epochs_since_improvement == 0
        self.stall_counter = 0 if new_best else self.stall_counter + 1

        if self.degraded_counter >= self.DEGRADED_EPOCHS:
            self.status = "degraded"
        elif self.stall_counter >= self.STALL_EPOCHS:
            self.status = "stalled"
        elif self.status in ("degraded", "stalled") and not new_best:
            pass  # hysteresis: only a new best clears a bad status
        elif self.best_accuracy >= self.EXCELLENT_ACCURACY:
            self.status = "excellent"
        elif self.best_accuracy >= self.HEALTHY_ACCURACY:
            self.status = "healthy"


def _copy_seed(seed: SeedState) -> SeedState:
    return dataclasses.replace(seed)


def _copy_dataclass(obj):
    return copy.deepcopy(obj)


# --------------------------------------------------------------------------------------------
# Tamiyo (the policy)
# --------------------------------------------------------------------------------------------


@dataclass
class InfrastructureMetrics:
    """PyTorch infrastructure health metrics."""

    cuda_memory_allocated_gb: float = 0.0
    cuda_memory_reserved_gb: float = 0.0
    cuda_memory_peak_gb: float = 0.0
    cuda_memory_fragmentation: float = 0.0
    compile_enabled: bool = False
    compile_backend: str = ""
    compile_mode: str = ""

    @property
    def memory_usage_percent(self) -> float:
        """``allocated / reserved * 100``; 0.0 when nothing is reserved."""
        if self.cuda_memory_reserved_gb <= 0:
            return 0.0
        return self.cuda_memory_allocated_gb / self.cuda_memory_reserved_gb * 100.0


@dataclass
class GradientQualityMetrics:
    """Gradient quality diagnostics."""

    gradient_cv: float = 0.0
    clip_fraction_positive: float = 0.0
    clip_fraction_negative: float = 0.0


@dataclass
class ValueFunctionMetrics:
    """Value function quality diagnostics."""

    v_return_correlation: float = 0.0
    td_error_mean: float = 0.0
    td_error_std: float = 0.0
    bellman_error: float = 0.0
    return_p10: float = 0.0
    return_p50: float = 0.0
    return_p90: float = 0.0
    return_skewness: float = 0.0
    return_variance: float = 0.0
    value_predictions: deque[float] = _history(100)
    actual_returns: deque[float] = _history(100)
    td_errors: deque[float] = _history(100)


@dataclass
class DecisionSnapshot:
    """One Tamiyo decision: what she saw, what she chose, and the outcome."""

    timestamp: datetime
    slot_states: dict[str, str]
    host_accuracy: float
    chosen_action: str
    chosen_slot: str | None
    confidence: float
    expected_value: float
    actual_reward: float | None
    alternatives: list[tuple[str, float]]
    decision_id: str = ""
    env_id: int = 0
    epoch: int = 0
    batch: int = 0
    value_residual: float = 0.0
    td_advantage: float | None = None
    decision_entropy: float = 0.0
    chosen_blueprint: str | None = None
    chosen_tempo: str | None = None
    chosen_style: str | None = None
    chosen_curve: str | None = None
    chosen_alpha_target: str | None = None
    chosen_alpha_speed: str | None = None
    op_confidence: float = 0.0
    slot_confidence: float = 0.0
    blueprint_confidence: float = 0.0
    style_confidence: float = 0.0
    tempo_confidence: float = 0.0
    alpha_target_confidence: float = 0.0
    alpha_speed_confidence: float = 0.0
    curve_confidence: float = 0.0
    op_entropy: float = 0.0
    slot_entropy: float = 0.0
    blueprint_entropy: float = 0.0
    style_entropy: float = 0.0
    tempo_entropy: float = 0.0
    alpha_target_entropy: float = 0.0
    alpha_speed_entropy: float = 0.0
    curve_entropy: float = 0.0


@dataclass
class TamiyoState:
    """Tamiyo policy agent state: PPO health, per-head diagnostics, histories, decisions."""

    entropy: float = 0.0
    clip_fraction: float = 0.0
    kl_divergence: float = 0.0
    explained_variance: float = 0.0
    policy_loss: float = 0.0
    value_loss: float = 0.0
    entropy_loss: float = 0.0
    grad_norm: float = 0.0
    learning_rate: float | None = None
    entropy_coef: float = 0.0
    ratio_mean: float = 1.0
    ratio_min: float = 1.0
    ratio_max: float = 1.0
    ratio_std: float = 0.0
    advantage_mean: float = 0.0
    advantage_std: float = 0.0
    advantage_skewness: float = float("nan")
    advantage_kurtosis: float = float("nan")
    advantage_min: float = 0.0
    advantage_max: float = 0.0
    advantage_raw_mean: float = 0.0
    advantage_raw_std: float = 0.0
    advantage_positive_ratio: float = float("nan")
    log_prob_min: float = float("nan")
    log_prob_max: float = float("nan")
    dead_layers: int = 0
    exploding_layers: int = 0
    nan_grad_count: int = 0
    inf_grad_count: int = 0
    head_nan_latch: dict[str, bool] = field(default_factory=_head_latches)
    head_inf_latch: dict[str, bool] = field(default_factory=_head_latches)
    layer_gradient_health: dict[str, float] | None = None
    entropy_collapsed: bool = False
    update_time_ms: float = 0.0
    early_stop_epoch: int | None = None
    head_slot_entropy: float = 0.0
    head_blueprint_entropy: float = 0.0
    head_style_entropy: float = 0.0
    head_tempo_entropy: float = 0.0
    head_alpha_target_entropy: float = 0.0
    head_alpha_speed_entropy: float = 0.0
    head_alpha_curve_entropy: float = 0.0
    head_op_entropy: float = 0.0
    head_slot_grad_norm: float = 0.0
    head_blueprint_grad_norm: float = 0.0
    head_style_grad_norm: float = 0.0
    head_tempo_grad_norm: float = 0.0
    head_alpha_target_grad_norm: float = 0.0
    head_alpha_speed_grad_norm: float = 0.0
    head_alpha_curve_grad_norm: float = 0.0
    head_op_grad_norm: float = 0.0
    head_slot_grad_norm_prev: float = 0.0
    head_blueprint_grad_norm_prev: float = 0.0
    head_style_grad_norm_prev: float = 0.0
    head_tempo_grad_norm_prev: float = 0.0
    head_alpha_target_grad_norm_prev: float = 0.0
    head_alpha_speed_grad_norm_prev: float = 0.0
    head_alpha_curve_grad_norm_prev: float = 0.0
    head_op_grad_norm_prev: float = 0.0
    head_slot_ratio_max: float = 1.0
    head_blueprint_ratio_max: float = 1.0
    head_style_ratio_max: float = 1.0
    head_tempo_ratio_max: float = 1.0
    head_alpha_target_ratio_max: float = 1.0
    head_alpha_speed_ratio_max: float = 1.0
    head_alpha_curve_ratio_max: float = 1.0
    head_op_ratio_max: float = 1.0
    joint_ratio_max: float = 1.0
    episode_return_history: deque[float] = _history(20)
    current_episode_return: float = 0.0
    current_episode: int = 0
    policy_loss_history: deque[float] = _history(10)
    value_loss_history: deque[float] = _history(10)
    grad_norm_history: deque[float] = _history(10)
    entropy_history: deque[float] = _history(10)
    explained_variance_history: deque[float] = _history(10)
    kl_divergence_history: deque[float] = _history(10)
    clip_fraction_history: deque[float] = _history(10)
    inner_epoch: int = 0
    ppo_batch: int = 0
    action_counts: dict[str, int] = field(default_factory=dict)
    total_actions: int = 0
    cumulative_action_counts: dict[str, int] = field(default_factory=dict)
    cumulative_total_actions: int = 0
    ppo_data_received: bool = False
    recent_decisions: list[DecisionSnapshot] = field(default_factory=list)
    group_id: str | None = None
    entropy_velocity: float = 0.0
    collapse_risk_score: float = 0.0
    _previous_risk: float = 0.0  # compute_collapse_risk's hysteresis
    entropy_clip_correlation: float = 0.0
    value_mean: float = 0.0
    value_std: float = 0.0
    value_min: float = 0.0
    value_max: float = 0.0
    initial_value_spread: float | None = None
    q_germinate: float = 0.0
    q_advance: float = 0.0
    q_fossilize: float = 0.0
    q_prune: float = 0.0
    q_wait: float = 0.0
    q_set_alpha: float = 0.0
    q_variance: float = 0.0
    q_spread: float = 0.0
    last_action_success: bool = True
    last_action_op: str = "WAIT"
    infrastructure: InfrastructureMetrics = field(default_factory=InfrastructureMetrics)
    gradient_quality: GradientQualityMetrics = field(default_factory=GradientQualityMetrics)
    value_function: ValueFunctionMetrics = field(default_factory=ValueFunctionMetrics)


# --------------------------------------------------------------------------------------------
# Run-level records
# --------------------------------------------------------------------------------------------


@dataclass
class BestRunRecord:
    """Historical record of a best run, for the leaderboard."""

    env_id: int
    episode: int
    peak_accuracy: float
    final_accuracy: float
    epoch: int = 0
    seeds: dict[str, SeedState] = field(default_factory=dict)
    slot_ids: list[str] = field(default_factory=list)
    growth_ratio: float = 1.0
    record_id: str = ""
    reward_components: RewardComponents | None = None
    counterfactual_matrix: CounterfactualSnapshot | None = None
    shapley_snapshot: ShapleySnapshot | None = None
    action_history: list[str] = field(default_factory=list)
    reward_history: list[float] = field(default_factory=list)
    accuracy_history: list[float] = field(default_factory=list)
    host_loss: float = 0.0
    host_params: int = 0
    fossilized_count: int = 0
    pruned_count: int = 0
    reward_mode: str | None = None
    blueprint_spawns: dict[str, int] = field(default_factory=dict)
    blueprint_fossilized: dict[str, int] = field(default_factory=dict)
    blueprint_prunes: dict[str, int] = field(default_factory=dict)


@dataclass
class EventLogEntry:
    """Single event log entry. The message is generic; specifics go in metadata."""

    timestamp: str
    event_type: str
    env_id: int | None
    message: str
    episode: int = 0
    relative_time: str = ""
    metadata: dict[str, str | int | float] = field(default_factory=dict)


@dataclass
class SeedLifecycleStats:
    """Seed lifecycle aggregate metrics."""

    germination_count: int = 0
    prune_count: int = 0
    fossilize_count: int = 0
    active_count: int = 0
    total_slots: int = 0
    germination_rate: float = 0.0
    prune_rate: float = 0.0
    fossilize_rate: float = 0.0
    blend_success_rate: float = 0.0
    avg_lifespan_epochs: float = 0.0
    germination_trend: str = "stable"
    prune_trend: str = "stable"
    fossilize_trend: str = "stable"


@dataclass
class ObservationStats:
    """Observation space health metrics."""

    slot_features_mean: float = 0.0
    slot_features_std: float = 0.0
    host_features_mean: float = 0.0
    host_features_std: float = 0.0
    context_features_mean: float = 0.0
    context_features_std: float = 0.0
    outlier_pct: float = 0.0
    nan_count: int = 0
    inf_count: int = 0
    normalization_drift: float = 0.0


@dataclass
class EpisodeStats:
    """Episode-level aggregate metrics."""

    length_mean: float = 0.0
    length_std: float = 0.0
    length_min: int = 0
    length_max: int = 0
    total_episodes: int = 0
    timeout_count: int = 0
    success_count: int = 0
    early_termination_count: int = 0
    timeout_rate: float = 0.0
    success_rate: float = 0.0
    early_termination_rate: float = 0.0
    steps_per_germinate: float = 0.0
    steps_per_prune: float = 0.0
    steps_per_fossilize: float = 0.0
    completion_trend: str = "stable"


@dataclass
class SanctumSnapshot:
    """Complete snapshot of Sanctum state: the single source of truth of one moment of a run."""

    #: Seconds without telemetry after which a snapshot is stale.
    STALE_AFTER_SECONDS: ClassVar[float] = 5.0

    envs: dict[int, EnvState] = field(default_factory=dict)
    tamiyo: TamiyoState = field(default_factory=TamiyoState)
    vitals: SystemVitals = field(default_factory=SystemVitals)
    rewards: RewardComponents = field(default_factory=RewardComponents)
    slot_ids: list[str] = field(default_factory=list)
    current_episode: int = 0
    current_batch: int = 0
    max_batches: int = 0
    current_epoch: int = 0
    max_epochs: int = 0
    run_id: str = ""
    task_name: str = ""
    run_config: RunConfig = field(default_factory=RunConfig)
    start_time: datetime | None = None
    connected: bool = False
    runtime_seconds: float = 0.0
    staleness_seconds: float = float("inf")
    captured_at: str = ""
    total_events_received: int = 0
    poll_count: int = 0
    training_thread_alive: bool | None = None
    aggregate_mean_accuracy: float = 0.0
    aggregate_mean_reward: float = 0.0
    batch_avg_reward: float = 0.0
    batch_total_episodes: int = 0
    mean_accuracy_history: deque[float] = _history(50)
    event_log: list[EventLogEntry] = field(default_factory=list)
    best_runs: list[BestRunRecord] = field(default_factory=list)
    cumulative_germinated: int = 0
    cumulative_fossilized: int = 0
    cumulative_pruned: int = 0
    cumulative_blueprint_spawns: dict[str, int] = field(default_factory=dict)
    cumulative_blueprint_fossilized: dict[str, int] = field(default_factory=dict)
    cumulative_blueprint_prunes: dict[str, int] = field(default_factory=dict)
    slot_stage_counts: dict[str, int] = field(default_factory=dict)
    total_slots: int = 0
    active_slots: int = 0
    avg_epochs_in_stage: float = 0.0
    last_ppo_update: datetime | None = None
    last_reward_update: datetime | None = None
    seed_lifecycle: SeedLifecycleStats = field(default_factory=SeedLifecycleStats)
    observation_stats: ObservationStats = field(default_factory=ObservationStats)
    episode_stats: EpisodeStats = field(default_factory=EpisodeStats)
    focused_env_id: int = 0
    last_action_env_id: int | None = None
    last_action_timestamp: datetime | None = None

    @property
    def is_stale(self) -> bool:
        """True if no telemetry arrived for more than 5 seconds."""
        return self.staleness_seconds > self.STALE_AFTER_SECONDS
