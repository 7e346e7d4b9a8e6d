"""The package's exceptions, in one place."""

from __future__ import annotations


class SanctumError(Exception):
    """Base class of every error sanctum-store raises on purpose."""


class SnapshotInvalid(SanctumError, ValueError):
    """A snapshot has a field of the wrong type or value; the message names its path."""

    def __init__(self, path: str, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class RunNotFound(SanctumError, LookupError):
    """No run with that run_id is in the archive."""


class SnapshotNotFound(SanctumError, LookupError):
    """The run has no stored snapshot at the requested id or time."""


class ArchiveUnavailable(SanctumError):
    """The archive cannot be opened: nothing there, not an archive, or its server unreachable;
    the message says which, and where."""


class ArchiveOutdated(SanctumError):
    """The archive's schema is older than this version of sanctum-store: upgrade it."""


class ArchiveTooNew(SanctumError):
    """The archive was written by a newer sanctum-store than this one."""


class ImportRefused(SanctumError):
    """An import stored nothing: a strict import found bad snapshots, or the file holds none
    (or is not JSON at all)."""


class SQLError(SanctumError):
    """A user SQL query could not run or did not finish."""


class QueryRefused(SQLError):
    """The SQL is not a single read-only statement, so it was not run (or was stopped)."""


class QueryInterrupted(SQLError):
    """The query ran past its time limit and was interrupted."""


class QueryFailed(SQLError):
    """The database reported an error while running the query."""


class QueryRoleRefused(QueryRefused):
    """The console's PostgreSQL role is a superuser or may write the archive, so no user SQL
    runs through it (unless the operator asks for that explicitly)."""


class LockTimeout(SanctumError):
    """A database lock stayed held by another session past the wait; the message names it."""
