"""Writing snapshot trees into the archive, storing what repeats between snapshots once.

:class:`Persister` keeps, per run, what it has already stored (:class:`RunState`): content
digests of value records, the last window of every history and of the event log, and the
identity-keyed decisions and best-run records. A snapshot then costs mostly its own new rows.
A cold state (a new process, a resumed run) is always correct, just less compact for the one
snapshot that warms it up. Everything here runs inside the caller's transaction.
"""

from __future__ import annotations

import json
import os
import socket
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sanctum_store import codec, forms, models, reader, rows, schema, summary
from sanctum_store.labels import reward_mode_of
from sanctum_store.layouts import LAYOUTS
from sanctum_store.models import ROLES, TABLES
from sanctum_store.statements import insert_returning, insert_rows, update_rows
from sanctum_store.status import RunStatus

WRITER = f"{socket.gethostname()}:{os.getpid()}"

_CACHE_LIMIT = 20_000

# A run's outcomes (sanctum_store.summary), recomputed with every batch: built once.
_PICKS = summary.picks()
_TOUCH: dict[tuple[str, ...], sa.Update] = {}  # the run row's update, per key set
_OUTCOMES = (
    sa.update(TABLES["runs"])
    .where(TABLES["runs"].c.id == sa.bindparam("run_pk"))
    .values(**summary.outcomes())
)


class _LRU(OrderedDict):
    """A bounded cache; ``evicted`` once it has forgotten an entry."""

    evicted = False

    def get_touch(self, key):
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        if len(self) > _CACHE_LIMIT:
            self.popitem(last=False)
            self.evicted = True


@dataclass
class Window:
    """The last stored window of a history: where it starts and the values' keys."""

    start: int
    keys: list
    extra: list = field(default_factory=list)  # per-position stored data (event relative_time)

    @property
    def end(self) -> int:
        return self.start + len(self.keys)


def overlap(previous: list, new: list) -> int:
    """Largest o such that the last o items of ``previous`` are the first o of ``new``."""
    m = len(previous)
    if not m or not new:
        return 0
    first = new[0]
    for j in range(max(0, m - len(new)), m):
        if previous[j] == first and previous[j:] == new[: m - j]:
            return m - j
    return 0


@dataclass
class RunState:
    """What has been stored for one run, to recognise repeats."""

    run_pk: int
    created: bool = False  # this persister made the run: its caches know every record stored
    series_ids: dict[str, int] = field(default_factory=dict)
    series_ends: dict[int, int] = field(default_factory=dict)  # id -> next seq, until windowed
    windows: dict[int, Window] = field(default_factory=dict)
    events: Window | None = None
    values: _LRU = field(default_factory=_LRU)  # (table, digest) -> id
    keyed: _LRU = field(default_factory=_LRU)  # (table, key) -> (pk, tree)
    newest_batch: int | None = None  # the run's running batch (None: not looked up yet)
    seeds_due: bool = False  # a batch ended, or an ended one changed: derive its seeds

    def knows(self, cache: _LRU) -> bool:
        """Whether a record missing from the cache is not stored (so needs no lookup): the
        run is this persister's own and the cache never forgot one. A second writer of the
        same run would make an insert collide with its unique key: the transaction fails
        and is retried cold (:meth:`Persister.forget`), never stored twice."""
        return self.created and not cache.evicted


@dataclass
class _Pending:
    """Rows of one snapshot, collected before the inserts."""

    points: list[dict] = field(default_factory=list)


class Persister:
    """Stores snapshot trees; one per writing connection owner (not thread-safe)."""

    def __init__(self) -> None:
        self.runs: dict[str, RunState] = {}

    def forget(self, run_id: str | None = None) -> None:
        """Drop remembered state (after a failed transaction, or to bound memory)."""
        if run_id is None:
            self.runs.clear()
        else:
            self.runs.pop(run_id, None)

    # ----------------------------------------------------------------------------------------
    # Runs
    # ----------------------------------------------------------------------------------------

    def run_state(self, conn: Connection, run_id: str, seen_at: datetime | None = None) -> RunState:
        state = self.runs.get(run_id)
        if state is None:
            runs = TABLES["runs"]
            pk = conn.execute(_RUN_PK, {"run_id": run_id}).scalar()
            created = False
            if pk is None:
                now = forms.to_utc(seen_at) if seen_at else forms.utcnow()
                values = {
                    "run_id": run_id,
                    "first_seen": now,
                    "last_seen": now,
                    "status": RunStatus.RUNNING.value,
                }
                insert = _dialect_insert(conn, runs).values(**values)  # with the columns' defaults
                insert = insert.on_conflict_do_nothing(index_elements=["run_id"])
                pk = conn.execute(insert.returning(runs.c.id)).scalar()
                created = pk is not None  # else another writer made it just now
                if not created:
                    pk = conn.execute(_RUN_PK, {"run_id": run_id}).scalar_one()
            state = RunState(pk, created)
            if not created:
                self._load_series(conn, state)
            self.runs[run_id] = state
        return state

    def _load_series(self, conn: Connection, state: RunState, names: list | None = None) -> None:
        """The run's series (or those named) and where each ends, in one query (a new run
        has none; a run resumed, or recorded by another writer too, has its own)."""
        series, points = TABLES["series"], TABLES["series_points"]
        last = sa.select(sa.func.max(points.c.seq)).where(points.c.series_id == series.c.id)
        where = series.c.run_pk == state.run_pk
        if names is not None:
            where &= series.c.name.in_(names)
        found = conn.execute(
            sa.select(series.c.name, series.c.id, last.scalar_subquery()).where(where)
        )
        for found_name, sid, seq in found:
            state.series_ids[found_name] = sid
            state.series_ends[sid] = 0 if seq is None else seq + 1

    def touch_run(
        self,
        conn: Connection,
        state: RunState,
        tree: dict,
        added: int,
        *,
        seen_at: datetime | None = None,
        group_id: str | None = None,
    ) -> None:
        """Update the run row from its newest snapshot (labels, config, heartbeat, counts) and
        recompute the run's outcomes from what it now stores (a few index seeks)."""
        runs = TABLES["runs"]
        now = forms.to_utc(seen_at) if seen_at else forms.utcnow()
        values = {
            "task_name": tree["task_name"],
            "reward_mode": reward_mode_of(tree),
            "group_id": tree["tamiyo"]["group_id"] or group_id,
            "slot_ids": tree["slot_ids"],
            "max_batches": tree["max_batches"],
            "max_epochs": tree["max_epochs"],
            "start_time": tree["start_time"],
            "last_seen": now,
            "heartbeat_at": now,
            "status": RunStatus.RUNNING.value,
            "finished_at": None,
            "writer": WRITER,
        }
        rows.to_row(schema.RunConfig, tree["run_config"], "config_", values)
        statement = _TOUCH.get(tuple(values))
        if statement is None:  # built once per key set (SQLAlchemy then reuses its compiled form)
            statement = _TOUCH[tuple(values)] = (
                sa.update(runs)
                .where(runs.c.id == sa.bindparam("run_pk_"))
                .values(
                    {k: sa.bindparam(f"v_{k}", type_=runs.c[k].type) for k in values}
                    | {"snapshot_count": runs.c.snapshot_count + sa.bindparam("added_")}
                    | _PICKS
                )
            )
        parameters = {f"v_{k}": v for k, v in values.items()}
        conn.execute(statement, {**parameters, "run_pk_": state.run_pk, "added_": added})
        conn.execute(_OUTCOMES, {"run_pk": state.run_pk})

    # ----------------------------------------------------------------------------------------
    # Snapshots
    # ----------------------------------------------------------------------------------------

    def save(
        self, conn: Connection, tree: dict, run_id: str, seen_at: datetime | None = None
    ) -> tuple[int, str]:
        """Store one snapshot tree; returns (snapshot id, what happened: ``"new"``,
        ``"present"`` (exactly this snapshot was stored already: nothing written) or
        ``"same_moment"`` (stored, beside another of the run's with the same
        ``captured_at`` but other content))."""
        state = self.run_state(conn, run_id, seen_at)
        snapshots = TABLES["snapshots"]
        # A snapshot's identity within its run: when it was captured, or else its content.
        captured = tree["captured_at"]
        dedup_key = captured or "digest:" + rows.digest(tree)
        kind = "new"
        existing = self._stored(conn, state, dedup_key)
        if existing is not None:
            if not captured or _same_content(conn, existing, tree):
                return existing, "present"
            # Another snapshot of the same moment: kept too, under a key its content decides
            # (so storing it twice still stores it once).
            dedup_key = f"{captured}#{rows.digest(tree)}"
            existing = self._stored(conn, state, dedup_key)
            if existing is not None:
                return existing, "present"
            kind = "same_moment"

        # The run's first snapshot here: the series it lacks, in one statement.
        if not state.windows and (names := self._new_series(state, tree)):
            self.make_series(conn, state, names)
        pending = _Pending()
        row = rows.to_row(schema.SanctumSnapshot, tree)
        row.update(
            run_pk=state.run_pk,
            captured_ts=forms.captured_ts(tree["captured_at"], seen_at),
            dedup_key=dedup_key,
            rewards_id=self.value_id(conn, state, "reward_components", tree["rewards"]),
            run_config_id=self.value_id(conn, state, "run_configs", tree["run_config"]),
        )
        self.add_series(conn, state, pending, row, schema.SanctumSnapshot, tree, "", "")
        self.add_events(conn, state, row, tree["event_log"])
        ((snapshot_id,),) = insert_returning(conn, snapshots, [row], ("id",))

        self.add_vitals(conn, snapshot_id, tree)
        self.add_tamiyo(conn, state, pending, snapshot_id, tree["tamiyo"])
        self.add_envs(conn, state, pending, snapshot_id, tree["envs"])
        self.add_links(conn, state, snapshot_id, "decisions", tree["tamiyo"]["recent_decisions"])
        self.add_links(conn, state, snapshot_id, "best_runs", tree["best_runs"])
        if pending.points:
            insert_rows(conn, TABLES["series_points"], pending.points)
        self._note_batch(conn, state, tree["current_batch"])
        return snapshot_id, kind

    def _stored(self, conn: Connection, state: RunState, dedup_key: str) -> int | None:
        return conn.execute(
            _SAME_SNAPSHOT, {"run_pk": state.run_pk, "dedup_key": dedup_key}
        ).scalar()

    def _note_batch(self, conn: Connection, state: RunState, batch: int) -> None:
        """Keep the run's running batch; a snapshot of another batch means seeds to derive
        (see :func:`summary.refresh_seeds`)."""
        if state.newest_batch is None:  # a new or resumed run: what it holds decides
            snapshots = TABLES["snapshots"]
            newest = sa.select(sa.func.max(snapshots.c.current_batch)).where(
                snapshots.c.run_pk == state.run_pk
            )
            state.newest_batch = conn.execute(newest).scalar()
            state.seeds_due = True
        elif batch != state.newest_batch:
            state.newest_batch = max(state.newest_batch, batch)
            state.seeds_due = True

    def add_vitals(self, conn: Connection, snapshot_id: int, tree: dict) -> None:
        gpus = tree["vitals"]["gpu_stats"]
        if gpus:
            gpu_rows = []
            for position, (key, gpu) in enumerate(gpus.items()):
                gpu_row = rows.to_row(schema.GPUStats, gpu)
                gpu_row.update(snapshot_id=snapshot_id, device_key=key, position=position)
                gpu_rows.append(gpu_row)
            insert_rows(conn, TABLES["gpu_stats"], gpu_rows)
        counts: dict[str, dict] = {}
        for column, name in (
            ("spawns", "cumulative_blueprint_spawns"),
            ("fossilized", "cumulative_blueprint_fossilized"),
            ("prunes", "cumulative_blueprint_prunes"),
        ):
            for blueprint, count in tree[name].items():
                entry = counts.setdefault(
                    blueprint,
                    {
                        "snapshot_id": snapshot_id,
                        "blueprint_id": blueprint,
                        "spawns": None,
                        "fossilized": None,
                        "prunes": None,
                    },
                )
                entry[column] = count
        if counts:
            insert_rows(conn, TABLES["blueprint_counts"], list(counts.values()))

    def add_tamiyo(
        self, conn: Connection, state: RunState, pending: _Pending, snapshot_id: int, tamiyo: dict
    ) -> None:
        row = rows.to_row(schema.TamiyoState, tamiyo)
        row["snapshot_id"] = snapshot_id
        self.add_series(conn, state, pending, row, schema.TamiyoState, tamiyo, "", "tamiyo.")
        insert_rows(conn, TABLES["tamiyo_states"], [row])
        counts = [
            {"snapshot_id": snapshot_id, "scope": scope, "action": action, "count": count}
            for scope, name in (
                ("batch", "action_counts"),
                ("cumulative", "cumulative_action_counts"),
            )
            for action, count in tamiyo[name].items()
        ]
        if counts:
            insert_rows(conn, TABLES["action_counts"], counts)

    def add_envs(
        self, conn: Connection, state: RunState, pending: _Pending, snapshot_id: int, envs: dict
    ) -> None:
        env_rows = []
        for position, (key, env) in enumerate(envs.items()):
            row = rows.to_row(schema.EnvState, env)
            row.update(snapshot_id=snapshot_id, run_pk=state.run_pk, env_key=key, position=position)
            self.add_series(conn, state, pending, row, schema.EnvState, env, "", f"env{key}.")
            env_rows.append(row)
        self.add_refs_bulk(
            conn,
            state,
            [(row, schema.EnvState, env) for row, env in zip(env_rows, envs.values(), strict=True)],
        )
        if env_rows:
            insert_rows(conn, TABLES["env_states"], env_rows)

    def add_refs(self, conn: Connection, state: RunState, row: dict, cls: type, tree: dict) -> None:
        self.add_refs_bulk(conn, state, [(row, cls, tree)])

    def add_refs_bulk(
        self, conn: Connection, state: RunState, items: list[tuple[dict, type, dict]]
    ) -> None:
        """Fill the ``<field>_id`` columns of many rows, resolving their value records together."""
        wanted = []
        for row, cls, tree in items:
            for name, table in LAYOUTS[cls].refs.items():
                if tree[name] is None:
                    row[f"{name}_id"] = None
                else:
                    wanted.append((row, f"{name}_id", table, tree[name]))
        ids = self.value_ids(conn, state, [(table, value) for _, _, table, value in wanted])
        for (row, column, _, _), pk in zip(wanted, ids, strict=True):
            row[column] = pk

    # ----------------------------------------------------------------------------------------
    # Value records: stored once per run and content
    # ----------------------------------------------------------------------------------------

    def value_id(self, conn: Connection, state: RunState, table_name: str, tree: Any) -> int:
        return self.value_ids(conn, state, [(table_name, tree)])[0]

    def value_ids(
        self, conn: Connection, state: RunState, requests: list[tuple[str, Any]]
    ) -> list[int]:
        """Ids of value records, storing the new ones: a few queries per table, not per record."""
        keys = [(table_name, rows.content_digest(tree)) for table_name, tree in requests]
        resolved: dict[tuple[str, str], int] = {}
        missing: dict[str, dict[str, Any]] = {}
        for key, (_, tree) in zip(keys, requests, strict=True):
            pk = state.values.get_touch(key)
            if pk is not None:
                resolved[key] = pk
            else:
                missing.setdefault(key[0], {})[key[1]] = tree
        for table_name, trees in missing.items():
            found = (
                {}
                if state.knows(state.values)
                else _value_ids(conn, table_name, state.run_pk, list(trees))
            )
            new = {digest: tree for digest, tree in trees.items() if digest not in found}
            if new:
                found.update(self._insert_values(conn, state, table_name, new))
            for digest, pk in found.items():
                resolved[(table_name, digest)] = pk
                state.values.put((table_name, digest), pk)
        return [resolved[key] for key in keys]

    def _insert_values(
        self, conn: Connection, state: RunState, table_name: str, new: dict[str, Any]
    ) -> dict[str, int]:
        table, role = TABLES[table_name], ROLES[table_name]
        value_rows = []
        for digest, tree in new.items():
            row = rows.to_row(role.cls, tree) if role.cls is not None else {}
            row.update(run_pk=state.run_pk, digest=digest)
            value_rows.append(row)
        ids = dict(insert_returning(conn, table, value_rows, ("digest", "id")))
        if role.items is not None:
            self._insert_items(conn, role.items, [(ids[d], tree) for d, tree in new.items()])
        return ids

    @staticmethod
    def _insert_items(conn: Connection, items: models.Items, parents: list[tuple[int, Any]]):
        """The child rows of records just stored (see models.Items)."""
        children = []
        for pk, tree in parents:
            for row in rows.item_rows(items, tree):
                row[items.parent_column] = pk
                children.append(row)
        if children:
            insert_rows(conn, TABLES[items.table], children)

    # ----------------------------------------------------------------------------------------
    # Histories: windows over append-only series
    # ----------------------------------------------------------------------------------------

    def add_series(
        self,
        conn: Connection,
        state: RunState,
        pending: _Pending,
        row: dict,
        cls: type,
        tree: dict,
        prefix: str,
        owner: str,
    ) -> None:
        for path, column, text in rows.series_plan(cls):
            values = tree
            for name in path:
                values = values[name]
            column = prefix + column
            window = self.window(conn, state, pending, owner + column, values, text)
            row[column + "_sid"], row[column + "_start"], row[column + "_len"] = window

    def window(
        self,
        conn: Connection,
        state: RunState,
        pending: _Pending,
        name: str,
        values: list,
        text: bool = False,
    ) -> tuple[int | None, int | None, int]:
        if not values:
            return None, None, 0
        sid = state.series_ids.get(name)
        if sid is None:
            sid = self._series_id(conn, state, name)
        if text or (total := sum(values)) == total:  # no NaN: the values are their own keys
            keys = values
        else:
            keys = [forms.float_key(v) for v in values]
        previous = state.windows.get(sid)
        if previous is None:
            # Points of this same snapshot not inserted yet cannot exist: one window per name.
            end, shared = state.series_ends.pop(sid), 0
        else:
            end = previous.end
            shared = overlap(previous.keys, keys)
        start = end - shared
        points = pending.points
        for seq, value in enumerate(values[shared:], end):
            num, txt = forms.point_values(value)
            points.append({"series_id": sid, "seq": seq, "num": num, "txt": txt})
        state.windows[sid] = Window(start, keys)
        return sid, start, len(values)

    def _series_id(self, conn: Connection, state: RunState, name: str) -> int:
        self.make_series(conn, state, [name])
        return state.series_ids[name]

    def make_series(self, conn: Connection, state: RunState, names: list[str]) -> None:
        """Series the run did not have when its state was loaded, in one statement: created
        here (they have no points), or found with their ends if another writer of the run
        created them since."""
        wanted = [{"run_pk": state.run_pk, "name": name} for name in dict.fromkeys(names)]
        made = insert_returning(
            conn, TABLES["series"], wanted, ("name", "id"), unless=("run_pk", "name")
        )
        for name, sid in made:
            state.series_ids[name] = sid
            state.series_ends[sid] = 0
        if len(made) < len(wanted):
            self._load_series(conn, state, [n for n in names if n not in state.series_ids])

    def _new_series(self, state: RunState, tree: dict) -> list[str]:
        """The series a snapshot's histories need that the run does not have yet (the names
        :meth:`add_series` gives them)."""
        owners = [
            (schema.SanctumSnapshot, tree, ""),
            (schema.TamiyoState, tree["tamiyo"], "tamiyo."),
        ]
        owners += [(schema.EnvState, env, f"env{key}.") for key, env in tree["envs"].items()]
        names = []
        for cls, node, owner in owners:
            for path, column, _ in rows.series_plan(cls):
                values = node
                for name in path:
                    values = values[name]
                if values and owner + column not in state.series_ids:
                    names.append(owner + column)
        return names

    # ----------------------------------------------------------------------------------------
    # The event log: a window over the run's events
    # ----------------------------------------------------------------------------------------

    def add_events(self, conn: Connection, state: RunState, row: dict, events: list) -> None:
        if not events:
            row.update(event_log_start=None, event_log_len=0, event_overrides=None)
            return
        keys = [_event_key(event) for event in events]
        previous = state.events
        if previous is None:
            table = TABLES["events"]
            last = conn.execute(
                sa.select(sa.func.max(table.c.seq)).where(table.c.run_pk == state.run_pk)
            ).scalar()
            end, shared, stored_times = (last + 1 if last is not None else 0), 0, []
        else:
            end = previous.end
            shared = overlap(previous.keys, keys)
            stored_times = previous.extra[len(previous.keys) - shared :]
        new_rows = []
        for offset, event in enumerate(events[shared:]):
            metadata, packed = forms.pack_event_id(event["metadata"])
            event_row = rows.to_row(schema.EventLogEntry, {**event, "metadata": metadata})
            event_row.update(run_pk=state.run_pk, seq=end + offset, event_uuid=packed)
            new_rows.append(event_row)
        if new_rows:
            insert_rows(conn, TABLES["events"], new_rows)
        times = stored_times + [event["relative_time"] for event in events[shared:]]
        overrides = {
            str(position): {"relative_time": event["relative_time"]}
            for position, event in enumerate(events[:shared])
            if event["relative_time"] != times[position]
        }
        state.events = Window(end - shared, keys, times)
        row.update(
            event_log_start=end - shared,
            event_log_len=len(events),
            event_overrides=overrides or None,
        )

    # ----------------------------------------------------------------------------------------
    # Decisions and best-run records: one row per identity, links per snapshot
    # ----------------------------------------------------------------------------------------

    def add_links(
        self, conn: Connection, state: RunState, snapshot_id: int, table_name: str, items: list
    ) -> None:
        """Link a snapshot to the keyed records it shows (``decisions``, ``best_runs``)."""
        if not items:
            return
        role = ROLES[table_name]
        keyed = [(rows.record_key(role.key, item), item) for item in items]
        if state.knows(state.keyed):
            self._insert_keyed(conn, state, table_name, keyed)
        placed, latest = [], {}
        for key, item in keyed:
            pk, canonical = self._keyed(conn, state, table_name, key, item)
            if not rows.same(canonical, item):
                # The newest version becomes the row; older links keep theirs as overlays.
                self._replace(conn, state, table_name, key, pk, canonical, item)
                canonical = item
            latest[key] = canonical
            placed.append((key, pk, item, canonical))  # item holds what canonical holds
        links = [
            {
                "snapshot_id": snapshot_id,
                "position": position,
                role.key.link_column: pk,
                # An overlay only where the row moved on past this link's version (a record
                # shown twice in one snapshot, in two versions).
                "overlay": None
                if latest[key] is canonical
                else rows.make_overlay(role.cls, latest[key], item),
            }
            for position, (key, pk, item, canonical) in enumerate(placed)
        ]
        insert_rows(conn, TABLES[role.key.link_table], links)

    def _insert_keyed(
        self, conn: Connection, state: RunState, table_name: str, keyed: list[tuple[str, dict]]
    ) -> None:
        """Store records the run has not stored (known from :meth:`RunState.knows`, or looked
        up) in one statement, and their child rows in another; a key shown twice is stored
        in its first version."""
        new = {}
        for key, item in keyed:
            if key not in new and state.keyed.get_touch((table_name, key)) is None:
                new[key] = item
        if not new:
            return
        table, role = TABLES[table_name], ROLES[table_name]
        new_rows = []
        for key, item in new.items():
            row = rows.to_row(role.cls, item)
            row.update(run_pk=state.run_pk, **{role.key.column: key})
            new_rows.append((row, role.cls, item))
        self.add_refs_bulk(conn, state, new_rows)
        new_rows = [row for row, _, _ in new_rows]
        ids = dict(insert_returning(conn, table, new_rows, (role.key.column, "id")))
        if role.items is not None:
            self._insert_items(conn, role.items, [(ids[key], item) for key, item in new.items()])
        for key, item in new.items():
            state.keyed.put((table_name, key), (ids[key], item))

    def _keyed(self, conn: Connection, state: RunState, table_name: str, key: str, item: dict):
        cached = state.keyed.get_touch((table_name, key))
        if cached is not None:
            return cached
        found = None
        if not state.knows(state.keyed):
            lookup = conn.execute(_KEYED[table_name], {"run_pk": state.run_pk, "key": key})
            found = lookup.mappings().first()
        if found is None:
            self._insert_keyed(conn, state, table_name, [(key, item)])
            return state.keyed.get_touch((table_name, key))
        entry = (found["id"], reader.keyed_tree(conn, table_name, found))
        state.keyed.put((table_name, key), entry)
        return entry

    def _keyed_row(self, conn: Connection, state: RunState, cls: type, item: dict) -> dict:
        row = rows.to_row(cls, item)
        self.add_refs(conn, state, row, cls, item)
        return row

    def _replace(
        self,
        conn: Connection,
        state: RunState,
        table_name: str,
        key: str,
        pk: int,
        old: dict,
        new: dict,
    ) -> None:
        table, role = TABLES[table_name], ROLES[table_name]
        links = TABLES[role.key.link_table]
        before = self._keyed_row(conn, state, role.cls, old)
        after = self._keyed_row(conn, state, role.cls, new)
        # Usually a completed outcome: touch only the columns that changed.
        changed = {k: v for k, v in after.items() if repr(v) != repr(before.get(k))}
        if changed:
            update_rows(conn, table, [{**changed, "id": pk}], where=("id",))
        items = role.items
        if items is not None and not rows.same(old[items.field], new[items.field]):
            children = TABLES[items.table]
            conn.execute(sa.delete(children).where(children.c[items.parent_column] == pk))
            self._insert_items(conn, items, [(pk, new)])
        updates = [
            {
                "overlay": rows.make_overlay(
                    role.cls, new, rows.apply_overlay(role.cls, old, overlay)
                ),
                "snapshot_id": snapshot_id,
                "position": position,
            }
            for snapshot_id, position, overlay in conn.execute(_LINKS[table_name], {"pk": pk})
        ]
        update_rows(conn, links, updates, where=("snapshot_id", "position"))
        state.keyed.put((table_name, key), (pk, new))


# Statements of every snapshot, built once (SQLAlchemy then skips building and keying them).
_SAME_SNAPSHOT = sa.select(TABLES["snapshots"].c.id).where(
    TABLES["snapshots"].c.run_pk == sa.bindparam("run_pk"),
    TABLES["snapshots"].c.dedup_key == sa.bindparam("dedup_key"),
)
_RUN_PK = sa.select(TABLES["runs"].c.id).where(TABLES["runs"].c.run_id == sa.bindparam("run_id"))
_KEYED = {
    name: sa.select(TABLES[name]).where(
        TABLES[name].c.run_pk == sa.bindparam("run_pk"),
        TABLES[name].c[ROLES[name].key.column] == sa.bindparam("key"),
    )
    for name in models.tables_of("keyed")
}
_LINKS = {  # the links to a keyed record, and the version each stands for
    name: sa.select(
        TABLES[ROLES[name].key.link_table].c["snapshot_id", "position", "overlay"]
    ).where(TABLES[ROLES[name].key.link_table].c[ROLES[name].key.link_column] == sa.bindparam("pk"))
    for name in models.tables_of("keyed")
}
_VALUE_IDS = {
    name: sa.select(TABLES[name].c.digest, TABLES[name].c.id).where(
        TABLES[name].c.run_pk == sa.bindparam("run_pk"),
        TABLES[name].c.digest.in_(sa.bindparam("digests", expanding=True)),
    )
    for name in models.tables_of("value")
}


def _value_ids(conn: Connection, table_name: str, run_pk: int, digests: list[str]) -> dict:
    """The ids of a run's value records with these digests (those it has)."""
    found = {}
    for i in range(0, len(digests), 500):
        chunk = {"run_pk": run_pk, "digests": digests[i : i + 500]}
        found.update(dict(conn.execute(_VALUE_IDS[table_name], chunk).all()))
    return found


def _event_key(event: dict) -> str:
    # relative_time ("(3s ago)") changes while an event stays the same event.
    return repr([(k, v) for k, v in event.items() if k != "relative_time"])


def _dialect_insert(conn: Connection, table: sa.Table):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


__all__: Sequence[str] = ("Persister", "RunState", "overlap")


def _canonical(tree: dict) -> str:
    """A snapshot tree as text that tells any two different contents apart (NaN, -0.0 and
    the types of JSON included) and ignores dict order, which loading does not keep."""
    return json.dumps(codec.to_json(tree), sort_keys=True, default=str)


def _same_content(conn: Connection, snapshot_id: int, tree: dict) -> bool:
    """Whether a stored snapshot holds exactly ``tree`` (only asked when two snapshots of a
    run share a ``captured_at``: it loads the stored one)."""
    return _canonical(reader.load_tree(conn, snapshot_id)) == _canonical(tree)
