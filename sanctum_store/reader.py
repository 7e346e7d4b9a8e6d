"""Rebuilding snapshot trees from the archive's rows (the inverse of :mod:`persist`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sanctum_store import codec, rows, schema
from sanctum_store.models import LAYOUTS
from sanctum_store.persist import KEYED, VALUE_CLASSES, T, apply_overlay

_CHUNK = 500


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _Fetch:
    """Collects the references a snapshot needs, then fetches each kind in a few queries."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.wanted: dict[str, set[int]] = defaultdict(set)
        self.windows: set[tuple[int, int, int]] = set()
        self.values: dict[str, dict[int, Any]] = {}
        self.points: dict[int, dict[int, Any]] = defaultdict(dict)

    # -- collecting ---------------------------------------------------------------------------

    def want_refs(self, cls: type, row: Mapping, prefix: str = "") -> None:
        for name, table in LAYOUTS[cls].refs.items():
            pk = row[f"{prefix}{name}_id"]
            if pk is not None:
                self.wanted[table].add(pk)

    def want_series(self, cls: type, row: Mapping, prefix: str = "") -> None:
        layout = LAYOUTS[cls]
        for name in layout.series:
            sid, start, length = (row[prefix + name + s] for s in ("_sid", "_start", "_len"))
            if length:
                self.windows.add((sid, start, length))
        for name, child_prefix in layout.flatten.items():
            self.want_series(_child_cls(cls, name), row, prefix + child_prefix)

    # -- fetching -----------------------------------------------------------------------------

    def run(self) -> None:
        self._fetch_points()
        for table in ("reward_components", "run_configs", "counterfactuals", "shapley_snapshots"):
            ids = sorted(self.wanted.get(table, ()))
            self.values[table] = self._fetch_values(table, ids) if ids else {}
        ids = sorted(self.wanted.get("seed_sets", ()))
        self.values["seed_sets"] = self._fetch_seed_sets(ids) if ids else {}

    def _fetch_points(self) -> None:
        points = T["series_points"]
        windows = sorted(self.windows)
        for chunk in _chunks(windows, 300):
            condition = sa.or_(
                *(
                    sa.and_(
                        points.c.series_id == sid,
                        points.c.seq >= start,
                        points.c.seq < start + length,
                    )
                    for sid, start, length in chunk
                )
            )
            query = sa.select(points.c.series_id, points.c.seq, points.c.num, points.c.txt)
            for sid, seq, num, txt in self.conn.execute(query.where(condition)):
                self.points[sid][seq] = (num, txt)

    def _children(self, table_name: str, parent: str, ids: list[int]) -> Iterable[Mapping]:
        """Rows of a child table for these parents, in parent and position order."""
        table = T[table_name]
        for chunk in _chunks(ids):
            query = (
                sa.select(table)
                .where(table.c[parent].in_(chunk))
                .order_by(table.c[parent], table.c.position)
            )
            yield from self.conn.execute(query).mappings()

    def _fetch_values(self, table_name: str, ids: list[int]) -> dict[int, Any]:
        table = T[table_name]
        cls = VALUE_CLASSES[table_name]
        found: dict[int, Any] = {}
        for chunk in _chunks(ids):
            for row in self.conn.execute(sa.select(table).where(table.c.id.in_(chunk))).mappings():
                tree = rows.from_row(cls, row)
                if table_name == "counterfactuals":
                    tree["configs"] = []
                elif table_name == "shapley_snapshots":
                    tree["values"] = {}
                found[row["id"]] = _ordered(cls, tree)
        if table_name == "counterfactuals":
            for row in self._children("counterfactual_configs", "counterfactual_id", ids):
                config = rows.from_row(schema.CounterfactualConfig, row)
                config["seed_mask"] = rows.text_to_mask(row["seed_mask"])
                found[row["counterfactual_id"]]["configs"].append(
                    _ordered(schema.CounterfactualConfig, config)
                )
        elif table_name == "shapley_snapshots":
            for row in self._children("shapley_estimates", "shapley_id", ids):
                estimate = rows.from_row(schema.ShapleyEstimate, row)
                found[row["shapley_id"]]["values"][row["slot_id"]] = estimate
        return found

    def _fetch_seed_sets(self, ids: list[int]) -> dict[int, dict]:
        found: dict[int, dict] = {pk: {} for pk in ids}
        for row in self._children("seed_states", "seed_set_id", ids):
            found[row["seed_set_id"]][row["slot_key"]] = rows.from_row(schema.SeedState, row)
        return found

    # -- filling ------------------------------------------------------------------------------

    def fill(self, cls: type, tree: dict, row: Mapping, prefix: str = "") -> None:
        """Put references and histories into a tree node built by rows.from_row."""
        layout = LAYOUTS[cls]
        for name, table in layout.refs.items():
            pk = row[f"{prefix}{name}_id"]
            tree[name] = None if pk is None else _copy(self.values[table][pk])
        specs = {f.name: f.spec for f in codec.class_info(cls).fields}
        for name in layout.series:
            sid, start, length = (row[prefix + name + s] for s in ("_sid", "_start", "_len"))
            if not length:
                tree[name] = []
                continue
            values = self.points[sid]
            window = [values[seq] for seq in range(start, start + length)]
            if specs[name].item.kind == "str":
                tree[name] = [txt for _, txt in window]
            else:
                tree[name] = [rows.point_float(num, txt) for num, txt in window]
        for name, child_prefix in layout.flatten.items():
            self.fill(_child_cls(cls, name), tree[name], row, prefix + child_prefix)


def _child_cls(cls: type, name: str) -> type:
    for f in codec.class_info(cls).fields:
        if f.name == name:
            return f.spec.cls
    raise KeyError(name)


def _copy(value: Any) -> Any:
    # Value records are shared between envs of a snapshot; trees must not alias.
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _ordered(cls: type, tree: dict) -> dict:
    """Fields in schema order (nicer JSON output; equality does not depend on it)."""
    out = {f.name: tree[f.name] for f in codec.class_info(cls).fields}
    if codec.EXTRA in tree:
        out[codec.EXTRA] = tree[codec.EXTRA]
    return out


def load_tree(conn: Connection, snapshot_id: int) -> dict:
    """The tree of one stored snapshot."""
    snap = conn.execute(sa.select(T["snapshots"]).where(T["snapshots"].c.id == snapshot_id))
    snap = snap.mappings().one()
    fetch = _Fetch(conn)
    fetch.want_refs(schema.SanctumSnapshot, snap)
    fetch.want_series(schema.SanctumSnapshot, snap)

    tamiyo_row = (
        conn.execute(
            sa.select(T["tamiyo_states"]).where(T["tamiyo_states"].c.snapshot_id == snapshot_id)
        )
        .mappings()
        .one()
    )
    fetch.want_series(schema.TamiyoState, tamiyo_row)

    env_table = T["env_states"]
    env_rows = (
        conn.execute(
            sa.select(env_table)
            .where(env_table.c.snapshot_id == snapshot_id)
            .order_by(env_table.c.position)
        )
        .mappings()
        .all()
    )
    for env_row in env_rows:
        fetch.want_refs(schema.EnvState, env_row)
        fetch.want_series(schema.EnvState, env_row)

    decisions = _linked(conn, "decisions", snapshot_id)
    best_runs = _linked(conn, "best_runs", snapshot_id)
    for best_row, _ in best_runs:
        fetch.want_refs(schema.BestRunRecord, best_row)
    fetch.run()

    tree = rows.from_row(schema.SanctumSnapshot, snap)
    fetch.fill(schema.SanctumSnapshot, tree, snap)

    tree["vitals"]["gpu_stats"] = _gpu_stats(conn, snapshot_id)
    tree["vitals"] = _ordered(schema.SystemVitals, tree["vitals"])
    _blueprint_counts(conn, snapshot_id, tree)

    tamiyo = rows.from_row(schema.TamiyoState, tamiyo_row)
    fetch.fill(schema.TamiyoState, tamiyo, tamiyo_row)
    _action_counts(conn, snapshot_id, tamiyo)
    tamiyo["recent_decisions"] = [
        apply_overlay(schema.DecisionSnapshot, keyed_tree(conn, "decisions", row), overlay)
        for row, overlay in decisions
    ]
    for name in ("infrastructure", "gradient_quality", "value_function"):
        tamiyo[name] = _ordered(_child_cls(schema.TamiyoState, name), tamiyo[name])
    tree["tamiyo"] = _ordered(schema.TamiyoState, tamiyo)

    envs = {}
    for env_row in env_rows:
        env = rows.from_row(schema.EnvState, env_row)
        fetch.fill(schema.EnvState, env, env_row)
        envs[int(env_row["env_key"])] = _ordered(schema.EnvState, env)
    tree["envs"] = envs

    tree["event_log"] = _events(conn, snap)
    records = []
    for best_row, overlay in best_runs:
        record = rows.from_row(schema.BestRunRecord, best_row)
        fetch.fill(schema.BestRunRecord, record, best_row)
        records.append(
            apply_overlay(schema.BestRunRecord, _ordered(schema.BestRunRecord, record), overlay)
        )
    tree["best_runs"] = records
    for name in ("seed_lifecycle", "observation_stats", "episode_stats"):
        tree[name] = _ordered(_child_cls(schema.SanctumSnapshot, name), tree[name])
    return _ordered(schema.SanctumSnapshot, tree)


def _linked(conn: Connection, kind: str, snapshot_id: int) -> list[tuple[Mapping, Any]]:
    spec = KEYED[kind]
    table, links = T[kind], T[spec.link_table]
    query = (
        sa.select(table, links.c.overlay)
        .join(links, links.c[spec.link_fk] == table.c.id)
        .where(links.c.snapshot_id == snapshot_id)
        .order_by(links.c.position)
    )
    return [(row, row["overlay"]) for row in conn.execute(query).mappings().all()]


def keyed_tree(conn: Connection, kind: str, row: Mapping) -> dict:
    """The canonical tree of a decision or best-run row."""
    cls = KEYED[kind].cls
    tree = rows.from_row(cls, row)
    if kind == "decisions":
        alternatives = T["decision_alternatives"]
        query = (
            sa.select(alternatives.c.action, alternatives.c.probability, alternatives.c.float_marks)
            .where(alternatives.c.decision_pk == row["id"])
            .order_by(alternatives.c.position)
        )
        tree["alternatives"] = [
            (action, rows.load_float(probability, "probability", False, rows.parse_marks(marks)))
            for action, probability, marks in conn.execute(query)
        ]
    else:
        fetch = _Fetch(conn)
        fetch.want_refs(cls, row)
        fetch.run()
        fetch.fill(cls, tree, row)
    return _ordered(cls, tree)


def _gpu_stats(conn: Connection, snapshot_id: int) -> dict[int, dict]:
    table = T["gpu_stats"]
    query = sa.select(table).where(table.c.snapshot_id == snapshot_id).order_by(table.c.position)
    return {
        int(row["device_key"]): rows.from_row(schema.GPUStats, row)
        for row in conn.execute(query).mappings()
    }


def _blueprint_counts(conn: Connection, snapshot_id: int, tree: dict) -> None:
    table = T["blueprint_counts"]
    names = {
        "spawns": "cumulative_blueprint_spawns",
        "fossilized": "cumulative_blueprint_fossilized",
        "prunes": "cumulative_blueprint_prunes",
    }
    for name in names.values():
        tree[name] = {}
    for row in conn.execute(sa.select(table).where(table.c.snapshot_id == snapshot_id)).mappings():
        for column, name in names.items():
            if row[column] is not None:
                tree[name][row["blueprint_id"]] = int(row[column])


def _action_counts(conn: Connection, snapshot_id: int, tamiyo: dict) -> None:
    table = T["action_counts"]
    tamiyo["action_counts"], tamiyo["cumulative_action_counts"] = {}, {}
    for row in conn.execute(sa.select(table).where(table.c.snapshot_id == snapshot_id)).mappings():
        target = "action_counts" if row["scope"] == "batch" else "cumulative_action_counts"
        tamiyo[target][row["action"]] = int(row["count"])


def _events(conn: Connection, snap: Mapping) -> list[dict]:
    length = snap["event_log_len"]
    if not length:
        return []
    table = T["events"]
    start = snap["event_log_start"]
    query = (
        sa.select(table)
        .where(table.c.run_pk == snap["run_pk"], table.c.seq >= start, table.c.seq < start + length)
        .order_by(table.c.seq)
    )
    events = []
    for row in conn.execute(query).mappings():
        event = rows.from_row(schema.EventLogEntry, row)
        event["metadata"] = rows.unpack_event_id(event["metadata"], row["event_uuid"])
        events.append(_ordered(schema.EventLogEntry, event))
    for position, override in (snap["event_overrides"] or {}).items():
        events[int(position)].update(override)
    return events
