"""PostgreSQL for tests: the server on 127.0.0.1:5432 (or CB_TEST_PG_URL); each test gets a fresh
database, dropped afterwards. Tests skip with a visible reason when no server is reachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

ADMIN_URL = os.environ.get("CB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
_reachable: bool | None = None
_reason = ""


def pg_unavailable() -> str:
    """Empty when the server answers; else why PostgreSQL tests are skipped."""
    global _reachable, _reason
    if _reachable is None:
        try:
            engine = create_engine(ADMIN_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _reachable = True
        except OperationalError as exc:
            _reachable = False
            _reason = f"PostgreSQL not reachable at {ADMIN_URL.split('@')[-1]}: {exc.orig.__class__.__name__}"
    return "" if _reachable else _reason


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create a database for one test and yield its URL; drop it afterwards."""
    name = f"cbt_{uuid.uuid4().hex[:12]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
