"""Subscribing with a platform's payments (Telegram Stars): `/subscribe`, `/unsubscribe`,
`/refund`.

`/subscribe` answers with an invoice (a reply's `Invoice`: the platform's adapter turns it into
a pay link) whose payload names the tier and its price, never a person. `/unsubscribe` and
`/refund` talk to the platform (its `StarsGateway`, installed by the app), so, like
`/mirror <handle> create`, they run in `with_gateway` outside one transaction: one to check,
the platform call, one to record. The platform refusing changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from bridge.commands import RefundArgs, SubscribeArgs, UnsubscribeArgs
from bridge.engine.access import InvoicePayload
from bridge.engine.context import Context, find_channel, follower_row, require_owner
from bridge.engine.core import Actor, EngineCore, Refusal
from bridge.engine.payments import PAYMENTS_OFF
from bridge.i18n import _
from bridge.models import Channel, LedgerKind
from bridge.ports import Address, DeliveryError, Invoice, Reply
from bridge.privacy import UnsealError
from bridge.store.payments import PERIOD_S, Recorded

log = logging.getLogger(__name__)

#: an invoice's title may hold at most 32 characters, its description 255 (Telegram)
_TITLE_MAX, _DESCRIPTION_MAX = 32, 255


def sells_stars(ctx: Context, platform: str) -> bool:
    """Whether people on `platform` can pay in Stars (an unknown platform cannot)."""
    try:
        return ctx.core.platforms.plugin(platform).sells_stars
    except KeyError:
        return False


def access_until(ctx: Context, channel: Channel) -> float | None:
    """When the sender's paid access to `channel` ends, if they have it now."""
    follower = ctx.store.followers.by_index(ctx.s, ctx.actor.index)
    if follower is None or follower.id is None or channel.id is None:
        return None
    until = ctx.store.payments.paid_until(ctx.s, follower.id, channel.id)
    return until if until is not None and until > ctx.clock() else None


def cmd_subscribe(ctx: Context, cmd: SubscribeArgs) -> list[Reply]:
    """`/subscribe <handle>`."""
    if not ctx.options.payments_enabled:
        raise Refusal(PAYMENTS_OFF)
    channel = find_channel(ctx, cmd.handle)
    cid = channel.id or 0
    until = access_until(ctx, channel)
    if until is not None:
        latest = ctx.store.payments.latest_payment(ctx.s, ctx.actor.index, cid)
        renews = _(" It renews automatically; /unsubscribe stops that.") if latest is not None else ""
        return [
            Reply(
                _(
                    "You already have access to the paid posts of {handle} until "
                    "{local}.{renews}"
                ).format(handle=channel.handle, local=ctx.core.local(until), renews=renews)
            )
        ]
    tier = ctx.store.payments.tier_of(ctx.s, cid)
    if tier is None or tier.id is None:
        raise Refusal(_("{handle} sells no subscription at the moment.").format(handle=channel.handle))
    platform = ctx.actor.address.platform
    if not sells_stars(ctx, platform):
        support = ctx.options.payments_support or _("the bot's operator")
        raise Refusal(
            _(
                "Payments in Stars do not work on {platform}. To get access to the paid "
                "posts of {handle}: buy an access code from {support}, then send /redeem "
                "<code>."
            ).format(platform=platform, handle=channel.handle, support=support)
        )
    invoice = Invoice(
        title=channel.name[:_TITLE_MAX],
        description=_(
                        "30 days of the paid posts of {name} ({handle}), renewed every 30 "
                        "days until you cancel."
                    ).format(name=channel.name, handle=channel.handle)[:_DESCRIPTION_MAX],
        payload=InvoicePayload(tier.id, tier.price).encode(),
        stars=tier.price,
        period_s=PERIOD_S,
    )
    return [
        Reply(
            _(
                "Subscribe to {name} ({handle}): 30 days of paid posts for {price} Stars, "
                "renewed automatically until you send /unsubscribe {handle}. You also get "
                "its paid posts of the last 30 days."
            ).format(name=channel.name, handle=channel.handle, price=tier.price),
            invoice=invoice,
        )
    ]


def cmd_unsubscribe(ctx: Context, cmd: UnsubscribeArgs) -> list[Reply]:
    """`/unsubscribe <handle>`: only its checks; `ChannelEngine.handle` applies it with
    `with_gateway`, which asks the platform in between."""
    _unsubscribe_plan(ctx, cmd)
    raise Refusal(_ASYNC_ONLY)


def cmd_refund(ctx: Context, cmd: RefundArgs) -> list[Reply]:
    """`/refund <handle> <charge-id>`: only its checks (applied with `with_gateway`)."""
    _refund_plan(ctx, cmd)
    raise Refusal(_ASYNC_ONLY)


_ASYNC_ONLY = _("This command talks to the payment platform; nothing was changed.")


class _Plan:
    """What a checked `/unsubscribe` or `/refund` asks of the platform."""

    def __init__(self, channel: Channel, payer: Address, charge_id: str, amount: int, answer: str) -> None:
        self.channel = channel
        self.payer = payer
        self.charge_id = charge_id
        self.amount = amount
        self.answer = answer


def _unsubscribe_plan(ctx: Context, cmd: UnsubscribeArgs) -> _Plan:
    channel = find_channel(ctx, cmd.handle)
    latest = ctx.store.payments.latest_payment(ctx.s, ctx.actor.index, channel.id or 0)
    until = access_until(ctx, channel)
    if latest is None or latest.telegram_payment_charge_id is None or until is None:
        raise Refusal(_("You have no subscription to {handle} to cancel.").format(handle=channel.handle))
    answer = (
        _(
            "Your subscription to {handle} is cancelled: it will not renew. You keep "
            "access to its paid posts until {local}."
        ).format(handle=channel.handle, local=ctx.core.local(until))
    )
    return _Plan(channel, ctx.actor.address, latest.telegram_payment_charge_id, latest.amount, answer)


def _refund_plan(ctx: Context, cmd: RefundArgs) -> _Plan:
    channel = find_channel(ctx, cmd.handle)
    require_owner(ctx, channel)
    entry = ctx.store.payments.payment_of(ctx.s, cmd.charge_id)
    if entry is None or entry.channel_id != channel.id or entry.id is None:
        raise Refusal(_(
            "There is no charge {charge_id} of {handle} in the ledger."
        ).format(charge_id=cmd.charge_id, handle=channel.handle))
    if ctx.store.payments.refunded(ctx.s, cmd.charge_id):
        raise Refusal(_("Charge {charge_id} was refunded already.").format(charge_id=cmd.charge_id))
    try:
        payer = ctx.sealer.unseal(entry.platform, entry.follower_sealed, table="ledger", row_id=entry.id)
    except UnsealError as exc:
        log.warning("the payer of ledger row %s cannot be read", entry.id)
        raise Refusal(
            _("The payer of that charge cannot be read (another privacy key?); nothing was changed.")
        ) from exc
    return _Plan(channel, payer, cmd.charge_id, entry.amount, "")


async def with_gateway(core: EngineCore, actor: Actor, cmd: RefundArgs | UnsubscribeArgs) -> list[Reply]:
    """`/refund` and `/unsubscribe`: check in one transaction, ask the payer's platform, and
    (for a refund, once the platform accepted) record it in another."""
    with core.store.unit_of_work() as s:
        ctx = Context(core, s, actor)
        plan = _refund_plan(ctx, cmd) if isinstance(cmd, RefundArgs) else _unsubscribe_plan(ctx, cmd)
    gateway = core.hooks.stars.get(plan.payer.platform)
    if gateway is None:
        raise Refusal(
            _(
                "The {platform} adapter that took the payment is not running; nothing was "
                "changed."
            ).format(platform=plan.payer.platform)
        )
    if isinstance(cmd, UnsubscribeArgs):
        await _ask(gateway.set_subscription_canceled(plan.payer, plan.charge_id, True), _("cancel it"))
        return [Reply(plan.answer)]
    await _ask(gateway.refund(plan.payer, plan.charge_id), _("refund it"))
    return await _record_refund(core, plan)


async def _ask(call: Awaitable[None], what: str) -> None:
    """Await a gateway call; the platform refusing becomes a refusal that changed nothing."""
    try:
        await call
    except DeliveryError as exc:
        log.warning("the platform would not %s: %s", what, type(exc).__name__)
        raise Refusal(_(
            "The payment platform would not {what} ({exc}); nothing was changed."
        ).format(what=what, exc=exc)) from exc


async def _record_refund(core: EngineCore, plan: _Plan) -> list[Reply]:
    """The refund went through: a REFUND row and the end of the payer's access; the payer is
    told (once: a `refunded_payment` that follows finds it recorded)."""
    recorded = record_refund(core, plan.payer, plan.channel, plan.charge_id, plan.amount)
    with core.store.unit_of_work() as s:
        subscribers = core.store.payments.subscribers(s, plan.channel.id or 0, core.clock())
    if recorded:
        await core.tell(plan.payer, lambda: refund_notice(plan.channel, plan.amount))
    return [
        Reply(
            _(
                "Refunded {amount} Stars of charge {charge_id}; that payer's access to "
                "{handle} ended. Subscribers now: {subscribers}."
            ).format(
                amount=plan.amount,
                charge_id=plan.charge_id,
                handle=plan.channel.handle,
                subscribers=subscribers,
            )
        )
    ]


def record_refund(core: EngineCore, payer: Address, channel: Channel, charge_id: str, amount: int) -> bool:
    """Record a refund (once per charge id) and end the payer's access; whether it was new."""
    with core.store.unit_of_work() as s:
        outcome = core.store.payments.record_charge(
            s,
            core.sealer,
            kind=LedgerKind.REFUND,
            channel_id=channel.id or 0,
            payer=payer,
            amount=amount,
            charge_id=charge_id,
            now=core.clock(),
        )
        if not isinstance(outcome, Recorded):
            return False
        follower = follower_row(core, s, core.actor(payer), create=False)
        if follower is not None and follower.id is not None:
            core.store.payments.revoke(s, follower.id, channel.id or 0)
        return True


def refund_notice(channel: Channel, amount: int) -> str:
    """What a refunded payer reads."""
    return (
        _(
            "Your payment of {amount} Stars for {name} ({handle}) was refunded; your "
            "access to its paid posts ended."
        ).format(amount=amount, name=channel.name, handle=channel.handle)
    )
