"""Migrations: an empty database of each kind, migrated to head, matches the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import bridge.models  # noqa: F401
from bridge import migrate
from bridge.store import Store


def test_migrated_empty_database_matches_the_models(store_url: str) -> None:
    store = Store(store_url)
    try:
        assert migrate.current_revision(store.engine) is None
        migrate.upgrade(store.engine)
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        with store.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
            )
        assert diff == []
        migrate.upgrade(store.engine)  # idempotent
        migrate.require_head(store.engine)
    finally:
        store.dispose()


def test_an_unmigrated_database_is_refused_with_the_fix(store_url: str) -> None:
    store = Store(store_url)
    try:
        try:
            migrate.require_head(store.engine)
        except migrate.SchemaOutOfDate as exc:
            assert "channelbridge db upgrade" in str(exc)
        else:
            raise AssertionError("an empty database must be refused")
    finally:
        store.dispose()
