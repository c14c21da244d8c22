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
from bridge.models import LedgerKind
from bridge.ports import Reply

PAYMENTS_OFF = "Payments are off on this bot (an operator turns them on with [payments] enabled = true)."

#: how /revenue names each kind, in its order
_KIND_WORDS = {
    LedgerKind.CHARGE: "charges",
    LedgerKind.RENEWAL: "renewals",
    LedgerKind.REFUND: "refunds",
    LedgerKind.CODE: "codes",
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
            return [Reply(f"{channel.handle} has no paid tier on sale.")]
        ctx.store.channels.audit(ctx.s, cid, who, "price", "off")
        return [
            Reply(
                f"Sales of {channel.handle} ended. Current subscribers keep access until their"
                " paid period ends."
            )
        ]
    current = payments.tier_of(ctx.s, cid)
    if current is not None and current.price == cmd.stars:
        return [Reply(f"{channel.handle} already sells 30 days for {cmd.stars} Stars.")]
    tier = payments.set_price(ctx.s, cid, cmd.stars, now, ctx.options.payments_teaser)
    ctx.store.channels.audit(ctx.s, cid, who, "price", f"{tier.price} Stars / 30 days")
    changed = f" (was {current.price})" if current is not None else ""
    return [Reply(f"{channel.handle} now sells 30 days of paid posts for {tier.price} Stars{changed}.")]


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
        f"Revenue of {title}",
        f"Subscribers now: {payments.subscribers(s, channel_id, ctx.clock())}",
        f"On sale: 30 days for {tier.price} Stars" if tier is not None else "On sale: nothing",
    ]
    months: dict[str, dict[LedgerKind, tuple[int, int]]] = defaultdict(dict)
    for row in payments.revenue_by_month(s, channel_id):
        months[row.month][row.kind] = (row.count, row.stars)
    if not months:
        lines.append("No payments yet.")
    for month, kinds in sorted(months.items()):
        counts = ", ".join(f"{word} {kinds.get(kind, (0, 0))[0]}" for kind, word in _KIND_WORDS.items())
        taken = sum(kinds.get(k, (0, 0))[1] for k in (LedgerKind.CHARGE, LedgerKind.RENEWAL))
        refunded = kinds.get(LedgerKind.REFUND, (0, 0))[1]
        lines.append(f"{month}: {counts}; {taken} Stars in, {refunded} refunded, {taken - refunded} net")
    return "\n".join(lines)


def cmd_paysupport(ctx: Context, cmd: PaySupportArgs) -> list[Reply]:
    """`/paysupport`."""
    if not ctx.options.payments_enabled:
        return [Reply("This bot sells nothing: payments are off.")]
    return [Reply(f"For help with a payment, contact {ctx.options.payments_support}.")]


def cmd_teaser(ctx: Context, cmd: TeaserArgs) -> list[Reply]:
    """`/teaser <handle> <on|off>`."""
    channel = find_channel(ctx, cmd.handle)
    who = require_admin(ctx, channel)
    tier = ctx.store.payments.last_tier(ctx.s, channel.id or 0)
    if tier is None:
        raise Refusal(
            f"{channel.handle} has no paid tier: set one with /price {channel.handle} <stars> first."
        )
    tier.teaser = cmd.on
    ctx.s.add(tier)
    ctx.store.channels.audit(ctx.s, channel.id, who, "teaser", "on" if cmd.on else "off")
    if cmd.on:
        return [Reply(f"Free followers of {channel.handle} now get a one-line teaser of each paid post.")]
    return [Reply(f"Free followers of {channel.handle} no longer hear of paid posts.")]
