"""sanctum-store: keep every Sanctum snapshot of an esper training run, and compare runs."""

__version__ = "0.1.0"

from sanctum_store.archive import Archive
from sanctum_store.errors import (
    ArchiveOutdated,
    ArchiveTooNew,
    ArchiveUnavailable,
    RunNotFound,
    SanctumError,
    SnapshotInvalid,
    SnapshotNotFound,
)
from sanctum_store.writer import Recorder, SnapshotWriter, WriterStats, record

__all__ = [
    "Archive",
    "ArchiveOutdated",
    "ArchiveTooNew",
    "ArchiveUnavailable",
    "Recorder",
    "RunNotFound",
    "SanctumError",
    "SnapshotInvalid",
    "SnapshotNotFound",
    "SnapshotWriter",
    "WriterStats",
    "__version__",
    "record",
]
