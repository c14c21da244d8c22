"""The process's HTTP server: a single `aiohttp.web.Application` that parts register routes
on before it starts (metrics and health probes; the Telegram webhook receiver, `bridge.inbox`,
joins it when `webhook_listen` equals `[metrics] listen`, else gets a server of its own).

It serves plain HTTP on one address (`[metrics] listen`, 127.0.0.1 by default): put TLS and
any exposure to the internet in a reverse proxy in front of it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

#: a request handler
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpServer:
    """One aiohttp application on one host and port, with a symmetric lifecycle.

    `add_route` before `start()`; `port` is the port actually bound (useful with port 0)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        #: the application parts register routes on (aiohttp freezes it at `start()`)
        self.app = web.Application()
        self._runner: web.AppRunner | None = None

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Serve `method path` with `handler` (before `start()`)."""
        self.app.router.add_route(method, path, handler)

    @property
    def running(self) -> bool:
        """Whether the server listens now."""
        return self._runner is not None

    async def start(self) -> None:
        """Bind and serve; `port` becomes the bound port."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server  # aiohttp keeps the asyncio server here; it knows the bound port
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("serving HTTP on %s:%d (%s)", self.host, self.port, ", ".join(self.paths()))

    def paths(self) -> list[str]:
        """The paths registered, for the start-up line."""
        return sorted({r.resource.canonical for r in self.app.router.routes() if r.resource is not None})

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


__all__ = ["Handler", "HttpServer"]
