"""Tables as every page shows them: numbers to 4 significant digits, times to the second.

Pages call :func:`show` instead of ``st.dataframe``; what a page configures itself (a column's
label, a progress bar) is laid over these defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

#: printf format of every float column (4 significant digits: 73.25, 0.01452, 1.235e+04).
NUMBER_FORMAT = "%.4g"
#: Moment.js format of every timestamp column (UTC, to the second).
TIME_FORMAT = "YYYY-MM-DD HH:mm:ss"
_TIME_TEXT = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:?\d{2}|Z)?$"


def as_text(value: Any) -> str:
    """One cell of a table of mixed rows (Compare's side by side) as the house formats show
    it: floats to 4 significant digits, timestamps to the second, missing as empty."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def displayable(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with text columns that hold only timestamps (SQLite returns raw SQL's datetimes
    as text) turned into timestamps, so they show to the second like the others."""
    converted = {}
    for name in df.columns:
        column = df[name]
        if column.dtype.kind not in "OUT" or column.dtype == bool:
            continue
        values = column.dropna()
        if values.empty or not all(isinstance(v, str) for v in values.head(200)):
            continue
        if values.astype(str).str.fullmatch(_TIME_TEXT).all():
            parsed = pd.to_datetime(column, errors="coerce", utc=True, format="ISO8601")
            if parsed.notna().sum() == len(values):
                converted[name] = parsed
    return df.assign(**converted) if converted else df


#: Columns of identifiers (run ids above all), shown whole: a column as wide as its longest.
ID_COLUMNS = ("run_id", "run", "record_id", "decision_id")


def id_width(values: pd.Series) -> int:
    """Pixels a column needs to show its longest identifier whole."""
    longest = int(values.astype(str).str.len().max()) if len(values) else 0
    return max(80, 8 * longest + 28)


def column_config(df: pd.DataFrame, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The column configuration :func:`show` uses for ``df``: every float column to 4
    significant digits, every timestamp column to the second, identifier columns wide enough
    to show each id whole; then ``overrides``, key by key."""
    config: dict[str, Any] = {}
    for name in df.columns:
        kind = df[name].dtype.kind
        if kind == "f":
            config[name] = st.column_config.NumberColumn(format=NUMBER_FORMAT)
        elif kind == "M":
            config[name] = st.column_config.DatetimeColumn(format=TIME_FORMAT)
        elif name in ID_COLUMNS:
            config[name] = st.column_config.TextColumn(width=id_width(df[name]))
    for name, override in (overrides or {}).items():
        given = config.get(name)
        if given and isinstance(override, dict):  # what the page left unset keeps its default
            override = given | {k: v for k, v in override.items() if v is not None}
        config[name] = override
    return config


def show(df: pd.DataFrame, *, key: str, container: Any = st, **kwargs: Any) -> Any:
    """``container.dataframe(df, ...)`` with the house formats; ``column_config`` entries
    given are laid over them. Returns what ``st.dataframe`` returns (the selection)."""
    df = displayable(df)
    overrides = kwargs.pop("column_config", None)
    kwargs.setdefault("hide_index", True)
    return container.dataframe(df, key=key, column_config=column_config(df, overrides), **kwargs)
