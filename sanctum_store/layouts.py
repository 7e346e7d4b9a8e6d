"""How the schema's classes map onto columns: column types and each class's
:class:`Layout` (what is a column, a JSON column, a 1:1 record flattened under a prefix, a
reference to a value record, a history window, or stored by its table's role).

The columns of a schema class are generated from its dataclass (:func:`columns_of`), so schema
and tables cannot drift apart. See :mod:`sanctum_store.models` for the storage choices.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import mapped_column
from sqlalchemy.types import TypeDecorator

from sanctum_store import codec, forms, schema

# --------------------------------------------------------------------------------------------
# Column types
# --------------------------------------------------------------------------------------------


class IsoDateTime(TypeDecorator):
    """A schema datetime, stored as ISO-8601 text so naive/aware values and offsets survive."""

    impl = sa.String(64)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> str | None:
        return None if value is None else value.isoformat()

    def process_result_value(self, value: str | None, dialect) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)


class TaggedJSON(TypeDecorator):
    """JSON for free-form values; NaN/±inf survive as tagged objects (see forms.tag)."""

    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> Any:
        return None if value is None else forms.tag(value)

    def process_result_value(self, value: Any, dialect) -> Any:
        return None if value is None else forms.untag(value)


#: Primary keys: BIGINT on PostgreSQL, the rowid alias INTEGER on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_COLUMN_TYPES = {
    "int": sa.BigInteger,
    "float": sa.Double,
    "str": sa.Text,
    "bool": sa.Boolean,
    "datetime": IsoDateTime,
}


# --------------------------------------------------------------------------------------------
# Layouts: how each schema class maps onto columns
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a schema class is laid out in its table.

    ``flatten`` maps a nested 1:1 field to its column prefix; ``refs`` maps a value-record
    field to the table it is stored once in; ``series`` fields become history windows; ``json``
    fields JSON columns; ``masks`` (tuples of bools) '1'/'0' text columns declared by their
    table; ``special`` fields are stored by their table's role (child tables, links).
    """

    cls: type
    flatten: dict[str, str] = dataclasses.field(default_factory=dict)
    refs: dict[str, str] = dataclasses.field(default_factory=dict)
    series: tuple[str, ...] = ()
    json: tuple[str, ...] = ()
    masks: tuple[str, ...] = ()
    special: tuple[str, ...] = ()

    def scalar_fields(self) -> list[codec.FieldInfo]:
        handled = {*self.flatten, *self.refs, *self.series, *self.json, *self.masks}
        handled |= set(self.special)
        out = []
        for f in codec.class_info(self.cls).fields:
            if f.name in handled:
                continue
            if f.spec.kind not in codec.SCALAR_KINDS:
                raise TypeError(f"{self.cls.__name__}.{f.name} has no storage in its layout")
            out.append(f)
        return out


LAYOUTS: dict[type, Layout] = {
    schema.SanctumSnapshot: Layout(
        schema.SanctumSnapshot,
        flatten={
            "vitals": "vitals_",
            "seed_lifecycle": "seed_lifecycle_",
            "observation_stats": "observation_stats_",
            "episode_stats": "episode_stats_",
        },
        refs={"rewards": "reward_components", "run_config": "run_configs"},
        series=("mean_accuracy_history",),
        json=("slot_ids", "slot_stage_counts"),
        special=(
            "envs",
            "tamiyo",
            "event_log",
            "best_runs",
            "cumulative_blueprint_spawns",
            "cumulative_blueprint_fossilized",
            "cumulative_blueprint_prunes",
        ),
    ),
    schema.SystemVitals: Layout(schema.SystemVitals, special=("gpu_stats",)),
    schema.SeedLifecycleStats: Layout(schema.SeedLifecycleStats),
    schema.ObservationStats: Layout(schema.ObservationStats),
    schema.EpisodeStats: Layout(schema.EpisodeStats),
    schema.TamiyoState: Layout(
        schema.TamiyoState,
        flatten={
            "infrastructure": "infrastructure_",
            "gradient_quality": "gradient_quality_",
            "value_function": "value_function_",
        },
        series=(
            "episode_return_history",
            "policy_loss_history",
            "value_loss_history",
            "grad_norm_history",
            "entropy_history",
            "explained_variance_history",
            "kl_divergence_history",
            "clip_fraction_history",
        ),
        json=("head_nan_latch", "head_inf_latch", "layer_gradient_health"),
        special=("action_counts", "cumulative_action_counts", "recent_decisions"),
    ),
    schema.InfrastructureMetrics: Layout(schema.InfrastructureMetrics),
    schema.GradientQualityMetrics: Layout(schema.GradientQualityMetrics),
    schema.ValueFunctionMetrics: Layout(
        schema.ValueFunctionMetrics, series=("value_predictions", "actual_returns", "td_errors")
    ),
    schema.EnvState: Layout(
        schema.EnvState,
        refs={
            "seeds": "seed_sets",
            "best_seeds": "seed_sets",
            "reward_components": "reward_components",
            "best_reward_components": "reward_components",
            "counterfactual_matrix": "counterfactuals",
            "best_counterfactual_matrix": "counterfactuals",
            "shapley_snapshot": "shapley_snapshots",
            "best_shapley_snapshot": "shapley_snapshots",
        },
        series=("reward_history", "accuracy_history", "action_history", "best_action_history"),
        json=("blueprint_spawns", "blueprint_prunes", "blueprint_fossilized", "action_counts"),
    ),
    schema.SeedState: Layout(schema.SeedState),
    schema.RewardComponents: Layout(schema.RewardComponents),
    schema.RunConfig: Layout(schema.RunConfig, json=("entropy_anneal",)),
    schema.CounterfactualSnapshot: Layout(
        schema.CounterfactualSnapshot, json=("slot_ids",), special=("configs",)
    ),
    schema.CounterfactualConfig: Layout(schema.CounterfactualConfig, masks=("seed_mask",)),
    schema.ShapleySnapshot: Layout(schema.ShapleySnapshot, json=("slot_ids",), special=("values",)),
    schema.ShapleyEstimate: Layout(schema.ShapleyEstimate),
    schema.GPUStats: Layout(schema.GPUStats),
    schema.DecisionSnapshot: Layout(
        schema.DecisionSnapshot, json=("slot_states",), special=("alternatives",)
    ),
    schema.BestRunRecord: Layout(
        schema.BestRunRecord,
        refs={
            "seeds": "seed_sets",
            "reward_components": "reward_components",
            "counterfactual_matrix": "counterfactuals",
            "shapley_snapshot": "shapley_snapshots",
        },
        json=(
            "slot_ids",
            "action_history",
            "reward_history",
            "accuracy_history",
            "blueprint_spawns",
            "blueprint_fossilized",
            "blueprint_prunes",
        ),
    ),
    schema.EventLogEntry: Layout(schema.EventLogEntry, json=("metadata",)),
}


def column_plan(cls: type, prefix: str = "") -> list[tuple[str, Any, bool]]:
    """``(column name, type, nullable)`` for every generated column of a schema class."""
    layout = LAYOUTS[cls]
    columns: list[tuple[str, Any, bool]] = []
    for f in layout.scalar_fields():
        nullable = f.spec.optional or f.spec.kind == "float"  # NaN is stored as NULL
        columns.append((prefix + f.name, _COLUMN_TYPES[f.spec.kind], nullable))
    for name in layout.json:
        columns.append((prefix + name, TaggedJSON, True))
    for name in layout.refs:
        columns.append((f"{prefix}{name}_id", BigId, True))
    for name in layout.series:
        for suffix in ("_sid", "_start", "_len"):
            columns.append(
                (prefix + name + suffix, sa.Integer if suffix == "_len" else BigId, True)
            )
    for name, child_prefix in layout.flatten.items():
        child_cls = next(f.spec.cls for f in codec.class_info(cls).fields if f.name == name)
        columns.extend(column_plan(child_cls, prefix + child_prefix))
    columns.append((prefix + "extra", TaggedJSON, True))
    return columns


def columns_of(cls: type, prefix: str = "", *, all_nullable: bool = False) -> type:
    """A declarative mixin holding the generated columns of a schema class."""
    namespace: dict[str, Any] = {}
    for name, type_, nullable in column_plan(cls, prefix):
        nullable = nullable or all_nullable
        # Declarative reserves the attribute `metadata` (EventLogEntry has such a field).
        attribute = name + "_" if name in ("metadata", "registry") else name
        namespace[attribute] = mapped_column(name, type_, nullable=nullable)
    if not prefix:
        namespace["float_marks"] = mapped_column(sa.Text, nullable=True)
    return type(f"{cls.__name__}Columns", (), namespace)
