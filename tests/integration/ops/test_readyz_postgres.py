"""`/readyz` on PostgreSQL: unready when the database goes away, ready again when it is back.
The machine's PostgreSQL is shared, so the test cuts a TCP proxy between the App and it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from bridge import migrate
from bridge.privacy import Sealer, decode_key
from bridge.store import Store
from tests.integration.ops.support import KEY, get, make_app
from tests.pg import fresh_database, pg_unavailable

pytestmark = pytest.mark.postgres


class Proxy:
    """A TCP proxy on 127.0.0.1, on an event loop in a thread of its own (the App's store is
    synchronous and would block a proxy sharing its loop), that can be cut (every connection
    closed, nothing accepted) and restored on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-proxy", daemon=True)
        self._thread.start()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()

    def start(self) -> None:
        """Listen (on the same port as before, after a cut)."""
        self._call(self._start())

    def cut(self) -> None:
        """Stop accepting and close every connection."""
        self._call(self._cut())

    def close(self) -> None:
        """End the proxy's thread."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


async def test_readyz_follows_postgresql_going_away_and_coming_back(tmp_path: Path) -> None:
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    with fresh_database() as direct:
        store = Store(direct)
        migrate.upgrade(store.engine, sealer=Sealer(decode_key(KEY)))
        store.dispose()
        parsed = make_url(direct)
        proxy = Proxy(parsed.host or "127.0.0.1", parsed.port or 5432)
        proxy.start()
        url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        app = make_app(tmp_path, url)
        await app.start()
        try:
            status, body = await get(app, "/readyz")
            assert status == 200, body
            proxy.cut()
            status, body = await get(app, "/readyz")
            assert status == 503, body
            assert '"database": "error: OperationalError"' in body and "127.0.0.1" not in body
            livez, _ = await get(app, "/livez")
            assert livez == 200  # the process is alive; only readiness follows the database
            proxy.start()
            for _ in range(50):
                status, body = await get(app, "/readyz")
                if status == 200:
                    break
                await asyncio.sleep(0.2)
            assert status == 200, body
        finally:
            await app.stop()
            proxy.cut()
            proxy.close()
