"""The outbox: retries, failure classes, edits and deletes of every copy, media uploaded once,
and no delivery left without an outcome."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from bridge.delivery import DeliveryPolicy
from bridge.models import Delivery, Subscription
from bridge.ports import (
    Address,
    Content,
    InboundMedia,
    Message,
    PermanentFailure,
    PostKind,
    RecipientGone,
    RetryLater,
)
from tests.support import OPERATOR, FakeAdapter, Harness, build, person


async def _channel_with(h: Harness, n: int) -> list[Address]:
    await h.say(OPERATOR, "/newchannel news Daily News")
    people = [person(i) for i in range(n)]
    for p in people:
        await h.say(p, "/follow news")
    return people


def _rows(h: Harness) -> list[Delivery]:
    with h.store.session() as s:
        return list(s.exec(select(Delivery)))


def _assert_every_row_has_an_outcome(h: Harness) -> None:
    for row in _rows(h):
        assert row.status in ("delivered", "failed", "skipped"), (row.id, row.status)
        if row.status != "delivered":
            assert row.error, row.id


async def test_every_follower_gets_the_post_once(harness: Harness) -> None:
    people = await _channel_with(harness, 25)
    await harness.say(OPERATOR, "/post news hello all")
    await harness.settle()
    for p in people:
        assert [c.text for c in harness.adapter.sends_to(p.target)] == ["hello all"]
    _assert_every_row_has_an_outcome(harness)


async def test_unfollowed_user_gets_nothing(harness: Harness) -> None:
    a, b = await _channel_with(harness, 2)
    await harness.say(b, "/unfollow news")
    await harness.say(OPERATOR, "/post news only for a")
    await harness.settle()
    assert len(harness.adapter.sends_to(a.target)) == 1
    assert harness.adapter.sends_to(b.target) == []


async def test_muted_follower_gets_silent_copies(harness: Harness) -> None:
    a, b = await _channel_with(harness, 2)
    await harness.say(b, "/mute news")
    await harness.say(OPERATOR, "/post news quiet please")
    await harness.settle()
    assert harness.adapter.sends_to(a.target)[0].silent is False
    assert harness.adapter.sends_to(b.target)[0].silent is True


async def test_rate_limit_with_retry_after_delays_but_delivers(harness: Harness) -> None:
    a, b = await _channel_with(harness, 2)
    harness.adapter.script[a.target] = [RetryLater(0.2), RetryLater(0.2)]
    await harness.say(OPERATOR, "/post news hi")
    await harness.settle()
    assert len(harness.adapter.sends_to(a.target)) == 1
    assert len(harness.adapter.sends_to(b.target)) == 1
    # waits the platform asked for do not use up attempts
    assert sorted(r.attempts for r in _rows(harness)) == [1, 1]
    _assert_every_row_has_an_outcome(harness)


async def test_transient_errors_back_off_then_deliver(harness: Harness) -> None:
    (a,) = await _channel_with(harness, 1)
    harness.adapter.script[a.target] = [RetryLater(None, reason="502 from server")] * 3
    await harness.say(OPERATOR, "/post news hi")
    await harness.settle()
    assert len(harness.adapter.sends_to(a.target)) == 1


async def test_nothing_is_retried_past_max_attempts(store_url: str) -> None:
    h = build(
        store_url,
        policy=DeliveryPolicy(concurrency=2, max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.02),
    )
    await h.worker.start()
    try:
        (_a,) = await _channel_with(h, 1)
        attempts = []

        def always_busy(action: str, address: Address, content: Content | None) -> None:
            attempts.append(action)
            raise RetryLater(None, reason="server unavailable")

        h.adapter.rule = always_busy
        await h.say(OPERATOR, "/post news hi")
        await h.settle()
        assert len(attempts) == 3
        (row,) = _rows(h)
        assert row.status == "failed" and "gave up after 3 attempts" in (row.error or "")
        assert "failed 1" in await h.say(OPERATOR, "/stats news")
    finally:
        await h.worker.stop()


async def test_recipient_gone_pauses_the_follower_and_is_not_retried(harness: Harness) -> None:
    a, b = await _channel_with(harness, 2)
    harness.adapter.script[a.target] = [RecipientGone("bot was blocked by the user")]
    await harness.say(OPERATOR, "/post news first")
    await harness.settle()
    await harness.say(OPERATOR, "/post news second")
    await harness.settle()
    assert harness.adapter.sends_to(a.target) == []
    assert len(harness.adapter.sends_to(b.target)) == 2
    with harness.store.session() as s:
        paused = [sub.paused for sub in s.exec(select(Subscription))]
    assert sorted(paused) == [False, True]
    stats = await harness.say(OPERATOR, "/stats news")
    assert "Paused (blocked the bot or left): 1" in stats and "Followers: 1" in stats
    failed = [r for r in _rows(harness) if r.status == "failed"]
    assert len(failed) == 1 and "recipient gone" in (failed[0].error or "")
    # following again resumes delivery
    await harness.say(a, "/follow news")
    await harness.say(OPERATOR, "/post news third")
    await harness.settle()
    assert [c.text for c in harness.adapter.sends_to(a.target)] == ["third"]


async def test_permanent_failure_is_recorded_counted_and_not_retried(harness: Harness) -> None:
    a, _b = await _channel_with(harness, 2)
    harness.adapter.script[a.target] = [PermanentFailure("Bad Request: chat not found")]
    await harness.say(OPERATOR, "/post news hi")
    await harness.settle()
    rows = {r.status: r for r in _rows(harness)}
    assert rows["failed"].attempts == 1 and rows["failed"].error == "Bad Request: chat not found"
    stats = await harness.say(OPERATOR, "/stats news")
    assert "delivered 1, pending 0, failed 1" in stats and "chat not found" in stats
    assert a.id not in stats


async def test_edit_and_delete_reach_every_delivered_copy(harness: Harness) -> None:
    people = await _channel_with(harness, 5)
    await harness.say(OPERATOR, "/post news original")
    await harness.settle()
    await harness.say(OPERATOR, "/edit 1 corrected")
    await harness.settle()
    edits = harness.adapter.of("edit")
    assert sorted(c.target for c in edits) == sorted(p.target for p in people)
    assert {c.text for c in edits} == {"corrected"}
    await harness.say(OPERATOR, "/delete 1")
    await harness.settle()
    assert sorted(c.target for c in harness.adapter.of("delete")) == sorted(p.target for p in people)
    _assert_every_row_has_an_outcome(harness)


async def test_delete_during_fanout_stops_remaining_sends(store_url: str) -> None:
    slow = FakeAdapter(delay=0.01)
    h = build(store_url, adapter=slow, policy=DeliveryPolicy(concurrency=2, batch_size=10))
    await h.worker.start()
    try:
        await _channel_with(h, 200)
        await h.say(OPERATOR, "/post news oops")
        while len(slow.of("send")) < 20:
            await asyncio.sleep(0.01)
        await h.say(OPERATOR, "/delete 1")
        await h.settle()
        sent = {c.target for c in slow.of("send")}
        deleted = {c.target for c in slow.of("delete")}
        assert len(sent) < 100  # the rest were never sent
        assert sent == deleted  # and every copy that went out was removed
        _assert_every_row_has_an_outcome(h)
        assert "skipped" in {r.status for r in _rows(h)}
    finally:
        await h.worker.stop()


async def test_edit_during_fanout_reaches_copies_sent_with_old_text(store_url: str) -> None:
    slow = FakeAdapter(delay=0.005)
    h = build(store_url, adapter=slow, policy=DeliveryPolicy(concurrency=4, batch_size=20))
    await h.worker.start()
    try:
        people = await _channel_with(h, 120)
        await h.say(OPERATOR, "/post news draft")
        while len(slow.of("send")) < 10:
            await asyncio.sleep(0.005)
        await h.say(OPERATOR, "/edit 1 final")
        await h.settle()
        latest: dict[str, str] = {}
        for call in slow.calls:
            latest[call.target] = call.text
        assert all(latest[p.target] == "final" for p in people)
    finally:
        await h.worker.stop()


async def test_media_is_uploaded_once_per_platform(harness: Harness) -> None:
    await _channel_with(harness, 30)
    photo = InboundMedia(
        kind=PostKind.PHOTO,
        data=b"\x89PNG fake image bytes",
        mime="image/png",
        filename="cat.png",
    )
    await harness.engine.handle(Message(OPERATOR, "/post news a cat", photo))
    await harness.settle()
    sends = harness.adapter.of("send")
    assert len(sends) == 30
    assert harness.adapter.uploads == 1
    assert sum(1 for c in sends if c.has_data) == 1
    assert {c.media_ref for c in sends} == {"file-1-1"}


async def test_native_votes_and_reactions_aggregate_across_copies(harness: Harness) -> None:
    from bridge.ports import PollVote, Reaction

    people = await _channel_with(harness, 4)
    await harness.say(OPERATOR, '/poll news "Best?" "red" "blue"')
    await harness.say(OPERATOR, "/post news react to me")
    await harness.settle()
    with harness.store.session() as s:
        refs = {
            (r.post_id, r.follower_id): harness.sealer.unseal_ref(
                r.ref_sealed or b"", row_id=r.id or 0, platform=r.platform
            )
            for r in s.exec(select(Delivery))
        }
    follower_ids = sorted({f for _, f in refs})
    for i, (p, fid) in enumerate(zip(people, follower_ids, strict=True)):
        _, alt = refs[(1, fid)]
        key, _ = refs[(2, fid)]
        await harness.engine.handle(PollVote(p, alt or "", (i % 2,)))
        await harness.engine.handle(Reaction(p, key or "", "🔥" if i < 3 else "👍"))
    await harness.engine.handle(Reaction(people[0], refs[(2, follower_ids[0])][0] or "", None))
    results = await harness.say(OPERATOR, "/results 1")
    assert "red — 2" in results and "blue — 2" in results
    stats = await harness.say(OPERATOR, "/stats news")
    assert "🔥 2" in stats and "👍 1" in stats


async def _large_post(
    store_url: str, followers: int, *, first: str = "", done_word: str = "finished"
) -> tuple[Harness, list[Address], list[str]]:
    """A post to `followers` (one of them refusing) by the operator, who first says `first`;
    returns the harness, the followers and what the operator received, once the summary is in."""
    h = build(
        store_url,
        adapter=FakeAdapter(delay=0.002),
        policy=DeliveryPolicy(concurrency=4, batch_size=50, progress_threshold=50, progress_interval_s=0.05),
    )
    await h.worker.start()
    try:
        people = await _channel_with(h, followers)
        h.adapter.script[people[7].target] = [PermanentFailure("Bad Request: chat not found")]
        if first:
            await h.say(OPERATOR, first)
        await h.say(OPERATOR, "/post news big news")
        await h.settle()
        for _ in range(50):  # the summary follows the last recorded outcome
            if any(done_word in text for _, text in h.adapter.replies):
                break
            await asyncio.sleep(0.05)
        await h.worker.drain()
    finally:
        await h.worker.stop()
    return h, people, [text for target, text in h.adapter.replies if target == OPERATOR.target]


async def test_author_gets_one_progress_message_edited_in_place_and_a_final_summary(store_url: str) -> None:
    h, people, to_author = await _large_post(store_url, 300)
    progress = [text for text in to_author if "progress" in text]
    summary = [text for text in to_author if "finished" in text]
    assert len(progress) == 1, to_author  # one message ...
    assert "pending" in progress[0] and "delivered" in progress[0]
    edits = h.adapter.edited_replies  # ... edited in place: every edit targets that one message
    assert edits and len({key for key, _ in edits}) == 1
    assert edits[0][0].startswith(f"{OPERATOR.target}:r")
    assert all(text.startswith("Post #1 progress") for _, text in edits)
    assert summary == ["Post #1 finished: delivered 299, failed 1 (Bad Request: chat not found ×1)."]
    everything = " ".join(to_author + [text for _, text in edits])
    assert all(p.id not in everything for p in people)


async def test_progress_and_summary_are_in_the_language_the_author_chose(store_url: str) -> None:
    h, _people, to_author = await _large_post(store_url, 120, first="/lang fr", done_word="terminée")
    progress = [text for text in to_author if "progression" in text]
    assert len(progress) == 1 and progress[0].startswith("Publication n°1, progression : "), to_author
    assert all(text.startswith("Publication n°1, progression") for _, text in h.adapter.edited_replies)
    assert "Publication n°1 terminée : livrées 119, échouées 1 (Bad Request: chat not found ×1)." in to_author
    assert not any(text.startswith("Post #") for text in to_author)  # nothing of it in English


async def test_small_fanout_without_failures_sends_no_summary(store_url: str) -> None:
    h = build(store_url)
    await h.worker.start()
    try:
        await _channel_with(h, 3)
        await h.say(OPERATOR, "/post news small")
        await h.settle()
        await asyncio.sleep(0.3)
    finally:
        await h.worker.stop()
    assert h.adapter.replies == [] and h.adapter.edited_replies == []


async def test_platform_rate_limit_waits_do_not_use_up_attempts(store_url: str) -> None:
    h = build(
        store_url,
        policy=DeliveryPolicy(concurrency=2, max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.02),
    )
    await h.worker.start()
    try:
        (a,) = await _channel_with(h, 1)
        h.adapter.script[a.target] = [RetryLater(0.01, reason="429 Too Many Requests")] * 6
        await h.say(OPERATOR, "/post news patience")
        await h.settle()
        assert [c.text for c in h.adapter.sends_to(a.target)] == ["patience"]
        (row,) = _rows(h)
        assert row.status == "delivered" and row.attempts == 1
    finally:
        await h.worker.stop()


async def test_imported_followers_are_sealed_subscribed_once_and_receive_posts(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    await harness.say(OPERATOR, "/newchannel other Other")
    people = [person(i) for i in range(12)]
    assert harness.store.import_followers(1, people, harness.sealer, 1.0, batch=5) == 12
    assert harness.store.import_followers(1, people[:3], harness.sealer, 1.0) == 3  # no duplicates
    assert "Followers: 12" in await harness.say(OPERATOR, "/stats news")
    assert "Followers: 0" in await harness.say(OPERATOR, "/stats other")
    await harness.say(OPERATOR, "/post news welcome")
    await harness.settle()
    assert sorted(c.target for c in harness.adapter.of("send")) == sorted(p.target for p in people)


async def test_a_refused_media_reference_is_forgotten_and_the_bytes_uploaded_again(harness: Harness) -> None:
    from bridge.ports import MediaRefRejected

    people = await _channel_with(harness, 3)
    photo = InboundMedia(kind=PostKind.PHOTO, data=b"\x89PNG bytes", mime="image/png", filename="a.png")
    await harness.engine.handle(Message(OPERATOR, "/post news first", photo))
    await harness.settle()
    assert harness.adapter.uploads == 1

    def refuse_the_old_file_id(action: str, address: Address, content: Content | None) -> None:
        media = content.media if content is not None else None
        if media is not None and media.platform_ref == "file-1-1":
            raise MediaRefRejected("Bad Request: wrong file identifier")

    harness.adapter.rule = refuse_the_old_file_id  # as after a change of bot token
    await harness.engine.handle(Message(OPERATOR, "/post news second", photo))
    await harness.settle()
    second = [c for c in harness.adapter.of("send") if c.post_id == 2]
    assert sorted(c.target for c in second) == sorted(p.target for p in people)
    assert harness.adapter.uploads == 2  # uploaded again once, then reused
    assert all(r.status == "delivered" for r in _rows(harness))


async def test_a_later_post_waits_behind_an_earlier_copy_being_retried_in_the_same_chat(
    store_url: str,
) -> None:
    h = build(store_url, policy=DeliveryPolicy(concurrency=4, backoff_base_s=0.01, backoff_max_s=0.05))
    await h.worker.start()
    try:
        slow, other = await _channel_with(h, 2)
        h.adapter.script[slow.target] = [RetryLater(1.5, reason="429 Too Many Requests")]
        for n in (1, 2, 3):
            await h.say(OPERATOR, f"/post news number {n}")
        await h.engine.drain_planning()
        async with asyncio.timeout(1.0):  # the other chat is not held up ...
            while len(h.adapter.sends_to(other.target)) < 3:
                await asyncio.sleep(0.01)
        assert [c.text for c in h.adapter.sends_to(other.target)] == ["number 1", "number 2", "number 3"]
        assert h.adapter.sends_to(slow.target) == []  # ... while the retry still waits: nothing overtook it
        await h.settle()
        await h.say(OPERATOR, "/edit 1 number one")
        await h.say(OPERATOR, "/delete 2")
        await h.settle()
    finally:
        await h.worker.stop()
    assert [c.text for c in h.adapter.sends_to(slow.target)] == ["number 1", "number 2", "number 3"]
    calls = [(c.action, c.post_id or c.text) for c in h.adapter.calls if c.target == slow.target]
    assert [a for a, _ in calls] == ["send", "send", "send", "edit", "delete"]
