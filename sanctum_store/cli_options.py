"""What every ``sanctum-store`` command shares: the ``--db`` option and the way to refuse."""

from __future__ import annotations

import click

DB_HELP = "Archive: a file path or SQLAlchemy URL (else $SANCTUM_DB, else ./sanctum.db)."


def db_option(f):
    """The one ``--db`` convention every command shares."""
    return click.option("--db", "db", metavar="PATH_OR_URL", default=None, help=DB_HELP)(f)


def fail(message: str) -> None:
    """Exit non-zero with the reason on stderr."""
    raise click.ClickException(message)
