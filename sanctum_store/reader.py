"""Rebuilding snapshot trees from the archive's rows (the inverse of :mod:`persist`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sanctum_store import forms, models, rows, schema
from sanctum_store.layouts import LAYOUTS
from sanctum_store.models import ROLES, TABLES, tables_of

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

    def want_series(self, cls: type, row: Mapping) -> None:
        for _, column, _ in rows.series_plan(cls):
            sid, start, length = (row[column + s] for s in ("_sid", "_start", "_len"))
            if length:
                self.windows.add((sid, start, length))

    # -- fetching -----------------------------------------------------------------------------

    def run(self) -> None:
        self._fetch_points()
        for table in tables_of("value"):
            ids = sorted(self.wanted.get(table, ()))
            self.values[table] = self._fetch_values(table, ids) if ids else {}

    def _fetch_points(self) -> None:
        points = TABLES["series_points"]
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

    def _fetch_values(self, table_name: str, ids: list[int]) -> dict[int, Any]:
        table, role = TABLES[table_name], ROLES[table_name]
        found: dict[int, Any] = {}
        if role.cls is not None:
            for chunk in _chunks(ids):
                query = sa.select(table).where(table.c.id.in_(chunk))
                for row in self.conn.execute(query).mappings():
                    found[row["id"]] = rows.from_row(role.cls, row)
        if role.items is not None:
            for pk, collection in items_of(self.conn, role.items, ids).items():
                if role.items.field is None:
                    found[pk] = collection
                else:
                    found[pk][role.items.field] = collection
        return found

    # -- filling ------------------------------------------------------------------------------

    def fill(self, cls: type, tree: dict, row: Mapping) -> None:
        """Put references and histories (the writer's: persist.add_refs_bulk, add_series)
        into a tree node built by rows.from_row."""
        for name, table in LAYOUTS[cls].refs.items():
            pk = row[f"{name}_id"]
            tree[name] = None if pk is None else _copy(self.values[table][pk])
        for path, column, text in rows.series_plan(cls):
            node = tree
            for name in path[:-1]:
                node = node[name]
            sid, start, length = (row[column + s] for s in ("_sid", "_start", "_len"))
            window = (
                [self.points[sid][seq] for seq in range(start, start + length)] if length else []
            )
            if text:
                node[path[-1]] = [txt for _, txt in window]
            else:
                node[path[-1]] = [forms.point_float(num, txt) for num, txt in window]


def _copy(value: Any) -> Any:
    # Value records are shared between envs of a snapshot; trees must not alias.
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def load_tree(conn: Connection, snapshot_id: int) -> dict:
    """The tree of one stored snapshot."""
    snap = conn.execute(
        sa.select(TABLES["snapshots"]).where(TABLES["snapshots"].c.id == snapshot_id)
    )
    snap = snap.mappings().one()
    fetch = _Fetch(conn)
    fetch.want_refs(schema.SanctumSnapshot, snap)
    fetch.want_series(schema.SanctumSnapshot, snap)

    tamiyo_row = (
        conn.execute(
            sa.select(TABLES["tamiyo_states"]).where(
                TABLES["tamiyo_states"].c.snapshot_id == snapshot_id
            )
        )
        .mappings()
        .one()
    )
    fetch.want_series(schema.TamiyoState, tamiyo_row)

    env_table = TABLES["env_states"]
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
    _blueprint_counts(conn, snapshot_id, tree)

    tamiyo = tree["tamiyo"] = rows.from_row(schema.TamiyoState, tamiyo_row)
    fetch.fill(schema.TamiyoState, tamiyo, tamiyo_row)
    _action_counts(conn, snapshot_id, tamiyo)
    tamiyo["recent_decisions"] = [
        rows.apply_overlay(schema.DecisionSnapshot, keyed_tree(conn, "decisions", row), overlay)
        for row, overlay in decisions
    ]

    tree["envs"] = {}
    for env_row in env_rows:
        env = tree["envs"][int(env_row["env_key"])] = rows.from_row(schema.EnvState, env_row)
        fetch.fill(schema.EnvState, env, env_row)

    tree["event_log"] = _events(conn, snap)
    tree["best_runs"] = []
    for best_row, overlay in best_runs:
        record = rows.from_row(schema.BestRunRecord, best_row)
        fetch.fill(schema.BestRunRecord, record, best_row)
        tree["best_runs"].append(rows.apply_overlay(schema.BestRunRecord, record, overlay))
    return tree


def items_of(conn: Connection, items: models.Items, ids: list[int]) -> dict[int, Any]:
    """The collections that child rows hold (see models.Items), per parent id (every id: an
    empty collection when it has no rows)."""
    table = TABLES[items.table]
    parent = table.c[items.parent_column]
    by_parent: dict[int, list] = {pk: [] for pk in ids}
    for chunk in _chunks(ids):
        query = sa.select(table).where(parent.in_(chunk)).order_by(parent, table.c.position)
        for row in conn.execute(query).mappings():
            by_parent[row[items.parent_column]].append(row)
    return {pk: rows.items_from_rows(items, found) for pk, found in by_parent.items()}


def _linked(conn: Connection, table_name: str, snapshot_id: int) -> list[tuple[Mapping, Any]]:
    key = ROLES[table_name].key
    table, links = TABLES[table_name], TABLES[key.link_table]
    query = (
        sa.select(table, links.c.overlay)
        .join(links, links.c[key.link_column] == table.c.id)
        .where(links.c.snapshot_id == snapshot_id)
        .order_by(links.c.position)
    )
    return [(row, row["overlay"]) for row in conn.execute(query).mappings().all()]


def keyed_tree(conn: Connection, table_name: str, row: Mapping) -> dict:
    """The canonical tree of a keyed record's row (a decision, a best-run record)."""
    role = ROLES[table_name]
    tree = rows.from_row(role.cls, row)
    if role.items is not None:
        tree[role.items.field] = items_of(conn, role.items, [row["id"]])[row["id"]]
    if LAYOUTS[role.cls].refs:
        fetch = _Fetch(conn)
        fetch.want_refs(role.cls, row)
        fetch.run()
        fetch.fill(role.cls, tree, row)
    return tree


def _gpu_stats(conn: Connection, snapshot_id: int) -> dict[int, dict]:
    table = TABLES["gpu_stats"]
    query = sa.select(table).where(table.c.snapshot_id == snapshot_id).order_by(table.c.position)
    return {
        int(row["device_key"]): rows.from_row(schema.GPUStats, row)
        for row in conn.execute(query).mappings()
    }


def _blueprint_counts(conn: Connection, snapshot_id: int, tree: dict) -> None:
    table = TABLES["blueprint_counts"]
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
    table = TABLES["action_counts"]
    tamiyo["action_counts"], tamiyo["cumulative_action_counts"] = {}, {}
    for row in conn.execute(sa.select(table).where(table.c.snapshot_id == snapshot_id)).mappings():
        target = "action_counts" if row["scope"] == "batch" else "cumulative_action_counts"
        tamiyo[target][row["action"]] = int(row["count"])


def _events(conn: Connection, snap: Mapping) -> list[dict]:
    length = snap["event_log_len"]
    if not length:
        return []
    table = TABLES["events"]
    start = snap["event_log_start"]
    query = (
        sa.select(table)
        .where(table.c.run_pk == snap["run_pk"], table.c.seq >= start, table.c.seq < start + length)
        .order_by(table.c.seq)
    )
    events = []
    for row in conn.execute(query).mappings():
        event = rows.from_row(schema.EventLogEntry, row)
        event["metadata"] = forms.unpack_event_id(event["metadata"], row["event_uuid"])
        events.append(event)
    for position, override in (snap["event_overrides"] or {}).items():
        events[int(position)].update(override)
    return events
