"""Alembic environment: runs on the connection sanctum_store.migrate hands over.

Revisions never import the live models; each uses op.* with frozen definitions.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=context.config.attributes.get("target_metadata"),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
