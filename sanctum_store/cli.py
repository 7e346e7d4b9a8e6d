"""The ``sanctum-store`` command line."""

from __future__ import annotations

import click

from sanctum_store import __version__
from sanctum_store.db import resolve_url
from sanctum_store.errors import SanctumError

DB_HELP = "Archive: a file path or SQLAlchemy URL (else $SANCTUM_DB, else ./sanctum.db)."


def db_option(f):
    """The one ``--db`` convention every command shares."""
    return click.option("--db", "db", metavar="PATH_OR_URL", default=None, help=DB_HELP)(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sanctum-store")
def main() -> None:
    """Keep every Sanctum snapshot of esper training runs and compare runs.

    \b
    Example:
        sanctum-store --version
    """


@main.command("where")
@db_option
def where(db: str | None) -> None:
    """Print the archive URL the --db / $SANCTUM_DB / ./sanctum.db convention resolves to.

    \b
    Example:
        SANCTUM_DB=runs.db sanctum-store where
    """
    click.echo(resolve_url(db))


def fail(message: str) -> None:
    """Exit non-zero with the reason on stderr."""
    raise click.ClickException(message)


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
def db_upgrade(db: str | None, no_backup: bool) -> None:
    """Create the archive, or upgrade it to this version's schema.

    A SQLite archive is backed up next to itself before it is migrated.

    \b
    Example:
        sanctum-store db upgrade --db postgresql+psycopg://me@dbhost/sanctum
    """
    from sanctum_store import db as dbmod
    from sanctum_store import migrate

    url = resolve_url(db)
    engine = dbmod.create_engine(url)
    try:
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
    except SanctumError as e:
        fail(str(e))
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

    engine = dbmod.create_engine(resolve_url(db))
    try:
        click.echo(f"ok: schema revision {migrate.check(engine)}")
    except SanctumError as e:
        fail(str(e))
    finally:
        engine.dispose()


@main.command("runs")
@db_option
@click.option("--status", type=click.Choice(["running", "finished", "stale", "crashed", "failed"]))
def runs_command(db: str | None, status: str | None) -> None:
    """List the archive's runs with their status.

    \b
    Example:
        sanctum-store runs --status running
    """
    from sanctum_store.archive import Archive

    with Archive(resolve_url(db)) as archive:
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


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@db_option
@click.option("--run-id", help="Store every snapshot under this run (default: each one's own).")
@click.option("--strict", is_flag=True, help="All or nothing: store nothing if any line is bad.")
def import_command(file: str, db: str | None, run_id: str | None, strict: bool) -> None:
    """Import a snapshot dump: one JSON snapshot per line (esper's asdict form).

    Bad lines are reported with their line number and skipped; importing a file twice stores
    nothing twice.

    \b
    Example:
        sanctum-store import run-7.snapshots.jsonl --db runs.db
    """
    import os

    from sanctum_store.archive import Archive
    from sanctum_store.ingest import import_jsonl

    with (
        Archive(resolve_url(db)) as archive,
        click.progressbar(
            length=os.path.getsize(file),
            label=f"importing {os.path.basename(file)}",
            file=click.get_text_stream("stderr"),
        ) as bar,
    ):
        try:
            report = import_jsonl(archive, file, run_id=run_id, strict=strict, progress=bar.update)
        except SanctumError as e:
            fail(str(e))
    for number, reason in report.skipped:
        click.echo(f"line {number}: skipped: {reason}", err=True)
    click.echo(
        f"{report.stored} snapshots stored, {report.already_present} already present, "
        f"{len(report.skipped)} lines skipped"
    )


@main.command("demo")
@db_option
@click.option("--runs", "n_runs", default=12, show_default=True, help="How many runs to simulate.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same data).")
@click.option("--if-empty", is_flag=True, help="Do nothing if the archive already has runs.")
def demo_command(db: str | None, n_runs: int, seed: int, if_empty: bool) -> None:
    """Fill the archive with realistic simulated training runs, through the real writer.

    Three reward cohorts (shaped, simplified, sparse) x several seeds; seeds moving through
    their lifecycle, decisions, PPO metrics, best runs, attribution, an event log; one run
    still running and one crashed.

    \b
    Example:
        sanctum-store demo --db demo.db --runs 12 --seed 0
    """
    from datetime import UTC, datetime

    from sanctum_store import demo
    from sanctum_store.archive import Archive

    url = resolve_url(db)
    if if_empty:
        with Archive(url) as archive:
            if not archive.runs().empty:
                click.echo(f"{archive!r} already has runs: nothing to do")
                return
    runs = demo.plan_runs(n_runs, seed, now=datetime.now(UTC))
    with click.progressbar(
        length=len(runs), label="simulating runs", file=click.get_text_stream("stderr")
    ) as bar:
        done = {"snapshots": 0}

        def progress(n: int) -> None:
            done["snapshots"] += n

        for run in runs:
            demo.write_demo(url, runs=[run], progress=progress)
            bar.update(1)
    click.echo(f"{len(runs)} runs, {done['snapshots']} snapshots written to {url}")
