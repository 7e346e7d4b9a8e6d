"""Experiments saved in the archive by name: a definition (``experiments.evaluate``'s settings,
the decision thresholds included) declared before evaluation, evaluated again as runs arrive.

Saving a changed definition adds a version and keeps every earlier one with the time it was
saved: a threshold moved after the data was seen stays on record (``history``), and a report
shows it. Saving is the user's explicit act, never a query's or a page's.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from sanctum_store import experiments
from sanctum_store.forms import utcnow
from sanctum_store.labels import MAX_INDEXED_TEXT
from sanctum_store.models import TABLES
from sanctum_store.queries import read_connection

EXPERIMENTS, VERSIONS = TABLES["experiments"], TABLES["experiment_versions"]
HISTORY_COLUMNS = ("version", "saved_at", "changed")
_REQUIRED = ("by", "baseline", "metric")


@dataclass(frozen=True)
class Saved:
    """A saved experiment: its current definition and every version (``history``:
    :data:`HISTORY_COLUMNS`, ``changed`` naming what each version changed)."""

    name: str
    created_at: datetime
    version: int
    definition: dict[str, Any]
    history: pd.DataFrame


def definition(**settings: Any) -> dict[str, Any]:
    """A complete, checked definition: every setting of :func:`experiments.evaluate`, its
    defaults filled in (so an omitted default and the default itself are the same definition)."""
    parameters = inspect.signature(experiments.evaluate).parameters
    known = [name for name in parameters if name != "source"]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(f"unknown experiment settings {unknown} (known: {', '.join(known)})")
    missing = [name for name in _REQUIRED if settings.get(name) is None]
    if missing:
        raise ValueError(f"an experiment needs {', '.join(missing)}")
    out = {name: parameters[name].default for name in known if name not in _REQUIRED}
    out.update(settings)
    out["filters"] = dict(out["filters"] or {})
    experiments._check(out["by"], out["metric"], out["last_k"], out["stratify"], out["pair_by"])
    experiments.Thresholds(
        out["min_effect"], out["confidence"], out["min_runs"], out["min_pairs"] or out["min_runs"]
    )
    return json.loads(json.dumps(out))  # as stored: plain JSON


def save(archive, name: str, **settings: Any) -> int:
    """Save experiment ``name`` (an :class:`~sanctum_store.Archive`), a new version when its
    definition changed; returns the version now current."""
    if not name or not name.strip():
        raise ValueError("an experiment needs a name")
    if len(name.encode()) > MAX_INDEXED_TEXT:
        raise ValueError(f"an experiment's name takes at most {MAX_INDEXED_TEXT} bytes")
    wanted = definition(**settings)
    with archive.writing() as conn:
        pk = conn.execute(sa.select(EXPERIMENTS.c.id).where(EXPERIMENTS.c.name == name)).scalar()
        if pk is None:
            pk = conn.execute(
                sa.insert(EXPERIMENTS)
                .values(name=name, created_at=utcnow())
                .returning(EXPERIMENTS.c.id)
            ).scalar_one()
        latest = conn.execute(
            sa.select(VERSIONS.c.version, VERSIONS.c.definition)
            .where(VERSIONS.c.experiment_id == pk)
            .order_by(VERSIONS.c.version.desc())
            .limit(1)
        ).first()
        if latest is not None and latest.definition == wanted:
            return latest.version
        version = 1 if latest is None else latest.version + 1
        conn.execute(
            sa.insert(VERSIONS).values(
                experiment_id=pk, version=version, saved_at=utcnow(), definition=wanted
            )
        )
    return version


def load(source, name: str) -> Saved:
    """Experiment ``name`` as saved; ``LookupError`` naming the saved ones when there is none."""
    query = (
        sa.select(
            EXPERIMENTS.c.created_at, VERSIONS.c.version, VERSIONS.c.saved_at, VERSIONS.c.definition
        )
        .join(VERSIONS, VERSIONS.c.experiment_id == EXPERIMENTS.c.id)
        .where(EXPERIMENTS.c.name == name)
        .order_by(VERSIONS.c.version)
    )
    with read_connection(source) as conn:
        rows = conn.execute(query).all()
    if not rows:
        known = ", ".join(names(source)) or "none"
        raise LookupError(f"no experiment is saved as {name!r} (saved: {known})")
    history, previous = [], {}
    for row in rows:
        changed = [
            f"{key}: {previous.get(key)!r} -> {value!r}"
            for key, value in row.definition.items()
            if previous and previous.get(key) != value
        ]
        history.append((row.version, row.saved_at, "; ".join(changed) or "first version"))
        previous = row.definition
    return Saved(
        name, rows[0].created_at, rows[-1].version, rows[-1].definition,
        pd.DataFrame(history, columns=list(HISTORY_COLUMNS)),
    )  # fmt: skip


def names(source) -> list[str]:
    with read_connection(source) as conn:
        return list(
            conn.execute(sa.select(EXPERIMENTS.c.name).order_by(EXPERIMENTS.c.name)).scalars()
        )


def evaluate(source, name: str) -> tuple[Saved, experiments.Evaluation]:
    """Evaluate the saved experiment's current definition on the archive's runs as they are."""
    saved = load(source, name)
    result = experiments.evaluate(source, **saved.definition)
    result.settings.update(experiment=name, version=saved.version)
    return saved, result
