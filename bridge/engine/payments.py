"""Paid channels' commands: an admin prices a channel (`/price`), its owner reads what it
earned (`/revenue`: counts and Stars, never identities), anyone asks where to get help with a
payment (`/paysupport`).

One plain function per command, `cmd_<name>(ctx, args) -> replies`, bound to its command in
`bridge.engine.registry`. The payment settings come in through `EngineOptions`.
"""

from __future__ import annotations

from collections import defaultdict

from bridge.commands import PaySupportArgs, PriceArgs, RevenueArgs, TeaserArgs
from bridge.engine.context import Context, find_channel, require_admin, require_owner
from bridge.engine.core import Refusal
from bridge.i18n import N_, _
from bridge.models import LedgerKind
from bridge.ports import Reply

PAYMENTS_OFF = _("Payments are off on this bot (an operator turns them on with [payments] enabled = true).")

#: how /revenue names each kind, in its order
_KIND_WORDS = {
    LedgerKind.CHARGE: N_("charges"),
    LedgerKind.RENEWAL: N_("renewals"),
    LedgerKind.REFUND: N_("refunds"),
    LedgerKind.CODE: N_("codes"),
}


def cmd_price(ctx: Context, cmd: PriceArgs) -> list[Reply]:
    """`/price <handle> <stars|off>`."""
    if not ctx.options.payments_enabled:
        raise Refusal(PAYMENTS_OFF)
    channel = find_channel(ctx, cmd.handle)
    who = require_admin(ctx, channel)
    cid, now = channel.id or 0, ctx.clock()
    payments = ctx.store.payments
    if cmd.stars is None:
        if not payments.end_sales(ctx.s, cid, now):
            return [Reply(_("{handle} has no paid tier on sale.").format(handle=channel.handle))]
        ctx.store.channels.audit(ctx.s, cid, who, "price", "off")
        return [
            Reply(
                _(
                    "Sales of {handle} ended. Current subscribers keep access until their "
                    "paid period ends."
                ).format(handle=channel.handle)
            )
        ]
    current = payments.tier_of(ctx.s, cid)
    if current is not None and current.price == cmd.stars:
        return [Reply(_(
            "{handle} already sells 30 days for {stars} Stars."
        ).format(handle=channel.handle, stars=cmd.stars))]
    tier = payments.set_price(ctx.s, cid, cmd.stars, now, ctx.options.payments_teaser)
    ctx.store.channels.audit(ctx.s, cid, who, "price", f"{tier.price} Stars / 30 days")
    changed = _(" (was {price})").format(price=current.price) if current is not None else ""
    return [Reply(_(
        "{handle} now sells 30 days of paid posts for {price} Stars{changed}."
    ).format(handle=channel.handle, price=tier.price, changed=changed))]


def cmd_revenue(ctx: Context, cmd: RevenueArgs) -> list[Reply]:
    """`/revenue <handle>`."""
    channel = find_channel(ctx, cmd.handle)
    require_owner(ctx, channel)
    return [Reply(revenue_text(ctx, channel.id or 0, f"{channel.name} ({channel.handle})"))]


def revenue_text(ctx: Context, channel_id: int, title: str) -> str:
    """Subscribers now, the tier on sale, and per month (UTC) each kind's count and the Stars
    taken and refunded: counts only, never identities."""
    s, payments = ctx.s, ctx.store.payments
    tier = payments.tier_of(s, channel_id)
    lines = [
        _("Revenue of {title}").format(title=title),
        _(
            "Subscribers now: {subscribers}"
        ).format(subscribers=payments.subscribers(s, channel_id, ctx.clock())),
        _(
            "On sale: 30 days for {price} Stars"
        ).format(price=tier.price) if tier is not None else _("On sale: nothing"),
    ]
    months: dict[str, dict[LedgerKind, tuple[int, int]]] = defaultdict(dict)
    for row in payments.revenue_by_month(s, channel_id):
        months[row.month][row.kind] = (row.count, row.stars)
    if not months:
        lines.append(_("No payments yet."))
    for month, kinds in sorted(months.items()):
        counts = ", ".join(f"{_(word)} {kinds.get(kind, (0, 0))[0]}" for kind, word in _KIND_WORDS.items())
        taken = sum(kinds.get(k, (0, 0))[1] for k in (LedgerKind.CHARGE, LedgerKind.RENEWAL))
        refunded = kinds.get(LedgerKind.REFUND, (0, 0))[1]
        lines.append(_(
            "{month}: {counts}; {taken} Stars in, {refunded} refunded, {value} net"
        ).format(month=month, counts=counts, taken=taken, refunded=refunded, value=taken - refunded))
    return "\n".join(lines)


def cmd_paysupport(ctx: Context, cmd: PaySupportArgs) -> list[Reply]:
    """`/paysupport`."""
    if not ctx.options.payments_enabled:
        return [Reply(_("This bot sells nothing: payments are off."))]
    return [Reply(_(
        "For help with a payment, contact {payments_support}."
    ).format(payments_support=ctx.options.payments_support))]


def cmd_teaser(ctx: Context, cmd: TeaserArgs) -> list[Reply]:
    """`/teaser <handle> <on|off>`."""
    channel = find_channel(ctx, cmd.handle)
    who = require_admin(ctx, channel)
    tier = ctx.store.payments.last_tier(ctx.s, channel.id or 0)
    if tier is None:
        raise Refusal(
            _(
                "{handle} has no paid tier: set one with /price {handle} <stars> first."
            ).format(handle=channel.handle)
        )
    tier.teaser = cmd.on
    ctx.s.add(tier)
    ctx.store.channels.audit(ctx.s, channel.id, who, "teaser", "on" if cmd.on else "off")
    if cmd.on:
        return [Reply(_(
            "Free followers of {handle} now get a one-line teaser of each paid post."
        ).format(handle=channel.handle))]
    return [Reply(_(
        "Free followers of {handle} no longer hear of paid posts."
    ).format(handle=channel.handle))]
