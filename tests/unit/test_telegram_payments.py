"""The Telegram adapter's Stars parts, pure: money updates -> neutral events, invoices -> the
createInvoiceLink call, link buttons, Telegram's transactions without their users."""

from __future__ import annotations

from typing import Any

from telegram import Update

from adapters.base import Button, Reply
from adapters.telegram import payments, render
from adapters.telegram.adapter import ALLOWED_UPDATES
from adapters.telegram.normalize import to_inbound
from bridge.ports import Invoice, PaidMediaPurchased, PaymentReceived, PaymentRefunded, PreCheckout

USER = {"id": 424242, "is_bot": False, "first_name": "Ann"}
CHAT = {"id": 424242, "type": "private", "first_name": "Ann"}


def _message(extra: dict[str, Any]) -> Update:
    raw = {"update_id": 1, "message": {"message_id": 5, "date": 1, "chat": CHAT, "from": USER, **extra}}
    update = Update.de_json(raw, None)
    assert update is not None
    return update


def test_allowed_updates_ask_for_the_money_updates() -> None:
    assert {"pre_checkout_query", "purchased_paid_media"} <= set(ALLOWED_UPDATES)


def test_a_pre_checkout_query_becomes_a_pre_checkout() -> None:
    raw = {
        "update_id": 1,
        "pre_checkout_query": {
            "id": "q1",
            "from": USER,
            "currency": "XTR",
            "total_amount": 50,
            "invoice_payload": "cb1.t1.p50.0011aabb",
        },
    }
    event = to_inbound(Update.de_json(raw, None))  # type: ignore[arg-type]
    assert isinstance(event, PreCheckout)
    assert (event.sender.id, event.payload, event.currency, event.total_amount) == (
        "424242",
        "cb1.t1.p50.0011aabb",
        "XTR",
        50,
    )


def test_a_successful_payment_becomes_a_payment_with_its_expiry_and_kind() -> None:
    payment = {
        "currency": "XTR",
        "total_amount": 50,
        "invoice_payload": "cb1.t1.p50.0011aabb",
        "telegram_payment_charge_id": "stxp1",
        "provider_payment_charge_id": "",
        "subscription_expiration_date": 1_900_000_000,
        "is_recurring": True,
        "is_first_recurring": True,
    }
    event = to_inbound(_message({"successful_payment": payment}))
    assert isinstance(event, PaymentReceived)
    assert (event.charge_id, event.expires_at, event.recurring, event.first_recurring) == (
        "stxp1",
        1_900_000_000.0,
        True,
        True,
    )
    del payment["is_first_recurring"]
    renewal = to_inbound(_message({"successful_payment": payment}))
    assert isinstance(renewal, PaymentReceived) and renewal.recurring and not renewal.first_recurring


def test_a_refund_and_a_paid_media_purchase_become_their_events() -> None:
    refund = {
        "currency": "XTR",
        "total_amount": 50,
        "invoice_payload": "p",
        "telegram_payment_charge_id": "stxp1",
    }
    event = to_inbound(_message({"refunded_payment": refund}))
    assert isinstance(event, PaymentRefunded) and event.charge_id == "stxp1"
    raw = {"update_id": 2, "purchased_paid_media": {"from": USER, "paid_media_payload": "post:7"}}
    bought = to_inbound(Update.de_json(raw, None))  # type: ignore[arg-type]
    assert isinstance(bought, PaidMediaPurchased) and bought.payload == "post:7"


def test_an_invoice_is_a_stars_subscription_link() -> None:
    call = payments.invoice_link_call(Invoice("Daily News", "30 days", "cb1.t1.p50.00", 50, 2592000))
    assert call.method == "createInvoiceLink"
    assert call.params["currency"] == "XTR" and "provider_token" not in call.params
    assert call.params["prices"] == [{"label": "Daily News", "amount": 50}]
    assert call.params["subscription_period"] == 2592000


def test_link_buttons_open_their_url_and_others_send_their_command() -> None:
    [call] = render.render_reply(
        "1", Reply("hi", buttons=(Button("Pay", "", url="https://t.me/$x"), Button("Info", "/info news")))
    )
    assert call.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Pay", "url": "https://t.me/$x"}],
            [{"text": "Info", "callback_data": "/info news"}],
        ]
    }


def test_transactions_keep_payloads_and_drop_users() -> None:
    result = {
        "transactions": [
            {
                "id": "stxp1",
                "amount": 50,
                "date": 1_800_000_000,
                "source": {
                    "type": "user",
                    "transaction_type": "invoice_payment",
                    "user": USER,
                    "invoice_payload": "cb1.t1.p50.00",
                },
            },
            {
                "id": "stxp1",
                "amount": 50,
                "date": 1_800_000_100,
                "receiver": {"type": "user", "transaction_type": "invoice_payment", "user": USER},
            },
        ]
    }
    first, second = payments.star_transactions(result)
    assert (first.id, first.amount, first.incoming, first.payload) == ("stxp1", 50, True, "cb1.t1.p50.00")
    assert not second.incoming and second.payload == ""  # an invoice's refund, payload or not
    assert "424242" not in repr((first, second))
