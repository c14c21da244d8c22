"""Health probes: `/livez` (the process and its event loop are alive) and `/readyz` (the
database is reachable and writable, its schema is current, and every enabled adapter is
connected).

`/livez` is answered by the event loop itself, so a blocked loop fails it by timing out; it
also reports the loop's lag, measured by a ticker. `/readyz` checks the database on a fresh
connection of its own each time (never the pool's, which may hold a connection to a file that
is gone or a server that went away), in a thread, with a timeout, so a hung database makes the
probe fail rather than hang. Answers name only check names, states and exception classes:
never a URL, a path or an identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bridge import migrate
from bridge.http import HttpServer

#: adapter states (`App.adapter_states`): only these count as ready
READY_ADAPTER_STATES = frozenset({"connected", "standby"})


@dataclass(frozen=True)
class Readiness:
    """The result of one readiness check."""

    ready: bool
    checks: dict[str, object]

    def to_json(self) -> str:
        """The probe's body."""
        return json.dumps({"ready": self.ready, "checks": self.checks}, sort_keys=True)


def _sqlite_path(url: str) -> Path | None:
    path = url.removeprefix("sqlite:///")
    return None if not path or path == ":memory:" else Path(path)


class DatabaseProbe:
    """Opens a fresh connection, proves it can write, and reads the schema revision."""

    def __init__(self, url: str, timeout_s: float = 3.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._path = _sqlite_path(url) if url.startswith("sqlite") else None
        self._engine = (
            None
            if url.startswith("sqlite")
            else create_engine(
                url, poolclass=NullPool, connect_args={"connect_timeout": max(1, int(timeout_s))}
            )
        )

    def revision(self) -> str | None:
        """The schema revision, after proving the database takes writes (blocking; raises
        when the database cannot be reached, read or written)."""
        if self._engine is not None:
            with self._engine.connect() as conn:
                value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                return None if value is None else str(value)
        if self._path is None:
            return migrate.head_revision()  # an in-memory database lives as long as the process
        uri = f"file:{quote(str(self._path))}?mode=rw"  # never creates a file that went away
        db = sqlite3.connect(uri, uri=True, timeout=self.timeout_s)
        try:
            db.execute("BEGIN IMMEDIATE")  # takes the write lock: fails on a read-only file
            db.execute("ROLLBACK")
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
            return None if row is None else str(row[0])
        finally:
            db.close()

    def dispose(self) -> None:
        """Release the probe's engine."""
        if self._engine is not None:
            self._engine.dispose()


class Health:
    """The probes' logic and their routes. `adapter_states` gives each enabled platform's
    adapter state (`connected`, `standby`: another process holds it by design, `down`)."""

    def __init__(
        self,
        database: DatabaseProbe,
        adapter_states: Callable[[], Mapping[str, str]],
        *,
        tick_s: float = 0.5,
    ) -> None:
        self.database = database
        self.adapter_states = adapter_states
        self.tick_s = tick_s
        self._last_tick = time.monotonic()
        self._lag_s = 0.0
        self._ticker: asyncio.Task[None] | None = None

    def register(self, server: HttpServer) -> None:
        """Serve `/livez` and `/readyz` from `server`."""
        server.add_route("GET", "/livez", self._livez)
        server.add_route("GET", "/readyz", self._readyz)

    async def start(self) -> None:
        """Start the loop-lag ticker."""
        self._last_tick = time.monotonic()
        self._ticker = asyncio.create_task(self._tick(), name="health-ticker")

    async def stop(self) -> None:
        """Stop the ticker and release the probe's connections."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self.database.dispose()

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            self._lag_s = max(0.0, now - before - self.tick_s)
            self._last_tick = now

    def loop_lag_s(self) -> float:
        """How late the ticker woke last (the event loop's responsiveness)."""
        return max(self._lag_s, time.monotonic() - self._last_tick - self.tick_s)

    async def readiness(self) -> Readiness:
        """Check the database, its schema and the adapters."""
        checks: dict[str, object] = {}
        ready = True
        try:
            current = await asyncio.wait_for(
                asyncio.to_thread(self.database.revision), timeout=self.database.timeout_s + 1
            )
            checks["database"] = "ok"
            head = migrate.head_revision()
            if current == head:
                checks["schema"] = "ok"
            else:
                checks["schema"] = f"at {current or 'nothing'}, needs {head}"
                ready = False
        except Exception as exc:  # unreachable, unreadable, read-only, timed out
            checks["database"] = f"error: {type(exc).__name__}"
            checks["schema"] = "unknown"
            ready = False
        adapters = dict(sorted(self.adapter_states().items()))
        checks["adapters"] = adapters
        if any(state not in READY_ADAPTER_STATES for state in adapters.values()):
            ready = False
        return Readiness(ready, checks)

    async def _livez(self, request: web.Request) -> web.Response:
        body = json.dumps({"alive": True, "loop_lag_s": round(self.loop_lag_s(), 4)})
        return web.Response(text=body, content_type="application/json")

    async def _readyz(self, request: web.Request) -> web.Response:
        result = await self.readiness()
        return web.Response(
            text=result.to_json(), status=200 if result.ready else 503, content_type="application/json"
        )


__all__ = ["READY_ADAPTER_STATES", "DatabaseProbe", "Health", "Readiness"]
