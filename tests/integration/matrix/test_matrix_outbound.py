"""One road out on Matrix, against Synapse's DEFAULT message rate limit (issue 10).

The bot is not exempt: `rc_message` is 0.2 events/s with a burst of 10, so after ten quick
events the bot can send one event every five seconds. The two scenarios take minutes by nature (about
3.5 and 2 minutes: 40 and 26 events beyond the burst, 5 s each); they run at once, each with its
own bot account, so the test takes about 4 minutes. It is marked `slow` and prints what it
measured (run with `-s` to see it).

- 50 people send `/follow` at once: every one gets exactly one answer, paced and retried by the
  delivery worker, none lost to `M_LIMIT_EXCEEDED`.
- 12 followers and 3 posts published within a second: every follower gets the three posts
  exactly once and in order, although copies wait for retries (a later copy to the same chat
  waits behind the earlier one).

The followers open their DMs while the bot's limit is lifted (`override_ratelimit`); it is
restored to the server's defaults before the measured part. The bot's joins count against
`rc_message` too (a join is an event), so 50 joins would otherwise take four minutes of the
same budget before the first command; joining under the limit is covered in test_matrix_app.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nio import ErrorResponse

from adapters.base import Address, Message
from adapters.matrix.adapter import MatrixAdapter
from bridge.app import App
from bridge.config import load_settings

from .conftest import Follower
from .synapse import RegisteredUser, SynapseServer

pytestmark = [pytest.mark.matrix, pytest.mark.integration, pytest.mark.slow]

POSTS = ("First of three", "Second of three", "Third of three")


@dataclass
class Sends:
    """Every event-sending request the bot made: (monotonic time, what, rate limited?)."""

    calls: list[tuple[float, str, bool]] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  #: retry_after of each refusal, in seconds

    def count(self, what: str, *, limited: bool) -> int:
        return sum(1 for _, w, lim in self.calls if w == what and lim == limited)


def count_sends(adapter: MatrixAdapter) -> Sends:
    """Wrap the running adapter's nio client so each room_send and join is recorded."""
    sends = Sends()
    client = adapter.client
    for name in ("room_send", "join"):
        real = getattr(client, name)

        def wrapped(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            async def call() -> Any:
                resp = await _real(*args, **kwargs)
                limited = isinstance(resp, ErrorResponse) and resp.status_code == "M_LIMIT_EXCEEDED"
                sends.calls.append((time.monotonic(), _name, limited))
                if limited:
                    sends.waits.append((getattr(resp, "retry_after_ms", None) or 0) / 1000)
                return resp

            return call()

        setattr(client, name, wrapped)
    return sends


@pytest.fixture
async def start_app(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[
        Callable[[RegisteredUser, str], Awaitable[tuple[App, MatrixAdapter]]]]:
    """An App wired to a MatrixAdapter for `bot`, with `operator` as its operator."""
    apps: list[App] = []

    async def make(bot: RegisteredUser, operator_id: str) -> tuple[App, MatrixAdapter]:
        settings = load_settings(None, env={
            "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / bot.user_id.strip("@").split(":")[0]),
            "CHANNELBRIDGE_OPERATORS": json.dumps([{"matrix": operator_id}]),
        })
        adapter = MatrixAdapter(synapse.url, bot.user_id, access_token=bot.access_token,
                                device_id=bot.device_id, store_dir=tmp_path / f"{bot.device_id}-store")
        app = App(settings, adapters=[adapter])
        await app.start()
        apps.append(app)
        return app, adapter

    yield make
    for app in apps:
        await app.stop()


async def _people_with_dms(
    count: int, bot: RegisteredUser, follower_factory: Callable[[], Awaitable[Follower]]
) -> list[tuple[Follower, str]]:
    """`count` people, each with a plain DM with the bot (opened concurrently)."""
    people = [await follower_factory() for _ in range(count)]
    rooms = await asyncio.gather(*(p.open_dm(bot.user_id, encrypted=False, timeout=60) for p in people))
    return list(zip(people, rooms, strict=True))


def _from_bot(person: Follower, room: str, bot_id: str) -> list[dict[str, Any]]:
    return [ev.source for ev in person.timeline.get(room, []) if ev.source.get("sender") == bot_id]


def _body(source: dict[str, Any]) -> str:
    content = source.get("content")
    return str(content.get("body", "")) if isinstance(content, dict) else ""


async def _sync_all(people: list[tuple[Follower, str]]) -> None:
    for person, _room in people:
        await person.sync(0)


async def _until_all_have(
    people: list[tuple[Follower, str]], bot_id: str, done: Callable[[list[str]], bool], timeout: float
) -> float:
    """Sync every person until `done(bodies of the bot's events in their DM)` holds for all;
    returns the wall-clock time (server timestamp) of the last bot event they hold."""
    waiting = list(people)
    async with asyncio.timeout(timeout):
        while waiting:
            for person, _room in waiting:
                await person.sync(0)
            waiting = [(p, r) for p, r in waiting
                       if not done([_body(s) for s in _from_bot(p, r, bot_id)])]
            if waiting:
                await asyncio.sleep(2)
    return max(s["origin_server_ts"] for p, r in people for s in _from_bot(p, r, bot_id)) / 1000


StartApp = Callable[[RegisteredUser, str], Awaitable[tuple[App, MatrixAdapter]]]


async def test_under_default_limits_fifty_follows_are_all_answered_and_posts_keep_their_order(
    synapse: SynapseServer, synapse_admin: RegisteredUser,
    new_user: Callable[..., RegisteredUser],
    follower_factory: Callable[[], Awaitable[Follower]],
    start_app: StartApp,
) -> None:
    """Both scenarios at once, each with its own bot account (its own rate limit): they are
    bound by Synapse's 5 s per event, not by the machine, so together they take the time of
    the longer one."""
    await asyncio.gather(
        _fifty_people_following_at_once_are_all_answered(
            synapse, synapse_admin, new_user, follower_factory, start_app
        ),
        _three_quick_posts_reach_twelve_followers_once_and_in_order(
            synapse, synapse_admin, new_user, follower_factory, start_app
        ),
    )


async def _fifty_people_following_at_once_are_all_answered(
    synapse: SynapseServer, synapse_admin: RegisteredUser,
    new_user: Callable[..., RegisteredUser],
    follower_factory: Callable[[], Awaitable[Follower]],
    start_app: StartApp,
) -> None:
    bot = new_user("followbot")  # exempt while the DMs are opened
    op = await follower_factory()
    app, adapter = await start_app(bot, op.user_id)
    await app.engine.handle(Message(Address("matrix", op.user_id), "/newchannel news Daily News"))
    people = await _people_with_dms(50, bot, follower_factory)
    synapse.restore_default_ratelimit(synapse_admin.access_token, bot.user_id)
    sends = count_sends(adapter)

    started = time.time()
    await asyncio.gather(*(person.say(room, "/follow news") for person, room in people))
    last = await _until_all_have(
        people, bot.user_id, lambda bodies: any("You now follow" in b for b in bodies), 900)
    elapsed = last - started
    await app.sync(timeout=60)
    await _sync_all(people)
    for person, room in people:
        answers = [s for s in _from_bot(person, room, bot.user_id) if "You now follow" in _body(s)]
        assert len(answers) == 1, (person.user_id, [_body(s) for s in _from_bot(person, room, bot.user_id)])
        assert answers[0]["content"]["msgtype"] == "m.notice"
    sent, limited = sends.count("room_send", limited=False), sends.count("room_send", limited=True)
    joins = sends.count("join", limited=False)
    print(f"\n50 /follow under rc_message 0.2/s burst 10: all answered in {elapsed:.0f} s; "
          f"{sent} sends, {limited} refused with M_LIMIT_EXCEEDED, {joins} joins; "
          f"retry_after asked: {sorted(round(w, 1) for w in sends.waits)}")
    assert sent == 50  # one send per answer: nothing doubled, no extra event
    assert limited > 0  # the server's default limit was in force
    assert app.worker.stats.failed == 0


async def _three_quick_posts_reach_twelve_followers_once_and_in_order(
    synapse: SynapseServer, synapse_admin: RegisteredUser,
    new_user: Callable[..., RegisteredUser],
    follower_factory: Callable[[], Awaitable[Follower]],
    start_app: StartApp,
) -> None:
    bot = new_user("orderbot")  # exempt while the DMs are opened
    op = await follower_factory()
    app, adapter = await start_app(bot, op.user_id)
    operator = Address("matrix", op.user_id)
    await app.engine.handle(Message(operator, "/newchannel news Daily News"))
    people = await _people_with_dms(12, bot, follower_factory)
    for person, room in people:  # the follows go straight to the engine: this test is about
        # the order of the copies, and the answers would only use up the same budget
        await app.engine.handle(Message(Address("matrix", person.user_id, chat=room), "/follow news"))
    synapse.restore_default_ratelimit(synapse_admin.access_token, bot.user_id)
    sends = count_sends(adapter)

    started = time.time()
    for text in POSTS:  # published within a second
        await app.engine.handle(Message(operator, f"/post news {text}"))
        await asyncio.sleep(0.3)
    await app.sync(timeout=600)
    last = await _until_all_have(
        people, bot.user_id, lambda bodies: sum(p in b for b in bodies for p in POSTS) >= 3, 60)
    elapsed = last - started
    await _sync_all(people)
    for person, room in people:
        got = [post for s in _from_bot(person, room, bot.user_id) for post in POSTS if post in _body(s)]
        assert got == list(POSTS), (person.user_id, got)
    sent, limited = sends.count("room_send", limited=False), sends.count("room_send", limited=True)
    print(f"\n3 posts x 12 followers under rc_message 0.2/s burst 10: delivered in {elapsed:.0f} s; "
          f"{sent} sends, {limited} refused with M_LIMIT_EXCEEDED; "
          f"worker retried {app.worker.stats.retried}; "
          f"retry_after asked: {sorted(round(w, 1) for w in sends.waits)}")
    assert sent == 36 and app.worker.stats.sent == 36
    assert limited > 0 and app.worker.stats.retried > 0  # copies did wait for retries
