"""Money events from a platform: a pre-checkout to accept or refuse, a payment received (a
charge or a renewal), a refund.

- A pre-checkout is answered at once (Telegram allows 10 s) after one quick read: the payload
  names a tier of ours, its channel is live, the tier is still on sale at the price the invoice
  asked, in Stars. Anything else is refused with a sentence the payer reads.
- A payment is granted through `grant_access` (a charge, or a renewal when it is a recurring
  payment other than the first), until the platform's expiration date. Its charge id is
  recorded once: however often or wherever it arrives, it grants once and thanks once.
- A refund from the platform is recorded once (its own ledger row, same charge id) and ends
  the payer's access; the payer is told once.

What the payer is told is returned: it goes out through the reply lane like every answer.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from bridge.engine.access import InvoicePayload, grant_access
from bridge.engine.context import Context
from bridge.engine.core import Actor, EngineCore
from bridge.engine.subscriptions import record_refund, refund_notice
from bridge.i18n import _
from bridge.models import Channel, LedgerKind, Tier
from bridge.ports import PaymentReceived, PaymentRefunded, PreCheckout, Reply
from bridge.store.payments import PERIOD_S, Recorded

log = logging.getLogger(__name__)

#: Telegram Stars: the only currency digital goods are sold in
STARS = "XTR"


class _Unpayable(Exception):
    """Why an invoice cannot be paid now (the message is for the payer)."""


async def handle(
    core: EngineCore, actor: Actor, event: PreCheckout | PaymentReceived | PaymentRefunded
) -> list[Reply]:
    """Apply one money event; returns what to tell the payer."""
    if isinstance(event, PreCheckout):
        await _pre_checkout(core, event)
        return []
    if isinstance(event, PaymentReceived):
        return _payment(core, actor, event)
    return _refunded(core, event)


def _tier_and_channel(core: EngineCore, payload: str) -> tuple[Tier, Channel, int] | None:
    """The tier and channel an invoice payload of ours names, with the price it asked."""
    decoded = InvoicePayload.decode(payload)
    if decoded is None:
        return None
    with core.store.unit_of_work() as s:
        tier = core.store.payments.tier_by_id(s, decoded.tier_id)
        channel = core.store.channels.by_id(s, tier.channel_id) if tier is not None else None
        if tier is None or channel is None:
            return None
        s.expunge_all()  # plain values from here on
        return tier, channel, decoded.price


async def _pre_checkout(core: EngineCore, event: PreCheckout) -> None:
    try:
        _check_payable(core, event)
    except _Unpayable as why:
        refusal: str | None = str(why)
    else:
        refusal = None
    try:
        await event.answer(refusal)
    except Exception as exc:  # e.g. answered too late: the payer was not charged
        log.warning("answering a pre-checkout failed: %s", type(exc).__name__)


def _check_payable(core: EngineCore, event: PreCheckout) -> None:
    found = _tier_and_channel(core, event.payload)
    if found is None:
        raise _Unpayable("This invoice is not one of this bot's; nothing was charged.")
    _tier, channel, asked = found
    if channel.deleted_at is not None:
        raise _Unpayable(_(
            "The channel {handle} no longer exists; nothing was charged."
        ).format(handle=channel.handle))
    if not core.options.payments_enabled:
        raise _Unpayable("This bot no longer sells anything; nothing was charged.")
    if event.currency != STARS:
        raise _Unpayable("This bot takes Telegram Stars only; nothing was charged.")
    with core.store.unit_of_work() as s:
        current = core.store.payments.tier_of(s, channel.id or 0)
        price = current.price if current is not None else None
    if price is None:
        raise _Unpayable(_(
            "{handle} no longer sells subscriptions; nothing was charged."
        ).format(handle=channel.handle))
    if price != asked or price != event.total_amount:
        raise _Unpayable(
            _(
                "The price of {name} changed to {price} Stars; send /subscribe {handle} "
                "again."
            ).format(name=channel.name, price=price, handle=channel.handle)
        )


def _payment(core: EngineCore, actor: Actor, event: PaymentReceived) -> list[Reply]:
    found = _tier_and_channel(core, event.payload)
    if found is None or event.currency != STARS:
        log.warning("a payment arrived for an invoice this bot cannot read; it was not recorded")
        support = core.options.payments_support or _("the bot's operator")
        return [
            Reply(
                _(
                    "Your payment arrived, but this bot cannot tell what it was for. "
                    "Please contact {support}."
                ).format(support=support)
            )
        ]
    _tier, channel, _asked = found
    renewal = event.recurring and not event.first_recurring
    now = core.clock()
    until = event.expires_at if event.expires_at and event.expires_at > now else now + PERIOD_S
    kind = LedgerKind.RENEWAL if renewal else LedgerKind.CHARGE
    try:
        paid_until = _grant(core, actor, channel, until, kind, event)
    except IntegrityError:  # another process made the payer a follower meanwhile: once more
        paid_until = _grant(core, actor, channel, until, kind, event)
    if paid_until is None:
        return []  # seen before (another process, a repeated update): granted once, thanked once
    end = core.local(paid_until)
    if renewal:
        return [Reply(_(
            "Your subscription to {name} ({handle}) renewed: access until {end}."
        ).format(name=channel.name, handle=channel.handle, end=end))]
    return [
        Reply(
            _(
                "Thank you! You have access to the paid posts of {name} ({handle}) until "
                "{end}; it renews automatically (/unsubscribe {handle} stops that). Its "
                "paid posts of the last 30 days are on their way."
            ).format(name=channel.name, handle=channel.handle, end=end)
        )
    ]


def _grant(
    core: EngineCore, actor: Actor, channel: Channel, until: float, kind: LedgerKind, event: PaymentReceived
) -> float | None:
    """Grant in one transaction; when access now ends, or None when the charge was recorded
    before."""
    with core.store.unit_of_work() as s:
        live = core.store.channels.by_id(s, channel.id or 0)
        assert live is not None
        ctx = Context(core, s, actor)
        outcome = grant_access(
            ctx, live, until, kind=kind, amount=event.total_amount, charge_id=event.charge_id
        )
        if not isinstance(outcome, Recorded):
            return None
        follower = core.store.followers.by_index(s, actor.index)
        granted = core.store.payments.paid_until(s, follower.id or 0, live.id or 0) if follower else None
        return granted or until


def _refunded(core: EngineCore, event: PaymentRefunded) -> list[Reply]:
    with core.store.unit_of_work() as s:
        entry = core.store.payments.payment_of(s, event.charge_id)
        channel = core.store.channels.by_id(s, entry.channel_id) if entry is not None else None
        if channel is not None:
            s.expunge(channel)
    if channel is None:
        log.warning("a refund arrived for a charge that is not in the ledger; nothing recorded")
        return []
    if not record_refund(core, event.sender, channel, event.charge_id, event.total_amount):
        return []  # recorded before (our own /refund, or a repeated update): told once
    return [Reply(refund_notice(channel, event.total_amount))]
