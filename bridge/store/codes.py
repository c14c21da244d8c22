"""Access codes and failed redemptions (the caller's session).

A code is stored only as a digest, with its channel, its days and when it was made; a
code is claimed by one conditional UPDATE, so two processes redeeming it at once cannot both
win. Failed `/redeem` attempts are rows by the sender's blind index, so every process sees
the same count; rows older than the throttle window are deleted as new attempts come in.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session, col, select

from bridge.models import AccessCode, RedeemFailure
from bridge.outcomes import Claim


@dataclass(frozen=True)
class Failures:
    """A sender's failed redemptions within the window: how many, and the oldest's time."""

    count: int
    oldest_at: float | None


class Codes:
    """Named queries on access codes and failed redemptions."""

    def add(self, s: Session, channel_id: int, digests: list[str], days: int, now: float) -> int:
        """Store minted codes by their digests; returns how many."""
        for digest in digests:
            s.add(AccessCode(channel_id=channel_id, digest=digest, days=days, created_at=now))
        s.flush()
        return len(digests)

    def by_digest(self, s: Session, digest: str) -> AccessCode | None:
        """The code with this digest, redeemed or not."""
        return s.exec(select(AccessCode).where(AccessCode.digest == digest)).first()

    def claim(self, s: Session, digest: str, now: float) -> Claim:
        """Mark an unredeemed code redeemed: WON for exactly one caller, whatever the race."""
        result = s.connection().execute(
            text("UPDATE accesscode SET redeemed_at = :now WHERE digest = :d AND redeemed_at IS NULL"),
            {"now": now, "d": digest},
        )
        return Claim.of(result.rowcount)

    def link_ledger(self, s: Session, code_id: int, ledger_id: int) -> None:
        """Remember which ledger row records the code's redemption."""
        s.connection().execute(
            text("UPDATE accesscode SET ledger_id = :l WHERE id = :id"), {"l": ledger_id, "id": code_id}
        )

    def unredeemed(self, s: Session, channel_id: int) -> int:
        """How many of the channel's codes are still to be redeemed."""
        return int(
            s.connection()
            .execute(
                text("SELECT count(*) FROM accesscode WHERE channel_id = :c AND redeemed_at IS NULL"),
                {"c": channel_id},
            )
            .scalar_one()
        )

    # ---- failed attempts -----------------------------------------------------------------

    def failures(self, s: Session, sender_index: str, since: float) -> Failures:
        """The sender's failed attempts since `since`."""
        row = (
            s.connection()
            .execute(
                text(
                    "SELECT count(*) AS n, min(at) AS oldest FROM redeemfailure"
                    " WHERE sender_index = :i AND at > :since"
                ),
                {"i": sender_index, "since": since},
            )
            .one()
        )
        return Failures(int(row.n), float(row.oldest) if row.oldest is not None else None)

    def fail(self, s: Session, sender_index: str, now: float) -> None:
        """Record one failed attempt."""
        s.add(RedeemFailure(sender_index=sender_index, at=now))
        s.flush()

    def forget_failures_before(self, s: Session, before: float) -> int:
        """Delete failed attempts older than `before` (they no longer count); returns how many."""
        result = s.connection().execute(text("DELETE FROM redeemfailure WHERE at <= :t"), {"t": before})
        return int(result.rowcount or 0)

    def failures_of(self, s: Session, sender_index: str) -> list[RedeemFailure]:
        """Every recorded failed attempt of a sender, oldest first (for tests and audits)."""
        return list(
            s.exec(
                select(RedeemFailure)
                .where(RedeemFailure.sender_index == sender_index)
                .order_by(col(RedeemFailure.id))
            )
        )


__all__ = ["Codes", "Failures"]
