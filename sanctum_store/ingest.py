"""Importing snapshot dumps: one JSON snapshot per line (esper's asdict form), or one JSON
array of snapshots, or a single (pretty-printed) snapshot document.

A UTF-8 byte-order mark is skipped; lines end at ``\\n`` only (a ``\\r`` inside a line is part
of it, and a line ending ``\\r\\n`` is read without its ``\\r``); an object that repeats a key is
refused, naming the key, rather than silently keeping the last value.

Imported runs are what they were: once stored, each run the file held ends as its snapshots
say (:meth:`Archive.finish_import`: ``finished`` when its last snapshot reached its last batch,
else ``incomplete``; first and last seen from the snapshots' ``captured_at``), unless a live
writer is recording it (its stored status ``running`` and a heartbeat within
:data:`status.STALE_AFTER`), which is left alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sanctum_store.archive import Archive, WriteItem
from sanctum_store.errors import ImportRefused, SnapshotInvalid
from sanctum_store.models import TABLES
from sanctum_store.status import RunStatus, check_imported, status_expression
from sanctum_store.writer import is_transient

BATCH = 50
_BOM = b"\xef\xbb\xbf"


@dataclass
class ImportReport:
    """What an import did: the file's form ("lines", "array" or "document"), snapshots read,
    newly stored and already present, and each refused one with where it was and why."""

    form: str = "lines"
    read: int = 0
    stored: int = 0
    already_present: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ended: dict[str, str] = field(default_factory=dict)  # run id -> the status it ended with
    live: list[str] = field(default_factory=list)  # runs a live writer records: left running


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def loads(text: str | bytes) -> Any:
    """JSON, refusing an object that repeats a key (``_DuplicateKey``)."""
    return json.loads(text, object_pairs_hook=_no_duplicate_keys)


def _parse(text: str | bytes, where: str) -> Any:
    try:
        # Decoded here: given bytes, json would guess UTF-16 or UTF-32 from their first bytes.
        return loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except _DuplicateKey as e:
        raise SnapshotInvalid(where, f"an object repeats the key {e.key!r}") from None
    except json.JSONDecodeError as e:
        raise SnapshotInvalid(where, f"invalid JSON: {e.msg} (column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise SnapshotInvalid(where, f"not UTF-8 text (byte {e.start + 1})") from None
    except RecursionError:
        raise SnapshotInvalid(where, "invalid JSON: nested too deeply") from None


def normalize_document(document: Any, where: str, run_id: str | None = None) -> dict:
    """A parsed snapshot's tree, ready to store under ``run_id`` (default: its own);
    SnapshotInvalid names ``where`` (a line, an array item) and the problem."""
    try:
        return WriteItem.of(document, run_id, how_to_name="pass --run-id to import it")
    except SnapshotInvalid as e:
        raise SnapshotInvalid(f"{where}: {e.path}" if e.path else where, e.problem) from None


def parse_line(text: str | bytes, number: int, run_id: str | None = None) -> dict:
    """One line's snapshot tree (see :func:`normalize_document`)."""
    return normalize_document(_parse(text, f"line {number}"), f"line {number}", run_id)


def _form(path: Path) -> str:
    """ "array", "document" (one JSON value over several lines) or "lines"."""
    with open(path, "rb") as f:
        first = f.readline().removeprefix(_BOM)
        while first and not first.strip():
            first = f.readline()
    first = first.lstrip()
    if first.startswith(b"["):
        return "array"
    if first.startswith(b"{"):
        try:
            json.loads(first)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "document"  # its first line is not a whole snapshot
    return "lines"


def _documents(path: Path, form: str, progress) -> Iterator[tuple[str, Any]]:
    """(where, parsed document or the SnapshotInvalid that reading it raised)."""
    if form == "lines":
        with open(path, "rb") as f:  # binary: lines end at \n, never at a lone \r
            for number, raw in enumerate(f, start=1):
                if progress:
                    progress(len(raw))
                if number == 1:
                    raw = raw.removeprefix(_BOM)
                if not raw.strip():
                    continue
                where = f"line {number}"
                try:
                    yield where, _parse(raw.rstrip(b"\r\n"), where)
                except SnapshotInvalid as e:
                    yield where, e
        return
    data = path.read_bytes()
    if progress:
        progress(len(data))
    try:
        value = loads(data.removeprefix(_BOM).decode("utf-8"))
    except _DuplicateKey as e:
        raise ImportRefused(f"{path}: an object repeats the key {e.key!r}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        detail = f"{e.msg} at line {e.lineno} column {e.colno}" if hasattr(e, "lineno") else e
        raise ImportRefused(
            f"{path} is neither one JSON snapshot per line nor one JSON document: {detail}"
        ) from None
    if form == "document":
        if isinstance(value, list):
            form = "array"
        else:
            yield "the document", value
            return
    if not isinstance(value, list):  # pragma: no cover - "[" always parses to a list
        raise ImportRefused(f"{path}: expected a JSON array of snapshots")
    for index, item in enumerate(value, start=1):
        yield f"item {index}", item


def _count(archive: Archive) -> int:
    with archive.engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(TABLES["snapshots"])
        ).scalar_one()


def _live(archive: Archive, run_id: str) -> bool:
    """Whether a writer is recording the run now (it reads as ``running``)."""
    runs = TABLES["runs"]
    with archive.engine.connect() as conn:
        status = conn.execute(
            sa.select(status_expression(runs)).where(runs.c.run_id == run_id)
        ).scalar()
    return status == RunStatus.RUNNING


def import_file(
    archive: Archive,
    path: str | Path,
    *,
    run_id: str | None = None,
    strict: bool = False,
    status: str = "auto",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a snapshot dump in any of the module's forms. Bad snapshots are skipped and
    reported (``strict``: nothing is stored unless every one is good); importing the same
    file twice stores nothing new. ImportRefused when the file holds no snapshot at all.
    Each run imported then ends with ``status`` (see :meth:`Archive.finish_import`), except one
    a live writer is recording (``report.live``)."""
    check_imported(status)
    path = Path(path)
    report = ImportReport(form=_form(path))
    before = _count(archive)
    pending: list[tuple[str, WriteItem]] = []
    live: dict[str, bool] = {}  # asked before the import first stores the run's snapshots
    for where, document in _documents(path, report.form, progress):
        report.read += 1
        try:
            if isinstance(document, SnapshotInvalid):
                raise document
            item = normalize_document(document, where, run_id)
            pending.append((where, item))
            rid = item.run_id or item.tree["run_id"]
            if rid not in live:
                live[rid] = _live(archive, rid)
        except SnapshotInvalid as e:
            report.skipped.append((where, str(e).removeprefix(f"{where}: ")))
            continue
        if not strict and len(pending) >= BATCH:
            _save(archive, pending, report)
            pending = []
    if report.read == 0:
        raise ImportRefused(f"{path} holds no snapshots")
    if strict and report.skipped:
        _refuse_strict(report)
    if strict and pending:
        try:  # one transaction: all or nothing
            archive.store_batch([item for _, item in pending])
        except Exception as e:
            if is_transient(e) or not _refused(e):
                raise
            _save(archive, pending, report, dry_run=True)  # which ones the database refuses
            _refuse_strict(report)
    elif pending:
        _save(archive, pending, report)
    report.stored = _count(archive) - before
    report.skipped.sort(key=lambda entry: _position(entry[0]))
    report.already_present = report.read - len(report.skipped) - report.stored
    for rid, is_live in live.items():
        if is_live:
            report.live.append(rid)
        else:
            report.ended[rid] = archive.finish_import(rid, status)
    return report


def _refuse_strict(report: ImportReport) -> None:
    report.skipped.sort(key=lambda entry: _position(entry[0]))
    first = "; ".join(f"{where}: {why}" for where, why in report.skipped[:5])
    raise ImportRefused(
        f"{len(report.skipped)} bad snapshot(s), nothing imported (--strict): {first}"
    )


def _position(where: str) -> int:
    """A snapshot's place in the file, from its ``where`` ("line 7", "item 3", ...)."""
    number = where.rpartition(" ")[2]
    return int(number) if number.isdigit() else 0


def _save(
    archive: Archive,
    pending: list[tuple[str, WriteItem]],
    report: ImportReport,
    *,
    dry_run: bool = False,
) -> None:
    """Store a batch in one transaction; if the database refuses it, store its snapshots one
    by one, so that one bad snapshot costs only itself: each the database refuses is reported
    with where it was (``report.skipped``). Errors of the database itself (unreachable, locked)
    are raised: no snapshot caused them."""
    try:
        archive.store_batch([item for _, item in pending], dry_run=dry_run)
        return
    except Exception as e:
        if is_transient(e) or not _refused(e):
            raise
        if len(pending) == 1:
            report.skipped.append((pending[0][0], _reason(e)))
            return
    for entry in pending:
        _save(archive, [entry], report, dry_run=dry_run)


def _refused(error: BaseException) -> bool:
    """An error one snapshot caused: invalid, or refused by the database (a value, a
    constraint), as opposed to the database failing."""
    return isinstance(error, (SnapshotInvalid, sa.exc.DataError, sa.exc.IntegrityError)) or (
        isinstance(error, sa.exc.DBAPIError) and not error.connection_invalidated
    )


def _reason(error: BaseException) -> str:
    if isinstance(error, SnapshotInvalid):
        return str(error)
    return "the database refused it: " + str(getattr(error, "orig", None) or error).splitlines()[0]
