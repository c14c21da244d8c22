"""Schema migrations with Alembic: upgrade a database to the current models, or say how far
behind it is. SQLite databases are upgraded automatically at start; PostgreSQL explicitly with
`channelbridge db upgrade` (several processes must not race to migrate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

_HERE = Path(__file__).resolve().parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database schema is older than this version of channelbridge: run `channelbridge db upgrade`."""


def _config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head", *, sealer: Any = None) -> None:
    """Migrate the database up to `revision`. Migrations that re-seal data (0003_sealing) take the
    `bridge.privacy.Sealer` of the operator's key; a database with nothing sealed needs none."""
    config = _config()
    config.attributes["sealer"] = sealer
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def revision(engine: Engine, message: str) -> None:  # pragma: no cover - a developer tool
    """Autogenerate a new migration from the models (developers only)."""
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message=message, autogenerate=True)


def require_head(engine: Engine) -> None:
    """Refuse to run on a schema that is not at the newest revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the database schema is at {current or 'nothing'}, this version needs {head}: "
            "run `channelbridge db upgrade --config <file>` once, then start the processes"
        )
