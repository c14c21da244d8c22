"""The local Bot API server's Telegram Stars side, over real HTTP with python-telegram-bot's `Bot`:
invoices, checkout, renewals, refunds, cancellations, transactions, paid media. Every update
and result is decoded with PTB's `de_json`, and must leave nothing PTB does not know
(`api_kwargs` empty), so the shapes are Telegram's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from telegram import (
    Bot,
    InputPaidMediaPhoto,
    LabeledPrice,
    Message,
    StarTransactions,
    TelegramObject,
    Update,
)
from telegram.error import BadRequest, RetryAfter

from tests.telegram_api import FakeBotApi

pytestmark = [pytest.mark.telegram, pytest.mark.integration]

MONTH = 2592000
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (64).to_bytes(4, "big") * 2 + b"\x00" * 64


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    """PTB's Bot pointed at the local server."""
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.file_base_url) as ptb:
        yield ptb


class Updates:
    """Raw getUpdates over HTTP, each update decoded with `Update.de_json`."""

    def __init__(self, api: FakeBotApi, bot: Bot) -> None:
        self.url = f"{api.base_url}{api.token}/getUpdates"
        self.bot = bot
        self.offset = 0

    async def next(self, timeout: int = 3) -> Update:
        async with aiohttp.ClientSession() as session:
            body = {"offset": self.offset, "timeout": timeout, "limit": 1}
            async with session.post(self.url, json=body) as response:
                result = (await response.json())["result"]
        assert result, "no update came"
        self.offset = result[0]["update_id"] + 1
        update = Update.de_json(result[0], self.bot)
        assert update is not None
        assert_all_known(update)
        return update


def assert_all_known(obj: Any) -> None:
    """No field PTB does not know anywhere in a decoded object (unknown ones land in api_kwargs)."""
    if isinstance(obj, TelegramObject):
        assert obj.api_kwargs == {}, f"{type(obj).__name__} has unknown fields {obj.api_kwargs}"
        for klass in type(obj).__mro__:
            for slot in getattr(klass, "__slots__", ()):
                if slot not in ("api_kwargs", "_id_attrs", "_bot", "_frozen"):
                    assert_all_known(getattr(obj, slot, None))
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            assert_all_known(item)


@pytest.fixture
def updates(api: FakeBotApi, bot: Bot) -> Updates:
    return Updates(api, bot)


async def subscription_link(bot: Bot, stars: int = 50, payload: str = "tier:abc") -> str:
    return await bot.create_invoice_link(
        "Channel", "30 days of paid posts", payload, "XTR", [LabeledPrice("Month", stars)],
        subscription_period=MONTH,
    )  # fmt: skip


async def pay(api: FakeBotApi, bot: Bot, updates: Updates, user_id: int, link: str) -> Message:
    """The user pays, the bot answers ok; returns the decoded successful_payment message."""
    paying = asyncio.create_task(api.payments.user_pays(user_id, link))
    query = (await updates.next()).pre_checkout_query
    assert query is not None
    assert await bot.answer_pre_checkout_query(query.id, ok=True)
    outcome = await paying
    assert outcome.status == "paid" and outcome.charge is not None
    message = (await updates.next()).message
    assert message is not None and message.successful_payment is not None
    return message


async def test_create_invoice_link_remembers_the_invoice(api: FakeBotApi, bot: Bot) -> None:
    link = await subscription_link(bot, 250)
    assert link.startswith("https://t.me/$")
    invoice = api.payments.invoice(link)
    assert (invoice.payload, invoice.amount, invoice.subscription_period) == ("tier:abc", 250, MONTH)
    one_time = await bot.create_invoice_link("Post", "One post", "p", "XTR", [LabeledPrice("Post", 5)])
    assert api.payments.invoice(one_time).subscription_period is None


@pytest.mark.parametrize(
    ("currency", "prices", "period", "error"),
    [
        ("USD", [("Month", 500)], None, "Payment_provider_invalid"),
        ("XTR", [("A", 5), ("B", 5)], None, "Stars_invoice_invalid"),
        ("XTR", [("Month", 50)], 86400, "Subscription_period_invalid"),
        ("XTR", [("Month", 10001)], MONTH, "Stars_invoice_invalid"),
        ("XTR", [("Month", 0)], None, "Currency_total_amount_invalid"),
    ],
)
async def test_create_invoice_link_refuses_what_telegram_refuses(
    bot: Bot, currency: str, prices: list[tuple[str, int]], period: int | None, error: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await bot.create_invoice_link(
            "Channel", "Paid", "payload", currency, [LabeledPrice(label, amount) for label, amount in prices],
            subscription_period=period,
        )  # fmt: skip
    assert caught.value.message == error  # PTB capitalizes Telegram's "Bad Request: ..." text


async def test_a_subscription_payment_sends_pre_checkout_then_successful_payment(
    api: FakeBotApi, bot: Bot, updates: Updates
) -> None:
    alice = api.add_user("Alice").id
    link = await subscription_link(bot, 50)
    paying = asyncio.create_task(api.payments.user_pays(alice, link))
    query = (await updates.next()).pre_checkout_query
    assert query is not None
    assert (query.currency, query.total_amount, query.invoice_payload) == ("XTR", 50, "tier:abc")
    assert query.from_user.id == alice
    await query.answer(ok=True)
    outcome = await paying
    assert outcome.status == "paid" and outcome.charge is not None
    assert api.payments.checkout_answers[query.id] == {"pre_checkout_query_id": query.id, "ok": True}
    message = (await updates.next()).message
    assert message is not None and message.chat.id == alice
    payment = message.successful_payment
    assert payment is not None
    assert payment.telegram_payment_charge_id == outcome.charge.charge_id
    assert (payment.currency, payment.total_amount, payment.invoice_payload) == ("XTR", 50, "tier:abc")
    assert payment.is_recurring is True and payment.is_first_recurring is True
    assert payment.subscription_expiration_date is not None
    expires = payment.subscription_expiration_date.timestamp()
    assert abs(expires - (time.time() + MONTH)) < 5


async def test_a_refused_checkout_sends_no_payment(api: FakeBotApi, bot: Bot, updates: Updates) -> None:
    alice = api.add_user("Alice").id
    link = await subscription_link(bot)
    paying = asyncio.create_task(api.payments.user_pays(alice, link))
    query = (await updates.next()).pre_checkout_query
    assert query is not None
    with pytest.raises(BadRequest, match="Error_message_empty"):
        await bot.answer_pre_checkout_query(query.id, ok=False)
    await bot.answer_pre_checkout_query(query.id, ok=False, error_message="Sales ended")
    outcome = await paying
    assert (outcome.status, outcome.error_message, outcome.charge) == ("refused", "Sales ended", None)
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_pre_checkout_query(query.id, ok=True)
    assert api.payments.charges == {} and api.payments.transactions == []
    async with aiohttp.ClientSession() as session:
        url = f"{api.base_url}{api.token}/getUpdates"
        async with session.post(url, json={"offset": updates.offset, "timeout": 0}) as response:
            assert (await response.json())["result"] == []


async def test_an_answer_after_the_timeout_is_refused(api: FakeBotApi, bot: Bot, updates: Updates) -> None:
    alice = api.add_user("Alice").id
    api.payments.answer_timeout_s = 0.3
    link = await subscription_link(bot)
    paying = asyncio.create_task(api.payments.user_pays(alice, link))
    query = (await updates.next()).pre_checkout_query
    assert query is not None
    outcome = await paying
    assert outcome.status == "timeout"
    with pytest.raises(BadRequest, match="Query is too old and response timeout expired"):
        await bot.answer_pre_checkout_query(query.id, ok=True)
    assert api.payments.charges == {}


async def test_a_renewal_is_a_new_recurring_charge_one_period_later(
    api: FakeBotApi, bot: Bot, updates: Updates
) -> None:
    alice = api.add_user("Alice").id
    first = (await pay(api, bot, updates, alice, await subscription_link(bot))).successful_payment
    assert first is not None and first.subscription_expiration_date is not None
    renewal = api.payments.renew(first.telegram_payment_charge_id)
    message = (await updates.next()).message
    assert message is not None and message.successful_payment is not None
    second = message.successful_payment
    assert second.telegram_payment_charge_id == renewal.charge_id != first.telegram_payment_charge_id
    assert second.is_recurring is True and not second.is_first_recurring
    assert second.subscription_expiration_date is not None
    delta = second.subscription_expiration_date - first.subscription_expiration_date
    assert delta.total_seconds() == MONTH
    third = api.payments.renew(renewal.charge_id)
    assert third.expiration_date == first.subscription_expiration_date.timestamp() + 2 * MONTH


async def test_a_cancelled_subscription_is_not_renewed_until_resumed(
    api: FakeBotApi, bot: Bot, updates: Updates
) -> None:
    alice, bob = api.add_user("Alice").id, api.add_user("Bob").id
    payment = (await pay(api, bot, updates, alice, await subscription_link(bot))).successful_payment
    assert payment is not None
    charge_id = payment.telegram_payment_charge_id
    with pytest.raises(BadRequest, match="Charge_not_found"):
        await bot.edit_user_star_subscription(bob, charge_id, is_canceled=True)
    assert await bot.edit_user_star_subscription(alice, charge_id, is_canceled=True)
    with pytest.raises(ValueError, match="cancelled"):
        api.payments.renew(charge_id)
    assert await bot.edit_user_star_subscription(alice, charge_id, is_canceled=False)
    assert api.payments.renew(charge_id).is_recurring
    api.payments.user_cancels(charge_id)  # from Telegram's settings: the bot hears nothing
    with pytest.raises(ValueError, match="cancelled"):
        api.payments.renew(charge_id)


async def test_refund_star_payment_refunds_once(api: FakeBotApi, bot: Bot, updates: Updates) -> None:
    alice = api.add_user("Alice").id
    payment = (await pay(api, bot, updates, alice, await subscription_link(bot, 70))).successful_payment
    assert payment is not None
    charge_id = payment.telegram_payment_charge_id
    with pytest.raises(BadRequest, match="Charge_not_found"):
        await bot.refund_star_payment(alice, "no-such-charge")
    assert await bot.refund_star_payment(alice, charge_id)
    with pytest.raises(BadRequest, match="Charge_already_refunded"):
        await bot.refund_star_payment(alice, charge_id)
    with pytest.raises(ValueError, match="refunded"):
        api.payments.renew(charge_id)
    transactions = await bot.get_star_transactions()
    assert_all_known(transactions)
    refund = transactions.transactions[-1]
    assert (refund.id, refund.amount, refund.source) == (charge_id, 70, None)
    assert refund.receiver is not None and refund.receiver.user.id == alice  # type: ignore[attr-defined]
    assert (await bot.get_my_star_balance()).amount == 0


async def test_a_refund_by_telegram_arrives_as_refunded_payment(
    api: FakeBotApi, bot: Bot, updates: Updates
) -> None:
    alice = api.add_user("Alice").id
    payment = (await pay(api, bot, updates, alice, await subscription_link(bot, 30))).successful_payment
    assert payment is not None
    api.payments.refund_by_telegram(payment.telegram_payment_charge_id)
    message = (await updates.next()).message
    assert message is not None and message.refunded_payment is not None
    refunded = message.refunded_payment
    assert refunded.telegram_payment_charge_id == payment.telegram_payment_charge_id
    assert (refunded.currency, refunded.total_amount, refunded.invoice_payload) == ("XTR", 30, "tier:abc")
    with pytest.raises(BadRequest, match="Charge_already_refunded"):
        await bot.refund_star_payment(alice, payment.telegram_payment_charge_id)


async def test_get_star_transactions_pages_with_offset_and_limit(
    api: FakeBotApi, bot: Bot, updates: Updates
) -> None:
    alice = api.add_user("Alice").id
    link = await subscription_link(bot, 10)
    charge_ids = []
    for _ in range(5):
        payment = (await pay(api, bot, updates, alice, link)).successful_payment
        assert payment is not None
        charge_ids.append(payment.telegram_payment_charge_id)
    assert len(set(charge_ids)) == 5
    pages = []
    for offset in (0, 2, 4, 6):
        page = await bot.get_star_transactions(offset=offset, limit=2)
        assert_all_known(page)
        pages.append([tx.id for tx in page.transactions])
    assert pages == [charge_ids[0:2], charge_ids[2:4], charge_ids[4:], []]
    first = (await bot.get_star_transactions(limit=1)).transactions[0]
    assert first.amount == 10 and first.source is not None
    assert first.source.transaction_type == "invoice_payment"  # type: ignore[attr-defined]
    assert first.source.invoice_payload == "tier:abc"  # type: ignore[attr-defined]
    assert first.source.subscription_period.total_seconds() == MONTH  # type: ignore[attr-defined]
    with pytest.raises(BadRequest):
        await bot.get_star_transactions(limit=101)
    assert (await bot.get_my_star_balance()).amount == 50


async def test_planted_differences_show_in_the_transactions(
    api: FakeBotApi, bot: Bot, updates: Updates
) -> None:
    alice = api.add_user("Alice").id
    link = await subscription_link(bot, 10)
    ids = []
    for _ in range(2):
        payment = (await pay(api, bot, updates, alice, link)).successful_payment
        assert payment is not None
        ids.append(payment.telegram_payment_charge_id)
    api.payments.plant_difference("missing", charge_id=ids[0])
    api.payments.plant_difference("amount", charge_id=ids[1], amount=11)
    extra = api.payments.plant_difference("extra", amount=99, user_id=alice)
    raw = await api.dispatch("getStarTransactions", {})
    seen = StarTransactions.de_json(raw, bot)
    assert_all_known(seen)
    assert [(tx.id, tx.amount) for tx in seen.transactions] == [(ids[1], 11), (extra, 99)]


async def test_send_paid_media_and_a_purchase(api: FakeBotApi, bot: Bot, updates: Updates) -> None:
    alice, bob = api.add_user("Alice").id, api.add_user("Bob").id
    sent = await bot.send_paid_media(
        alice, 25, [InputPaidMediaPhoto(PNG)], caption="<b>Paid</b> post", parse_mode="HTML",
        payload="post:42",
    )  # fmt: skip
    assert_all_known(sent)
    assert sent.paid_media is not None and sent.paid_media.star_count == 25
    assert [media.type for media in sent.paid_media.paid_media] == ["photo"]
    assert sent.caption == "Paid post"
    assert api.bot_messages(alice)[-1].kind == "paid_media"
    tx_id = api.payments.purchase_paid_media(alice, alice, sent.message_id)
    purchased = (await updates.next()).purchased_paid_media
    assert purchased is not None
    assert (purchased.from_user.id, purchased.paid_media_payload) == (alice, "post:42")
    tx = (await bot.get_star_transactions()).transactions[-1]
    assert (tx.id, tx.amount) == (tx_id, 25)
    assert tx.source.transaction_type == "paid_media_payment"  # type: ignore[union-attr]
    assert tx.source.paid_media_payload == "post:42"  # type: ignore[union-attr]
    # without a payload the Stars move, but no update comes
    quiet = await bot.send_paid_media(bob, 5, [InputPaidMediaPhoto(PNG)])
    api.payments.purchase_paid_media(bob, bob, quiet.message_id)
    assert len(api.payments.transactions) == 2
    async with aiohttp.ClientSession() as session:
        url = f"{api.base_url}{api.token}/getUpdates"
        async with session.post(url, json={"offset": updates.offset, "timeout": 0}) as response:
            assert (await response.json())["result"] == []


async def test_send_paid_media_refuses_bad_counts(api: FakeBotApi, bot: Bot) -> None:
    alice = api.add_user("Alice").id
    sent = await bot.send_paid_media(alice, 1, [InputPaidMediaPhoto(PNG)])
    assert sent.paid_media is not None
    file_id = sent.paid_media.paid_media[0].photo[0].file_id  # type: ignore[attr-defined]
    with pytest.raises(BadRequest, match="Too many media"):
        await bot.send_paid_media(alice, 5, [InputPaidMediaPhoto(file_id)] * 11)
    with pytest.raises(BadRequest, match="Stars_amount_invalid"):
        await bot.send_paid_media(alice, 0, [InputPaidMediaPhoto(file_id)])
    with pytest.raises(BadRequest, match="Payload_too_long"):
        await bot.send_paid_media(alice, 5, [InputPaidMediaPhoto(file_id)], payload="x" * 129)
    ten = await bot.send_paid_media(alice, 5, [InputPaidMediaPhoto(file_id)] * 10)
    assert ten.paid_media is not None and len(ten.paid_media.paid_media) == 10


async def test_send_paid_media_counts_against_the_rate_limits(api: FakeBotApi, bot: Bot) -> None:
    alice = api.add_user("Alice").id
    api.enforce_limits(global_per_s=100, per_chat_per_s=1)
    await bot.send_message(alice, "one")
    await bot.send_paid_media(alice, 5, [InputPaidMediaPhoto(PNG)])
    await bot.send_paid_media(alice, 5, [InputPaidMediaPhoto(PNG)])
    with pytest.raises(RetryAfter):
        await bot.send_paid_media(alice, 5, [InputPaidMediaPhoto(PNG)])
    assert api.rate_limited_by_scope == {"chat": 1}
    # payment methods that send nothing are not flood-limited
    assert await subscription_link(bot)
