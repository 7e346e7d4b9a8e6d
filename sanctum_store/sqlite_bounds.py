"""What keeps one SQLite console query within its time limit and byte cap, whatever it calls.

SQLite looks at the clock (the progress handler, ``interrupt()``) only between VM steps, and only
at jumps: never inside one function call, nor along a straight run of calls. So each call is
kept short and the straight runs are kept short:

* ``SQLITE_LIMIT_LENGTH``: no string, blob or row longer than SQLITE_MAX_VALUE_BYTES, so a
  linear function (printf, zeroblob, randomblob, hex, upper, ...) takes at most ~0.2 ms;
* ``SQLITE_LIMIT_VDBE_OP``: a statement compiles to at most SQLITE_MAX_PROGRAM steps, so a
  straight run holds a few thousand calls at most;
* the functions whose cost grows faster than their input (instr and replace: haystack times
  needle; LIKE and GLOB: value times pattern, the pattern bounded too; json_patch: keys times
  keys; trim(X, Y): X times Y, stripped here in linear time instead) or with a count argument
  (printf and format: ``%.*c`` with a precision of 2e9 ran 10 s however short the limit) are
  replaced by shims that look at the clock before each call (printf/format also at widths and
  precisions beyond the value limit) and then run SQLite's own function on a private
  in-memory connection, so their results are SQLite's, to the byte;
* ``SQLITE_LIMIT_COLUMN``: with the value limit, one row holds at most 64 MiB before it is
  counted against the byte cap.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time

#: The longest string, blob or stored row a console query may build or read. At SQLite's
#: default (1 GB) one printf/instr call ran for 18 s.
SQLITE_MAX_VALUE_BYTES = 128 * 2**10
#: The most columns a result may have: one row holds at most 64 MiB (columns x value limit).
SQLITE_MAX_COLUMNS = 512
#: The longest LIKE/GLOB pattern (SQLite's default, 50 000, made one call last seconds).
SQLITE_MAX_PATTERN = 100
#: The most VM steps a statement compiles to: the analyst views take 30 to 540.
SQLITE_MAX_PROGRAM = 10_000
#: VM steps between two looks at the clock.
SQLITE_PROGRESS_STEPS = 100

#: (name, arguments) of the built-ins replaced by clock-watching shims.
GUARDED_FUNCTIONS = (
    ("instr", 2),
    ("replace", 3),
    ("like", 2),
    ("like", 3),
    ("glob", 2),
    ("printf", -1),
    ("format", -1),
    ("json_patch", 2),
)
#: trim(X, Y) and kin cost len(X) x len(Y) in SQLite (5 s in one call at the value limit); their
#: shims strip by a set of characters instead, in linear time.
TRIM_FUNCTIONS = ("trim", "ltrim", "rtrim")


def limit(conn: sqlite3.Connection) -> None:
    """Set the limits above on a console connection (once, when it is opened)."""
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, SQLITE_MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_COLUMN, SQLITE_MAX_COLUMNS)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, SQLITE_MAX_PATTERN)
    conn.setlimit(sqlite3.SQLITE_LIMIT_VDBE_OP, SQLITE_MAX_PROGRAM)


class CallGuard:
    """The shims of GUARDED_FUNCTIONS for one query with this deadline. After the query fails,
    ``stopped`` says whether a shim stopped it ("interrupted", "too big") or None."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.stopped: str | None = None

    def install(self, conn: sqlite3.Connection) -> None:
        for name, arguments in GUARDED_FUNCTIONS:
            conn.create_function(name, arguments, self._shim(name, arguments), deterministic=True)
        for name in TRIM_FUNCTIONS:
            conn.create_function(name, 2, self._trim(name), deterministic=True)

    def _trim(self, name: str):
        native = self._shim(name, 2)
        left, right = name in ("trim", "ltrim"), name in ("trim", "rtrim")

        def call(text, characters):
            if not (isinstance(text, str) and isinstance(characters, str)):
                return native(text, characters)  # NULLs, numbers, blobs: short or linear
            if time.monotonic() > self.deadline:
                self.stopped = "interrupted"
                raise _Stopped(name)
            strip = set(characters)
            start, end = 0, len(text)
            while left and start < end and text[start] in strip:
                start += 1
            while right and end > start and text[end - 1] in strip:
                end -= 1
            return text[start:end]

        return call

    def _shim(self, name: str, arguments: int):
        def call(*args):
            if time.monotonic() > self.deadline:
                self.stopped = "interrupted"
                raise _Stopped(name)
            if arguments < 0 and args and _printf_too_big(args[0], args[1:]):
                self.stopped = "too big"
                raise _Stopped(name)
            statement = f"SELECT {name}({', '.join('?' * len(args))})"
            try:
                return _native().execute(statement, args).fetchone()[0]
            except sqlite3.DataError:  # SQLITE_TOOBIG: the result would pass the value limit
                self.stopped = "too big"
                raise

        return call


# A printf conversion: flags, width, precision, length modifier, type (SQLite's printf.c).
_CONVERSION = re.compile(r"%[-+ #0,!]*(\*|\d+)?(?:\.(\*|\d*))?l{0,2}(.)?", re.DOTALL)


def _printf_too_big(fmt, args) -> bool:
    """Whether a printf format asks for a width or precision beyond the value limit, literally
    or through a ``*`` argument: SQLite may spend time proportional to it before giving up."""
    if not isinstance(fmt, str):
        return False
    taken = 0
    for match in _CONVERSION.finditer(fmt):
        if match.group(3) == "%":
            continue
        for part in match.group(1, 2):
            if part == "*":
                size = _as_count(args[taken] if taken < len(args) else None)
                taken += 1
            elif part:
                size = len(part) > 9 or int(part)
                size = SQLITE_MAX_VALUE_BYTES + 1 if size is True else size
            else:
                continue
            if size > SQLITE_MAX_VALUE_BYTES:
                return True
        taken += 1
    return False


def _as_count(value) -> int:
    """A ``*`` argument as SQLite reads it (a number, or text that starts like one)."""
    if isinstance(value, int | float):
        return abs(int(value)) if abs(value) < 2**63 else 2**63
    if isinstance(value, str):
        # Read as a real, the larger reading when SQLite takes only an integer prefix.
        match = re.match(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value)
        return _as_count(float(match.group())) if match else 0
    return 0


class _Stopped(Exception):
    """A shim refused to start a call after the deadline."""


_local = threading.local()


def _native() -> sqlite3.Connection:
    """This thread's private in-memory connection, where the shims run SQLite's own functions
    (under the same value and pattern limits)."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = sqlite3.connect(":memory:")
        limit(conn)
    return conn
