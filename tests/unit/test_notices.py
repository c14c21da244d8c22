"""Replies and notices take the delivery worker's road: paced, retried on 429, ordered per chat,
ahead of fan-out copies, dropped only when the person is gone, and sealed at rest."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import text

from bridge.delivery import DeliveryPolicy
from bridge.models import NoticeLane
from bridge.notices import NoticeQueue
from bridge.ports import Address, PermanentFailure, RecipientGone, Reply, RetryLater
from bridge.privacy import Sealed, Sealer
from tests.support import OPERATOR, FakeAdapter, Harness, build, person


def _queue(h: Harness) -> NoticeQueue:
    assert h.worker.notices is not None
    return h.worker.notices


def _say(h: Harness, to: Address, *texts: str, lane: NoticeLane = NoticeLane.REPLY) -> None:
    _queue(h).enqueue(to, [Reply(t) for t in texts], lane, time.time())
    h.worker.wake_notices()


def _rows(h: Harness) -> list[tuple[str, str | None]]:
    with h.store.connection() as conn:
        return [(r[0], r[1]) for r in conn.execute(text("SELECT status, error FROM notice ORDER BY id"))]


async def test_a_reply_refused_with_429_waits_and_is_sent_once(harness: Harness) -> None:
    alice = person(1)
    harness.adapter.reply_script = [RetryLater(0.05, reason="Telegram flood control")] * 3
    _say(harness, alice, "You now follow Daily News.")
    await harness.worker.drain(timeout=10)
    assert harness.adapter.replies == [(alice.target, "You now follow Daily News.")]
    assert _rows(harness) == []  # a sent reply leaves nothing behind


async def test_a_reply_to_someone_who_blocked_the_bot_is_dropped_and_the_next_goes_out(
    harness: Harness,
) -> None:
    gone, bob = person(1), person(2)
    harness.adapter.reply_script = [RecipientGone("Forbidden: bot was blocked by the user")]
    _say(harness, gone, "lost")
    await harness.worker.drain(timeout=10)
    _say(harness, bob, "kept")
    await harness.worker.drain(timeout=10)
    assert harness.adapter.replies == [(bob.target, "kept")]
    assert _rows(harness) == []


async def test_a_reply_the_platform_refuses_for_good_is_recorded_not_silently_dropped(
    harness: Harness,
) -> None:
    harness.adapter.reply_script = [PermanentFailure("Bad Request: chat not found")]
    _say(harness, person(1), "nowhere")
    await harness.worker.drain(timeout=10)
    assert _rows(harness) == [("failed", "Bad Request: chat not found")]


async def test_answers_to_one_chat_arrive_in_order_when_the_first_is_retried(harness: Harness) -> None:
    alice, bob = person(1), person(2)
    harness.adapter.reply_script = [RetryLater(0.2, reason="429")]
    _say(harness, alice, "first", "second", "third")
    await asyncio.sleep(0.05)
    _say(harness, bob, "bob's")
    await harness.worker.drain(timeout=10)
    to_alice = [t for target, t in harness.adapter.replies if target == alice.target]
    assert to_alice == ["first", "second", "third"]
    # bob was not held up behind alice's wait
    assert harness.adapter.replies.index((bob.target, "bob's")) == 0


async def test_a_reply_overtakes_a_fanout_in_progress(store_url: str) -> None:
    h = build(store_url, adapter=FakeAdapter(delay=0.003), policy=DeliveryPolicy(concurrency=4))
    await h.worker.start()
    try:
        await h.say(OPERATOR, "/newchannel news Daily News")
        for i in range(400):
            await h.say(person(i), "/follow news")
        await h.say(OPERATOR, "/post news big news")
        await h.engine.drain_planning()
        while len(h.adapter.of("send")) < 40:
            await asyncio.sleep(0.01)
        newcomer = person(10_000)
        _say(h, newcomer, "Commands: /follow, /help")
        while not h.adapter.replies:
            await asyncio.sleep(0.005)
        sent_before_reply = len(h.adapter.of("send"))
        await h.worker.drain(timeout=30)
    finally:
        await h.worker.stop()
    assert sent_before_reply < 120, sent_before_reply  # not queued behind the 400 copies
    assert len(h.adapter.of("send")) == 400


async def test_a_notice_that_does_not_unseal_fails_alone(harness: Harness) -> None:
    stranger = NoticeQueue(harness.store, Sealer(b"x" * 32))  # sealed under another key
    stranger.enqueue(person(1), [Reply("old")], NoticeLane.NOTICE, time.time())
    _say(harness, person(2), "new")
    await harness.worker.drain(timeout=10)
    assert harness.adapter.replies == [(person(2).target, "new")]
    assert _rows(harness) == [("failed", "does not unseal with the current privacy key")]


async def test_queued_messages_hold_no_identity_or_text_in_clear(
    sqlite_store_url: str, tmp_path: Path
) -> None:
    h = build(sqlite_store_url)  # the worker is not started: the rows stay queued
    alice = person(424242)
    _say(h, alice, "Your invite code is SECRETCODE-123")
    author = Sealed("post", 1, "fake", h.sealer.seal(alice, table="post", row_id=1))
    _queue(h).update_progress(1, author, "Post #1 progress XYZZY-FIGURES", time.time())
    h.store.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert raw.count(b"SECRETCODE") == 0 and raw.count(alice.id.encode()) == 0
    assert b"XYZZY" not in raw
