"""Webhook mode with three processes on one PostgreSQL database behind a round-robin reverse
proxy: any process receives, any process processes, every command is answered once."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bridge import migrate
from bridge.privacy import Sealer, decode_key, generate_key
from bridge.store import Store
from tests.integration.telegram.test_webhook import (
    AppProcess,
    free_port,
    listening,
    until,
    webhook_env,
)
from tests.telegram_api import SECRET_HEADER, FakeBotApi

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

PEOPLE = 40


class RoundRobin:
    """A reverse proxy in the small: each POST goes to the next backend in turn (502 when it is
    down, so Telegram sends the update again)."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.turn = itertools.cycle(range(len(backends)))
        self.served = [0] * len(backends)
        self.port = free_port()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1."""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Stop listening."""
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def forward(self, request: web.Request) -> web.Response:
        """Pass the request on, with the secret header, to the next backend."""
        assert self._session is not None
        index = next(self.turn)
        headers = {k: v for k, v in request.headers.items() if k == SECRET_HEADER}
        try:
            async with self._session.post(
                self.backends[index], data=await request.read(), headers=headers
            ) as response:
                self.served[index] += response.status == 200
                return web.Response(status=response.status, body=await response.read())
        except aiohttp.ClientError:
            return web.Response(status=502)


async def test_three_processes_behind_a_round_robin_answer_every_command_once(
    api: FakeBotApi, pg_url: str, tmp_path: Path
) -> None:
    key = generate_key()
    store = Store(pg_url)
    migrate.upgrade(store.engine, sealer=Sealer(decode_key(key)))
    store.dispose()
    operator = api.add_user("Olga")
    ports = [free_port() for _ in range(3)]
    proxy = RoundRobin([f"http://127.0.0.1:{port}/tg/hook" for port in ports])
    await proxy.start()
    nodes = []
    for n, port in enumerate(ports):
        env = webhook_env(api, tmp_path / f"data{n}", port, operator.id)
        env["CHANNELBRIDGE_TELEGRAM__WEBHOOK_URL"] = f"http://127.0.0.1:{proxy.port}/tg/hook"
        env["CHANNELBRIDGE_DATABASE__URL"] = pg_url
        env["CHANNELBRIDGE_PRIVACY__KEY"] = key
        env["CHANNELBRIDGE_DELIVERY__BACKOFF_BASE_S"] = "0.2"
        nodes.append(AppProcess(env, "normal"))
    try:
        for node in nodes:
            await node.start()
        await until(lambda: all(listening(p) for p in ports) and api.webhook.active, 60, "three processes")
        await asyncio.sleep(0.5)
        api.user_sends_text(operator.id, "/newchannel news Daily News")
        await api.wait_for(
            lambda: [m for m in api.messages(operator.id) if m.from_bot and "created" in (m.text or "")],
            timeout=30,
            what="the channel created",
        )
        people = [api.add_user(f"P{n}") for n in range(PEOPLE)]
        for person in people:
            api.user_sends_text(person.id, "/channels")
        api.user_sends_text(operator.id, "/channels")

        def answered() -> bool:
            return all(api.bot_messages(p.id) for p in [*people, operator])

        await until(answered, 60, "every command answered")
        await asyncio.sleep(2.0)  # a second answer, if one were coming
        for person in people:
            assert len(api.bot_messages(person.id)) == 1
        assert len([m for m in api.bot_messages(operator.id) if "created" in (m.text or "")]) == 1
        assert all(served > 0 for served in proxy.served)  # every process received
        assert not api._updates  # every update acknowledged
    finally:
        for node in nodes:
            await node.terminate()
        await proxy.stop()
