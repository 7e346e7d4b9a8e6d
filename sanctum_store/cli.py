"""The ``sanctum-store`` command line."""

from __future__ import annotations

import click

from sanctum_store import __version__
from sanctum_store.db import resolve_url

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
