"""One road out, against a Bot API server that punishes what Telegram punishes.

The local server enforces Telegram's flood control (a global budget, a per-chat burst of 3
refilled at 1/s, and penalties that grow while a client keeps sending under them). Every
message the bot sends — command answers, notices, progress, copies — goes through the delivery
worker's limiter and retry rules; these tests press on it the way a launch day does.
Durations are reported by `bench/`; here they are only sanity bounds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from adapters.base import Address, RateLimits
from adapters.telegram.adapter import TelegramAdapter
from bridge.app import SLOW_DOWN, App
from bridge.config import load_settings
from tests.integration.telegram.conftest import until
from tests.telegram_api import FakeBotApi, FakeUser

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

POLL_TIMEOUT_S = 1
SENDS = ("sendMessage", "sendPhoto", "sendVideo", "sendSticker", "sendPoll", "editMessageText")

Start = Callable[..., Awaitable[tuple[App, FakeUser]]]


@pytest.fixture
async def start_app(api: FakeBotApi, tmp_path: Path) -> AsyncIterator[Start]:
    """An App with a TelegramAdapter on the local server; `limits` is what the bot is told."""
    apps: list[App] = []

    async def make(limits: RateLimits, env: dict[str, str] | None = None) -> tuple[App, FakeUser]:
        operator = api.add_user("Olga")
        settings = load_settings(
            None,
            env={
                "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
                "CHANNELBRIDGE_OPERATORS": json.dumps([{"telegram": operator.id}]),
                **(env or {}),
            },
        )
        adapter = TelegramAdapter(
            api.token,
            api_base_url=api.base_url,
            file_base_url=api.file_base_url,
            poll_timeout=POLL_TIMEOUT_S,
            limits=limits,
        )
        app = App(settings, adapters=[adapter])
        await app.start()
        apps.append(app)
        api.user_sends_text(operator.id, "/newchannel news Daily News")
        await until(lambda: _answers(api, operator, "created"), 10, "the channel")
        return app, operator

    yield make
    for app in apps:
        await app.stop()


def _import(app: App, people: list[FakeUser]) -> None:
    """Make these users followers of `news` in bulk (as an operator migrating an audience)."""
    app.store.import_followers(1, (Address("telegram", str(p.id)) for p in people), app.sealer, time.time())


def _answers(api: FakeBotApi, user: FakeUser, containing: str) -> list[str]:
    return [
        m.text or ""
        for m in api.bot_messages(user.id, include_deleted=True)
        if m.kind == "text" and containing in (m.text or "")
    ]


def _copies(api: FakeBotApi, user: FakeUser, text: str) -> int:
    return sum(1 for m in api.bot_messages(user.id) if text in (m.text or ""))


async def test_a_thousand_people_pressing_start_are_all_answered_and_then_all_get_the_post(
    api: FakeBotApi, start_app: Start
) -> None:
    # Telegram's shape at a faster global rate, so the test takes seconds, not minutes
    api.enforce_limits(global_per_s=200, per_chat_per_s=1, per_chat_burst=3)
    app, operator = await start_app(RateLimits(global_per_s=200, per_chat_per_s=1, group_per_min=20))
    people = [api.add_user(f"P{n}") for n in range(1000)]
    for person in people:  # within one second, as when a channel's link is shared
        api.user_sends_text(person.id, "/start news")
    await until(lambda: all(_answers(api, p, "You now follow") for p in people), 90, "every confirmation")
    assert api.rate_limited <= 5, api.rate_limited_by_scope

    api.user_sends_text(operator.id, "/post news Launch day")
    await until(lambda: all(_copies(api, p, "Launch day") for p in people), 60, "every copy")
    await app.sync(timeout=30)
    assert all(_copies(api, p, "Launch day") == 1 for p in people)
    assert all(len(_answers(api, p, "You now follow")) == 1 for p in people)
    assert api.rate_limited <= 5, api.rate_limited_by_scope


async def test_one_person_typing_forty_commands_loses_no_answer_to_a_429(
    api: FakeBotApi, start_app: Start
) -> None:
    api.enforce_limits(global_per_s=30, per_chat_per_s=1, per_chat_burst=3)
    await start_app(RateLimits(global_per_s=30, per_chat_per_s=1, group_per_min=20))
    eager = api.add_user("Eager")
    for _ in range(40):
        api.user_sends_text(eager.id, "/following")
    await until(lambda: _answers(api, eager, SLOW_DOWN[:20]), 20, "the slow-down answer")
    await asyncio.sleep(2.5)  # anything still to come would be paced at 1/s per chat
    answered = _answers(api, eager, "You follow no channels")
    slow_downs = _answers(api, eager, SLOW_DOWN[:20])
    assert len(slow_downs) == 1
    assert len(answered) + len(slow_downs) == len(api.bot_messages(eager.id))
    assert 1 <= len(answered) <= 8  # the sender's share; the rest is covered by the one slow-down
    assert api.rate_limited == 0
    assert not [c for c in api.calls_to("sendMessage") if c.chat_id == eager.id and c.status == 429]


async def test_a_server_enforcing_half_the_configured_rate_gets_each_copy_once_with_few_429s(
    api: FakeBotApi, start_app: Start
) -> None:
    app, operator = await start_app(RateLimits(global_per_s=30, per_chat_per_s=1, group_per_min=20))
    people = [api.add_user(f"F{n}") for n in range(300)]
    _import(app, people)
    api.enforce_limits(global_per_s=15, per_chat_per_s=1, per_chat_burst=3)  # not telling the bot
    started = time.monotonic()
    api.user_sends_text(operator.id, "/post news Half speed")
    await until(lambda: all(_copies(api, p, "Half speed") for p in people), 90, "every copy")
    elapsed = time.monotonic() - started
    await app.sync(timeout=30)
    assert all(_copies(api, p, "Half speed") == 1 for p in people)
    assert api.rate_limited <= 30, api.rate_limited_by_scope
    assert elapsed < 2 * 300 / 15, elapsed  # the figure itself is bench/telegram_send.py's
    rate = app.flood.current_rate("telegram")
    assert rate is not None and rate < 16  # it learned what the server enforces


async def test_a_newcomers_help_is_answered_within_two_seconds_during_a_large_fanout(
    api: FakeBotApi, start_app: Start
) -> None:
    api.enforce_limits(global_per_s=30, per_chat_per_s=1, per_chat_burst=3)
    app, operator = await start_app(RateLimits(global_per_s=30, per_chat_per_s=1, group_per_min=20))
    people = [api.add_user(f"F{n}") for n in range(10_000)]
    _import(app, people)
    api.user_sends_text(operator.id, "/post news Big news")
    await until(lambda: len(api.calls_to("sendMessage")) > 100, 30, "the fan-out to run")
    newcomer = api.add_user("New")
    api.user_sends_text(newcomer.id, "/help")
    waited = await until(lambda: api.bot_messages(newcomer.id), 10, "the answer to /help")
    assert waited < 2.0, waited
    assert sum(1 for p in people if api.bot_messages(p.id)) < 2000  # the fan-out was still running
    refused = [(c.method, c.chat_id == operator.id) for c in api.calls if c.status == 429]
    assert api.rate_limited == 0, (api.rate_limited_by_scope, refused)


async def test_a_large_post_has_one_progress_message_edited_at_most_every_five_seconds(
    api: FakeBotApi, start_app: Start
) -> None:
    api.enforce_limits(global_per_s=200, per_chat_per_s=1, per_chat_burst=3)
    app, operator = await start_app(RateLimits(global_per_s=200, per_chat_per_s=1, group_per_min=20))
    people = [api.add_user(f"F{n}") for n in range(2000)]
    _import(app, people)
    api.user_sends_text(operator.id, "/post news Everyone")
    await until(lambda: _answers(api, operator, "finished"), 60, "the summary")
    await app.sync(timeout=30)
    progress = _answers(api, operator, "progress")
    assert len(progress) == 1, progress
    [message] = [m for m in api.bot_messages(operator.id) if "progress" in (m.text or "")]
    edits = [
        c
        for c in api.calls_to("editMessageText")
        if c.chat_id == operator.id and c.params.get("message_id") == message.message_id and c.status == 200
    ]
    assert edits, "the progress message is kept up to date in place"
    sent = [
        c for c in api.calls_to("sendMessage") if c.chat_id == operator.id and "progress" in c.params["text"]
    ]
    times = [sent[0].at] + [c.at for c in edits]
    assert all(b - a >= 4.9 for a, b in itertools.pairwise(times)), times
    [summary] = _answers(api, operator, "finished")
    assert summary == "Post #1 finished: delivered 2000, failed 0."
    assert "pending 0" in (message.text or "")
