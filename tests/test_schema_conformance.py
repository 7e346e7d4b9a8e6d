"""The schema against its spec: every class, field, annotation and default.

The spec is read from ``tests/fixtures/spec/schema_reference.md`` so the suite is self-contained.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
import typing
from collections import deque
from datetime import datetime
from pathlib import Path

import pytest

from sanctum_store import schema
from sanctum_store.schema import (
    TREND_THRESHOLDS,
    EnvState,
    SanctumSnapshot,
    SeedState,
    TamiyoState,
)

SPEC = Path(__file__).parent / "fixtures" / "spec" / "schema_reference.md"

#: The eight action heads the spec's ``head_*`` wildcard rows and latch presets range over.
SPEC_HEADS = (
    "slot",
    "blueprint",
    "style",
    "tempo",
    "alpha_target",
    "alpha_speed",
    "alpha_curve",
    "op",
)

#: The 21 dataclasses the spec documents.
SPEC_CLASSES = {
    "SanctumSnapshot",
    "EnvState",
    "SeedState",
    "TamiyoState",
    "DecisionSnapshot",
    "RewardComponents",
    "ValueFunctionMetrics",
    "GradientQualityMetrics",
    "InfrastructureMetrics",
    "SystemVitals",
    "GPUStats",
    "RunConfig",
    "BestRunRecord",
    "EventLogEntry",
    "SeedLifecycleStats",
    "ObservationStats",
    "EpisodeStats",
    "ShapleySnapshot",
    "ShapleyEstimate",
    "CounterfactualSnapshot",
    "CounterfactualConfig",
}

#: What the spec's ``preset`` defaults contain (the table only says "preset").
PRESETS = {
    ("EnvState", "action_counts"): dict.fromkeys(
        ["GERMINATE", "SET_ALPHA_TARGET", "FOSSILIZE", "PRUNE", "WAIT", "ADVANCE"], 0
    ),
    ("TamiyoState", "head_nan_latch"): dict.fromkeys(SPEC_HEADS, False),
    ("TamiyoState", "head_inf_latch"): dict.fromkeys(SPEC_HEADS, False),
}

BLOCKS = "▁▂▃▄▅▆▇█"


# --------------------------------------------------------------------------------------------
# Reading the spec
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SpecField:
    name: str
    type: str
    default: str


def _cells(line: str) -> list[str]:
    """The cells of a markdown table row; ``\\|`` is a literal pipe, backticks are dropped."""
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.replace("\\|", "|").strip().strip("`").strip() for p in parts]


def parse_spec(text: str) -> dict[str, list[SpecField]]:
    """Each ``## [Prefix: ]ClassName`` section's ``| Field | Type | Default | Purpose |`` rows,
    with ``head_*`` wildcard rows expanded over the eight heads."""
    classes: dict[str, list[SpecField]] = {}
    section = None
    in_table = False
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].split(":")[-1].strip()
            in_table = False
        elif not line.startswith("|"):
            in_table = False
        elif _cells(line) == ["Field", "Type", "Default", "Purpose"]:
            in_table = True
            classes.setdefault(section, [])
        elif in_table and not set(line) <= set("|- "):
            name, type_, default, _purpose = _cells(line)
            names = [name.replace("*", h) for h in SPEC_HEADS] if "*" in name else [name]
            classes[section].extend(SpecField(n, type_, default) for n in names)
    return classes


def parse_spec_thresholds(text: str) -> dict[str, float]:
    """The ``| Metric | Threshold | Notes |`` table of TREND_THRESHOLDS, as fractions."""
    thresholds = {}
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
        elif _cells(line)[:2] == ["Metric", "Threshold"]:
            in_table = True
        elif in_table and not set(line) <= set("|- "):
            metric, threshold, _notes = _cells(line)
            thresholds[metric] = float(threshold.rstrip("%")) / 100
    return thresholds


SPEC_TEXT = SPEC.read_text(encoding="utf-8")
SPEC_FIELDS = parse_spec(SPEC_TEXT)


def _norm_type(annotation) -> str:
    """An annotation as comparable text: no whitespace, quotes or module prefixes."""
    if not isinstance(annotation, str):
        annotation = annotation.__name__ if isinstance(annotation, type) else str(annotation)
        annotation = re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", annotation)
    return re.sub(r"[\s'\"]", "", annotation)


_LITERALS = {"NaN": math.nan, "inf": math.inf, "-inf": -math.inf}


def _default_problems(cls_name: str, f: dataclasses.Field, spec: SpecField) -> list[str]:
    """Why field ``f`` does not have the default ``spec`` documents (empty if it does)."""
    where = f"{cls_name}.{f.name}"
    has_default = f.default is not dataclasses.MISSING
    factory = f.default_factory if f.default_factory is not dataclasses.MISSING else None
    doc = spec.default
    container_of = {"{}": ("dict[", dict), "[]": ("list[", list), "()": ("tuple[", tuple)}

    if doc == "required":
        if has_default or factory:
            return [f"{where}: documented as required but has a default"]
        return []
    if doc in container_of:
        prefix, kind = container_of[doc]
        if not spec.type.startswith(prefix):
            return [f"{where}: spec default {doc} does not fit type {spec.type}"]
        if kind is tuple and has_default:
            # An immutable empty tuple may be a plain default: sharing it is harmless.
            value = f.default
        elif factory is None:
            return [f"{where}: {doc} needs a default_factory"]
        else:
            value = factory()
            if value is factory():
                return [f"{where}: default_factory returns one shared object"]
        if type(value) is not kind or len(value) != 0:
            return [f"{where}: default {value!r} is not an empty {kind.__name__}"]
        return []
    if doc == "factory":
        target = getattr(schema, spec.type, None)
        if not (isinstance(target, type) and dataclasses.is_dataclass(target)):
            return [f"{where}: factory type {spec.type} is not a schema dataclass"]
        if factory is None or type(factory()) is not target:
            return [f"{where}: default_factory does not build a {spec.type}"]
        return []
    if m := re.fullmatch(r"maxlen=(\d+)", doc):
        if not spec.type.startswith("deque["):
            return [f"{where}: maxlen default on non-deque type {spec.type}"]
        value = factory() if factory else None
        if type(value) is not deque or value.maxlen != int(m[1]) or len(value) != 0:
            return [f"{where}: default is not an empty deque(maxlen={m[1]})"]
        return []
    if doc == "preset":
        expected = PRESETS.get((cls_name, f.name))
        if expected is None:
            return [f"{where}: the spec documents a preset this test does not know"]
        if factory is None or factory() != expected or type(factory()) is not dict:
            return [f"{where}: preset default is not {expected!r}"]
        return []

    expected = _LITERALS[doc] if doc in _LITERALS else ast.literal_eval(doc)
    if factory is not None or not has_default:
        return [f"{where}: literal default {doc} should be a plain default"]
    actual = f.default
    same = actual == expected or (
        isinstance(actual, float) and math.isnan(actual) and math.isnan(expected)
    )
    if type(actual) is not type(expected) or not same:
        return [f"{where}: default {actual!r} is not the documented {doc}"]
    return []


# --------------------------------------------------------------------------------------------
# Conformance
# --------------------------------------------------------------------------------------------


def test_spec_documents_the_21_classes():
    assert set(SPEC_FIELDS) == SPEC_CLASSES
    assert all(SPEC_FIELDS.values())
    # The wildcard rows really expanded: 8 grad_norm_prev and 8 ratio_max fields.
    tamiyo = [f.name for f in SPEC_FIELDS["TamiyoState"]]
    assert sum(n.endswith("_grad_norm_prev") for n in tamiyo) == 8
    assert sum(re.fullmatch(r"head_\w+_ratio_max", n) is not None for n in tamiyo) == 8


@pytest.mark.parametrize("cls_name", sorted(SPEC_CLASSES))
def test_class_conforms_to_spec(cls_name):
    cls = getattr(schema, cls_name)
    assert dataclasses.is_dataclass(cls)
    documented = SPEC_FIELDS[cls_name]
    fields = {f.name: f for f in dataclasses.fields(cls)}

    missing = [s.name for s in documented if s.name not in fields]
    undocumented = sorted(set(fields) - {s.name for s in documented})
    assert not missing, f"{cls_name} lacks documented fields {missing}"
    assert not undocumented, f"{cls_name} has undocumented fields {undocumented}"
    # Positional construction (GPUStats(0, used, total), ...) relies on the documented order.
    assert list(fields) == [s.name for s in documented]

    problems = []
    for spec in documented:
        f = fields[spec.name]
        if _norm_type(f.type) != _norm_type(spec.type):
            problems.append(f"{cls_name}.{f.name}: annotation {f.type!r} != {spec.type!r}")
        problems += _default_problems(cls_name, f, spec)
    assert not problems, "\n".join(problems)

    # Every annotation resolves to real types (no dangling forward references).
    hints = typing.get_type_hints(cls)
    assert set(fields) <= set(hints)


@pytest.mark.parametrize("cls_name", sorted(SPEC_CLASSES))
def test_mutable_defaults_are_not_shared(cls_name):
    cls = getattr(schema, cls_name)
    first, second = _instance(cls), _instance(cls)
    for f in dataclasses.fields(cls):
        if f.default_factory is dataclasses.MISSING:
            continue
        a, b = getattr(first, f.name), getattr(second, f.name)
        assert a is not b, f"{cls_name}.{f.name} is shared between instances"
        before = _fingerprint(b)
        _mutate(a)
        assert _fingerprint(b) == before, f"mutating {cls_name}.{f.name} changed another instance"


def _sample_value(type_str: str):
    t = _norm_type(type_str)
    if t.endswith("|None"):
        return None
    simple = {"int": 0, "float": 0.0, "str": "", "bool": False, "datetime": datetime(2025, 1, 1)}
    if t in simple:
        return simple[t]
    for prefix, kind in (("dict[", dict), ("list[", list), ("tuple[", tuple)):
        if t.startswith(prefix):
            return kind()
    raise AssertionError(f"no sample for required field of type {type_str}")


def _instance(cls):
    required = {
        f.name: _sample_value(f.type)
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    return cls(**required)


def _mutate(value):
    if isinstance(value, dict):
        value["__probe__"] = 1
    elif isinstance(value, list | deque):
        value.append(1.0)
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            if f.default_factory is not dataclasses.MISSING:
                _mutate(getattr(value, f.name))
                return
        name = dataclasses.fields(value)[0].name
        setattr(value, name, "__probe__")


def _fingerprint(value):
    return repr(value)


def test_previous_risk_is_a_per_instance_field():
    (previous_risk,) = [f for f in dataclasses.fields(TamiyoState) if f.name == "_previous_risk"]
    assert typing.get_type_hints(TamiyoState)["_previous_risk"] is float
    assert previous_risk.default == 0.0
    tamiyo, other = TamiyoState(), TamiyoState()
    tamiyo._previous_risk = 0.6
    assert (tamiyo._previous_risk, other._previous_risk) == (0.6, 0.0)
    assert dataclasses.asdict(tamiyo)["_previous_risk"] == 0.6
    assert dataclasses.asdict(SanctumSnapshot(tamiyo=tamiyo))["tamiyo"]["_previous_risk"] == 0.6


def test_seed_state_uses_slots():
    assert "__slots__" in SeedState.__dict__
    seed = SeedState(slot_id="r0c0")
    assert not hasattr(seed, "__dict__")
    with pytest.raises(AttributeError):
        seed.not_a_field = 1


def test_presets_cover_the_documented_heads_and_actions():
    assert schema.HEADS == SPEC_HEADS
    assert set(schema.BASE_ACTIONS) == set(PRESETS[("EnvState", "action_counts")])
    env = EnvState(env_id=0)
    env.action_counts["WAIT"] += 1
    assert EnvState(env_id=1).action_counts["WAIT"] == 0


def test_trend_thresholds_are_the_documented_values():
    documented = {
        "episode_return": 0.15,
        "entropy": 0.08,
        "policy_loss": 0.20,
        "value_loss": 0.20,
        "kl_divergence": 0.30,
        "clip_fraction": 0.30,
        "grad_norm": 0.25,
        "expl_var": 0.15,
        "default": 0.15,
    }
    assert parse_spec_thresholds(SPEC_TEXT) == pytest.approx(documented)
    assert documented == TREND_THRESHOLDS
