"""experiments saved by name, every version of their definitions kept

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:40:00

``experiments`` names an experiment (the package's experiments module: cohorts, baseline, outcome
and the decision thresholds declared before evaluation); ``experiment_versions`` keeps each
version of its definition with the time it was saved, so a threshold changed after the data was
seen is on record. Nothing stored before changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("name", name=op.f("uq_experiments_name")),
    )
    op.create_table(
        "experiment_versions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("experiment_id", BIG_ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("saved_at", sa.DateTime(), nullable=False),
        sa.Column("definition", sa.JSON(none_as_null=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_versions_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_versions")),
        sa.UniqueConstraint(
            "experiment_id", "version", name=op.f("uq_experiment_versions_experiment_id_version")
        ),
    )


def downgrade() -> None:
    op.drop_table("experiment_versions")
    op.drop_table("experiments")
