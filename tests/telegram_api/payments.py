"""Telegram Stars payments for the local Bot API server: invoices, checkout, charges, refunds.

The Bot API side (`createInvoiceLink`, `answerPreCheckoutQuery`, `refundStarPayment`,
`editUserStarSubscription`, `getStarTransactions`, `getMyStarBalance`, `sendPaidMedia`) enforces
what Telegram enforces for digital goods: currency `XTR` only, no provider token, exactly one
price, subscriptions of exactly 30 days (2592000 s) for at most 10,000 Stars, a pre-checkout
answer within `answer_timeout_s` (Telegram: 10 s), refunds once per charge.

The control side (`FakeBotApi.payments`) plays the users and Telegram itself: `user_pays` (a
`pre_checkout_query`, then, when the bot says ok, a `successful_payment` message), `renew`,
`user_cancels` (silent, as on Telegram), `refund_by_telegram` (a `refunded_payment` message),
`purchase_paid_media` (a `purchased_paid_media` update), and `plant_difference` to make
Telegram's transaction list disagree with what the bot saw (for reconcile tests).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .state import JSON, ChatMessage, StoredFile, _photo_size, _video

if TYPE_CHECKING:
    from .server import FakeBotApi

#: the only subscription period Telegram accepts (30 days)
SUBSCRIPTION_PERIOD_S = 2592000
#: the highest price of a subscription, in Stars
MAX_SUBSCRIPTION_STARS = 10000
#: the highest star_count of paid media
MAX_PAID_MEDIA_STARS = 10000
_QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"


def _bad(description: str) -> Exception:
    from .server import ApiError

    return ApiError(400, f"Bad Request: {description}")


def _now() -> int:
    return int(time.time())


def _json_param(params: JSON, key: str) -> Any:
    value = params.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _bad(f"can't parse {key} JSON object") from exc
    return value


@dataclass
class Invoice:
    """An invoice link the bot created."""

    slug: str
    title: str
    description: str
    payload: str
    currency: str
    amount: int
    #: seconds (2592000) for a subscription, None for a one-time payment
    subscription_period: int | None

    @property
    def link(self) -> str:
        """The link Telegram returns (`https://t.me/$...`)."""
        return f"https://t.me/${self.slug}"


@dataclass
class Charge:
    """One successful payment: the first of a subscription, a renewal, or a one-time one."""

    charge_id: str
    user_id: int
    invoice: Invoice
    amount: int
    date: int
    #: end of the paid period (subscriptions only)
    expiration_date: int | None = None
    is_recurring: bool = False
    is_first_recurring: bool = False
    refunded: bool = False
    #: the user's subscription this charge belongs to is cancelled (no more renewals)
    canceled: bool = False


@dataclass
class StarTx:
    """A record in the bot's Stars transaction list (`StarTransaction`)."""

    id: str
    amount: int
    date: int
    #: "source" for money in (payments), "receiver" for money out (refunds)
    direction: str
    partner: JSON

    def to_json(self) -> JSON:
        """The `StarTransaction` object."""
        return {"id": self.id, "amount": self.amount, "date": self.date, self.direction: self.partner}


@dataclass
class CheckoutOutcome:
    """What became of a simulated payment."""

    #: "paid", "refused" (the bot answered ok=false) or "timeout" (no answer in time)
    status: str
    query_id: str
    error_message: str | None = None
    charge: Charge | None = None


@dataclass
class _PendingQuery:
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    answer: JSON | None = None
    expired: bool = False


class Payments:
    """The payment state of one `FakeBotApi` and its control API (reach it as `api.payments`)."""

    def __init__(self, api: FakeBotApi) -> None:
        self._api = api
        #: seconds the bot has to answer a pre_checkout_query (Telegram: 10)
        self.answer_timeout_s: float = 10.0
        #: slug -> invoice, in creation order
        self.invoices: dict[str, Invoice] = {}
        #: charge id -> charge, in order
        self.charges: dict[str, Charge] = {}
        #: Telegram's transaction list, chronological (what getStarTransactions pages through)
        self.transactions: list[StarTx] = []
        #: query id -> the answerPreCheckoutQuery params (None while unanswered)
        self.checkout_answers: dict[str, JSON | None] = {}
        self._pending: dict[str, _PendingQuery] = {}
        #: (chat id, message id) -> the payload of paid media the bot sent
        self._media_payloads: dict[tuple[int, int], str] = {}
        self._ids = itertools.count(1)

    def methods(self) -> dict[str, Any]:
        """The Bot API methods this part serves, by name."""
        return {
            "createInvoiceLink": self._create_invoice_link,
            "answerPreCheckoutQuery": self._answer_pre_checkout_query,
            "refundStarPayment": self._refund_star_payment,
            "editUserStarSubscription": self._edit_user_star_subscription,
            "getStarTransactions": self._get_star_transactions,
            "getMyStarBalance": self._get_my_star_balance,
            "sendPaidMedia": self._send_paid_media,
        }

    # ------------------------------------------------------------------ control

    def invoice(self, link: str) -> Invoice:
        """The invoice behind a link the bot created (KeyError when unknown)."""
        return self.invoices[link.removeprefix("https://t.me/$")]

    async def user_pays(self, user_id: int, link: str, *, timeout: float | None = None) -> CheckoutOutcome:
        """The user pays an invoice link: a `pre_checkout_query` update, then the bot's answer
        is awaited (`timeout`, default `answer_timeout_s`; a later answer is refused like
        Telegram does); on ok a `successful_payment` message arrives in the user's chat."""
        invoice = self.invoice(link)
        user = self._api.users[user_id]
        query_id = str(8_000_000_000_000 + next(self._ids))
        pending = self._pending[query_id] = _PendingQuery()
        self.checkout_answers[query_id] = None
        self._api.push_update(
            "pre_checkout_query",
            {
                "id": query_id,
                "from": user.to_json(),
                "currency": invoice.currency,
                "total_amount": invoice.amount,
                "invoice_payload": invoice.payload,
            },
        )
        wait = self.answer_timeout_s if timeout is None else timeout
        try:
            await asyncio.wait_for(pending.answered.wait(), wait)
        except TimeoutError:
            pending.expired = True
            return CheckoutOutcome("timeout", query_id)
        answer = pending.answer or {}
        if not answer.get("ok"):
            return CheckoutOutcome("refused", query_id, error_message=answer.get("error_message"))
        expiration = _now() + invoice.subscription_period if invoice.subscription_period else None
        charge = self._charge(user_id, invoice, expiration, recurring=False)
        return CheckoutOutcome("paid", query_id, charge=charge)

    def renew(self, charge_id: str, *, expiration_date: int | None = None) -> Charge:
        """Telegram renews the subscription that `charge_id` started or last renewed: a new
        charge (new id, `is_recurring`) with the expiration one period later (or the given one).
        Refused (ValueError) for a one-time, refunded or cancelled subscription."""
        previous = self.charges[charge_id]
        period = previous.invoice.subscription_period
        if period is None or previous.expiration_date is None:
            raise ValueError("not a subscription")
        if previous.canceled:
            raise ValueError("the subscription was cancelled")
        if previous.refunded:
            raise ValueError("the charge was refunded")
        expiration = expiration_date or previous.expiration_date + period
        return self._charge(previous.user_id, previous.invoice, expiration, recurring=True)

    def user_cancels(self, charge_id: str, *, canceled: bool = True) -> None:
        """The user cancels (or resumes) the subscription in Telegram's own settings: no update
        reaches the bot; `renew` is refused from then on, so access simply runs out."""
        charge = self.charges[charge_id]
        if charge.invoice.subscription_period is None:
            raise ValueError("not a subscription")
        self._set_canceled(charge, canceled)

    def refund_by_telegram(self, charge_id: str) -> Charge:
        """Telegram refunds a charge on its own (e.g. a dispute): a `refunded_payment` message
        in the user's chat and a refund transaction."""
        charge = self.charges[charge_id]
        if charge.refunded:
            raise ValueError("already refunded")
        self._refund(charge)
        self._service_message(
            charge.user_id,
            {
                "refunded_payment": {
                    "currency": charge.invoice.currency,
                    "total_amount": charge.amount,
                    "invoice_payload": charge.invoice.payload,
                    "telegram_payment_charge_id": charge.charge_id,
                }
            },
        )
        return charge

    def purchase_paid_media(self, user_id: int, chat_id: int, message_id: int) -> str | None:
        """The user buys paid media the bot sent in `chat_id`. Stars move (a transaction) in any
        case; the `purchased_paid_media` update comes only for a non-empty payload outside
        channels, like on Telegram. Returns the transaction id."""
        msg = self._api.message(chat_id, message_id)
        info = msg.extra.get("paid_media")
        if msg.kind != "paid_media" or info is None:
            raise ValueError("not a paid media message")
        user = self._api.users[user_id]
        payload = self._media_payloads.get((chat_id, message_id), "")
        tx_id = f"pm{next(self._ids):08d}"
        partner: JSON = {
            "type": "user",
            "transaction_type": "paid_media_payment",
            "user": user.to_json(),
            "paid_media": info["paid_media"],
        }
        if payload:
            partner["paid_media_payload"] = payload
        self.transactions.append(StarTx(tx_id, int(info["star_count"]), _now(), "source", partner))
        if payload and msg.chat.get("type") != "channel":
            self._api.push_update(
                "purchased_paid_media", {"from": user.to_json(), "paid_media_payload": payload}
            )
        return tx_id

    def plant_difference(
        self,
        kind: str,
        *,
        charge_id: str | None = None,
        amount: int | None = None,
        user_id: int | None = None,
    ) -> str:
        """Make Telegram's transaction list disagree with what the bot was told; returns the
        transaction id concerned.

        - "missing": drop the transaction of `charge_id` (the bot has it, Telegram does not);
        - "extra": add a payment of `amount` Stars from `user_id` the bot never heard of;
        - "amount": change the amount of the transaction of `charge_id` to `amount`.
        """
        if kind == "extra":
            if amount is None or user_id is None:
                raise ValueError("extra needs amount and user_id")
            tx_id = f"planted{next(self._ids):06d}"
            partner = {
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": self._api.users[user_id].to_json(),
                "invoice_payload": "planted",
            }
            self.transactions.append(StarTx(tx_id, amount, _now(), "source", partner))
            return tx_id
        matching = [tx for tx in self.transactions if tx.id == charge_id and tx.direction == "source"]
        if not matching:
            raise KeyError(charge_id)
        if kind == "missing":
            self.transactions.remove(matching[0])
        elif kind == "amount":
            if amount is None:
                raise ValueError("amount needs amount")
            matching[0].amount = amount
        else:
            raise ValueError(f"unknown difference {kind!r}")
        return matching[0].id

    # ------------------------------------------------------------------ Bot API methods

    async def _create_invoice_link(self, params: JSON, files: dict[str, bytes]) -> str:
        title = str(params.get("title") or "")
        description = str(params.get("description") or "")
        payload = str(params.get("payload") or "")
        if not 1 <= len(title) <= 32:
            raise _bad("INVOICE_TITLE_INVALID" if title else "INVOICE_TITLE_EMPTY")
        if not 1 <= len(description) <= 255:
            raise _bad("INVOICE_DESCRIPTION_INVALID" if description else "INVOICE_DESCRIPTION_EMPTY")
        if not 1 <= len(payload.encode()) <= 128:
            raise _bad("INVOICE_PAYLOAD_INVALID")
        currency = str(params.get("currency") or "")
        if currency != "XTR" or params.get("provider_token"):
            # digital goods: Stars only, and Stars invoices take no provider token
            raise _bad("PAYMENT_PROVIDER_INVALID" if currency != "XTR" else "STARS_INVOICE_INVALID")
        prices = _json_param(params, "prices")
        if not isinstance(prices, list) or not prices:
            raise _bad('field "prices" must be an Array')
        if len(prices) != 1:
            raise _bad("STARS_INVOICE_INVALID")
        amount = prices[0].get("amount") if isinstance(prices[0], dict) else None
        if not isinstance(amount, int) or amount < 1:
            raise _bad("CURRENCY_TOTAL_AMOUNT_INVALID")
        period = params.get("subscription_period")
        if period is not None:
            if period != SUBSCRIPTION_PERIOD_S:
                raise _bad("SUBSCRIPTION_PERIOD_INVALID")
            if amount > MAX_SUBSCRIPTION_STARS:
                raise _bad("STARS_INVOICE_INVALID")
        serial = next(self._ids)
        slug = f"inv{serial:04d}" + hashlib.sha256(f"{serial}:{payload}".encode()).hexdigest()[:12]
        invoice = Invoice(slug, title, description, payload, currency, amount, period)
        self.invoices[slug] = invoice
        return invoice.link

    async def _answer_pre_checkout_query(self, params: JSON, files: dict[str, bytes]) -> bool:
        query_id = str(params.get("pre_checkout_query_id") or "")
        pending = self._pending.get(query_id)
        if pending is None or pending.expired or pending.answer is not None:
            raise _bad(_QUERY_TOO_OLD)
        ok = params.get("ok")
        if not isinstance(ok, bool):
            raise _bad('field "ok" must be of type Boolean')
        if not ok and not str(params.get("error_message") or "").strip():
            raise _bad("ERROR_MESSAGE_EMPTY")
        pending.answer = dict(params)
        self.checkout_answers[query_id] = dict(params)
        pending.answered.set()
        return True

    async def _refund_star_payment(self, params: JSON, files: dict[str, bytes]) -> bool:
        charge = self._user_charge(params)
        if charge.refunded:
            raise _bad("CHARGE_ALREADY_REFUNDED")
        self._refund(charge)
        return True

    async def _edit_user_star_subscription(self, params: JSON, files: dict[str, bytes]) -> bool:
        charge = self._user_charge(params)
        if charge.invoice.subscription_period is None:
            raise _bad("SUBSCRIPTION_ID_INVALID")
        canceled = params.get("is_canceled")
        if not isinstance(canceled, bool):
            raise _bad('field "is_canceled" must be of type Boolean')
        self._set_canceled(charge, canceled)
        return True

    async def _get_star_transactions(self, params: JSON, files: dict[str, bytes]) -> JSON:
        offset = params.get("offset", 0)
        limit = params.get("limit", 100)
        if not isinstance(offset, int) or offset < 0:
            raise _bad("offset must be non-negative")
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise _bad("limit must be between 1 and 100")
        return {"transactions": [tx.to_json() for tx in self.transactions[offset : offset + limit]]}

    async def _get_my_star_balance(self, params: JSON, files: dict[str, bytes]) -> JSON:
        balance = sum(tx.amount if tx.direction == "source" else -tx.amount for tx in self.transactions)
        return {"amount": balance}

    async def _send_paid_media(self, params: JSON, files: dict[str, bytes]) -> JSON:
        api = self._api
        chat = api._chat_for_send(params)
        star_count = params.get("star_count")
        if not isinstance(star_count, int) or not 1 <= star_count <= MAX_PAID_MEDIA_STARS:
            raise _bad("STARS_AMOUNT_INVALID")
        media = _json_param(params, "media")
        if not isinstance(media, list) or not media:
            raise _bad("media must be an Array of InputPaidMedia")
        if len(media) > 10:
            raise _bad("too many media in the message")
        payload = str(params.get("payload") or "")
        if len(payload.encode()) > 128:
            raise _bad("PAYLOAD_TOO_LONG")
        caption = params.get("caption")
        plain = None
        if caption:
            from .server import _parse_caption

            plain = _parse_caption(caption, params.get("parse_mode"))
        items = [self._paid_item(item, files) for item in media]
        msg = api._new_bot_message(chat, "paid_media", params)
        msg.caption, msg.source, msg.parse_mode = plain, caption, params.get("parse_mode")
        msg.extra["paid_media"] = {"star_count": star_count, "paid_media": items}
        self._media_payloads[(msg.chat_id, msg.message_id)] = payload
        return msg.to_json()

    # ------------------------------------------------------------------ internals

    def _paid_item(self, item: Any, files: dict[str, bytes]) -> JSON:
        if not isinstance(item, dict) or item.get("type") not in ("photo", "video"):
            raise _bad("unsupported paid media type")
        kind, ref = str(item["type"]), str(item.get("media") or "")
        f: StoredFile | None
        if ref.startswith("attach://"):
            data = files.get(ref.removeprefix("attach://"))
            if data is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            f = self._api._store_file(kind, data, mime_type="image/jpeg" if kind == "photo" else "video/mp4")
            if kind == "video":
                f.width, f.height = int(item.get("width") or 640), int(item.get("height") or 360)
                f.duration = int(item.get("duration") or 0)
            self._api.uploads.append(f)
        else:
            f = self._api.files.get(ref)
            if f is None or ref.startswith(("http://", "https://")):
                raise _bad("wrong file identifier/HTTP URL specified")
            if f.kind != kind:
                raise _bad(f"can't use file of type {f.kind.title()} as {kind.title()}")
        if kind == "photo":
            return {"type": "photo", "photo": [_photo_size(f)]}
        return {"type": "video", "video": _video(f)}

    def _set_canceled(self, charge: Charge, canceled: bool) -> None:
        """Cancel or resume the subscription: every charge of that user for that invoice."""
        for other in self.charges.values():
            if other.user_id == charge.user_id and other.invoice is charge.invoice:
                other.canceled = canceled

    def _user_charge(self, params: JSON) -> Charge:
        charge = self.charges.get(str(params.get("telegram_payment_charge_id") or ""))
        user_id = params.get("user_id")
        if user_id not in self._api.users:
            raise _bad("USER_ID_INVALID")
        if charge is None or charge.user_id != user_id:
            raise _bad("CHARGE_NOT_FOUND")
        return charge

    def _charge(self, user_id: int, invoice: Invoice, expiration: int | None, *, recurring: bool) -> Charge:
        serial = next(self._ids)
        digest = hashlib.sha256(f"{user_id}:{invoice.slug}:{serial}".encode()).hexdigest()[:20]
        charge_id = f"stxp{serial:06d}{digest}"
        subscription = invoice.subscription_period is not None
        charge = Charge(
            charge_id, user_id, invoice, invoice.amount, _now(), expiration,
            is_recurring=subscription, is_first_recurring=subscription and not recurring,
        )  # fmt: skip
        self.charges[charge_id] = charge
        partner: JSON = {
            "type": "user",
            "transaction_type": "invoice_payment",
            "user": self._api.users[user_id].to_json(),
            "invoice_payload": invoice.payload,
        }
        if invoice.subscription_period is not None:
            partner["subscription_period"] = invoice.subscription_period
        self.transactions.append(StarTx(charge_id, charge.amount, charge.date, "source", partner))
        payment: JSON = {
            "currency": invoice.currency,
            "total_amount": invoice.amount,
            "invoice_payload": invoice.payload,
            "telegram_payment_charge_id": charge_id,
            "provider_payment_charge_id": "",
        }
        if subscription:
            payment["subscription_expiration_date"] = expiration
            payment["is_recurring"] = True
            if not recurring:
                payment["is_first_recurring"] = True
        self._service_message(user_id, {"successful_payment": payment})
        return charge

    def _refund(self, charge: Charge) -> None:
        charge.refunded = True
        partner: JSON = {
            "type": "user",
            "transaction_type": "invoice_payment",
            "user": self._api.users[charge.user_id].to_json(),
            "invoice_payload": charge.invoice.payload,
        }
        self.transactions.append(StarTx(charge.charge_id, charge.amount, _now(), "receiver", partner))

    def _service_message(self, user_id: int, extra: JSON) -> None:
        api = self._api
        user = api.users[user_id]
        msg = ChatMessage(
            api._new_message_id(user_id), user.chat_json(), user.to_json(), _now(), "service", extra=extra
        )
        api._chats[user_id][msg.message_id] = msg
        api.push_update("message", msg.to_json())
