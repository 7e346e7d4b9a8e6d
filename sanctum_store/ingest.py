"""Importing snapshot dumps: one JSON snapshot per line (esper's asdict form)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from sanctum_store import codec
from sanctum_store.archive import Archive, WriteItem
from sanctum_store.errors import SanctumError, SnapshotInvalid
from sanctum_store.persist import T, check_indexed_text

BATCH = 50


class ImportRefused(SanctumError):
    """A strict import found bad lines and stored nothing."""


@dataclass
class ImportReport:
    """What an import did: lines read, snapshots newly stored, lines skipped and why."""

    lines: int = 0
    stored: int = 0
    already_present: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)


def parse_line(text: str, number: int, run_id: str | None = None) -> dict:
    """One line's snapshot tree, ready to store under ``run_id`` (default: its own);
    SnapshotInvalid names the line and the problem."""
    try:
        snapshot = json.loads(text)
    except json.JSONDecodeError as e:
        raise SnapshotInvalid(
            f"line {number}", f"invalid JSON: {e.msg} (column {e.colno})"
        ) from None
    except RecursionError:
        raise SnapshotInvalid(f"line {number}", "invalid JSON: nested too deeply") from None
    try:
        tree = codec.normalize(snapshot)
        if not (run_id or tree["run_id"]):
            raise SnapshotInvalid("run_id", "snapshot has no run_id: pass --run-id to import it")
        check_indexed_text(tree, run_id)
    except SnapshotInvalid as e:
        where = f"line {number}: {e.path}" if e.path else f"line {number}"
        raise SnapshotInvalid(where, e.problem) from None
    return tree


def _count(archive: Archive) -> int:
    with archive.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(T["snapshots"])).scalar_one()


def import_jsonl(
    archive: Archive,
    path: str | Path,
    *,
    run_id: str | None = None,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a snapshot dump. Bad lines are skipped and reported (``strict``: nothing is
    stored unless every line is good). Importing the same file twice stores nothing new."""
    report = ImportReport()
    before = _count(archive)
    pending: list[WriteItem] = []
    # surrogateescape: a line with broken bytes becomes a reported bad line, not a crash.
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for number, text in enumerate(f, start=1):
            if progress:
                progress(len(text.encode("utf-8", "surrogateescape")))
            if not text.strip():
                continue
            report.lines += 1
            try:
                pending.append(WriteItem(parse_line(text, number, run_id), run_id))
            except SnapshotInvalid as e:
                report.skipped.append(
                    (number, str(e).split(": ", 1)[1] if ": " in str(e) else str(e))
                )
                continue
            if not strict and len(pending) >= BATCH:
                archive.save_batch(pending)
                pending = []
    if strict and report.skipped:
        first = "; ".join(f"line {n}: {why}" for n, why in report.skipped[:5])
        raise ImportRefused(
            f"{len(report.skipped)} bad line(s), nothing imported (--strict): {first}"
        )
    if pending:
        archive.save_batch(pending)
    stored = _count(archive) - before
    report.stored = stored
    report.already_present = report.lines - len(report.skipped) - stored
    return report
