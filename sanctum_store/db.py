"""Engines: resolving the archive location, SQLite pragmas, PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_PATH = "sanctum.db"
ENV_VAR = "SANCTUM_DB"


def resolve_url(db: str | None = None) -> str:
    """The archive's SQLAlchemy URL: ``db`` (path or URL), else ``$SANCTUM_DB``, else
    ``./sanctum.db``. A plain path becomes an absolute ``sqlite:///`` URL."""
    location = db or os.environ.get(ENV_VAR) or DEFAULT_PATH
    if "://" in location:
        return location
    return f"sqlite:///{Path(location).expanduser().resolve()}"
