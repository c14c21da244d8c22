"""Alembic environment: runs migrations on the connection `bridge.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import bridge.models  # noqa: F401  (registers every table on SQLModel.metadata)

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through bridge.migrate
    raise RuntimeError("run migrations with `channelbridge db upgrade`")
context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
