"""The local Bot API server's enforced limits, over real HTTP (raw aiohttp clients, PTB, and
separate processes): it floods like Telegram, so the bot's flood control can be tested on it."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from telegram import Bot
from telegram.error import RetryAfter

from tests.telegram_api import FakeBotApi

pytestmark = [pytest.mark.telegram, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[3]


class RawClient:
    """A bot process's HTTP client, without any SDK: one connection pool of its own."""

    def __init__(self, api: FakeBotApi) -> None:
        self.url = f"{api.base_url}{api.token}"
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))

    async def call(self, method: str, *, form: bool = False, **params: Any) -> tuple[int, dict[str, Any]]:
        """POST one method (JSON body, or form-encoded strings); returns (HTTP status, body)."""
        if form:
            data = {key: str(value).lower() if isinstance(value, bool) else str(value)
                    for key, value in params.items()}  # fmt: skip
            request = self.session.post(f"{self.url}/{method}", data=data)
        else:
            request = self.session.post(f"{self.url}/{method}", json=params)
        async with request as response:
            return response.status, await response.json()

    async def send(self, chat_id: int, **params: Any) -> int | None:
        """sendMessage; returns None when accepted, else the 429's retry_after."""
        status, body = await self.call("sendMessage", chat_id=chat_id, text="hello", **params)
        if status == 200:
            return None
        return retry_after_of(status, body)

    async def close(self) -> None:
        await self.session.close()


def retry_after_of(status: int, body: dict[str, Any]) -> int:
    """The retry_after of a 429 answer, checking it has Telegram's exact shape."""
    assert status == 429, body
    retry_after = body["parameters"]["retry_after"]
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }
    assert isinstance(retry_after, int) and retry_after >= 1
    return retry_after


@pytest.fixture
async def client(api: FakeBotApi) -> AsyncIterator[RawClient]:
    raw = RawClient(api)
    yield raw
    await raw.close()


def users(api: FakeBotApi, count: int) -> list[int]:
    return [api.add_user(f"U{n}").id for n in range(count)]


async def test_a_chat_takes_a_burst_of_three_then_429_while_other_chats_pass(
    api: FakeBotApi, client: RawClient
) -> None:
    alice, bob = users(api, 2)
    api.enforce_limits(global_per_s=100, per_chat_per_s=1)
    assert [await client.send(alice) for _ in range(3)] == [None, None, None]
    assert await client.send(alice) == 1
    assert [await client.send(bob) for _ in range(3)] == [None, None, None]
    assert api.rate_limited == 1 and api.rate_limited_by_scope == {"chat": 1}
    assert api.penalty_remaining(alice) > 0 and api.penalty_remaining(bob) == 0
    assert api.busiest_second(chat_id=alice) == 3 and len(api.bot_messages(alice)) == 3


async def test_edits_and_deletions_count_against_the_same_limits(api: FakeBotApi, client: RawClient) -> None:
    (alice,) = users(api, 1)
    api.enforce_limits(global_per_s=100, per_chat_per_s=1)
    status, body = await client.call("sendMessage", chat_id=alice, text="one")
    message_id = body["result"]["message_id"]
    status, _ = await client.call("editMessageText", chat_id=alice, message_id=message_id, text="two")
    assert status == 200
    status, _ = await client.call("deleteMessage", chat_id=alice, message_id=message_id)
    assert status == 200
    assert await client.send(alice) == 1
    assert api.rate_limited_by_scope == {"chat": 1}


async def test_sending_on_under_a_global_429_makes_retry_after_grow(
    api: FakeBotApi, client: RawClient
) -> None:
    chats = users(api, 12)
    api.enforce_limits(global_per_s=5, per_chat_per_s=1, max_penalty_s=40)
    assert [await client.send(chat) for chat in chats[:5]] == [None] * 5
    seen = [await client.send(chat) for chat in chats[5:]]
    # each request under the penalty doubles what remains (less the few ms between requests)
    assert seen[0] == 1 and seen[-1] == 40
    assert all(later >= 1.8 * earlier for earlier, later in itertools.pairwise(seen[:5]))
    assert api.rate_limited_by_scope == {"global": 7}
    assert 39 < api.penalty_remaining() <= 40
    assert api.busiest_second() == 5


async def test_a_client_that_waits_retry_after_is_served_again(api: FakeBotApi, client: RawClient) -> None:
    chats = users(api, 4)
    api.enforce_limits(global_per_s=3)
    assert [await client.send(chat) for chat in chats[:3]] == [None] * 3
    retry_after = await client.send(chats[3])
    assert retry_after == 1
    await asyncio.sleep(retry_after)
    assert await client.send(chats[3]) is None
    assert api.rate_limited == 1


async def test_a_lowered_limit_applies_at_once_to_a_client_already_sending(
    api: FakeBotApi, client: RawClient
) -> None:
    chats = itertools.cycle(users(api, 200))
    api.enforce_limits(global_per_s=40, per_chat_per_s=1, penalty_factor=1)
    stop = asyncio.Event()

    async def sender() -> None:
        while not stop.is_set():
            await client.send(next(chats))
            await asyncio.sleep(0.004)

    task = asyncio.create_task(sender())
    await asyncio.sleep(0.7)
    lowered_at = time.monotonic()
    api.enforce_limits(global_per_s=4, per_chat_per_s=1, penalty_factor=1)  # the bot is not told
    await asyncio.sleep(1.6)
    stop.set()
    await task
    assert api.busiest_second() > 4
    after = api.busiest_second(since=lowered_at)
    assert 1 <= after <= 4
    assert api.rate_limited_by_scope["global"] > 0


async def test_paid_broadcasts_have_their_own_ceiling_while_free_sends_are_limited(
    api: FakeBotApi, client: RawClient
) -> None:
    free, paid, (alice,) = users(api, 4), users(api, 21), users(api, 1)
    api.enforce_limits(global_per_s=3, paid_per_s=20, penalty_factor=1)
    assert [await client.send(chat) for chat in free[:3]] == [None] * 3
    assert await client.send(free[3]) == 1  # the free budget is spent and under penalty,
    assert await client.send(free[3], form=True, allow_paid_broadcast=False) == 1  # (false is free)
    # ... but paid broadcasts go on, python-telegram-bot's too
    async with Bot(api.token, base_url=api.base_url) as bot:
        await bot.send_message(paid[0], "paid", allow_paid_broadcast=True)
    form = [await client.send(chat, form=True, allow_paid_broadcast=True) for chat in paid[1:10]]
    json_ = [await client.send(chat, allow_paid_broadcast=True) for chat in paid[10:20]]
    assert form + json_ == [None] * 19
    assert await client.send(paid[20], allow_paid_broadcast=True) == 1
    assert api.paid_sent == 20
    assert api.rate_limited_by_scope == {"global": 2, "paid": 1}
    assert api.busiest_second(paid=True) == 20 and api.busiest_second(paid=False) == 3
    # the per-chat limit still applies to paid sends
    await asyncio.sleep(1)
    assert [await client.send(alice, allow_paid_broadcast=True) for _ in range(4)] == [None] * 3 + [1]


@pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")
async def test_python_telegram_bot_reads_the_429(api: FakeBotApi) -> None:
    (alice,) = users(api, 1)
    api.enforce_limits(per_chat_burst=1)
    async with Bot(api.token, base_url=api.base_url) as bot:
        await bot.send_message(alice, "one")
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(alice, "two")
    value = caught.value.retry_after  # an int, or a timedelta when PTB is asked for those
    assert value == 1 or value == dt.timedelta(seconds=1)


async def test_two_clients_share_the_token_limits(api: FakeBotApi) -> None:
    chats = users(api, 30)
    api.enforce_limits(global_per_s=10)
    first, second = RawClient(api), RawClient(api)
    try:
        results = await asyncio.gather(
            *(client.send(chat) for client, batch in ((first, chats[:15]), (second, chats[15:]))
              for chat in batch)
        )  # fmt: skip
    finally:
        await first.close()
        await second.close()
    # one budget for both: each client alone could have sent 10
    assert results.count(None) == 10 and api.busiest_second() == 10
    assert api.rate_limited_by_scope == {"global": 20}


_CLIENT = """
import asyncio, json, sys
import aiohttp

async def main(url, chats):
    out = []
    async with aiohttp.ClientSession() as session:
        for chat in chats:
            async with session.post(url + "/sendMessage", json={"chat_id": chat, "text": "hi"}) as r:
                body = await r.json()
                out.append([r.status, body.get("parameters", {}).get("retry_after")])
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], [int(c) for c in sys.argv[2:]]))
"""


async def run_bot_process(api: FakeBotApi, chats: list[int]) -> list[tuple[int, int | None]]:
    """A separate process sends one message to each chat; returns (status, retry_after) each."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLIENT, f"{api.base_url}{api.token}", *map(str, chats),
        stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
    return [(status, retry_after) for status, retry_after in json.loads(out)]


async def test_separate_bot_processes_share_limits_and_penalties(api: FakeBotApi) -> None:
    chats = users(api, 9)
    api.enforce_limits(global_per_s=2)
    first = await run_bot_process(api, chats[:8])
    assert [status for status, _ in first] == [200, 200] + [429] * 6
    grown = [retry_after or 0 for _, retry_after in first[2:]]
    assert grown[0] == 1 and grown == sorted(grown) and grown[-1] >= 16
    # another process, a chat never written to: the token's penalty applies, and grows
    ((status, retry_after),) = await run_bot_process(api, chats[8:])
    assert status == 429 and retry_after is not None and retry_after > grown[-1]
    assert api.rate_limited_by_scope == {"global": 7}
