"""Paid access, granted one way whatever paid for it: a Telegram charge or renewal, an access
code, the console's `:pay`.

`grant_access` makes the payer a follower of the channel (a subscriber who did not follow it
now does), records the money event in the ledger with the payer sealed, extends their access,
and plans their back catalogue: the channel's paid posts of the last 30 days they have no copy
of, paced like every copy. A charge id recorded before changes nothing (`AlreadyRecorded`), so
however many processes see one payment, it is granted once.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from bridge.engine.context import Context, follower_row
from bridge.models import Channel, LedgerKind
from bridge.store.payments import PERIOD_S, AlreadyRecorded, Recorded


def grant_access(
    ctx: Context,
    channel: Channel,
    until: float,
    *,
    kind: LedgerKind,
    amount: int,
    charge_id: str | None,
) -> Recorded | AlreadyRecorded:
    """Give the sender paid access to `channel` until `until` (never shortened), recorded as
    one ledger row of `kind`; in the command's transaction."""
    s, now = ctx.s, ctx.clock()
    assert channel.id is not None
    follower = follower_row(ctx.core, s, ctx.actor, create=True)
    assert follower is not None and follower.id is not None
    ctx.store.followers.subscribe(s, follower, channel.id, now)
    outcome = ctx.store.payments.record_charge(
        s,
        ctx.sealer,
        kind=kind,
        channel_id=channel.id,
        payer=ctx.actor.address,
        amount=amount,
        charge_id=charge_id,
        now=now,
        grant=(follower.id, until),
    )
    caught_up = isinstance(outcome, Recorded) and ctx.store.payments.plan_catch_up(
        s, follower.id, channel.id, now - PERIOD_S, now
    )
    if caught_up:
        ctx.core.wake_after_commit = True
    return outcome


#: an invoice's payload: version, tier id, price, a nonce; never a person (Telegram: 1-128 bytes)
_PAYLOAD_RE = re.compile(r"cb1\.t([0-9]{1,18})\.p([0-9]{1,5})\.[0-9a-f]{8}")


@dataclass(frozen=True)
class InvoicePayload:
    """What an invoice's payload says: the tier sold and the price asked."""

    tier_id: int
    price: int

    def encode(self) -> str:
        """The payload text, with a nonce so two invoices never look alike."""
        return f"cb1.t{self.tier_id}.p{self.price}.{secrets.token_hex(4)}"

    @classmethod
    def decode(cls, payload: str) -> InvoicePayload | None:
        """The tier and price of a payload this bot wrote, or None for anything else."""
        m = _PAYLOAD_RE.fullmatch(payload)
        return cls(int(m.group(1)), int(m.group(2))) if m else None


__all__ = ["InvoicePayload", "grant_access"]
