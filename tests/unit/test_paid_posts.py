"""Paid posts on every path (issue 13, parts 1, 3 and 8), through the engine and the delivery
worker on SQLite and PostgreSQL: who gets a paid post, a teaser or nothing; edits and deletes
that reach only sent copies; pay-per-post planning and purchases; the expiry notice, once even
from two stores; paid polls' /results and /vote; paid scheduled and recurring posts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest
from sqlmodel import select

from adapters.matrix.render import post_text
from adapters.telegram.paid_media import render_paid_media
from adapters.telegram.render import render_post
from bridge.engine import EngineOptions
from bridge.models import Delivery, DeliveryAction, DeliveryStatus, MirrorRoom, Post, PostStatus
from bridge.ports import (
    Address,
    Button,
    Content,
    MediaContent,
    PaidMediaPurchased,
    PermanentFailure,
    PostKind,
)
from bridge.store import Store
from bridge.store.posts import paid_payload, post_of_paid_payload
from tests.support import OPERATOR, Harness, build, person

START = 1_800_000_000.0
DAY = 24 * 3600.0
GRACE = 600.0


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _options() -> EngineOptions:
    return EngineOptions(
        payments_enabled=True,
        payments_support="@help",
        fanout_batch=2,  # several batches: the cursor rules hold for paid posts too
        payments_expiry_notice_grace_s=GRACE,
    )


@pytest.fixture
def clock() -> Clock:
    """The harness's clock."""
    return Clock()


@pytest.fixture
async def paid(store_url: str, clock: Clock) -> AsyncIterator[Harness]:
    """A harness whose channel `news` sells a tier; the operator (its owner) follows it."""
    h = build(store_url, clock=clock, options=_options())
    await h.worker.start()
    try:
        await h.say(OPERATOR, "/newchannel news Daily News")
        assert "now sells" in await h.say(OPERATOR, "/price news 50")
        await h.say(OPERATOR, "/follow news")
        yield h
    finally:
        await h.worker.stop()
        h.store.dispose()


def _follower_id(h: Harness, who: Address) -> int:
    with h.store.unit_of_work() as s:
        follower = h.store.followers.by_index(s, h.sealer.address_index(who))
        assert follower is not None and follower.id is not None
        return follower.id


def _grant(h: Harness, who: Address, until: float) -> None:
    with h.store.unit_of_work() as s:
        h.store.payments.grant(s, _follower_id(h, who), 1, until)


def _texts(h: Harness, who: Address, post_id: int) -> list[str]:
    return [c.text for c in h.adapter.sends_to(who.id) if c.post_id == post_id]


async def _people(h: Harness) -> tuple[Address, Address]:
    free, subscriber = person(1), person(2)
    for who in (free, subscriber):
        assert "You now follow" in await h.say(who, "/follow news")
    _grant(h, subscriber, START + 30 * DAY)
    return free, subscriber


# ---- planning -------------------------------------------------------------------------------


async def test_a_paid_post_reaches_subscribers_and_admins_teasers_the_rest_and_no_mirror(
    paid: Harness,
) -> None:
    h = paid
    free, subscriber = await _people(h)
    with h.store.unit_of_work() as s:
        s.add(MirrorRoom(channel_id=1, platform="fake", chat_id="mirror-room", created_at=START))
    answer = await h.say(OPERATOR, "/post news --paid Members only")
    assert "Post #1 is on its way to subscribers" in answer and "teaser" in answer
    assert "Mirror rooms get no paid posts" in answer
    await h.settle()

    assert _texts(h, subscriber, 1) == ["Members only"]
    assert _texts(h, OPERATOR, 1) == ["Members only"]  # the owner follows: an admin counts as entitled
    assert _texts(h, free, 1) == ["🔒 A post for subscribers. Subscribe: 30 days for 50 Stars."]
    assert h.adapter.sends_to("mirror-room") == []
    with h.store.unit_of_work() as s:
        rows = s.exec(select(Delivery).where(Delivery.post_id == 1)).all()
        by_follower = {r.follower_id: (r.action, r.status, r.ref_sealed) for r in rows}
        post = s.get(Post, 1)
        assert post is not None and post.status == PostStatus.PUBLISHED.value
    teaser = by_follower[_follower_id(h, free)]
    assert teaser[:2] == (DeliveryAction.TEASER.value, DeliveryStatus.DELIVERED.value)
    assert teaser[2] is None  # a teaser keeps no reference: nothing can edit or delete it
    assert by_follower[_follower_id(h, subscriber)][0] == DeliveryAction.SEND.value
    assert len(rows) == 3

    # a free post still reaches everyone and the mirror
    await h.say(OPERATOR, "/post news Free for all")
    await h.settle()
    assert _texts(h, free, 2) == ["Free for all"] and len(h.adapter.sends_to("mirror-room")) == 1


async def test_with_the_teaser_off_a_free_follower_gets_nothing_and_sales_ended_has_no_price(
    paid: Harness,
) -> None:
    h = paid
    free, subscriber = await _people(h)
    await h.say(OPERATOR, "/teaser news off")
    await h.say(OPERATOR, "/post news --paid Quiet one")
    await h.settle()
    assert _texts(h, free, 1) == [] and _texts(h, subscriber, 1) == ["Quiet one"]

    await h.say(OPERATOR, "/teaser news on")
    await h.say(OPERATOR, "/price news off")
    await h.say(OPERATOR, "/post news --paid After sales")
    await h.settle()
    assert _texts(h, free, 2) == ["🔒 A post for subscribers. Subscriptions are not on sale now."]
    assert _texts(h, subscriber, 2) == ["After sales"]  # access lasts to the end of the period


async def test_edit_and_delete_of_a_paid_post_reach_only_the_sent_copies(paid: Harness) -> None:
    h = paid
    free, subscriber = await _people(h)
    await h.say(OPERATOR, "/post news --paid Original")
    await h.settle()
    assert "2 delivered copies will be updated" in await h.say(OPERATOR, "/edit 1 Changed")
    await h.settle()
    assert sorted(c.target for c in h.adapter.of("edit")) == sorted([OPERATOR.id, subscriber.id])
    assert "2 delivered copies will be removed" in await h.say(OPERATOR, "/delete 1")
    await h.settle()
    assert len(h.adapter.of("delete")) == 2
    assert free.id not in {c.target for c in h.adapter.of("edit") + h.adapter.of("delete")}


async def test_a_teaser_still_pending_when_its_post_is_deleted_is_not_sent(paid: Harness) -> None:
    h = paid
    free, _ = await _people(h)
    await h.worker.stop()
    await h.say(OPERATOR, "/post news --paid Gone soon")
    await h.engine.drain_planning()
    await h.say(OPERATOR, "/delete 1")
    await h.worker.start()
    await h.settle()
    assert _texts(h, free, 1) == []


async def test_an_entitlement_that_ended_gives_a_teaser_from_that_moment(paid: Harness, clock: Clock) -> None:
    h = paid
    free, subscriber = await _people(h)
    _grant(h, free, START + 60)
    await h.say(OPERATOR, "/post news --paid Before the end")
    await h.settle()
    assert _texts(h, free, 1) == ["Before the end"]
    clock.now = START + 60  # access ends exactly at paid_until
    await h.say(OPERATOR, "/post news --paid After the end")
    await h.settle()
    assert _texts(h, free, 2)[0].startswith("🔒")
    assert _texts(h, subscriber, 2) == ["After the end"]


async def test_pay_per_post_goes_to_every_follower_where_paid_media_is_sold(paid: Harness) -> None:
    h = paid
    free, subscriber = await _people(h)
    with h.store.unit_of_work() as s:
        for n, paid_flag in ((1, False), (2, False)):
            s.add(Post(channel_id=1, kind="photo", text="pic", created_at=START, stars=5, paid=paid_flag))
            s.flush()
            post = s.get(Post, n)
            assert post is not None
            post.status = PostStatus.PUBLISHING.value
            s.add(post)
    # the fake platform sells paid media: everyone gets a copy to buy
    while h.store.atomically(h.store.fanout.plan_batch, 1, 10, START, 60.0, ("fake",)) > 0:
        pass
    # elsewhere a pay-per-post is a paid post: the entitled get it, the others a teaser
    while h.store.atomically(h.store.fanout.plan_batch, 2, 10, START, 60.0, ("telegram",)) > 0:
        pass
    with h.store.unit_of_work() as s:
        rows = s.exec(select(Delivery).order_by(Delivery.id)).all()
        first = {r.follower_id: r.action for r in rows if r.post_id == 1}
        second = {r.follower_id: r.action for r in rows if r.post_id == 2}
    send, teaser = DeliveryAction.SEND.value, DeliveryAction.TEASER.value
    fid, sid, oid = _follower_id(h, free), _follower_id(h, subscriber), _follower_id(h, OPERATOR)
    assert first == {fid: send, sid: send, oid: send}
    assert second == {fid: teaser, sid: send, oid: send}


async def test_a_purchase_is_counted_once_per_report_and_shown_in_stats(paid: Harness) -> None:
    h = paid
    await _people(h)
    with h.store.unit_of_work() as s:
        s.add(Post(channel_id=1, kind="photo", text="pic", created_at=START, stars=5))
        s.add(Post(channel_id=1, kind="text", text="free", created_at=START))
    buyer = person(9)
    await h.engine.handle(PaidMediaPurchased(buyer, paid_payload(1)))
    await h.engine.handle(PaidMediaPurchased(buyer, paid_payload(1)))  # a second copy bought
    for junk in ("", "cbp.", "cbp.x1", "cb1.t1.p5.abcdef01", paid_payload(2), paid_payload(999)):
        assert await h.engine.handle(PaidMediaPurchased(buyer, junk)) == []
    with h.store.unit_of_work() as s:
        assert [p.purchases for p in s.exec(select(Post).order_by(Post.id)).all()] == [2, 0]
    assert post_of_paid_payload(paid_payload(42)) == 42 and post_of_paid_payload("cbp.-1") is None


async def test_stats_show_subscribers_sends_teasers_and_purchases_as_counts(paid: Harness) -> None:
    h = paid
    await _people(h)
    await h.say(OPERATOR, "/post news --paid For members")
    await h.settle()
    with h.store.unit_of_work() as s:
        s.add(
            Post(
                channel_id=1,
                kind="photo",
                text="pic",
                created_at=START,
                published_at=START,
                status=PostStatus.PUBLISHED.value,
                stars=5,
                purchases=1,
            )
        )
    stats = await h.say(OPERATOR, "/stats news")
    assert "Subscribers now: 1" in stats
    assert "#1 text: delivered 2" in stats and "for subscribers: 2 sent, 1 teasers" in stats
    assert "1 purchase at 5 Stars" in stats


# ---- /results and /vote of a paid poll ------------------------------------------------------


async def test_a_paid_polls_results_and_votes_are_refused_to_a_free_follower(paid: Harness) -> None:
    h = paid
    free, subscriber = await _people(h)
    await h.say(OPERATOR, '/poll news "Next topic?" "A" "B" --paid')
    await h.settle()
    refusal = "There is no poll #1 in a channel you follow."
    assert await h.say(free, "/results 1") == refusal
    assert await h.say(free, "/vote 1 1") == "There is no open poll #1 in a channel you follow."
    assert await h.say(person(3), "/results 1") == refusal  # not even a follower
    assert "recorded" in await h.say(subscriber, "/vote 1 2")
    assert "B — 1" in await h.say(subscriber, "/results 1")
    assert "B — 1" in await h.say(OPERATOR, "/results 1")


# ---- scheduled and recurring paid posts -----------------------------------------------------


async def test_scheduled_and_recurring_paid_posts_follow_the_same_rules(paid: Harness, clock: Clock) -> None:
    h = paid
    free, subscriber = await _people(h)
    assert "scheduled" in await h.say(OPERATOR, "/schedule news in 10m --paid Later for members")
    assert "Recurring post r1" in await h.say(OPERATOR, '/every news "daily 09:00" --paid Daily brief')
    clock.now = START + 11 * 60
    await h.engine.publish_scheduled(1, grace_s=300, late_policy="publish")
    with h.store.unit_of_work() as s:
        due = h.store.schedule.recurring(s, 1)
        assert due is not None and due.next_at is not None
        next_at = due.next_at
    clock.now = next_at
    recurring_post = await h.engine.fire_recurring(1, next_at)
    await h.settle()
    assert recurring_post is not None
    for post_id, text in ((1, "Later for members"), (recurring_post, "Daily brief")):
        assert _texts(h, subscriber, post_id) == [text]
        assert _texts(h, free, post_id)[0].startswith("🔒")


# ---- expiry ---------------------------------------------------------------------------------


def _notices(h: Harness) -> Callable[[], list[tuple[str, str]]]:
    sent: list[tuple[str, str]] = []

    async def notify(address: Address, text: str) -> None:
        sent.append((address.id, text))

    h.engine.set_notify(notify)
    return lambda: sent


async def test_an_ended_access_is_noticed_once_after_the_grace(paid: Harness, clock: Clock) -> None:
    h = paid
    free, subscriber = await _people(h)
    notices = _notices(h)
    _grant(h, free, START + 100)
    clock.now = START + 100 + GRACE - 1
    assert await h.engine.notice_expired_access() == 0  # a renewal may still come
    clock.now = START + 100 + GRACE
    assert await h.engine.notice_expired_access() == 1
    assert await h.engine.notice_expired_access() == 0
    ended = "Your access to Daily News's paid posts ended. /subscribe news renews it."
    assert notices() == [(free.id, ended)]
    # a renewal makes the next ending noticed again
    _grant(h, free, clock.now + 100)
    clock.now += 100 + GRACE
    assert await h.engine.notice_expired_access() == 1
    assert subscriber.id not in {who for who, _ in notices()}


async def test_two_stores_sweeping_at_once_notice_an_ending_once(store_url: str, clock: Clock) -> None:
    first = build(store_url, clock=clock, options=_options())
    second_store = Store(store_url)
    try:
        await first.say(OPERATOR, "/newchannel news Daily News")
        await first.say(OPERATOR, "/price news 50")
        people = [person(n) for n in range(1, 6)]
        for who in people:
            await first.say(who, "/follow news")
            _grant(first, who, START + 10)
        second = build(store_url, clock=clock, options=_options())
        second.store.dispose()
        second.store = second_store
        second.engine._core.store = second_store  # the same database through another pool
        a, b = _notices(first), _notices(second)
        clock.now = START + 10 + GRACE
        counts = await asyncio.gather(  # two threads, as two processes would
            asyncio.to_thread(asyncio.run, first.engine.notice_expired_access()),
            asyncio.to_thread(asyncio.run, second.engine.notice_expired_access()),
        )
        assert sum(counts) == 5
        assert sorted(who for who, _ in a() + b()) == sorted(p.id for p in people)
    finally:
        first.store.dispose()
        second_store.dispose()


async def test_the_scheduler_sweep_notices_ended_access_about_once_a_minute(
    paid: Harness, clock: Clock
) -> None:
    from scheduler.service import EXPIRY_CHECK_S, SchedulerService

    h = paid
    free, _ = await _people(h)
    notices = _notices(h)
    service = SchedulerService(h.engine, clock=clock)
    assert (await service.sweep()).expiry_notices == 0
    _grant(h, free, START - GRACE)  # ended, and the grace is over
    clock.now = START + 30
    assert (await service.sweep()).expiry_notices == 0  # looked less than a minute ago
    clock.now = START + EXPIRY_CHECK_S
    assert (await service.sweep()).expiry_notices == 1
    clock.now += EXPIRY_CHECK_S
    assert (await service.sweep()).expiry_notices == 0
    assert [who for who, _ in notices()] == [free.id]


# ---- rendering ------------------------------------------------------------------------------


def _photo_content(**changes: object) -> Content:
    media = MediaContent(blob_id=1, kind=PostKind.PHOTO, mime="image/png", filename="a.png", data=b"png")
    base = Content(
        post_id=7,
        kind=PostKind.PHOTO,
        channel_handle="news",
        channel_name="Daily News",
        text="The view",
        media=media,
        stars=5,
        paid_payload=paid_payload(7),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_pay_per_post_copy_renders_as_send_paid_media_with_its_price_and_payload() -> None:
    (call,) = render_paid_media("42", _photo_content(silent=True))
    assert call.method == "sendPaidMedia"
    assert call.params["star_count"] == 5 and call.params["payload"] == "cbp.7"
    assert call.params["caption"] == "<b>Daily News (#7)</b>\nThe view"
    assert call.params["disable_notification"] is True
    (item,) = call.params["media"]
    assert item.type == "photo" and item.media.attach_uri  # the bytes go as an attachment
    media = _photo_content().media
    assert media is not None
    known = replace(media, platform_ref="FILE-ID", data=None)
    (again,) = render_paid_media("42", _photo_content(media=known))
    assert again.params["media"][0].media == "FILE-ID"
    (long_payload,) = render_paid_media("42", _photo_content(paid_payload="x" * 129))
    assert "payload" not in long_payload.params
    with pytest.raises(PermanentFailure):
        render_paid_media("42", _photo_content(kind=PostKind.STICKER))


def test_a_teasers_button_is_an_inline_button_on_telegram_and_a_line_on_matrix() -> None:
    teaser = Content(
        post_id=3,
        kind=PostKind.TEXT,
        channel_handle="news",
        channel_name="Daily News",
        text="🔒 A post for subscribers.",
        buttons=(Button("Subscribe", "/subscribe news"),),
    )
    (call,) = render_post("42", teaser)
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Subscribe", "callback_data": "/subscribe news"}]]
    }
    plain, rich = post_text(teaser)
    assert plain.endswith("\nSend /subscribe news") and "<code>/subscribe news</code>" in rich
