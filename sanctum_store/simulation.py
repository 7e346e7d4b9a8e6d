"""The model behind the demo's runs (see :mod:`sanctum_store.demo`): cohorts, blueprints, a run's
timing, and the simulation of its envs, seeds and policy, epoch by epoch.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import statistics
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np

from sanctum_store import schema
from sanctum_store.schema import EnvState, SanctumSnapshot, SeedState

TASK_NAME = "cifar10"
HOST_PARAMS = 1_200_000
LEARNING_RATE = 3e-4
ENTROPY_COEF = (0.05, 0.01)  # annealed from the first to the second over a run
CHANCE_ACCURACY = 10.0  # host accuracy (%) before any training
BASE_CEILING = 72.5  # what the host's curve approaches before cohort, skill and seeds
RUN_SD = 2.0  # run-to-run standard deviation of the ceiling, in accuracy points


class Cohort(NamedTuple):
    reward_mode: str
    group_id: str
    effect: float  # accuracy points added to the host's ceiling


#: Shaped rewards end ~1.5 points above sparse ones, simplified in between. With runs varying
#: by RUN_SD, a handful of runs per cohort shows the order but does not settle it.
COHORTS = (Cohort("shaped", "A", 1.5), Cohort("simplified", "B", 0.8), Cohort("sparse", "C", 0.0))
_COHORT = {c.reward_mode: c for c in COHORTS}


class Blueprint(NamedTuple):
    params: int
    mean: float  # true accuracy contribution at alpha 1, in points
    sd: float
    p_vanish: float  # chance that its gradients vanish while it trains


#: Bigger and more exotic blueprints help more on average but are riskier.
BLUEPRINTS = {
    "conv_light": Blueprint(36_992, 0.55, 0.4, 0.02),
    "conv_heavy": Blueprint(147_712, 0.8, 0.7, 0.03),
    "attention": Blueprint(66_048, 0.6, 0.9, 0.12),
    "norm": Blueprint(512, 0.2, 0.25, 0.01),
    "mlp": Blueprint(33_024, 0.25, 0.55, 0.05),
    "lora": Blueprint(8_192, 0.45, 0.3, 0.02),
    "depthwise": Blueprint(9_472, 0.35, 0.35, 0.02),
    "bottleneck": Blueprint(24_576, 0.5, 0.6, 0.08),
}
_BP_NAMES, _BP_MEANS = tuple(BLUEPRINTS), np.array([bp.mean for bp in BLUEPRINTS.values()])

STAGES = ("DORMANT", "GERMINATED", "TRAINING", "BLENDING", "HOLDING", "FOSSILIZED", "PRUNED")
LIVE = frozenset(STAGES[1:6])
CURVES = {"LINEAR": 0.0, "SIGMOID": 8.0, "SIGMOID_GENTLE": 5.0, "SIGMOID_SHARP": 14.0}  # steepness
TEMPOS = {3: "FAST", 5: "STANDARD", 8: "SLOW"}
STYLES = ("LINEAR_ADD", "GATED_GATE", "SIGMOID_ADD")
ALPHA_TARGETS, ALPHA_SPEEDS = ("HALF", "SEVENTY", "FULL"), ("FAST", "MEDIUM", "SLOW")
#: Options per action head (the slot head has one per slot); "curve" is alpha_curve's name in
#: decisions.
HEAD_CHOICES = {"blueprint": 8, "style": 3, "tempo": 3, "alpha_target": 3, "alpha_speed": 3}
HEAD_CHOICES |= {"alpha_curve": 4, "curve": 4, "op": len(schema.BASE_ACTIONS)}
_MAX_OP_ENTROPY = math.log(len(schema.BASE_ACTIONS))

EMBARGO_EPOCHS = 2  # a pruned slot shows PRUNED this long before it is DORMANT again
TIMEOUT_EPOCHS = {"TRAINING": 10, "HOLDING": 8}  # left waiting longer: pruned
MAX_FACTORIAL = 6  # with more live seeds than this, no 2^n counterfactual matrix
DECISION_MAX_AGE = 120.0  # seconds, as in esper's aggregator
MAX_DECISIONS, MAX_EVENTS, MAX_BEST_RUNS = 8, 100, 10
STARTUP_SECONDS = 25.0  # model build and data loading before the first epoch
BENCH_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class DemoRun:
    """One planned run. ``skill`` is its own ceiling offset in accuracy points; ``stop_at`` is
    the ``(batch, epoch)`` where a running or crashed run's telemetry ends (default: half-way)."""

    run_id: str
    reward_mode: str
    group_id: str
    seed: int
    start: datetime
    n_envs: int = 4
    n_slots: int = 3
    max_batches: int = 8
    max_epochs: int = 25
    outcome: str = "finished"  # "finished" | "running" | "crashed"
    skill: float = 0.0
    stop_at: tuple[int, int] | None = None


def _run_key(run: DemoRun) -> list[int]:
    return [run.seed, zlib.crc32(run.run_id.encode())]


def timeline(run: DemoRun) -> tuple[np.ndarray, np.ndarray]:
    """Seconds from the start to the end of each epoch ``[batch, epoch - 1]`` and of each
    batch's PPO update."""
    rng = np.random.default_rng([*_run_key(run), 2])
    per_epoch = 11.0 * (run.n_envs / 4) ** 0.25 * rng.lognormal(0.0, 0.1)
    epochs = per_epoch * rng.lognormal(0.0, 0.06, size=(run.max_batches, run.max_epochs))
    ppo = 6.0 * (run.n_envs / 4) ** 0.5 * rng.lognormal(0.0, 0.15, size=run.max_batches)
    epoch_end, ppo_end, t = np.empty_like(epochs), np.empty(run.max_batches), STARTUP_SECONDS
    for b in range(run.max_batches):
        epoch_end[b] = t + np.cumsum(epochs[b])
        ppo_end[b] = epoch_end[b, -1] + ppo[b]
        t = ppo_end[b] + 2.0  # evaluation and env reset between batches
    return epoch_end, ppo_end


class SimClock:
    """The writer's clock: heartbeats and finish times follow the simulated time."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _alpha(curve: str, x: float) -> float:
    """Blend alpha after a fraction ``x`` of the blend tempo, by curve."""
    x, k = min(max(x, 0.0), 1.0), CURVES.get(curve, 0.0)
    if k == 0.0:
        return x
    lo, hi = 1 / (1 + math.exp(k / 2)), 1 / (1 + math.exp(-k / 2))
    return (1 / (1 + math.exp(-k * (x - 0.5))) - lo) / (hi - lo)


def _clip(x: float, low: float, high: float) -> float:
    return float(min(max(x, low), high))


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


class _Design(NamedTuple):
    masks: list[tuple[bool, ...]]  # all 2^n configurations, in itertools.product order
    onehot: np.ndarray  # (2^n, n) float
    synergy: np.ndarray  # (2^n,) gain multiplier: helpful seeds help each other a little
    without: np.ndarray  # (n, 2^(n-1)) configurations without seed i ...
    with_: np.ndarray  # ... and the same with seed i
    weights: np.ndarray  # (n, 2^(n-1)) Shapley weights of those pairs


@functools.cache
def _design(n: int) -> _Design:
    masks = list(itertools.product((False, True), repeat=n))
    onehot = np.array(masks, dtype=float).reshape(len(masks), n)
    sizes = onehot.sum(axis=1)
    without = np.array([[k for k, m in enumerate(masks) if not m[i]] for i in range(n)])
    with_ = without + (2 ** (n - 1 - np.arange(n)))[:, None]  # product order: seed 0 is the MSB
    k, fact = sizes[without].astype(int), np.vectorize(math.factorial)
    weights = fact(k) * fact(n - k - 1) / math.factorial(n)
    return _Design(masks, onehot, 1 + 0.08 * np.maximum(sizes - 1, 0), without, with_, weights)


def _synergy(gains: list[float]) -> float:
    """What live seeds add together: their gains plus a little synergy (as in _design)."""
    return sum(gains) * (1 + 0.08 * max(len(gains) - 1, 0))


# --------------------------------------------------------------------------------------------
# The simulation
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Truth:
    """What the simulation knows about a live seed and the telemetry does not show."""

    contrib: float
    vanishing: bool
    acc_at_germination: float
    last_cf: float = 0.0


class Simulation:
    """One run's mutable state: ``steps()`` advances it, ``snapshot()`` copies it out."""

    def __init__(self, run: DemoRun):
        self.run, key = run, _run_key(run)
        self.rng = np.random.default_rng([*key, 0])  # the trajectory
        self.noise = np.random.default_rng([*key, 1])  # readings taken only at snapshot time
        self.epoch_end, self.ppo_end = timeline(run)
        cohort = _COHORT.get(run.reward_mode)
        self.ceiling = BASE_CEILING + (cohort.effect if cohort else 0.0) + run.skill
        self.slot_ids = [f"r{i // 3}c{i % 3}" for i in range(run.n_slots)]
        self.now, self.prev_risk, self.ids = run.start, 0.0, set()
        self.pending: list[schema.DecisionSnapshot] = []  # awaiting reward or TD advantage
        self.lifespans: list[int] = []
        self.avg_lifespan = 0.0
        self.per_batch = {"germination": [0], "prune": [0], "fossilize": [0]}
        episodes, counts = run.max_batches * run.n_envs, dict.fromkeys(schema.BASE_ACTIONS, 0)
        anneal = {"start": ENTROPY_COEF[0], "end": ENTROPY_COEF[1]}
        config = (run.seed, episodes, LEARNING_RATE, 0.2, ENTROPY_COEF[0], 500_000, "", anneal)
        snap = self.snap = SanctumSnapshot(slot_ids=list(self.slot_ids), run_id=run.run_id)
        snap.task_name, snap.start_time = TASK_NAME, run.start
        snap.run_config = schema.RunConfig(*config)
        snap.max_batches, snap.max_epochs = run.max_batches, run.max_epochs
        snap.batch_total_episodes, snap.total_slots = episodes, run.n_envs * run.n_slots
        snap.connected = snap.training_thread_alive = True
        tamiyo = snap.tamiyo
        tamiyo.group_id, tamiyo.learning_rate = run.group_id, LEARNING_RATE
        tamiyo.entropy_coef = ENTROPY_COEF[0]
        tamiyo.action_counts, tamiyo.cumulative_action_counts = dict(counts), counts
        # esper's snapshots carry the cohort at top level too; the codec keeps it as an extra.
        self.snap.reward_mode = run.reward_mode
        self._event("TRAINING_STARTED", task=TASK_NAME)
        self._reset_envs()

    def steps(self) -> Iterator[tuple[str, int, int]]:
        """Advance the run, yielding ``(kind, batch, epoch)`` after each epoch ("epoch"), each
        PPO update ("batch_end") and the final reset ("done")."""
        run = self.run
        for b in range(run.max_batches):
            for e in range(1, run.max_epochs + 1):
                self._epoch(b, e, self._time(self.epoch_end[b, e - 1]))
                yield "epoch", b, e
            self._ppo_update(b, self._time(self.ppo_end[b]))
            yield "batch_end", b, run.max_epochs
            self._end_batch(b, self._time(self.ppo_end[b] + 1.0))
        yield "done", run.max_batches, run.max_epochs

    def _time(self, offset: float) -> datetime:
        return self.run.start + timedelta(seconds=float(offset))

    def _new_id(self) -> str:
        while (token := self.rng.bytes(4).hex()) in self.ids:
            pass
        self.ids.add(token)
        return token

    def _event(self, event_type: str, env_id: int | None = None, **meta) -> None:
        snap, event_id = self.snap, uuid.UUID(bytes=self.rng.bytes(16), version=4)
        # A generic message ("Germinated", "PPO update completed"); specifics go in metadata.
        message = event_type.removeprefix("SEED_").replace("_", " ").capitalize()
        when, message = self.now.strftime("%H:%M:%S"), message.replace("Ppo", "PPO")
        meta = {"event_id": str(event_id), **meta}
        entry = schema.EventLogEntry(when, event_type, env_id, message, snap.current_episode)
        entry.relative_time, entry.metadata = "(0s)", meta
        snap.event_log.append(entry)
        del snap.event_log[:-MAX_EVENTS]
        snap.total_events_received += 1

    def _sharpness(self) -> float:
        """Tamiyo's normalized policy entropy: ~0.9 untrained, ~0.3 late in a run."""
        tamiyo = self.snap.tamiyo
        return min(1.0, (tamiyo.entropy if tamiyo.ppo_data_received else 1.6) / _MAX_OP_ENTROPY)

    # -- epochs and batches --------------------------------------------------------------------

    def _reset_envs(self) -> None:
        run, rng = self.run, self.rng
        self.snap.envs = {i: EnvState(i, host_params=HOST_PARAMS) for i in range(run.n_envs)}
        for env in self.snap.envs.values():
            env.reward_mode, env.last_update = run.reward_mode, self.now
            env.seeds = {s: SeedState(s) for s in self.slot_ids}
        self.truth: dict[int, dict[str, _Truth]] = {i: {} for i in range(run.n_envs)}
        self.env_ceiling = self.ceiling + rng.normal(0.0, 0.4, size=run.n_envs)
        self.env_tau = 6.0 * rng.lognormal(0.0, 0.1, size=run.n_envs)
        self.ar_noise = np.zeros(run.n_envs)

    def _epoch(self, b: int, e: int, t: datetime) -> None:
        snap, run = self.snap, self.run
        self.now, snap.current_epoch, snap.tamiyo.inner_epoch = t, e, e
        h = self._sharpness()
        actions = []
        for env in snap.envs.values():
            self._age_seeds(env)
            acc = self._accuracy(env, e)
            self._measure(env, acc, e)
            self._reward(env, acc, e)
            env.add_accuracy(acc, e, episode=b * run.n_envs + env.env_id)
            env.host_loss = 2.3 * (1 - acc / 100) ** 1.1 + 0.05 + float(self.rng.normal(0, 0.01))
            env.last_update = t
            actions.append((env, *self._act(env, e, h)))
        snap.mean_accuracy_history.append(statistics.fmean(a[0].host_accuracy for a in actions))
        snap.total_events_received += run.n_envs  # per-env epoch and reward telemetry
        self._settle_decisions()
        # The TUI shows a sample of Tamiyo's choices: actions rather than WAITs, one per epoch
        # and 32 envs, so that 8 of them span a couple of epochs at any scale.
        shuffled = [actions[i] for i in self.rng.permutation(len(actions))]
        shuffled.sort(key=lambda a: a[1] == "WAIT")
        for env, op, slot, details in shuffled[: max(1, run.n_envs // 32)]:
            self._record_decision(env, op, slot, details, b, e, h)
        last = actions[-1][0].reward_components
        self._event("REWARD_COMPUTED", last.env_id, total=last.total, action=last.last_action)
        self._event("EPOCH_COMPLETED", epoch=e, mean_accuracy=snap.mean_accuracy_history[-1])
        snap.rewards, snap.last_reward_update = copy.copy(last), t

    def _end_batch(self, b: int, t: datetime) -> None:
        """Put each env's episode on the leaderboard (top 10 by peak), then reset the envs."""
        snap, run = self.snap, self.run
        self.now = t
        records = [
            schema.BestRunRecord(
                env_id=env.env_id,
                episode=b * run.n_envs + env.env_id,
                peak_accuracy=env.best_accuracy,
                final_accuracy=env.host_accuracy,
                epoch=env.best_accuracy_epoch,
                seeds=env.best_seeds,
                slot_ids=list(self.slot_ids),
                growth_ratio=env.growth_ratio,
                record_id=self._new_id(),
                reward_components=env.best_reward_components,
                counterfactual_matrix=env.best_counterfactual_matrix,
                shapley_snapshot=env.best_shapley_snapshot,
                action_history=list(env.best_action_history),
                reward_history=list(env.reward_history),
                accuracy_history=list(env.accuracy_history),
                host_loss=env.host_loss,
                host_params=env.host_params,
                fossilized_count=env.fossilized_count,
                pruned_count=env.pruned_count,
                reward_mode=env.reward_mode,
                blueprint_spawns=env.blueprint_spawns,
                blueprint_fossilized=env.blueprint_fossilized,
                blueprint_prunes=env.blueprint_prunes,
            )
            for env in snap.envs.values()
        ]
        snap.best_runs = sorted(snap.best_runs + records, key=lambda r: -r.peak_accuracy)
        del snap.best_runs[MAX_BEST_RUNS:]
        best = max(r.peak_accuracy for r in records)
        self._event("BATCH_EPOCH_COMPLETED", batch=b + 1, best_accuracy=best)
        snap.current_batch = b + 1
        snap.current_episode = snap.tamiyo.current_episode = (b + 1) * run.n_envs
        snap.tamiyo.action_counts = dict.fromkeys(schema.BASE_ACTIONS, 0)
        snap.tamiyo.total_actions = 0
        for counts in self.per_batch.values():
            counts.append(0)
        self._reset_envs()

    # -- seed lifecycle ------------------------------------------------------------------------

    def _age_seeds(self, env: EnvState) -> None:
        """One epoch of automatic lifecycle: stage timers, alpha ramps, safety prunes."""
        truths = self.truth[env.env_id]
        for slot, seed in env.seeds.items():
            if seed.stage == "DORMANT":
                continue
            seed.epochs_in_stage += 1
            if seed.stage == "PRUNED":
                if seed.epochs_in_stage >= EMBARGO_EPOCHS:
                    env.seeds[slot] = SeedState(slot)
                    del truths[slot]
                continue
            truth, eis = truths[slot], seed.epochs_in_stage
            seed.epochs_total += 1
            seed.grad_ratio = float(self.rng.lognormal(math.log(0.7), 0.35))
            if seed.stage == "GERMINATED":
                self._set_stage(env, seed, "TRAINING")
            elif seed.stage == "TRAINING" and truth.vanishing and eis >= 2:
                seed.has_vanishing = True
                seed.grad_ratio = float(self.rng.uniform(0.005, 0.04))
                if eis >= 3:
                    self._end_seed(env, seed, "PRUNED", "gradient_vanishing", auto=True)
            elif seed.stage == "BLENDING":
                seed.alpha = _alpha(seed.alpha_curve, eis / seed.blend_tempo_epochs)
                if eis >= seed.blend_tempo_epochs:
                    seed.alpha = 1.0
                    self._set_stage(env, seed, "HOLDING")
                elif seed.alpha * truth.contrib < -0.1:
                    self._end_seed(env, seed, "PRUNED", "negative_contribution", auto=True)
            elif eis > TIMEOUT_EPOCHS.get(seed.stage, eis):
                self._end_seed(env, seed, "PRUNED", "timeout", auto=True)

    def _set_stage(self, env: EnvState, seed: SeedState, stage: str) -> None:
        transition = {"slot_id": seed.slot_id, "from": seed.stage, "to": stage}
        self._event("SEED_STAGE_CHANGED", env.env_id, **transition)
        seed.stage, seed.epochs_in_stage = stage, 0

    def _end_seed(
        self, env: EnvState, seed: SeedState, stage: str, reason: str = "", *, auto: bool = False
    ) -> None:
        """Fossilize or prune a seed, with every count that follows."""
        snap, bp, slot = self.snap, seed.blueprint_id, seed.slot_id
        seed.improvement = seed.accuracy_delta
        self.lifespans.append(seed.epochs_total)
        self.avg_lifespan = statistics.fmean(self.lifespans)
        self._set_stage(env, seed, stage)
        if stage == "FOSSILIZED":
            env.fossilized_count += 1
            env.fossilized_params += seed.seed_params
            snap.cumulative_fossilized += 1
            tallies = (env.blueprint_fossilized, snap.cumulative_blueprint_fossilized)
            self.per_batch["fossilize"][-1] += 1
            meta = {"improvement": seed.improvement}
        else:
            seed.prune_reason, seed.auto_pruned, seed.alpha = reason, auto, 0.0
            env.pruned_count += 1
            snap.cumulative_pruned += 1
            tallies = (env.blueprint_prunes, snap.cumulative_blueprint_prunes)
            self.per_batch["prune"][-1] += 1
            meta = {"reason": reason, "auto_pruned": auto}
        self._event(f"SEED_{stage}", env.env_id, slot_id=slot, blueprint=bp, **meta)
        for tally in tallies:
            tally[bp] = tally.get(bp, 0) + 1

    def _germinate(self, env: EnvState, slot: str, h: float) -> dict:
        rng, snap = self.rng, self.snap
        probs = np.exp(_BP_MEANS / (0.1 + 0.7 * h))  # a sharper policy prefers what paid off
        probs /= probs.sum()
        choice = int(rng.choice(len(_BP_NAMES), p=probs))
        name, bp = _BP_NAMES[choice], BLUEPRINTS[_BP_NAMES[choice]]
        tempo, curve = int(rng.choice(list(TEMPOS))), list(CURVES)[int(rng.integers(len(CURVES)))]
        seed = env.seeds[slot] = SeedState(slot, "GERMINATED", name, seed_params=bp.params)
        seed.blend_tempo_epochs, seed.alpha_curve = tempo, curve
        contrib, vanishing = float(rng.normal(bp.mean, bp.sd)), bool(rng.random() < bp.p_vanish)
        self.truth[env.env_id][slot] = _Truth(contrib, vanishing, env.host_accuracy)
        for tally in (env.blueprint_spawns, snap.cumulative_blueprint_spawns):
            tally[name] = tally.get(name, 0) + 1
        snap.cumulative_germinated += 1
        self.per_batch["germination"][-1] += 1
        self._event("SEED_GERMINATED", env.env_id, slot_id=slot, blueprint=name)
        style = STYLES[int(rng.integers(len(STYLES)))]
        details = {"blueprint": name, "tempo": TEMPOS[tempo], "curve": curve, "style": style}
        return details | {"blueprint_p": float(probs[choice]), "blueprint_h": _entropy(probs)}

    # -- measurement and reward ----------------------------------------------------------------

    def _gains(self, env: EnvState) -> dict[str, float]:
        truths = self.truth[env.env_id]
        return {s: x.alpha * truths[s].contrib for s, x in env.seeds.items() if x.stage in LIVE}

    def _accuracy(self, env: EnvState, e: int) -> float:
        i = env.env_id
        rise = (self.env_ceiling[i] - CHANCE_ACCURACY) * (1 - math.exp(-e / self.env_tau[i]))
        self.ar_noise[i] = 0.55 * self.ar_noise[i] + self.rng.normal(0.0, 0.3)
        acc = CHANCE_ACCURACY + rise + _synergy(list(self._gains(env).values())) + self.ar_noise[i]
        return float(min(max(acc, 0.0), 100.0))

    def _measure(self, env: EnvState, acc: float, e: int) -> None:
        """Counterfactual matrix, Shapley values and per-seed contribution metrics."""
        gains = self._gains(env)
        slots, n = list(gains), len(gains)
        if n == 0 or n > MAX_FACTORIAL:
            env.counterfactual_matrix = schema.CounterfactualSnapshot()
            env.shapley_snapshot = schema.ShapleySnapshot()
            return
        d, rng = _design(n), self.rng
        added = d.synergy * (d.onehot @ np.fromiter(gains.values(), float, n))
        v = acc - added[-1] + added + rng.normal(0.0, 0.08, size=len(added))
        v[-1] = acc  # every seed on: the host as measured
        configs = list(map(schema.CounterfactualConfig, d.masks, v.tolist()))
        cost = float(len(v) * 3.2 * rng.lognormal(0.0, 0.2))
        env.counterfactual_matrix = schema.CounterfactualSnapshot(
            tuple(slots), configs, "full_factorial", cost
        )
        # Exact Shapley values from the full factorial; the std is the standard error that
        # esper's 32-permutation sampling estimate would have.
        marginal = v[d.with_] - v[d.without]
        means = (d.weights * marginal).sum(axis=1)
        stds = np.sqrt((d.weights * (marginal - means[:, None]) ** 2).sum(axis=1) / 32) + 0.01
        values = {
            s: schema.ShapleyEstimate(float(means[i]), float(stds[i]), 32)
            for i, s in enumerate(slots)
        }
        env.shapley_snapshot = schema.ShapleySnapshot(tuple(slots), values, e, self.now)
        alphas, total = [seed.alpha for seed in env.seeds.values()], sum(gains.values())
        for i, slot in enumerate(slots):
            seed, truth = env.seeds[slot], self.truth[env.env_id][slot]
            seed.counterfactual = float(acc - v[-1 - 2 ** (n - 1 - i)])  # ablate seed i
            seed.accuracy_delta = acc - truth.acc_at_germination
            seed.contribution_velocity = seed.counterfactual - truth.last_cf
            truth.last_cf = seed.counterfactual
            seed.interaction_sum = 0.08 * (total - gains[slot])
            seed.boost_received = max(0.0, seed.interaction_sum)
            pos = self.slot_ids.index(slot)
            seed.upstream_alpha_sum = float(sum(alphas[:pos]))
            seed.downstream_alpha_sum = float(sum(alphas[pos + 1 :]))

    def _reward(self, env: EnvState, acc: float, e: int) -> None:
        """The reward for the action taken after the previous epoch, by reward mode."""
        mode, rng = self.run.reward_mode, self.rng
        prev = env.accuracy_history[-1] if env.accuracy_history else CHANCE_ACCURACY
        last = env.action_history[-1] if env.action_history else "WAIT"
        live = [s for s in env.seeds.values() if s.stage in LIVE]
        blending = [s for s in live if s.stage == "BLENDING"]
        parts = dict.fromkeys(("base_acc_delta", "compute_rent", "stage_bonus"), 0.0)
        if mode == "sparse":  # only the episode's outcome counts
            if e == self.run.max_epochs:
                parts["base_acc_delta"] = (acc - 60.0) / 20.0
                parts["fossilize_terminal_bonus"] = 0.25 * env.fossilized_count
        else:
            parts["base_acc_delta"] = 0.05 * (acc - prev)
            parts["compute_rent"] = -0.01 * len(live)
            bonus = (
                {"FOSSILIZE": 0.2} if mode == "simplified" else {"ADVANCE": 0.3, "FOSSILIZE": 0.5}
            )
            parts["stage_bonus"] = bonus.get(last, 0.0)
        if mode not in ("sparse", "simplified"):  # shaped: every shaping term
            gamed = bool(rng.random() < 0.02)  # the anti-gaming check fired
            env.gaming_trigger_count += gamed
            contributing = [s for s in live if s.stage in schema.CONTRIBUTING_STAGES]
            credit = 0.05 * sum(s.counterfactual for s in contributing)
            parts["bounded_attribution"] = _clip(credit, -0.3, 0.3)
            parts["alpha_shock"] = -0.02 * len(blending)
            parts["ratio_penalty"] = -0.2 * gamed
            parts["fossilize_terminal_bonus"] = 0.2 * (last == "FOSSILIZE")
            parts["blending_warning"] = -0.1 * any(s.counterfactual < -0.2 for s in blending)
            stale = sum(s.stage == "HOLDING" and s.epochs_in_stage > 4 for s in live)
            parts["holding_warning"] = -0.05 * stale
        parts = {k: float(v) + 0.0 for k, v in parts.items()}  # + 0.0 turns -0.0 into 0.0
        rc = schema.RewardComponents(sum(parts.values()), **parts, env_id=env.env_id, val_acc=acc)
        rc.last_action, rc.scaffold_count = last, env.fossilized_count
        rc.avg_scaffold_delay = self.avg_lifespan
        env.reward_components = rc
        env.add_reward(rc.total, e)
        env.total_reward_steps += 1

    # -- Tamiyo --------------------------------------------------------------------------------

    def _act(self, env: EnvState, e: int, h: float) -> tuple[str, str | None, dict]:
        """Tamiyo's action for one env: the first candidate she commits to, else WAIT."""
        rng, decisive = self.rng, 0.3 + 0.6 * (1.0 - h)
        candidates: list[tuple[str, str, float]] = []
        for slot, seed in env.seeds.items():
            if seed.stage == "HOLDING" and seed.epochs_in_stage >= 2:
                if seed.counterfactual > 0.1:
                    candidates.append(("FOSSILIZE", slot, decisive))
                elif seed.counterfactual < 0.0:
                    candidates.append(("PRUNE", slot, decisive))
            elif seed.stage == "TRAINING" and seed.epochs_in_stage >= 3:
                # How well she judges a training seed improves as she learns.
                noise = (0.2 + 0.7 * h) / math.sqrt(seed.epochs_in_stage)
                signal = self.truth[env.env_id][slot].contrib + rng.normal(0.0, noise)
                if signal > 0.0:
                    candidates.append(("ADVANCE", slot, decisive))
                elif signal < -0.2:
                    candidates.append(("PRUNE", slot, 0.8 * decisive))
            elif seed.stage == "BLENDING":
                candidates.append(("SET_ALPHA_TARGET", slot, 0.06))
        dormant = [s for s, seed in env.seeds.items() if seed.stage == "DORMANT"]
        if dormant and e <= self.run.max_epochs - 5:
            slot = dormant[int(rng.integers(len(dormant)))]
            candidates.append(("GERMINATE", slot, 0.05 + 0.1 * (1.0 - h)))
        op, slot, details = "WAIT", None, {}
        for k in rng.permutation(len(candidates)):
            if rng.random() < candidates[k][2]:
                op, slot, _ = candidates[k]
                break
        name = op
        if op == "GERMINATE":
            details = self._germinate(env, slot, h)
            name = f"GERMINATE_{details['blueprint'].upper()}"  # a factored action name
        elif op == "ADVANCE":
            self._set_stage(env, env.seeds[slot], "BLENDING")
        elif op == "FOSSILIZE":
            self._end_seed(env, env.seeds[slot], "FOSSILIZED")
        elif op == "PRUNE":
            self._end_seed(env, env.seeds[slot], "PRUNED", "policy")
        elif op == "SET_ALPHA_TARGET":
            details = {"alpha_target": ALPHA_TARGETS[int(rng.integers(3))]}
            details["alpha_speed"] = ALPHA_SPEEDS[int(rng.integers(3))]
        env.add_action(name)
        tamiyo = self.snap.tamiyo
        tamiyo.action_counts[op] += 1
        tamiyo.cumulative_action_counts[op] += 1
        tamiyo.total_actions += 1
        tamiyo.cumulative_total_actions += 1
        tamiyo.last_action_op = op
        return op, slot, details

    def _head(self, k: int, h: float) -> tuple[float, float]:
        """Confidence in the chosen option of a k-way head, and the head's entropy."""
        if k <= 1:
            return 1.0, 0.0
        conf = _clip(1 / k + (1 - 1 / k) * (1 - h) + self.rng.normal(0, 0.08), 1 / k, 0.98)
        rest = (1 - conf) / (k - 1)  # spread evenly over the other options
        return conf, -conf * math.log(conf) - (1 - conf) * math.log(rest)

    def _record_decision(
        self, env: EnvState, op: str, slot: str | None, details: dict, b: int, e: int, h: float
    ) -> None:
        rng, snap = self.rng, self.snap
        confidence = _clip(0.3 + 0.65 * (1.0 - h) + rng.normal(0, 0.08), 0.2, 0.97)
        others = [a for a in schema.BASE_ACTIONS if a != op]
        probs = rng.dirichlet(np.ones(len(others))) * (1.0 - confidence)
        states = {}
        for s, seed in env.seeds.items():
            label = seed.stage.title() if seed.stage in LIVE else "Empty"
            states[s] = f"{label} {seed.alpha:.0%}" if seed.stage == "BLENDING" else label
        heads = {"slot": self.run.n_slots, "blueprint": HEAD_CHOICES["blueprint"]}
        heads |= {head: HEAD_CHOICES[head] for head in details if head in HEAD_CHOICES}
        per_head = {}
        for head, k in heads.items():
            per_head[f"{head}_confidence"], per_head[f"{head}_entropy"] = self._head(k, h)
        if "blueprint_p" in details:  # the blueprint head's actual distribution
            per_head["blueprint_confidence"] = details.pop("blueprint_p")
            per_head["blueprint_entropy"] = details.pop("blueprint_h")
        chosen = {f"chosen_{k}": v for k, v in details.items()}
        entropy = _entropy(np.append(probs, confidence))
        decision = schema.DecisionSnapshot(
            timestamp=self.now - timedelta(seconds=float(rng.uniform(0.05, 1.5))),
            slot_states=states,
            host_accuracy=env.host_accuracy,
            chosen_action=op,
            chosen_slot=slot,
            confidence=confidence,
            expected_value=float(0.4 * (1 - e / self.run.max_epochs) + rng.normal(0.0, 0.15)),
            actual_reward=None,
            alternatives=[(others[k], float(probs[k])) for k in np.argsort(-probs)[:2]],
            decision_id=self._new_id(),
            env_id=env.env_id,
            epoch=e,
            batch=b,
            decision_entropy=entropy,
            op_confidence=confidence,
            op_entropy=entropy,
            **chosen,
            **per_head,
        )
        snap.tamiyo.recent_decisions.insert(0, decision)
        self._drop_old_decisions()
        self.pending.append(decision)
        snap.last_action_env_id, snap.last_action_timestamp = env.env_id, decision.timestamp

    def _drop_old_decisions(self) -> None:
        decisions = self.snap.tamiyo.recent_decisions
        cutoff = self.now - timedelta(seconds=DECISION_MAX_AGE)
        decisions.sort(key=lambda d: d.timestamp, reverse=True)
        decisions[:] = [d for d in decisions[:MAX_DECISIONS] if d.timestamp >= cutoff]

    def _settle_decisions(self, terminal: bool = False) -> None:
        """A decision's reward arrives after the next epoch, its TD advantage one epoch later;
        at the episode's end both arrive at once."""
        waiting = []
        for d in self.pending:
            if d.actual_reward is None:
                d.actual_reward = self.snap.envs[d.env_id].reward_components.total
                d.value_residual = d.actual_reward - d.expected_value
                if not terminal:
                    waiting.append(d)
                    continue
            next_value = 0.0 if terminal else d.expected_value + float(self.rng.normal(0, 0.1))
            d.td_advantage = d.actual_reward + 0.99 * next_value - d.expected_value
        self.pending = waiting

    def _ppo_update(self, b: int, t: datetime) -> None:
        """One PPO update at the batch end: metrics drift as the policy learns."""
        rng, run, snap = self.rng, self.run, self.snap
        tam = snap.tamiyo
        self.now = snap.last_ppo_update = t
        self._settle_decisions(terminal=True)
        self._drop_old_decisions()
        frac = b / max(1, run.max_batches - 1)
        entropy = 0.5 + 1.1 * math.exp(-2.3 * frac) + rng.normal(0.0, 0.035)
        kl = _clip(rng.lognormal(math.log(0.008), 0.45), 0.002, 0.03)
        clip = _clip(0.06 + 4.0 * kl + rng.normal(0.0, 0.02), 0.05, 0.25)
        ev = 0.75 * (1 - math.exp(-3.0 * frac)) + rng.normal(0.0, 0.06)
        coef = ENTROPY_COEF[0] + (ENTROPY_COEF[1] - ENTROPY_COEF[0]) * frac
        returns = [env.cumulative_reward for env in snap.envs.values()]
        tam.entropy, tam.kl_divergence, tam.clip_fraction = entropy, kl, clip
        tam.explained_variance = ev
        tam.policy_loss, tam.grad_norm = rng.normal(-0.01, 0.012), rng.lognormal(-0.1, 0.2)
        tam.value_loss = (0.15 + 0.6 * (1 - max(ev, 0.0))) * rng.lognormal(0.0, 0.2)
        tam.entropy_coef, tam.entropy_loss = coef, -coef * entropy
        tam.update_time_ms = 900.0 * (run.n_envs / 4) ** 0.5 * rng.lognormal(0.0, 0.12)
        tam.early_stop_epoch = int(rng.integers(1, 4)) if kl > 0.02 else None
        tam.current_episode_return = snap.batch_avg_reward = float(np.mean(returns))
        tam.episode_return_history.append(tam.current_episode_return)
        for name in ("policy_loss", "value_loss", "grad_norm", "entropy"):
            getattr(tam, f"{name}_history").append(getattr(tam, name))
        for name in ("explained_variance", "kl_divergence", "clip_fraction"):
            getattr(tam, f"{name}_history").append(getattr(tam, name))
        for head in schema.HEADS:
            k = run.n_slots if head == "slot" else HEAD_CHOICES[head]
            share = min(1.0, entropy / _MAX_OP_ENTROPY * rng.uniform(0.85, 1.1))
            setattr(tam, f"head_{head}_entropy", math.log(max(k, 1)) * share)
        history = tam.entropy_history
        tam.entropy_velocity = schema.compute_entropy_velocity(history)
        tam.collapse_risk_score = schema.compute_collapse_risk(
            history, previous_risk=self.prev_risk
        )
        self.prev_risk = tam._previous_risk = tam.collapse_risk_score
        tam.entropy_clip_correlation = schema.compute_correlation(
            history, tam.clip_fraction_history
        )
        tam.entropy_collapsed = entropy < 0.3
        tam.ppo_batch, tam.ppo_data_received = b + 1, True
        self._value_function(tam, returns, ev)
        self._event("PPO_UPDATE_COMPLETED", entropy=entropy, kl_divergence=kl, clip_fraction=clip)

    def _value_function(self, tam: schema.TamiyoState, returns: list[float], ev: float) -> None:
        """Value predictions that track the returns as well as explained variance says."""
        rng, vf = self.rng, tam.value_function
        r = rng.normal(np.mean(returns), max(float(np.std(returns)), 0.3), size=100)
        rho = math.sqrt(min(max(ev, 0.02), 0.98))
        v = r.mean() + rho * (r - r.mean()) + rng.normal(0, r.std() * math.sqrt(1 - rho**2), 100)
        td = r - v
        vf.value_predictions.extend(v.tolist())
        vf.actual_returns.extend(r.tolist())
        vf.td_errors.extend(td.tolist())
        vf.v_return_correlation = float(np.corrcoef(v, r)[0, 1])
        vf.td_error_mean, vf.td_error_std = float(td.mean()), float(td.std())
        vf.bellman_error = float(np.mean(td**2))
        vf.return_p10, vf.return_p50, vf.return_p90 = np.percentile(r, [10, 50, 90]).tolist()
        vf.return_variance = float(r.var())
        vf.return_skewness = float(np.mean((r - r.mean()) ** 3) / r.std() ** 3)
        tam.value_mean, tam.value_std = float(v.mean()), float(v.std())
        tam.value_min, tam.value_max = float(v.min()), float(v.max())
        if tam.initial_value_spread is None:
            tam.initial_value_spread = tam.value_max - tam.value_min

    # -- snapshots -----------------------------------------------------------------------------

    def snapshot(self) -> SanctumSnapshot:
        """An independent copy of the current state, its aggregates filled in."""
        self._aggregate()
        return copy.deepcopy(self.snap)

    def _aggregate(self) -> None:
        snap, run, episodes = self.snap, self.run, self.snap.current_episode
        envs = list(snap.envs.values())
        snap.captured_at = self.now.isoformat()
        snap.runtime_seconds = (self.now - run.start).total_seconds()
        snap.staleness_seconds = float(self.noise.uniform(0.02, 0.6))
        snap.poll_count += 1
        snap.aggregate_mean_accuracy = float(np.mean([e.host_accuracy for e in envs]))
        snap.aggregate_mean_reward = float(np.mean([e.mean_reward for e in envs]))
        seeds = [s for e in envs for s in e.seeds.values()]
        snap.slot_stage_counts = {stage: sum(s.stage == stage for s in seeds) for stage in STAGES}
        busy = [s.epochs_in_stage for s in seeds if s.stage != "DORMANT"]
        snap.avg_epochs_in_stage = float(np.mean(busy)) if busy else 0.0
        snap.active_slots = sum(s.stage in LIVE for s in seeds)
        cumulative = (
            snap.cumulative_germinated,
            snap.cumulative_pruned,
            snap.cumulative_fossilized,
        )
        counts = dict(zip(self.per_batch, cumulative, strict=True))
        life = snap.seed_lifecycle
        for name, count in counts.items():
            setattr(life, f"{name}_count", count)
            setattr(life, f"{name}_rate", count / max(1, episodes))
            trend = schema.detect_trend(self.per_batch[name][:-1], metric_type="accuracy")
            setattr(life, f"{name}_trend", trend)  # over completed batches
        life.active_count, life.total_slots = snap.active_slots, snap.total_slots
        ended = counts["fossilize"] + counts["prune"]
        life.blend_success_rate = counts["fossilize"] / ended if ended else 0.0
        life.avg_lifespan_epochs = self.avg_lifespan
        stats = snap.episode_stats  # every episode runs to max_epochs: a timeout in esper terms
        stats.length_mean, stats.length_min = float(run.max_epochs), run.max_epochs
        stats.length_max = run.max_epochs
        stats.total_episodes = stats.timeout_count = episodes
        stats.timeout_rate = 1.0 if episodes else 0.0
        self._vitals()

    def _vitals(self) -> None:
        vitals, run, noise = self.snap.vitals, self.run, self.noise
        total = 24.0 if run.n_envs <= 16 else 80.0
        load = 0.45 + 0.2 * min(1.0, run.n_envs / 128)
        vitals.gpu_stats = {}
        for i in range(max(1, min(8, run.n_envs // 32))):
            used = total * _clip(load + noise.normal(0, 0.02), 0.1, 0.88)
            util, temp = _clip(noise.normal(85, 5), 0, 100), float(noise.normal(70, 3))
            vitals.gpu_stats[i] = schema.GPUStats(i, used, total, util, temp)
        gpu = vitals.gpu_stats[0]
        vitals.gpu_memory_used_gb, vitals.gpu_memory_total_gb = gpu.memory_used_gb, total
        vitals.gpu_utilization, vitals.gpu_temperature = gpu.utilization, gpu.temperature
        vitals.cpu_percent = float(noise.uniform(30, 60))
        vitals.ram_used_gb = float(10 + 0.05 * run.n_envs + noise.normal(0, 0.3))
        vitals.ram_total_gb, vitals.host_params = 64.0, HOST_PARAMS
        epoch_seconds = np.diff(self.epoch_end[0], prepend=STARTUP_SECONDS)
        vitals.epochs_per_second = run.n_envs / float(np.mean(epoch_seconds))
        vitals.batches_per_hour = 3600.0 / float(self.ppo_end[0] - STARTUP_SECONDS + 2.0)
