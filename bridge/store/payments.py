"""Paid channels: tiers, entitlements and the ledger of money events (the caller's session).

The ledger holds no identity in clear: the payer's address is sealed to the ledger row and
found through its keyed blind index. A Telegram charge id is unique, so however many processes
see one payment, exactly one records it (`record_charge` -> `Recorded`) and grants access; the
others get `AlreadyRecorded`. Ledger kinds are `LedgerKind` values, bound in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bridge.models import (
    Entitlement,
    LedgerEntry,
    LedgerKind,
    Tier,
)
from bridge.ports import Address
from bridge.privacy import Sealer
from bridge.store.copies import copy_params, plan_copies

#: a tier's period: 30 days (Telegram's only subscription period)
PERIOD_S = 30 * 24 * 3600


@dataclass(frozen=True)
class Recorded:
    """The money event was recorded now (and access granted, when asked)."""

    entry_id: int


@dataclass(frozen=True)
class AlreadyRecorded:
    """A money event with this charge id was recorded before: nothing changed."""

    charge_id: str


@dataclass(frozen=True)
class RevenueMonth:
    """Money events of one kind in one month (UTC): counts and Stars, never identities."""

    month: str  #: "YYYY-MM"
    kind: LedgerKind
    count: int
    stars: int

    @classmethod
    def from_row(cls, r: Any) -> RevenueMonth:
        """From a row of `revenue_by_month`."""
        return cls(str(r.month), LedgerKind(r.kind), int(r.n), int(r.stars or 0))


@dataclass(frozen=True)
class Expired:
    """An entitlement that ended and whose follower was not told yet (ids only)."""

    entitlement_id: int
    follower_id: int
    channel_id: int


@dataclass(frozen=True)
class LedgerCharge:
    """A money event with a charge id, as reconciliation compares it (no payer)."""

    charge_id: str
    kind: LedgerKind
    amount: int
    created_at: float
    handle: str  #: the channel's

    @classmethod
    def from_row(cls, r: Any) -> LedgerCharge:
        """From a row of `charges_on`."""
        return cls(str(r.charge_id), LedgerKind(r.kind), int(r.amount), float(r.created_at), str(r.handle))


class Payments:
    """Named queries on tiers, entitlements and the ledger."""

    def __init__(self, is_postgres: bool) -> None:
        self._month = (
            "to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM')"
            if is_postgres
            else "strftime('%Y-%m', created_at, 'unixepoch')"
        )

    # ---- tiers ---------------------------------------------------------------------------

    def tier_of(self, s: Session, channel_id: int) -> Tier | None:
        """The channel's tier on sale, if any."""
        return s.exec(select(Tier).where(Tier.channel_id == channel_id, col(Tier.on_sale).is_(True))).first()

    def tier_by_id(self, s: Session, tier_id: int) -> Tier | None:
        """A tier by id, on sale or ended (what an invoice's payload names)."""
        return s.get(Tier, tier_id)

    def last_tier(self, s: Session, channel_id: int) -> Tier | None:
        """The channel's latest tier, on sale or ended."""
        return s.exec(select(Tier).where(Tier.channel_id == channel_id).order_by(col(Tier.id).desc())).first()

    def set_price(self, s: Session, channel_id: int, price: int, now: float, teaser: bool) -> Tier:
        """Put a 30-day tier at `price` Stars on sale, ending the one on sale (its teaser
        setting carries over; `teaser` is for a channel's first tier)."""
        previous = self.last_tier(s, channel_id)
        self.end_sales(s, channel_id, now)
        tier = Tier(
            channel_id=channel_id,
            price=price,
            period_s=PERIOD_S,
            on_sale=True,
            teaser=previous.teaser if previous is not None else teaser,
            created_at=now,
        )
        s.add(tier)
        s.flush()
        return tier

    def end_sales(self, s: Session, channel_id: int, now: float) -> bool:
        """End the tier on sale (entitlements stay until they end); whether there was one."""
        result = s.connection().execute(
            text("UPDATE tier SET on_sale = :no, ended_at = :now WHERE channel_id = :c AND on_sale = :yes"),
            {"c": channel_id, "now": now, "yes": True, "no": False},
        )
        return bool(result.rowcount)

    # ---- entitlements --------------------------------------------------------------------

    def grant(self, s: Session, follower_id: int, channel_id: int, until: float) -> float:
        """Access to the channel until `until`, or longer if already granted (never shortened);
        returns the resulting end. Safe against a concurrent grant of the same pair."""
        extend = text(
            "UPDATE entitlement SET paid_until = CASE WHEN paid_until < :u THEN :u ELSE paid_until END,"
            " expiry_noticed = CASE WHEN paid_until < :u THEN :no ELSE expiry_noticed END"
            " WHERE follower_id = :f AND channel_id = :c RETURNING paid_until"
        )
        params = {"f": follower_id, "c": channel_id, "u": until, "no": False}
        row = s.connection().execute(extend, params).first()
        if row is not None:
            return float(row.paid_until)
        try:
            with s.begin_nested():
                s.add(Entitlement(follower_id=follower_id, channel_id=channel_id, paid_until=until))
        except IntegrityError:  # another process granted it meanwhile: extend theirs
            return float(s.connection().execute(extend, params).scalar_one())
        return until

    def revoke(self, s: Session, follower_id: int, channel_id: int) -> bool:
        """End access now (a refund); whether there was any."""
        result = s.connection().execute(
            text("DELETE FROM entitlement WHERE follower_id = :f AND channel_id = :c"),
            {"f": follower_id, "c": channel_id},
        )
        return bool(result.rowcount)

    def paid_until(self, s: Session, follower_id: int, channel_id: int) -> float | None:
        """When the follower's access to the channel ends (None: never granted)."""
        return s.exec(
            select(Entitlement.paid_until).where(
                Entitlement.follower_id == follower_id, Entitlement.channel_id == channel_id
            )
        ).first()

    def entitled(self, s: Session, follower_id: int, channel_id: int, now: float) -> bool:
        """Whether the follower has paid access to the channel now."""
        until = self.paid_until(s, follower_id, channel_id)
        return until is not None and until > now

    def subscribers(self, s: Session, channel_id: int, now: float) -> int:
        """How many followers have paid access to the channel now."""
        return int(
            s.connection()
            .execute(
                text("SELECT count(*) FROM entitlement WHERE channel_id = :c AND paid_until > :now"),
                {"c": channel_id, "now": now},
            )
            .scalar_one()
        )

    # ---- expiry ---------------------------------------------------------------------------

    def expired_unnoticed(self, s: Session, cutoff: float, limit: int = 500) -> list[Expired]:
        """Entitlements that ended at or before `cutoff` whose follower was not told yet."""
        rows = s.connection().execute(
            text(
                "SELECT id, follower_id, channel_id FROM entitlement"
                " WHERE paid_until <= :cutoff AND expiry_noticed = :no ORDER BY id LIMIT :limit"
            ),
            {"cutoff": cutoff, "no": False, "limit": limit},
        )
        return [Expired(int(r.id), int(r.follower_id), int(r.channel_id)) for r in rows]

    def claim_expiry_notice(self, s: Session, entitlement_id: int, cutoff: float) -> bool:
        """Mark one ended entitlement noticed; True for exactly one caller however many
        processes try (and False when it was renewed meanwhile)."""
        result = s.connection().execute(
            text(
                "UPDATE entitlement SET expiry_noticed = :yes"
                " WHERE id = :id AND expiry_noticed = :no AND paid_until <= :cutoff"
            ),
            {"id": entitlement_id, "yes": True, "no": False, "cutoff": cutoff},
        )
        return result.rowcount == 1

    def plan_catch_up(self, s: Session, follower_id: int, channel_id: int, since: float, now: float) -> int:
        """Plan a copy of each paid post of the channel published since `since` that the
        follower has no copy of yet (a new subscriber's back catalogue), oldest first, so the
        copies reach them in the order the posts were published; returns how many. A post
        still being planned is included only once its planner has passed this follower."""
        params = {**copy_params(follower_id, channel_id, now), "since": since, "yes": True}
        return plan_copies(s.connection(), " AND p.paid = :yes AND p.published_at >= :since", params)

    # ---- the ledger ----------------------------------------------------------------------

    def record_charge(
        self,
        s: Session,
        sealer: Sealer,
        *,
        kind: LedgerKind,
        channel_id: int,
        payer: Address,
        amount: int,
        charge_id: str | None,
        now: float,
        grant: tuple[int, float] | None = None,
    ) -> Recorded | AlreadyRecorded:
        """Record one money event, sealed to its row, and (with `grant=(follower id, until)`)
        grant access in the same savepoint. A charge id seen before changes nothing: the unique
        constraint decides, so two processes never record or grant one charge twice."""
        try:
            with s.begin_nested():
                entry = LedgerEntry(
                    kind=kind.value,
                    amount=amount,
                    telegram_payment_charge_id=charge_id,
                    channel_id=channel_id,
                    platform=payer.platform,
                    follower_sealed=b"",  # sealed to the row's id once it has one
                    follower_index=sealer.address_index(payer),
                    created_at=now,
                )
                s.add(entry)
                s.flush()
                entry_id = entry.id or 0
                entry.follower_sealed = sealer.seal(payer, table="ledger", row_id=entry_id)
                s.add(entry)
                s.flush()
                if grant is not None:
                    self.grant(s, grant[0], channel_id, grant[1])
        except IntegrityError:
            if charge_id is None:
                raise
            return AlreadyRecorded(charge_id)
        return Recorded(entry_id)

    def entries_of(self, s: Session, follower_index: str) -> list[LedgerEntry]:
        """A payer's ledger rows, by their blind index, oldest first."""
        return list(
            s.exec(
                select(LedgerEntry)
                .where(LedgerEntry.follower_index == follower_index)
                .order_by(col(LedgerEntry.id))
            )
        )

    def payment_of(self, s: Session, charge_id: str) -> LedgerEntry | None:
        """The charge or renewal recorded with this charge id, if any."""
        return s.exec(
            select(LedgerEntry).where(
                LedgerEntry.telegram_payment_charge_id == charge_id,
                col(LedgerEntry.kind).in_((LedgerKind.CHARGE.value, LedgerKind.RENEWAL.value)),
            )
        ).first()

    def refunded(self, s: Session, charge_id: str) -> bool:
        """Whether a refund of this charge id is recorded."""
        return (
            s.exec(
                select(LedgerEntry.id).where(
                    LedgerEntry.telegram_payment_charge_id == charge_id,
                    LedgerEntry.kind == LedgerKind.REFUND.value,
                )
            ).first()
            is not None
        )

    def latest_payment(self, s: Session, follower_index: str, channel_id: int) -> LedgerEntry | None:
        """A payer's latest charge or renewal for a channel that was not refunded (their
        subscription, by their blind index)."""
        refunds = select(LedgerEntry.telegram_payment_charge_id).where(
            LedgerEntry.kind == LedgerKind.REFUND.value,
            col(LedgerEntry.telegram_payment_charge_id).is_not(None),
        )
        return s.exec(
            select(LedgerEntry)
            .where(
                LedgerEntry.follower_index == follower_index,
                LedgerEntry.channel_id == channel_id,
                col(LedgerEntry.kind).in_((LedgerKind.CHARGE.value, LedgerKind.RENEWAL.value)),
                col(LedgerEntry.telegram_payment_charge_id).is_not(None),
                col(LedgerEntry.telegram_payment_charge_id).not_in(refunds),
            )
            .order_by(col(LedgerEntry.id).desc())
        ).first()

    def charges_on(self, s: Session, platform: str) -> list[LedgerCharge]:
        """Every money event with a charge id taken on one platform (charges, renewals,
        refunds), oldest first, with its channel's handle: what reconciliation compares."""
        rows = s.connection().execute(
            text(
                "SELECT l.telegram_payment_charge_id AS charge_id, l.kind, l.amount, l.created_at,"
                " c.handle FROM ledger l JOIN channel c ON c.id = l.channel_id"
                " WHERE l.platform = :p AND l.telegram_payment_charge_id IS NOT NULL"
                " AND l.kind IN (:charge, :renewal, :refund) ORDER BY l.id"
            ),
            {
                "p": platform,
                "charge": LedgerKind.CHARGE.value,
                "renewal": LedgerKind.RENEWAL.value,
                "refund": LedgerKind.REFUND.value,
            },
        )
        return [LedgerCharge.from_row(r) for r in rows]

    def revenue_by_month(self, s: Session, channel_id: int) -> list[RevenueMonth]:
        """Counts and Stars per month (UTC) and kind, oldest month first."""
        kinds = {k.name.lower(): k.value for k in LedgerKind}
        rows = s.connection().execute(
            text(
                f"SELECT {self._month} AS month, kind, count(*) AS n, sum(amount) AS stars"
                " FROM ledger WHERE channel_id = :c"
                " AND kind IN (:charge, :renewal, :refund, :code)"
                " GROUP BY month, kind ORDER BY month, kind"
            ),
            {"c": channel_id, **kinds},
        )
        return [RevenueMonth.from_row(r) for r in rows]


__all__ = [
    "PERIOD_S",
    "AlreadyRecorded",
    "Expired",
    "LedgerCharge",
    "Payments",
    "Recorded",
    "RevenueMonth",
]
