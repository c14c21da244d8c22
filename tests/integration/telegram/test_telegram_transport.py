"""The aiohttp transport under python-telegram-bot, over real sockets: time-outs, refused
connections and 400 descriptions become the SDK errors the adapter translates."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram.error import NetworkError, TimedOut

from adapters.base import Address, Content, Inbound, PostKind, Reply, RetryLater
from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.errors import ExactBadRequest
from adapters.telegram.transport import AiohttpRequest
from tests.telegram_api import FakeBotApi

pytestmark = [pytest.mark.telegram, pytest.mark.integration]


@pytest.fixture
async def slow_server() -> AsyncIterator[str]:
    """A server on 127.0.0.1 that answers /slow after 2 s and /bad with a Telegram 400."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"ok": True, "result": True})

    async def bad(request: web.Request) -> web.Response:
        body = {"ok": False, "error_code": 400, "description": "Bad Request: PHOTO_INVALID_DIMENSIONS"}
        return web.json_response(body, status=400)

    app = web.Application()
    app.router.add_post("/slow", slow)
    app.router.add_post("/bad", bad)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_slow_answer_times_out_as_timed_out(slow_server: str) -> None:
    request = AiohttpRequest(read_timeout=0.2)
    await request.initialize()
    try:
        with pytest.raises(TimedOut):
            await request.post(f"{slow_server}/slow")
    finally:
        await request.shutdown()


async def test_plain_400_keeps_telegrams_description_verbatim(slow_server: str) -> None:
    async with AiohttpRequest() as request:
        with pytest.raises(ExactBadRequest) as caught:
            await request.post(f"{slow_server}/bad")
    assert caught.value.description == "Bad Request: PHOTO_INVALID_DIMENSIONS"


async def test_refused_connection_is_a_network_error() -> None:
    async with AiohttpRequest() as request:
        with pytest.raises(NetworkError) as caught:
            await request.post(f"http://127.0.0.1:{_closed_port()}/bot1:x/getMe")
    assert not isinstance(caught.value, TimedOut)


async def test_request_before_initialize_is_refused() -> None:
    with pytest.raises(RuntimeError):
        await AiohttpRequest().do_request("http://127.0.0.1:9/x", "POST")


async def test_send_while_the_bot_api_is_down_is_retry_later() -> None:
    async with FakeBotApi() as api:
        adapter = TelegramAdapter(
            api.token, api_base_url=api.base_url, file_base_url=api.file_base_url, poll_timeout=1
        )

        async def nothing(event: Inbound) -> list[Reply]:
            return []

        await adapter.start(nothing)
        alice = api.add_user()
    try:  # the server is gone now
        with pytest.raises(RetryLater) as caught:
            await adapter.send(
                Address("telegram", str(alice.id), chat=str(alice.id)),
                Content(1, PostKind.TEXT, "news", "News", text="hello"),
            )
        assert caught.value.after_s is None and caught.value.scope == "chat"
    finally:
        await adapter.stop()
