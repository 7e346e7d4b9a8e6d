"""TamiyoState._previous_risk becomes a column; event ids are kept in 16 bytes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:30:00

* ``tamiyo_states._previous_risk``: the schema's ``TamiyoState._previous_risk`` is a dataclass
  field now (it was a class attribute, and the snapshots that carried it kept it with the row's
  unknown fields, ``extra``). Existing rows get the value their ``extra`` holds, else the
  field's default 0.0; ``extra`` is left as it was (the reader lets a field named there fill
  the field, so old rows read back the same either way).
* ``events.event_uuid``: a new event's ``metadata["event_id"]``, when it is a canonical UUID
  and the first key (esper's way), is stored here in 16 bytes instead of in the metadata JSON.
  Existing events keep their ids in their metadata (the reader takes both forms).

SQLite: columns are added with ALTER TABLE (no table rebuild), so the views stay valid.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILL_PREVIOUS_RISK = {
    "sqlite": """
UPDATE tamiyo_states SET _previous_risk = CASE
    WHEN json_type(extra, '$._previous_risk') IN ('real', 'integer')
    THEN json_extract(extra, '$._previous_risk') ELSE 0.0 END
""",
    "postgresql": """
UPDATE tamiyo_states SET _previous_risk = CASE
    WHEN json_typeof(extra -> '_previous_risk') = 'number'
    THEN (extra ->> '_previous_risk')::double precision ELSE 0.0 END
""",
}


def upgrade() -> None:
    op.add_column("tamiyo_states", sa.Column("_previous_risk", sa.Double(), nullable=True))
    op.add_column("events", sa.Column("event_uuid", sa.LargeBinary(length=16), nullable=True))
    op.execute(FILL_PREVIOUS_RISK[op.get_bind().dialect.name])


def downgrade() -> None:
    op.drop_column("events", "event_uuid")
    op.drop_column("tamiyo_states", "_previous_risk")
