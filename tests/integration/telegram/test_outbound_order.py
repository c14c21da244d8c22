"""Per-chat order through the whole App, against a Bot API server with Telegram's limits.

A follower receives a channel's posts in the order they were published, also when one copy
has to wait for a retry: a later copy to the same chat waits behind the earlier one, and the
other chats are not held up (issue 10, "Per-chat order").
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.base import RateLimits
from adapters.telegram.adapter import TelegramAdapter
from bridge.app import App
from bridge.config import load_settings
from tests.integration.telegram.conftest import until
from tests.telegram_api import FakeBotApi, FakeUser

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

POLL_TIMEOUT_S = 1
POSTS = ("First of three", "Second of three", "Third of three")


@pytest.fixture
async def app_and_operator(api: FakeBotApi, tmp_path: Path) -> AsyncIterator[tuple[App, FakeUser]]:
    """An App on the local server (Telegram's limits enforced) with one channel, `news`."""
    api.enforce_limits(global_per_s=30, per_chat_per_s=1, per_chat_burst=3)
    operator = api.add_user("Olga")
    settings = load_settings(None, env={
        "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
        "CHANNELBRIDGE_OPERATORS": json.dumps([{"telegram": operator.id}]),
    })
    adapter = TelegramAdapter(
        api.token, api_base_url=api.base_url, file_base_url=api.file_base_url,
        poll_timeout=POLL_TIMEOUT_S,
        limits=RateLimits(global_per_s=30, per_chat_per_s=1, group_per_min=20),
    )
    app = App(settings, adapters=[adapter])
    await app.start()
    try:
        api.user_sends_text(operator.id, "/newchannel news Daily News")
        await until(lambda: _texts(api, operator, "created"), 10, "the channel")
        yield app, operator
    finally:
        await app.stop()


def _texts(api: FakeBotApi, user: FakeUser, containing: str) -> list[str]:
    return [m.text or "" for m in api.bot_messages(user.id, include_deleted=True)
            if containing in (m.text or "")]


def _copies(api: FakeBotApi, user: FakeUser) -> list[str]:
    """The post copies a follower received, in the order the chat shows them."""
    return [post for m in api.bot_messages(user.id, include_deleted=True)
            for post in POSTS if post in (m.text or "")]


async def test_three_quick_posts_reach_every_follower_once_and_in_order_despite_a_429(
    api: FakeBotApi, app_and_operator: tuple[App, FakeUser]
) -> None:
    app, operator = app_and_operator
    followers = [api.add_user(f"F{n}") for n in range(12)]
    for person in followers:
        api.user_sends_text(person.id, "/follow news")
    await until(lambda: all(_texts(api, p, "You now follow") for p in followers), 15, "the follows")

    # the first copy to one chat is refused: a later copy must not overtake it
    slow = followers[5]
    rule = api.fail("sendMessage", chat_id=slow.id, status=429, retry_after=2, times=1)
    started = time.monotonic()
    for text in POSTS:  # published within a second
        api.user_sends_text(operator.id, f"/post news {text}")
        await asyncio.sleep(0.2)
    await until(lambda: all(len(_copies(api, p)) >= 3 for p in followers), 15, "every copy")
    elapsed = time.monotonic() - started
    await app.sync(timeout=10)

    assert rule.hits == 1  # the 429 did happen, on that chat's first copy
    refused = [c for c in api.calls_to("sendMessage") if c.status == 429]
    assert [c.chat_id for c in refused] == [slow.id]
    assert POSTS[0] in refused[0].params["text"]
    for person in followers:
        assert _copies(api, person) == list(POSTS), person.first_name
    assert len(_texts(api, operator, "is on its way")) == 3
    # the refused chat waited about its retry_after; the others were not held up by it
    others_done = max(
        c.at for c in api.calls_to("sendMessage")
        if c.status == 200 and c.chat_id != slow.id and POSTS[2] in c.params["text"]
    )
    slow_done = max(
        c.at for c in api.calls_to("sendMessage")
        if c.status == 200 and c.chat_id == slow.id and POSTS[2] in c.params["text"]
    )
    assert others_done - started < slow_done - started, (others_done - started, slow_done - started)
    assert elapsed < 12, elapsed
