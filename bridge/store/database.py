"""The database: engine, schema, and the one transaction convention.

Every query method of the store's aggregates takes the caller's `Session` as its first
argument and never commits: the caller opens the transaction with `unit_of_work()`, and the
block's end commits it (`atomically(query, ...)` is that for a single query). The one
exception is named here, once: the delivery worker's hot path (`Outbox`, and
`Fanout.plan_catch_up`, `Followers.bulk_import`) runs Core SQL on a `Connection` the caller
opens with `connection()`, which saves the ORM's cost on every claimed batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection
from sqlmodel import Session, SQLModel, create_engine

_P = ParamSpec("_P")
_T = TypeVar("_T")


def sqlite_url(data_dir: Path) -> str:
    """The default database URL: a SQLite file in the data directory."""
    return f"sqlite:///{(data_dir / 'channelbridge.db').resolve()}"


def private_sqlite_file(path: Path) -> None:
    """Make the SQLite file and its directory private before SQLite opens them: the directory
    0700 when we create it, the database 0600 (SQLite gives its -wal and -shm files the
    database file's mode); an existing database, WAL or SHM readable by others is tightened."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """Owns the SQLAlchemy engine and opens transactions for callers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith("postgresql")
        if self.is_sqlite:
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                private_sqlite_file(Path(path))
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)

    def create_schema(self) -> None:
        """Create every table that does not exist yet."""
        SQLModel.metadata.create_all(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def atomically(
        self, query: Callable[Concatenate[Session, _P], _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """Run one named query as a unit of work of its own (an atomic claim, a lease renewal):
        `store.atomically(store.schedule.claim_poll_close, post_id, now)`."""
        with self.unit_of_work() as s:
            return query(s, *args, **kwargs)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A Core transaction (the outbox hot path, bulk imports): committed when the block
        ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn


__all__ = ["Database", "private_sqlite_file", "sqlite_url"]
