"""Telegram Stars for the adapter: money updates -> neutral events, an `Invoice` -> the
`createInvoiceLink` call, the gateway's calls (refund, subscription cancel, transactions) and
Telegram's `StarTransaction`s -> neutral ones (without the user); and the pre-checkout answer,
retried within Telegram's ten seconds.

Digital goods are sold in Stars only: currency `XTR`, no provider token, one price; a
subscription's period is exactly 30 days.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import (
    PaidMediaPurchased as TgPaidMediaPurchased,
)
from telegram import (
    PreCheckoutQuery,
    RefundedPayment,
    StarTransactions,
    SuccessfulPayment,
    TransactionPartnerUser,
    User,
)

from bridge.ports import (
    Address,
    Invoice,
    PaidMediaPurchased,
    PaymentReceived,
    PaymentRefunded,
    PermanentFailure,
    PreCheckout,
    RetryLater,
    StarTransaction,
)

from .render import ApiCall

STARS = "XTR"
#: Telegram drops a payment whose pre_checkout_query is not answered within 10 s: an answer that
#: meets a 429 or a network failure is tried again while it can still arrive within this time
ANSWER_WITHIN_S = 8.0
#: what the pay button under an invoice reads
PAY_LABEL = "Pay {stars} ⭐"


def _epoch(value: dtm.datetime | int | float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, dtm.datetime):
        return value.timestamp()
    return float(value)


async def _unanswerable(message: str | None) -> None:
    raise PermanentFailure("this pre-checkout cannot be answered")


def pre_checkout(query: PreCheckoutQuery, sender: Address) -> PreCheckout:
    """A pre-checkout query (the adapter attaches the answer for its id)."""
    return PreCheckout(sender, query.invoice_payload, query.currency, query.total_amount, _unanswerable)


def payment_received(payment: SuccessfulPayment, sender: Address) -> PaymentReceived:
    """A `successful_payment`: a first charge or a subscription's renewal."""
    return PaymentReceived(
        sender,
        payment.invoice_payload,
        payment.currency,
        payment.total_amount,
        payment.telegram_payment_charge_id,
        expires_at=_epoch(payment.subscription_expiration_date),
        recurring=bool(payment.is_recurring),
        first_recurring=bool(payment.is_first_recurring),
    )


def payment_refunded(refund: RefundedPayment, sender: Address) -> PaymentRefunded:
    """A `refunded_payment`."""
    return PaymentRefunded(
        sender,
        refund.invoice_payload,
        refund.currency,
        refund.total_amount,
        refund.telegram_payment_charge_id,
    )


def paid_media_purchased(purchase: TgPaidMediaPurchased, sender: Address) -> PaidMediaPurchased:
    """A `purchased_paid_media` (Telegram sends it only for a non-empty payload)."""
    return PaidMediaPurchased(sender, purchase.paid_media_payload)


def answer_call(query_id: str, refusal: str | None) -> ApiCall:
    """`answerPreCheckoutQuery`: ok, or a refusal the payer reads."""
    if refusal is None:
        return ApiCall("answerPreCheckoutQuery", {"pre_checkout_query_id": query_id, "ok": True})
    return ApiCall(
        "answerPreCheckoutQuery",
        {"pre_checkout_query_id": query_id, "ok": False, "error_message": refusal[:255] or "Refused."},
    )


def answerer(
    query_id: str, call: Callable[[ApiCall], Awaitable[Any]], *, within_s: float = ANSWER_WITHIN_S
) -> Callable[[str | None], Awaitable[None]]:
    """The `PreCheckout.answer` of one query, sending through `call`: a `RetryLater` is waited
    out (the time Telegram asks, else a short backoff) and tried again as long as the answer can
    still be in time; then the last failure is raised (the payer is not charged)."""
    clock = asyncio.get_running_loop().time
    deadline = clock() + within_s

    async def answer(refusal: str | None) -> None:
        for attempt in itertools.count():
            try:
                await call(answer_call(query_id, refusal))
                return
            except RetryLater as exc:
                wait = exc.after_s if exc.after_s is not None else min(2.0, 0.25 * 2**attempt)
                if clock() + wait > deadline:
                    raise
                await asyncio.sleep(wait)

    return answer


def invoice_link_call(invoice: Invoice) -> ApiCall:
    """`createInvoiceLink` for an invoice in Stars (a subscription when it has a period)."""
    params: dict[str, Any] = {
        "title": invoice.title,
        "description": invoice.description,
        "payload": invoice.payload,
        "currency": STARS,
        "prices": [{"label": invoice.title, "amount": invoice.stars}],
    }
    if invoice.period_s is not None:
        params["subscription_period"] = invoice.period_s
    return ApiCall("createInvoiceLink", params)


def _user_id(payer: Address) -> int:
    try:
        return int(payer.id)
    except ValueError as exc:
        raise PermanentFailure("not a Telegram user") from exc


def refund_call(payer: Address, charge_id: str) -> ApiCall:
    """`refundStarPayment`."""
    return ApiCall("refundStarPayment", {"user_id": _user_id(payer), "telegram_payment_charge_id": charge_id})


def cancel_call(payer: Address, charge_id: str, canceled: bool) -> ApiCall:
    """`editUserStarSubscription`."""
    return ApiCall(
        "editUserStarSubscription",
        {"user_id": _user_id(payer), "telegram_payment_charge_id": charge_id, "is_canceled": canceled},
    )


def transactions_call(offset: int, limit: int) -> ApiCall:
    """`getStarTransactions` (Telegram: limit 1-100)."""
    return ApiCall("getStarTransactions", {"offset": offset, "limit": max(1, min(limit, 100))})


def star_transactions(result: dict[str, Any]) -> list[StarTransaction]:
    """Telegram's `StarTransactions` as neutral entries: the payload of invoice payments and
    their refunds is kept, the user never."""
    parsed = StarTransactions.de_json(result, None)
    out = []
    for tx in parsed.transactions:
        partner = tx.source if tx.source is not None else tx.receiver
        payload = None
        if isinstance(partner, TransactionPartnerUser) and partner.transaction_type == "invoice_payment":
            payload = partner.invoice_payload or ""  # "": an invoice's, its payload not given
        out.append(
            StarTransaction(
                id=tx.id,
                amount=int(tx.amount),
                date=_epoch(tx.date) or 0.0,
                incoming=tx.source is not None,
                payload=payload,
            )
        )
    return out


def sender_of(user: User) -> Address:
    """The payer's neutral address (their private chat)."""
    return Address("telegram", str(user.id), chat=str(user.id))
