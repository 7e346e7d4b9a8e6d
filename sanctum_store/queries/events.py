"""Events of the runs' event logs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from sanctum_store import forms
from sanctum_store.queries._base import (
    EVENTS,
    RUNS,
    SNAPSHOTS,
    _frame,
    _one_or_many,
    _utc,
    read_connection,
)

EVENT_COLUMNS = {
    "run_id": "str",
    "seq": "int64",
    "timestamp": "str",
    "event_type": "str",
    "env_id": "Int64",
    "episode": "int64",
    "message": "str",
    "metadata": "object",
}


def search_events(
    engine,
    *,
    run_id: str | Sequence[str] | None = None,
    event_type: str | Sequence[str] | None = None,
    env_id: int | Sequence[int] | None = None,
    text: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    limit: int = 500,
) -> pd.DataFrame:
    """Events of the runs' event logs, newest first.

    ``text`` is a case-insensitive substring of the message or the metadata (as JSON text),
    or an event's whole ``event_id``;
    ``since``/``until`` keep events shown in a snapshot captured in that window (a snapshot
    shows a contiguous window of its run's events). Columns: ``run_id, seq`` (the event's
    number in its run), ``timestamp`` (esper's, as shown), ``event_type, env_id, episode,
    message, metadata`` (dict).
    """
    e = EVENTS.c
    conditions = [
        _one_or_many(RUNS.c.run_id, run_id),
        _one_or_many(e.event_type, event_type),
        _one_or_many(e.env_id, env_id),
    ]
    if text:
        matches = [
            e.message.icontains(text, autoescape=True),
            sa.cast(e.metadata, sa.Text).icontains(text, autoescape=True),
        ]
        packed = forms.event_id_bytes(text)
        if packed is not None:  # event ids esper's way are stored apart (forms.pack_event_id)
            matches.append(e.event_uuid == packed)
        conditions.append(sa.or_(*matches))
    query = sa.select(
        RUNS.c.run_id,
        e.seq,
        e.timestamp,
        e.event_type,
        e.env_id,
        e.episode,
        e.message,
        e.metadata,
        e.event_uuid,
    ).join_from(EVENTS, RUNS, RUNS.c.id == e.run_pk)
    if since is not None or until is not None:
        s = SNAPSHOTS.c
        window = sa.select(
            s.run_pk,
            sa.func.min(s.event_log_start).label("lo"),
            sa.func.max(s.event_log_start + s.event_log_len).label("hi"),
        ).where(s.event_log_start.is_not(None))
        if since is not None:
            window = window.where(s.captured_ts >= _utc(since))
        if until is not None:
            window = window.where(s.captured_ts <= _utc(until))
        window = window.group_by(s.run_pk).subquery("window")
        query = query.join(
            window, sa.and_(window.c.run_pk == e.run_pk, e.seq >= window.c.lo, e.seq < window.c.hi)
        )
    query = (
        query.where(*(c for c in conditions if c is not None)).order_by(e.id.desc()).limit(limit)
    )
    with read_connection(engine) as conn:
        found = _frame(conn, query, {**EVENT_COLUMNS, "event_uuid": "object"})
    found["metadata"] = [
        forms.unpack_event_id(metadata, packed)
        for metadata, packed in zip(found["metadata"], found.pop("event_uuid"), strict=True)
    ]
    return found
