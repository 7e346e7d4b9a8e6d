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
