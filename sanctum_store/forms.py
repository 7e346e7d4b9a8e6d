"""Storage forms of values: how a float, a history point, a time, an event id, a mask and a
free value with NaN are kept in columns, and back. No package imports: everything that stores
or reads goes through here.

* A float column holds NULL for NaN (SQL aggregates skip it); ``float_marks`` keeps what NULL
  alone cannot say: NaN in a ``float | None`` field, and the sign of -0.0 (SQLite drops it).
* A history point is ``num`` (NULL: NaN) or ``txt`` (an action; "-0.0" for -0.0).
* The archive's own times are UTC, naive.
* JSON columns tag NaN/±inf (strict JSON has neither).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any


def store_float(value: float, column: str, optional: bool, marks: list[str]) -> float | None:
    """A float as stored: NaN -> NULL, with a mark where NULL alone would be ambiguous."""
    if value != value:
        if optional:
            marks.append(column + "=nan")
        return None
    if value == 0.0 and math.copysign(1.0, value) < 0:
        marks.append(column + "=-0")  # SQLite stores -0.0 as 0
    return value


def load_float(value: float | None, column: str, optional: bool, marks: dict[str, str]):
    """Inverse of :func:`store_float`."""
    mark = marks.get(column)
    if value is None:
        return math.nan if (not optional or mark == "nan") else None
    if mark == "-0":
        return -0.0
    return float(value)


def parse_marks(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    return dict(item.split("=", 1) for item in text.split(","))


def point_values(value: float | str) -> tuple[float | None, str | None]:
    """A history value as series_points ``(num, txt)`` (see models.SeriesPoint)."""
    if type(value) is float and value == value and value != 0.0:  # the usual value: first
        return value, None
    if isinstance(value, str):
        return None, value
    if value != value:
        return None, None
    if value == 0.0 and math.copysign(1.0, value) < 0:
        return None, "-0.0"
    return value, None


def point_float(num: float | None, txt: str | None) -> float:
    """Inverse of :func:`point_values` for a float history (text holds only "-0.0")."""
    if num is not None:
        return float(num)
    return float(txt) if txt else math.nan


def float_key(value: Any) -> Any:
    """Equality key for history values: NaN equals NaN."""
    return "NaN" if value != value else value


def pack_event_id(metadata: dict) -> tuple[dict, bytes | None]:
    """An event's metadata without its ``event_id``, and that id in 16 bytes, when the id is
    a UUID in canonical text (lowercase, dashed) and the first key, as esper writes it; else
    the metadata unchanged and None."""
    if metadata:
        key, value = next(iter(metadata.items()))
        if key == "event_id" and type(value) is str and len(value) == 36:
            try:
                packed = uuid.UUID(value)
            except ValueError:
                return metadata, None
            if str(packed) == value:
                return {k: v for k, v in metadata.items() if k != "event_id"}, packed.bytes
    return metadata, None


def unpack_event_id(metadata: dict | None, packed: bytes | None) -> dict | None:
    """Inverse of :func:`pack_event_id`."""
    if packed is None:
        return metadata
    return {"event_id": str(uuid.UUID(bytes=bytes(packed))), **(metadata or {})}


def event_id_bytes(text: str) -> bytes | None:
    """The stored form of an event id typed by a user (any UUID spelling), else None."""
    try:
        return uuid.UUID(text.strip()).bytes
    except ValueError:
        return None


def utcnow() -> datetime:
    """Now, in UTC, naive (the archive's own timestamps are all UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc(moment: datetime) -> datetime:
    """A datetime as the archive keeps its own times: UTC, naive (naive input is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def captured_ts(captured_at: str, seen_at: datetime | None = None) -> datetime:
    """When a snapshot was captured (UTC naive); else when the writer saw it."""
    if captured_at:
        try:
            return to_utc(datetime.fromisoformat(captured_at))
        except (ValueError, OverflowError):  # not a time, or out of range once in UTC
            pass
    return to_utc(seen_at) if seen_at else utcnow()


def mask_to_text(mask: tuple[bool, ...]) -> str:
    return "".join("1" if bit else "0" for bit in mask)


def text_to_mask(text: str) -> tuple[bool, ...]:
    return tuple(ch == "1" for ch in text)


_FLOAT_TAG = "$float"


_DICT_TAG = "$dict"


def tag(value: Any) -> Any:
    """Make a free value strict-JSON safe: NaN/±inf become ``{"$float": "nan"}`` and so on."""
    if type(value) is float:
        if math.isfinite(value):
            return value
        return {_FLOAT_TAG: "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, dict):
        out = {k: tag(v) for k, v in value.items()}
        if len(value) == 1 and (_FLOAT_TAG in value or _DICT_TAG in value):
            return {_DICT_TAG: out}  # a genuine one-key dict that looks like a tag
        return out
    if isinstance(value, (list, tuple)):
        return [tag(v) for v in value]
    return value


def untag(value: Any) -> Any:
    """Inverse of :func:`tag`."""
    if isinstance(value, dict):
        if len(value) == 1:
            if _FLOAT_TAG in value:
                return float(value[_FLOAT_TAG])
            if _DICT_TAG in value:
                return {k: untag(v) for k, v in value[_DICT_TAG].items()}
        return {k: untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untag(v) for v in value]
    return value
