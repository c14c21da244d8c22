"""Stars subscriptions in the engine (issue 13): what `/subscribe` answers and refuses, the
pre-checkout's checks, one payment granting once (also from two stores racing, on SQLite and
PostgreSQL), and `/refund` / `/unsubscribe` through a recording `StarsGateway`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from bridge.engine import ChannelEngine, EngineOptions
from bridge.engine.access import InvoicePayload
from bridge.models import Entitlement, LedgerEntry, LedgerKind
from bridge.ports import Address, Message, PaymentReceived, PermanentFailure, PreCheckout
from bridge.privacy import Sealer
from bridge.store import Store
from tests.support import OPERATOR, Harness, build

MONTH = 2592000
SUPPORT = "@news_payments_help"


def tg(n: int) -> Address:
    """A Telegram person (the Telegram plug-in sells Stars)."""
    return Address("telegram", str(700_000_000 + n), chat=str(700_000_000 + n))


class Gateway:
    """A recording StarsGateway; `refuse` makes the platform say no."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Address, str, bool | None]] = []
        self.refuse = False

    async def refund(self, payer: Address, charge_id: str) -> None:
        if self.refuse:
            raise PermanentFailure("Bad Request: CHARGE_NOT_FOUND")
        self.calls.append(("refund", payer, charge_id, None))

    async def set_subscription_canceled(self, payer: Address, charge_id: str, canceled: bool) -> None:
        if self.refuse:
            raise PermanentFailure("Bad Request: SUBSCRIPTION_ID_INVALID")
        self.calls.append(("cancel", payer, charge_id, canceled))

    async def star_transactions(self, offset: int, limit: int) -> list[object]:
        return []


@pytest.fixture
async def h(store_url: str) -> AsyncIterator[Harness]:
    """A harness with payments on and a priced channel `news`."""
    harness = build(store_url, options=EngineOptions(payments_enabled=True, payments_support=SUPPORT))
    await harness.say(OPERATOR, "/newchannel news Daily News")
    await harness.say(OPERATOR, "/price news 50")
    try:
        yield harness
    finally:
        harness.store.dispose()


async def invoice_of(h: Harness, who: Address, handle: str = "news") -> str:
    replies = await h.engine.handle(Message(who, f"/subscribe {handle}"))
    assert replies[0].invoice is not None, replies[0].text
    return replies[0].invoice.payload


async def pre_checkout(h: Harness, who: Address, payload: str, amount: int = 50) -> str | None:
    answers: list[str | None] = []

    async def answer(refusal: str | None) -> None:
        answers.append(refusal)

    assert await h.engine.handle(PreCheckout(who, payload, "XTR", amount, answer)) == []
    assert len(answers) == 1
    return answers[0]


def paid(
    who: Address, payload: str, charge: str, *, renewal: bool = False, expires: float = 0
) -> PaymentReceived:
    return PaymentReceived(
        who,
        payload,
        "XTR",
        50,
        charge,
        expires_at=expires or None,
        recurring=True,
        first_recurring=not renewal,
    )


def ledger(store: Store) -> list[LedgerEntry]:
    with store.unit_of_work() as s:
        return list(s.exec(select(LedgerEntry).order_by(LedgerEntry.id)))  # type: ignore[arg-type]


async def test_subscribe_answers_with_an_invoice_naming_the_tier_and_no_person(h: Harness) -> None:
    replies = await h.engine.handle(Message(tg(1), "/subscribe news"))
    invoice = replies[0].invoice
    assert invoice is not None
    assert (invoice.title, invoice.stars, invoice.period_s) == ("Daily News", 50, MONTH)
    assert "30 days" in invoice.description
    decoded = InvoicePayload.decode(invoice.payload)
    assert decoded is not None and decoded.price == 50
    assert str(tg(1).id) not in invoice.payload and str(tg(1).id) not in invoice.description


async def test_subscribe_refusals_say_why(h: Harness) -> None:
    assert "no channel" in await h.say(tg(1), "/subscribe nope")
    await h.say(OPERATOR, "/newchannel free Free Stuff")
    assert "sells no subscription" in await h.say(tg(1), "/subscribe free")
    matrix = Address("matrix", "@ann:localhost")
    answer = await h.say(matrix, "/subscribe news")
    assert f"buy an access code from {SUPPORT}, then send /redeem <code>" in answer
    h.engine.options.payments_enabled = False
    assert "Payments are off" in await h.say(tg(1), "/subscribe news")


async def test_info_has_a_subscribe_button_when_a_tier_is_on_sale(h: Harness) -> None:
    replies = await h.engine.handle(Message(tg(1), "/info news"))
    assert any(b.command == "/subscribe news" for b in replies[0].buttons)
    await h.say(OPERATOR, "/price news off")
    replies = await h.engine.handle(Message(tg(1), "/info news"))
    assert not any(b.command.startswith("/subscribe") for b in replies[0].buttons)


async def test_pre_checkout_accepts_the_price_asked_and_refuses_a_changed_one(h: Harness) -> None:
    payload = await invoice_of(h, tg(1))
    assert await pre_checkout(h, tg(1), payload) is None
    await h.say(OPERATOR, "/price news 70")
    refusal = await pre_checkout(h, tg(1), payload)
    assert refusal == "The price of Daily News changed to 70 Stars; send /subscribe news again."
    assert "not one of this bot's" in (await pre_checkout(h, tg(1), "t1.50.forged") or "")
    await h.say(OPERATOR, "/price news off")
    assert "no longer sells" in (await pre_checkout(h, tg(1), payload) or "")
    assert ledger(h.store) == []


async def test_a_payment_grants_until_the_expiration_once_and_a_renewal_extends(h: Harness) -> None:
    payload = await invoice_of(h, tg(1))
    expires = h.engine.clock() + MONTH
    first = await h.engine.handle(paid(tg(1), payload, "stxp1", expires=expires))
    assert "Thank you" in first[0].text
    assert await h.engine.handle(paid(tg(1), payload, "stxp1", expires=expires)) == []  # again: nothing
    assert await h.say(tg(1), "/following")  # they follow it now
    renewed = await h.engine.handle(paid(tg(1), payload, "stxp2", renewal=True, expires=expires + MONTH))
    assert "renewed" in renewed[0].text
    rows = ledger(h.store)
    assert [(r.kind, r.telegram_payment_charge_id) for r in rows] == [
        (LedgerKind.CHARGE.value, "stxp1"),
        (LedgerKind.RENEWAL.value, "stxp2"),
    ]
    with h.store.unit_of_work() as s:
        ent = s.exec(select(Entitlement)).one()
        assert ent.paid_until == pytest.approx(expires + MONTH)
    assert "until" in await h.say(tg(1), "/subscribe news")  # already has access: says until when


def _in_thread(engine: ChannelEngine, event: PaymentReceived, start: threading.Barrier) -> list[object]:
    start.wait()
    return list(asyncio.run(engine.handle(event)))


async def test_one_payment_seen_by_two_processes_is_granted_once(h: Harness, store_url: str) -> None:
    payload = await invoice_of(h, tg(1))
    other = ChannelEngine(Store(store_url), Sealer(b"k" * 32), operators=[OPERATOR], options=h.engine.options)
    event = paid(tg(1), payload, "stxp-race", expires=h.engine.clock() + MONTH)
    start = threading.Barrier(2)
    answers = await asyncio.gather(
        asyncio.to_thread(_in_thread, h.engine, event, start),
        asyncio.to_thread(_in_thread, other, event, start),
    )
    other.store.dispose()
    assert sorted(len(a) for a in answers) == [0, 1]  # one thank-you
    assert [r.kind for r in ledger(h.store)] == [LedgerKind.CHARGE.value]
    with h.store.unit_of_work() as s:
        assert len(s.exec(select(Entitlement)).all()) == 1


async def test_refund_by_the_owner_calls_the_platform_then_ends_access(h: Harness) -> None:
    gateway = Gateway()
    h.engine.set_stars_gateways({"telegram": gateway})
    payload = await invoice_of(h, tg(1))
    await h.engine.handle(paid(tg(1), payload, "stxp9", expires=h.engine.clock() + MONTH))
    assert "Only the owner" in await h.say(tg(2), "/refund news stxp9")
    assert "no charge nope" in await h.say(OPERATOR, "/refund news nope")
    gateway.refuse = True
    assert "nothing was changed" in await h.say(OPERATOR, "/refund news stxp9")
    assert gateway.calls == [] and len(ledger(h.store)) == 1
    gateway.refuse = False
    answer = await h.say(OPERATOR, "/refund news stxp9")
    assert "Refunded 50 Stars" in answer and "Subscribers now: 0" in answer
    assert str(tg(1).id) not in answer
    assert gateway.calls == [("refund", tg(1), "stxp9", None)]
    assert [r.kind for r in ledger(h.store)] == [LedgerKind.CHARGE.value, LedgerKind.REFUND.value]
    with h.store.unit_of_work() as s:
        assert s.exec(select(Entitlement)).all() == []
    assert "refunded already" in await h.say(OPERATOR, "/refund news stxp9")


async def test_unsubscribe_cancels_renewals_and_access_lasts(h: Harness) -> None:
    gateway = Gateway()
    h.engine.set_stars_gateways({"telegram": gateway})
    assert "no subscription" in await h.say(tg(1), "/unsubscribe news")
    payload = await invoice_of(h, tg(1))
    await h.engine.handle(paid(tg(1), payload, "stxp5", expires=h.engine.clock() + MONTH))
    answer = await h.say(tg(1), "/unsubscribe news")
    assert "will not renew" in answer and "until" in answer
    assert gateway.calls == [("cancel", tg(1), "stxp5", True)]
    with h.store.unit_of_work() as s:
        assert len(s.exec(select(Entitlement)).all()) == 1


async def test_refund_names_a_charge_of_that_channel_only(h: Harness) -> None:
    gateway = Gateway()
    h.engine.set_stars_gateways({"telegram": gateway})
    payload = await invoice_of(h, tg(1))
    await h.engine.handle(paid(tg(1), payload, "stxp7", expires=h.engine.clock() + MONTH))
    await h.say(OPERATOR, "/newchannel other Other Channel")
    assert "no charge stxp7 of other" in await h.say(OPERATOR, "/refund other stxp7")
    assert gateway.calls == [] and len(ledger(h.store)) == 1
