"""While the bot sends, its sync loop stops waking at each of its own sends (issue 10's Matrix
fan-out figure), and a command sent meanwhile still arrives within a second or two.

A long poll returns as soon as anything happens in a room the bot is in, its own sends included:
during a fan-out that was one sync per send, and each sync costs the homeserver CPU for every room
it reports — the CPU that bounds the fan-out (bench/matrix_send.py prints both).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from nio import RoomMessagesResponse

from adapters.base import Address, Content, Message, PostKind
from adapters.matrix.sync import BUSY_SYNC_GAP_S

from .conftest import Recorder

pytestmark = [pytest.mark.matrix, pytest.mark.integration]


def _post(n: int) -> Content:
    return Content(post_id=n, kind=PostKind.TEXT, channel_handle="news", channel_name="News",
                   text=f"post {n}", delivery_id=50_000 + n)  # fmt: skip


async def test_while_the_bot_sends_it_syncs_once_a_second_and_still_hears_commands(
    bot_user, adapter_factory, follower_factory
):
    recorder = Recorder()
    adapter = await adapter_factory(bot_user, recorder)
    alice = await follower_factory()
    room = await alice.open_dm(bot_user.user_id, encrypted=False)
    session = adapter._session
    syncs: list[tuple[float, int, bool]] = []
    real_next_batch = session.next_batch

    async def counted(timeout_ms: int, *, without_own: bool = False) -> Any:
        syncs.append((time.monotonic(), timeout_ms, without_own))
        return await real_next_batch(timeout_ms, without_own=without_own)

    session.next_batch = counted  # type: ignore[method-assign]
    to_alice = Address("matrix", alice.user_id, chat=room)
    gate = asyncio.Semaphore(4)

    async def send(n: int) -> None:
        async with gate:
            await adapter.send(to_alice, _post(n))

    began = time.monotonic()
    sending = asyncio.gather(*(send(n) for n in range(120)))
    await asyncio.sleep(1.0)
    said_at = time.monotonic()
    await alice.say(room, "/help")
    heard = await recorder.next(timeout=10)
    heard_after = time.monotonic() - said_at
    await sending
    ended = time.monotonic()

    assert isinstance(heard, Message) and heard.text == "/help"
    assert heard_after < BUSY_SYNC_GAP_S + 1.5, f"the command took {heard_after:.2f} s to arrive"
    during = [s for s in syncs if began <= s[0] <= ended]
    seconds = ended - began
    # without pacing: one sync per own send (120); paced: about one per second
    assert len(during) <= seconds / BUSY_SYNC_GAP_S + 3, (len(during), round(seconds, 1))
    assert any(without_own for _, _, without_own in during), "no busy sync left out the bot's own events"
    # and once the sends are over, it long-polls again
    async with asyncio.timeout(3 * BUSY_SYNC_GAP_S + 2):
        while not any(t > ended and timeout_ms > 0 for t, timeout_ms, _ in syncs):
            await asyncio.sleep(0.05)
    # alice got every post once (read back through /messages: a sync shows only the latest ten)
    await alice.sync(0)
    history = await alice.client.room_messages(room, start=alice.client.next_batch, limit=500)
    assert isinstance(history, RoomMessagesResponse), history
    bodies = [ev.source["content"].get("body", "") for ev in history.chunk
              if ev.source.get("sender") == bot_user.user_id]  # fmt: skip
    posts = sorted(int(found[0]) for body in bodies if (found := re.findall(r"\(#(\d+)\)", body)))
    assert posts == list(range(120))

async def test_a_conversation_is_not_slowed_by_the_answers_echo(bot_user, adapter_factory, follower_factory):
    recorder = Recorder()
    await adapter_factory(bot_user, recorder)
    alice = await follower_factory()
    room = await alice.open_dm(bot_user.user_id, encrypted=False)
    delays = []
    for n in range(5):
        said_at = time.monotonic()
        await alice.say(room, f"/help {n}")
        event = await recorder.next(timeout=10)
        delays.append(time.monotonic() - said_at)
        assert isinstance(event, Message) and event.text == f"/help {n}"
        await alice.wait_event(room, lambda s: s.get("sender") == bot_user.user_id and "followed" in str(s))
        alice.timeline[room].clear()
    # each command is answered (one send), so the loop keeps long-polling: no busy wait
    assert max(delays) < BUSY_SYNC_GAP_S, [round(d, 2) for d in delays]
