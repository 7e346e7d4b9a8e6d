"""The ``sanctum-store`` command line."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import click

from sanctum_store import __version__, cli_experiments, metrics
from sanctum_store.cli_options import db_option, fail
from sanctum_store.db import as_found, check_location, resolve_url
from sanctum_store.errors import SanctumError
from sanctum_store.status import IMPORTED, STATUSES

#: The longest time limit ``sql`` takes: longer questions are exports (``export``).
MAX_TIMEOUT_S = 3600.0


class _Commands(click.Group):
    """The command group: what sanctum-store refuses on purpose, and a database's refusal,
    reach the user as one line, never as a traceback."""

    def invoke(self, ctx: click.Context):
        import sqlalchemy as sa

        try:
            return super().invoke(ctx)
        except SanctumError as e:
            raise click.ClickException(str(e)) from None
        except sa.exc.DBAPIError as e:
            reason = str(e.orig or e).strip().splitlines()[0]
            raise click.ClickException(f"the database refused: {reason}") from None
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise click.ClickException(f"{where}{e.strerror or e}") from None


def run(args: list[str] | None = None) -> int:
    """The ``sanctum-store`` program: errors as one ``sanctum-store: error: ...`` line on
    stderr and a non-zero exit status (2 for a mistake in the command line itself)."""
    try:
        main.main(args=args, prog_name="sanctum-store", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("sanctum-store: aborted", err=True)
        return 1
    except click.ClickException as e:
        hint = ""
        if isinstance(e, click.UsageError) and e.ctx is not None:
            hint = f" (see {e.ctx.command_path} --help)"
        click.echo(f"sanctum-store: error: {e.format_message()}{hint}", err=True)
        return e.exit_code
    return 0


def _entry() -> None:
    sys.exit(run())


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sanctum-store")
def main() -> None:
    """Keep every Sanctum snapshot of esper training runs and compare runs.

    \b
    Example:
        sanctum-store --version
    """


main.add_command(cli_experiments.verdict_command)
main.add_command(cli_experiments.report_command)


@main.command("where")
@db_option
def where(db: str | None) -> None:
    """Print the archive URL the --db / $SANCTUM_DB / ./sanctum.db convention resolves to.

    \b
    Example:
        SANCTUM_DB=runs.db sanctum-store where
    """
    click.echo(resolve_url(db))


@main.group("db")
def db_group() -> None:
    """Create, check and upgrade an archive's schema.

    \b
    Example:
        sanctum-store db upgrade --db runs.db
    """


@db_group.command("upgrade")
@db_option
@click.option("--no-backup", is_flag=True, help="Do not copy a SQLite archive aside first.")
@click.option(
    "--force",
    is_flag=True,
    help="Add the archive's tables to a database that already holds tables of its own.",
)
def db_upgrade(db: str | None, no_backup: bool, force: bool) -> None:
    """Create the archive, or upgrade it to this version's schema.

    A SQLite archive is backed up next to itself before it is migrated. A database that
    holds tables of its own (another program's) is refused unless --force.

    \b
    Example:
        sanctum-store db upgrade --db postgresql+psycopg://me@dbhost/sanctum
    """
    from sanctum_store import db as dbmod
    from sanctum_store import migrate

    url = resolve_url(db)
    check_location(url, create=True)
    engine = dbmod.create_engine(url)
    try:
        foreign = migrate.foreign_tables(engine)
        if foreign and not force:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            fail(
                f"{dbmod.display(url)} is not a sanctum-store archive: it holds tables of its "
                f"own ({shown}); add the archive's tables beside them with --force"
            )
        with engine.connect() as conn:
            before = migrate.current_revision(conn)
        head = migrate.head_revision()
        if before == head:
            click.echo(f"archive is at the current schema ({head})")
            return
        if before is not None and not no_backup:
            backup = migrate.backup_sqlite(url)
            if backup is not None:
                click.echo(f"backed up to {backup}")
        before, after = migrate.upgrade(engine)
        click.echo(f"upgraded {before or 'an empty archive'} -> {after}")
    finally:
        engine.dispose()


@db_group.command("check")
@db_option
def db_check(db: str | None) -> None:
    """Exit non-zero unless the archive is at this version's schema.

    \b
    Example:
        sanctum-store db check --db runs.db
    """
    from sanctum_store import db as dbmod
    from sanctum_store import migrate

    url = resolve_url(db)
    check_location(url, create=False)
    engine = dbmod.create_engine(url)
    try:
        click.echo(f"ok: schema revision {migrate.check(engine)}")
    finally:
        engine.dispose()


@main.command("runs")
@db_option
@click.option("--status", type=click.Choice(STATUSES))
def runs_command(db: str | None, status: str | None) -> None:
    """List the archive's runs with their status.

    \b
    Example:
        sanctum-store runs --status running
    """
    from sanctum_store.archive import Archive

    with Archive(resolve_url(db), create=False) as archive:
        table = archive.runs()
    if status:
        table = table[table["status"] == status]
    if table.empty:
        click.echo("no runs")
        return
    columns = [
        "run_id",
        "status",
        "reward_mode",
        "group_id",
        "task_name",
        "snapshot_count",
        "last_seen",
    ]
    click.echo(table[columns].to_string(index=False))


@main.command("compare")
@click.option(
    "--by",
    "attribute",
    required=True,
    metavar="ATTRIBUTE",
    help="Cohorts by this run attribute, e.g. reward_mode or group_id.",
)
@click.option(
    "--metric",
    required=True,
    type=click.Choice(tuple(metrics.OUTCOMES)),
    help="Run outcome to compare.",
)
@click.option(
    "--baseline", default=None, help="Compare every cohort with this one (cohort − baseline)."
)
@click.option(
    "--status",
    type=click.Choice(["finished", "all"]),
    default="finished",
    show_default=True,
    help="Which runs count.",
)
@db_option
def compare_command(
    attribute: str, metric: str, baseline: str | None, status: str, db: str | None
) -> None:
    """Compare cohorts of runs on one outcome, as the explorer's Cohorts page does.

    Every row reads b − a (with --baseline: cohort − baseline): the Holm-adjusted p-value and
    significance first, then the difference with its 95 % bootstrap CI, the means, Hedges' g,
    P(improvement) (the chance a run of b is better than a run of a) and the raw tests; then
    one verdict per row with the same numbers. A reward-based outcome (mean_reward) is not
    compared between cohorts with different reward modes.

    \b
    Example:
        sanctum-store compare --by reward_mode --metric final_accuracy --baseline sparse
    """
    import pandas as pd

    from sanctum_store import queries, stats
    from sanctum_store.archive import Archive

    if attribute not in queries.COHORT_ATTRIBUTES:
        fail(f"--by must be one of {', '.join(queries.COHORT_ATTRIBUTES)}, got {attribute!r}")
    filters = {} if status == "all" else {"status": status}
    with Archive(resolve_url(db), create=False) as archive:
        outcomes = queries.run_outcomes(archive.engine, **filters)
    outcomes[attribute] = outcomes[attribute].map(lambda v: None if pd.isna(v) else str(v))
    try:
        compared = stats.compare_cohorts(outcomes, attribute, metric, baseline=baseline)
    except ValueError as e:
        fail(str(e))
    if compared.empty:
        click.echo(f"no comparisons: fewer than two cohorts of {attribute} among {status} runs")
        return
    click.echo(stats.comparison_text(compared).to_string(index=False))
    click.echo("")
    for verdict in compared["verdict"]:
        click.echo(verdict)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@db_option
@click.option("--run-id", help="Store every snapshot under this run (default: each one's own).")
@click.option("--strict", is_flag=True, help="All or nothing: store nothing if any line is bad.")
@click.option(
    "--status",
    type=click.Choice(("auto", *IMPORTED)),
    default="auto",
    show_default=True,
    help="How the imported runs end (auto: finished if the last snapshot reached the last "
    "batch, else incomplete).",
)
def import_command(
    file: str, db: str | None, run_id: str | None, strict: bool, status: str
) -> None:
    """Import a snapshot dump: one JSON snapshot per line (esper's asdict form), one JSON
    array of snapshots, or one snapshot document.

    Bad snapshots are reported with their line (or array item) and skipped, and the exit
    status is then non-zero; importing a file twice stores nothing twice. Each run imported
    ends as its snapshots say (--status overrides), with their captured_at as its first and
    last seen; a run a live writer is recording is left running.

    \b
    Example:
        sanctum-store import run-7.snapshots.jsonl --db runs.db
    """
    import os

    from sanctum_store.archive import Archive
    from sanctum_store.ingest import import_file

    with (
        Archive(resolve_url(db)) as archive,
        click.progressbar(
            length=os.path.getsize(file),
            label=f"importing {os.path.basename(file)}",
            file=sys.stderr,
        ) as bar,
    ):
        report = import_file(
            archive, file, run_id=run_id, strict=strict, status=status, progress=bar.update
        )
    for where, reason in report.skipped:
        click.echo(f"{where}: skipped: {reason}", err=True)
    click.echo(
        f"{report.stored} snapshots stored, {report.already_present} already present, "
        f"{len(report.skipped)} refused"
    )
    for rid, ended in report.ended.items():
        click.echo(f"run {rid}: {ended}")
    for rid in report.live:
        click.echo(f"run {rid}: left running (a live writer is recording it)")
    if report.skipped:
        fail(f"{len(report.skipped)} of {report.read} snapshots in {file} were refused")


@main.command("demo")
@db_option
@click.option("--runs", "n_runs", default=12, show_default=True, help="How many runs to simulate.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same data).")
@click.option("--if-empty", is_flag=True, help="Do nothing if the archive already has runs.")
@click.option(
    "--live",
    is_flag=True,
    help="Then keep one more run recording, a snapshot every --every seconds, until Ctrl-C "
    "(the other runs are written only into an empty archive).",
)
@click.option(
    "--every",
    type=click.FloatRange(min=0.01, max=3600),
    default=3.0,
    show_default=True,
    help="--live: seconds between snapshots.",
)
def demo_command(
    db: str | None, n_runs: int, seed: int, if_empty: bool, live: bool, every: float
) -> None:
    """Fill the archive with realistic simulated training runs, through the real writer.

    Three reward cohorts (shaped, simplified, sparse) x several seeds; seeds moving through
    their lifecycle, decisions, PPO metrics, best runs, attribution, an event log; one run
    still running and one crashed. With --live, one more run keeps recording while you watch
    it in the explorer (Run detail refreshes itself), until interrupted.

    \b
    Examples:
        sanctum-store demo --db demo.db --runs 12 --seed 0
        sanctum-store demo --live --every 3
    """
    from datetime import UTC, datetime

    from sanctum_store.archive import Archive

    url = resolve_url(db)
    check_location(url, create=True)
    if if_empty or live:
        with Archive(url) as archive:
            filled = not archive.runs().empty
        if filled and not live:
            click.echo(f"{archive!r} already has runs: nothing to do")
            return
        if filled:
            _demo_live(url, every, seed)
            return
    _demo_runs(url, n_runs, seed, datetime.now(UTC))
    if live:
        _demo_live(url, every, seed)


def _demo_live(url: str, every: float, seed: int) -> None:
    from sanctum_store import demo

    click.echo(f"recording a live run into {url}, a snapshot every {every:g} s: Ctrl-C to stop")

    def say(n: int) -> None:
        if n == 1 or n % 20 == 0:
            click.echo(f"{n} snapshots written", err=True)

    run = demo.write_live(url, every=every, seed=seed, on_snapshot=say)
    click.echo(f"stopped: {run.run_id} is finished")


def _demo_runs(url: str, n_runs: int, seed: int, now) -> None:
    from sanctum_store import demo

    runs = demo.plan_runs(n_runs, seed, now=now)
    with click.progressbar(length=len(runs), label="simulating runs", file=sys.stderr) as bar:
        done = {"snapshots": 0}

        def progress(n: int) -> None:
            done["snapshots"] += n

        for run in runs:
            demo.write_demo(url, runs=[run], progress=progress)
            bar.update(1)
    click.echo(f"{len(runs)} runs, {done['snapshots']} snapshots written to {url}")


class ByteSize(click.ParamType):
    """A number of bytes, optionally with a K, M or G suffix (powers of 1024)."""

    name = "BYTES"
    _UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B")
        unit = text[-1:] if text[-1:] in "KMG" and text[-1:] else ""
        try:
            number = float(text[: len(text) - len(unit)])
        except ValueError:
            self.fail(f"{value!r} is not a size such as 1048576, 512K or 64M", param, ctx)
        size = int(number * self._UNITS[unit])
        if size < 1024:
            self.fail(f"{value!r} is less than 1K", param, ctx)
        return size


@main.command("sql")
@click.argument("statement")
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
    help="Output format (parquet needs --out).",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file, not stdout.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True, max=MAX_TIMEOUT_S),
    default=10.0,
    show_default=True,
    help=f"Seconds (at most {MAX_TIMEOUT_S:.0f}).",
)
@click.option(
    "--max-rows", type=click.IntRange(min=1), default=10_000, show_default=True, help="Row cap."
)
@click.option(
    "--max-bytes",
    type=ByteSize(),
    default="64M",
    show_default=True,
    help="Byte cap: the result bytes held in memory (K, M, G suffixes).",
)
@click.option(
    "--unsafe-writable-role",
    is_flag=True,
    help="PostgreSQL: run even as a superuser or a role that may write (not read-only then).",
)
def sql_command(
    statement: str,
    db: str | None,
    fmt: str,
    out: str | None,
    timeout_s: float,
    max_rows: int,
    max_bytes: int,
    unsafe_writable_role: bool,
) -> None:
    """Run one read-only SQL statement (SELECT, WITH or EXPLAIN) against the archive.

    The archive is opened read-only; the statement is stopped after --timeout seconds and at
    most --max-rows rows holding at most --max-bytes are returned (a note on stderr says when
    more were left). On PostgreSQL the role must be SELECT-only (README shows how). The
    analyst views (v_runs, v_env_epochs, v_seeds, v_decisions, v_best_runs, v_lifecycle,
    v_episodes, v_cohorts) are described in README.md.

    \b
    Example:
        sanctum-store sql "SELECT reward_mode, avg(final_accuracy) FROM v_runs GROUP BY 1" --db runs.db
    """
    from sanctum_store import migrate
    from sanctum_store.errors import SQLError
    from sanctum_store.sql import ROW_CAP, readonly_engine, run_query

    if fmt == "parquet" and not out:
        fail("--format parquet writes a binary file: give it --out FILE")
    url = resolve_url(db)
    check_location(url, create=False)
    if not math.isfinite(timeout_s):
        fail(f"--timeout must be a number of seconds, got {timeout_s}")
    deadline = time.monotonic() + timeout_s  # for the query and for writing its rows
    try:
        with as_found(url):
            migrate.check(readonly_engine(url), where=url)
            result = run_query(
                url,
                statement,
                timeout_s=timeout_s,
                max_rows=max_rows,
                max_bytes=max_bytes,
                unsafe_writable_role=unsafe_writable_role,
            )
    except (SQLError, ValueError) as e:
        fail(str(e))
    frame = result.frame
    _write_result(frame, fmt, out, deadline, f"{timeout_s:g} s")
    if result.truncated_by == ROW_CAP:
        click.echo(f"note: stopped at {max_rows} rows; more were left (raise --max-rows)", err=True)
    elif result.truncated:
        click.echo(
            f"note: stopped at {len(frame)} rows, the byte cap ({max_bytes} bytes);"
            " more were left (raise --max-bytes)",
            err=True,
        )


def _write_result(frame, fmt: str, out: str | None, deadline: float, limit: str) -> None:
    """The query's rows, in ``fmt``, to ``out`` or stdout; CSV and Parquet before ``deadline``
    (the query's time limit), or a one-line failure that keeps no partial file."""
    from sanctum_store.sql import arrow_safe

    if fmt in ("csv", "parquet"):
        written = (
            _write_parquet(arrow_safe(frame), out, deadline)
            if fmt == "parquet"
            else _write_csv(frame, out, deadline)
        )
        if written < len(frame):
            if out:
                Path(out).unlink(missing_ok=True)
            fail(
                f"the time limit ({limit}) ran out while writing {fmt}: "
                f"{written} of {len(frame)} rows written"
                + (", the file removed" if out else "")
                + " (raise --timeout, or lower --max-rows / --max-bytes)"
            )
        return
    if fmt == "json":
        text = frame.to_json(
            orient="records", date_format="iso", force_ascii=False, double_precision=15
        )
        text += "\n"
    else:
        text = (frame.to_string(index=False) if len(frame.columns) else "(no rows)") + "\n"
    if out:
        with open(out, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)


#: Rows are written in slices of about this many bytes, so no output buffer holds them all
#: and the time limit is looked at every fraction of a second.
_SLICE_BYTES = 2**20


def _slices(frame):
    """``(start, stop)`` row ranges of about _SLICE_BYTES each (one range at least)."""
    from sanctum_store.sql import row_bytes

    start, size = 0, 0
    for i, row in enumerate(frame.itertuples(index=False, name=None)):
        size += row_bytes(row)
        if size >= _SLICE_BYTES:
            yield start, i + 1
            start, size = i + 1, 0
    if start < len(frame) or start == 0:
        yield start, len(frame)


def _write_csv(frame, out: str | None, deadline: float) -> int:
    """The rows written before ``deadline`` (all of them, unless it passed)."""
    stream = open(out, "w", encoding="utf-8", newline="") if out else None  # noqa: SIM115
    try:
        for start, stop in _slices(frame):
            if time.monotonic() > deadline:
                return start
            text = _hex_blobs(frame.iloc[start:stop]).to_csv(index=False, header=start == 0)
            if stream:
                stream.write(text)
            else:
                click.echo(text, nl=False)
    finally:
        if stream:
            stream.close()
    return len(frame)


def _hex_blobs(frame):
    """Blobs as hex in CSV (as SQL's hex() gives them), not as Python's b'...' repr."""
    import pandas as pd

    blobs = {}
    for i in range(frame.shape[1]):
        column = frame.iloc[:, i]
        if column.dtype == object and any(isinstance(v, bytes) for v in column):
            hexed = [v.hex() if isinstance(v, bytes) else v for v in column]
            blobs[i] = pd.Series(hexed, index=column.index, dtype=object)
    if not blobs:
        return frame
    frame = frame.copy(deep=False)
    for i, column in blobs.items():
        frame.isetitem(i, column)
    return frame


def _write_parquet(frame, out: str, deadline: float) -> int:
    """Parquet in row groups of a slice each: the rows written before ``deadline``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # The schema from a few rows, each column's first value among them: inferring it from the
    # whole frame would convert every column at once.
    firsts = {frame.iloc[:, i].first_valid_index() for i in range(frame.shape[1])}
    sample = sorted({*range(min(len(frame), 100)), *(i for i in firsts if i is not None)})
    schema = pa.Schema.from_pandas(frame.iloc[sample], preserve_index=False)
    with pq.ParquetWriter(out, schema) as writer:
        for start, stop in _slices(frame):
            if time.monotonic() > deadline:
                return start
            part = frame.iloc[start:stop]
            writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
    return len(frame)


@main.command("export")
@click.argument("kind", type=click.Choice(["runs", "series", "leaderboard"]))
@db_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet"]),
    help="Default: parquet for a .parquet file, else csv.",
)
@click.option("--run-id", "run_ids", multiple=True, help="Only this run (repeatable).")
@click.option("--metric", help="series: the metric (see queries.SERIES_METRICS).")
@click.option(
    "--x", "x", type=click.Choice(["batch", "epoch", "time"]), default="batch", show_default=True
)
@click.option("--task", multiple=True, help="Only runs of this task (repeatable).")
@click.option("--reward-mode", multiple=True, help="Only this reward mode (repeatable).")
@click.option("--group-id", multiple=True, help="Only this A/B group (repeatable).")
@click.option(
    "--status",
    multiple=True,
    type=click.Choice(STATUSES),
)
@click.option("--since", help="Only runs active since this ISO time.")
@click.option("--until", help="Only runs active until this ISO time.")
@click.option("--search", help="Case-insensitive substring of run id, task, reward mode or group.")
@click.option("--limit", type=int, help="At most this many rows.")
@click.option("--chunk-rows", type=int, default=10_000, show_default=True, hidden=True)
def export_command(
    kind: str,
    db: str | None,
    out: str,
    fmt: str | None,
    run_ids: tuple[str, ...],
    metric: str | None,
    x: str,
    task: tuple[str, ...],
    reward_mode: tuple[str, ...],
    group_id: tuple[str, ...],
    status: tuple[str, ...],
    since: str | None,
    until: str | None,
    search: str | None,
    limit: int | None,
    chunk_rows: int,
) -> None:
    """Export runs, a metric's series or the leaderboard to CSV or Parquet, streaming.

    Rows are read with a server-side cursor and written a chunk at a time, so exports of any
    size need little memory. runs: one row per run (the columns of the explorer's run list);
    series: every value of --metric (per env for env metrics) with its batch position, for
    the chosen runs; leaderboard: every best-run record, best first.

    \b
    Example:
        sanctum-store export series --metric host_accuracy --reward-mode sparse --out acc.parquet
    """
    from sqlalchemy.exc import SQLAlchemyError

    from sanctum_store import db as dbmod
    from sanctum_store import export, migrate

    fmt = fmt or ("parquet" if out.lower().endswith((".parquet", ".pq")) else "csv")
    if kind == "leaderboard":
        extra = [("--task", task), ("--status", status), ("--since", since), ("--until", until)]
        extra.append(("--search", search))
        given = [name for name, value in extra if value]
        if given:
            fail(f"the leaderboard cannot be filtered by {', '.join(given)}")
        filters = {"run_id": run_ids, "reward_mode": reward_mode, "group_id": group_id}
    else:
        filters = {
            "run_id": run_ids,
            "task": task,
            "reward_mode": reward_mode,
            "group_id": group_id,
            "status": status,
            "since": since,
            "until": until,
            "search": search,
        }
    filters = {k: (list(v) if isinstance(v, tuple) else v) for k, v in filters.items() if v}
    if kind == "series" and not metric:
        fail("export series needs --metric")
    url = resolve_url(db)
    check_location(url, create=False)
    engine = dbmod.create_engine(url)
    try:
        migrate.check(engine)
        query = export.query_for(kind, metric=metric, x=x, limit=limit, **filters)
        total = export.count(engine, query)
        with click.progressbar(length=total, label=f"exporting {kind}", file=sys.stderr) as bar:
            written = export.write(
                engine, query, out, fmt, chunk_rows=chunk_rows, progress=bar.update
            )
    except (SanctumError, ValueError, SQLAlchemyError) as e:
        fail(str(e))
    finally:
        engine.dispose()
    click.echo(f"{written} rows written to {out} ({fmt})")


if __name__ == "__main__":
    _entry()
