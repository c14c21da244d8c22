"""Fixtures for the Telegram integration tests: the local Bot API server and a started adapter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from adapters.base import Inbound, Reply
from adapters.telegram.adapter import TelegramAdapter
from tests.telegram_api import FakeBotApi

#: long-poll timeout for tests: short, so stop() and a handler's reply stay fast
POLL_TIMEOUT_S = 2


@dataclass
class Inbox:
    """Records what the adapter hands to the core and answers with scripted replies."""

    events: list[Inbound] = field(default_factory=list)
    #: set by a test: what to answer (or raise) for each event
    respond: Callable[[Inbound], Awaitable[Sequence[Reply]]] | None = None

    async def __call__(self, event: Inbound) -> Sequence[Reply]:
        self.events.append(event)
        if self.respond is None:
            return []
        return await self.respond(event)

    async def next(self, count: int = 1, timeout: float = 5.0) -> list[Inbound]:
        """Wait until at least `count` events arrived; return them all."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.events) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} inbound events, got {len(self.events)}")
            await asyncio.sleep(0.01)
        return list(self.events)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    """A fresh local Bot API server on 127.0.0.1."""
    async with FakeBotApi() as server:
        yield server


def make_adapter(api: FakeBotApi, **kwargs: object) -> TelegramAdapter:
    """A TelegramAdapter pointed at the local server."""
    return TelegramAdapter(
        api.token,
        api_base_url=api.base_url,
        file_base_url=api.file_base_url,
        poll_timeout=POLL_TIMEOUT_S,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def inbox() -> Inbox:
    """The handler given to the adapter."""
    return Inbox()


@pytest.fixture
async def adapter(api: FakeBotApi, inbox: Inbox) -> AsyncIterator[TelegramAdapter]:
    """A started adapter (polling the local server); stopped afterwards."""
    tg = make_adapter(api)
    await tg.start(inbox)
    yield tg
    await tg.stop()


async def until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Wait until `condition()` is truthy; returns the seconds it took (AssertionError after
    `timeout`)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started
