"""Granting paid access (issue 13): one `grant_access` for every way of paying. A new
subscriber becomes a follower and receives the channel's paid posts of the last 30 days, in
the order they were published, once; a charge seen twice grants once; the invoice payload
names a tier and a price, never a person. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bridge.engine import EngineOptions
from bridge.engine.access import InvoicePayload, grant_access
from bridge.engine.context import Context
from bridge.models import LedgerKind, PostStatus
from bridge.ports import Address
from bridge.store import AlreadyRecorded, Recorded
from tests.support import OPERATOR, Harness, build, person

START = 1_800_000_000.0
DAY = 24 * 3600.0


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def _bot(store_url: str, clock: Clock) -> AsyncIterator[Harness]:
    options = EngineOptions(payments_enabled=True, payments_support="@help")
    h = build(store_url, options=options, clock=clock)
    await h.worker.start()
    try:
        await h.say(OPERATOR, "/newchannel news Daily News")
        await h.say(OPERATOR, "/price news 100")
        yield h
    finally:
        await h.worker.stop()
        h.store.dispose()


def _grant(h: Harness, who: Address, charge_id: str | None, until: float) -> Recorded | AlreadyRecorded:
    core = h.engine._core
    with h.store.unit_of_work() as s:
        channel = h.store.channels.by_handle(s, "news")
        assert channel is not None
        ctx = Context(core, s, core.actor(who))
        outcome = grant_access(ctx, channel, until, kind=LedgerKind.CHARGE, amount=100, charge_id=charge_id)
    h.engine._kick_planning()  # what the engine does after every command: wake the worker
    return outcome


async def _post(h: Harness, clock: Clock, at: float, text: str) -> int:
    clock.now = at
    reply = await h.say(OPERATOR, f"/post news {text}")
    assert "is on its way" in reply, reply
    await h.settle()
    return int(reply.split("#", 1)[1].split()[0])


async def test_a_new_subscriber_gets_the_last_30_days_of_paid_posts_in_order_once(store_url: str) -> None:
    clock = Clock()
    async with _bot(store_url, clock) as h:
        too_old = await _post(h, clock, START - 40 * DAY, "--paid Forty days ago")
        first = await _post(h, clock, START - 20 * DAY, "--paid Twenty days ago")
        await _post(h, clock, START - 15 * DAY, "A free post")
        deleted = await _post(h, clock, START - 12 * DAY, "--paid Deleted later")
        second = await _post(h, clock, START - 10 * DAY, "--paid Ten days ago")
        await h.say(OPERATOR, f"/delete {deleted}")
        clock.now = START
        await h.settle()

        buyer = person(42)
        assert isinstance(_grant(h, buyer, "charge-1", START + 30 * DAY), Recorded)
        await h.settle()
        got = [c.post_id for c in h.adapter.sends_to(buyer.target)]
        assert got == [first, second]  # not the old one, not the free one, not the deleted one
        assert too_old not in got

        # a renewal plans nothing already sent; the same charge again grants nothing
        assert isinstance(_grant(h, buyer, "charge-2", START + 60 * DAY), Recorded)
        assert _grant(h, buyer, "charge-1", START + 90 * DAY) == AlreadyRecorded("charge-1")
        await h.settle()
        assert [c.post_id for c in h.adapter.sends_to(buyer.target)] == [first, second]
        with h.store.session() as s:
            follower = h.store.followers.by_index(s, h.sealer.address_index(buyer))
            assert follower is not None and follower.id is not None
            assert h.store.payments.paid_until(s, follower.id, 1) == START + 60 * DAY
            # the subscriber now follows the channel
            assert h.store.followers.subscription(s, follower.id, 1) is not None


async def test_catch_up_resets_the_kept_figures_so_stats_count_the_new_copy(store_url: str) -> None:
    clock = Clock()
    async with _bot(store_url, clock) as h:
        post_id = await _post(h, clock, START - DAY, "--paid Yesterday")
        clock.now = START
        await h.say(OPERATOR, "/stats news")  # settles and keeps the post's figures
        with h.store.session() as s:
            post = h.store.posts.get(s, post_id)
            assert post is not None and post.status == PostStatus.PUBLISHED.value
            before = h.store.fanout.send_counts(s, post).delivered
        _grant(h, person(7), "charge-7", START + 30 * DAY)
        await h.settle()
        with h.store.session() as s:
            post = h.store.posts.get(s, post_id)
            assert post is not None
            assert h.store.fanout.send_counts(s, post).delivered == before + 1


def test_an_invoice_payload_names_a_tier_and_a_price_and_no_person() -> None:
    payloads = {InvoicePayload(12, 250).encode() for _ in range(50)}
    assert len(payloads) == 50  # a nonce: two invoices never look alike
    for payload in payloads:
        assert InvoicePayload.decode(payload) == InvoicePayload(12, 250)
        assert len(payload.encode()) <= 128  # Telegram's limit for an invoice payload
        assert str(person(1).id) not in payload
    for forged in ("", "cb1.t12.p250", "cb1.t12.p250.zzzzzzzz", "cb1.t-1.p250.00000000", "x" * 200):
        assert InvoicePayload.decode(forged) is None
