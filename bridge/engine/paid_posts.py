"""Paid posts after they went out: pay-per-post purchases, and the notice that access ended.

- `purchased`: the platform reports that someone bought a pay-per-post copy; its payload names
  the post (`cbp.<post id>`, never a person), whose `purchases` count goes up by one. Anything
  else is ignored, and nothing about the buyer is kept or logged.
- `notice_expiries`: a periodic sweep (the scheduler's, or a test) finds entitlements that
  ended more than the grace ago (Telegram's renewal arrives around the expiration date) and
  whose follower was not told; each is claimed atomically, so however many processes sweep,
  one notice is queued per ending, through the engine's notice hook. Access itself ends
  exactly at `paid_until`: planning checks it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bridge.engine.core import Actor, EngineCore
from bridge.i18n import _
from bridge.models import Follower
from bridge.ports import Address, PaidMediaPurchased, Reply
from bridge.privacy import UnsealError
from bridge.store.posts import post_of_paid_payload

log = logging.getLogger(__name__)

#: entitlements looked at per sweep (the next sweep takes the rest)
SWEEP_LIMIT = 500


def purchased(core: EngineCore, actor: Actor, event: PaidMediaPurchased) -> list[Reply]:
    """Count one purchase of a pay-per-post copy (nothing is said to the buyer)."""
    del actor  # who bought it is not kept
    post_id = post_of_paid_payload(event.payload)
    if post_id is None:
        log.info("a paid-media purchase with a payload this bot did not write was ignored")
        return []
    with core.store.unit_of_work() as s:
        counted = core.store.posts.count_purchase(s, post_id)
    if not counted:
        log.info("a paid-media purchase for post #%s (no pay-per-post) was ignored", post_id)
    return []


def expiry_text(channel_name: str, handle: str, on_sale: bool) -> str:
    """What a follower whose paid access ended is told."""
    text = _("Your access to {channel_name}'s paid posts ended.").format(channel_name=channel_name)
    if on_sale:
        return text + f" /subscribe {handle} renews it."
    return text + _(" Subscriptions are not on sale now.")


async def notice_expiries(core: EngineCore) -> int:
    """Tell each follower whose paid access ended (more than the grace ago) once; returns how
    many notices were queued here."""
    if core.hooks.notify is None:
        return 0
    cutoff = core.clock() - core.options.payments_expiry_notice_grace_s
    with core.store.unit_of_work() as s:
        due = core.store.payments.expired_unnoticed(s, cutoff, SWEEP_LIMIT)
    sent = 0
    for expired in due:
        notice = _claim(core, expired.entitlement_id, expired.follower_id, expired.channel_id, cutoff)
        if notice is None:
            continue
        address, compose = notice
        try:
            await core.tell(address, compose)
            sent += 1
        except Exception as exc:  # a notice must never break the sweep; it is recorded in the log
            log.warning("could not queue an expiry notice: %s", type(exc).__name__)
    return sent


def _claim(
    core: EngineCore, entitlement_id: int, follower_id: int, channel_id: int, cutoff: float
) -> tuple[Address, Callable[[], str]] | None:
    """Claim one ending's notice (committed before it is queued) with where and what to tell."""
    with core.store.unit_of_work() as s:
        if not core.store.payments.claim_expiry_notice(s, entitlement_id, cutoff):
            return None  # another process told them, or they renewed meanwhile
        follower = s.get(Follower, follower_id)
        channel = core.store.channels.by_id(s, channel_id)
        if follower is None or channel is None or channel.deleted_at is not None:
            return None
        try:
            address = core.sealer.unseal(
                follower.platform, follower.sealed, table="follower", row_id=follower_id
            )
        except UnsealError:
            log.warning("follower %s cannot be told that access ended: unreadable address", follower_id)
            return None
        on_sale = core.store.payments.tier_of(s, channel_id) is not None
        name, handle = channel.name, channel.handle
        return address, lambda: expiry_text(name, handle, on_sale)


__all__ = ["SWEEP_LIMIT", "expiry_text", "notice_expiries", "purchased"]
