"""The outbox hot path: claim due deliveries, load what they need, record outcomes, leases.

Every method runs Core SQL on the caller's `Connection` (`Database.connection()`), the one
named exception to the session convention: the worker calls these for every batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlmodel import col, select

from bridge.models import Delivery, DeliveryStatus, Follower, MirrorRoom
from bridge.ports import Address
from bridge.privacy import Sealer, UnsealError
from bridge.store.rows import ClaimedDelivery, DeliveryContext, DeliveryOutcome, SourceRef
from bridge.store.sql import STATUS_PARAMS, open_predicate, release_expired_leases, renew_leases

#: per-chat order: a row is claimed only when no earlier row to the same follower or mirror is
#: still open, so a later copy never overtakes an earlier one waiting for a retry
_HEAD_OF_CHAT = (
    " AND NOT EXISTS (SELECT 1 FROM delivery e WHERE e.follower_id = d.follower_id"
    f" AND e.id < d.id AND {open_predicate('e')})"
    " AND NOT EXISTS (SELECT 1 FROM delivery e WHERE e.mirror_id = d.mirror_id"
    f" AND e.id < d.id AND {open_predicate('e')})"
)


#: -- claim_deliveries -- lease the due rows that head their chat, soonest first
_CLAIM = (
    "UPDATE delivery SET status = :leased, lease_owner = :owner,"
    " lease_expires_at = :exp, attempts = attempts + 1"
    " WHERE id IN (SELECT id FROM delivery d WHERE status = :pending"
    " AND next_attempt_at <= :now{only}" + _HEAD_OF_CHAT + " ORDER BY next_attempt_at, id"
    " LIMIT :lim{lock})"
    " RETURNING id, post_id, action, platform, follower_id, mirror_id, source_id,"
    " silent, attempts, created_at, earlier"
)

#: -- record_final -- a row is done (delivered, failed, skipped): its reference sealed to it
_RECORD_FINAL = text(
    "UPDATE delivery SET status = :status, ref_sealed = :ref_sealed,"
    " ref_index = :ref_index, ref_alt_index = :ref_alt_index, error = :error,"
    " lease_owner = NULL, lease_expires_at = NULL, done_at = :now"
    " WHERE id = :id AND lease_owner = :owner"
)

#: -- record_retry -- a row goes back to wait (a platform-asked wait refunds the attempt)
_RECORD_RETRY = text(
    "UPDATE delivery SET status = :pending, error = :error,"
    " next_attempt_at = :next, lease_owner = NULL, lease_expires_at = NULL,"
    " attempts = attempts - :refund"
    " WHERE id = :id AND lease_owner = :owner"
)


class Outbox:
    """Named queries of the delivery worker's loop (the caller's Core connection)."""

    def __init__(self, is_postgres: bool) -> None:
        self._lock = " FOR UPDATE SKIP LOCKED" if is_postgres else ""

    def claim(
        self,
        conn: Connection,
        owner: str,
        now: float,
        lease_s: float,
        limit: int,
        platforms: Sequence[str] | None = None,
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` due rows for `owner` (SKIP LOCKED on PostgreSQL), only of
        `platforms` when given (a process claims only what its running adapters can send)."""
        only = " AND platform IN :platforms" if platforms is not None else ""
        statement = text(_CLAIM.format(only=only, lock=self._lock))
        params: dict[str, object] = {
            "owner": owner,
            "exp": now + lease_s,
            "now": now,
            "lim": limit,
            **STATUS_PARAMS,
        }
        if platforms is not None:
            if not platforms:
                return []
            statement = statement.bindparams(bindparam("platforms", expanding=True))
            params["platforms"] = list(platforms)
        rows = conn.execute(statement, params).all()
        return sorted((ClaimedDelivery.from_row(r) for r in rows), key=lambda c: c.id)

    def release_expired(self, conn: Connection, now: float) -> int:
        """Return rows whose lease expired to pending (`release_expired_leases`)."""
        return release_expired_leases(conn, "delivery", now)

    def next_due_at(self, conn: Connection, platforms: Sequence[str] | None = None) -> float | None:
        """When the soonest pending row (of `platforms`, when given) is due."""
        sql = "SELECT min(next_attempt_at) FROM delivery WHERE status = :pending"
        statement = text(sql)
        params: dict[str, object] = {"pending": STATUS_PARAMS["pending"]}
        if platforms is not None:
            if not platforms:
                return None
            statement = text(sql + " AND platform IN :platforms").bindparams(
                bindparam("platforms", expanding=True)
            )
            params["platforms"] = list(platforms)
        value = conn.execute(statement, params).scalar()
        return float(value) if value is not None else None

    def has_leased(self, conn: Connection) -> bool:
        """Whether any worker holds a lease on a row."""
        found = conn.execute(
            text("SELECT 1 FROM delivery WHERE status = :leased LIMIT 1"), {"leased": STATUS_PARAMS["leased"]}
        ).first()
        return found is not None

    def record(
        self, conn: Connection, owner: str, outcomes: Sequence[DeliveryOutcome], now: float, sealer: Sealer
    ) -> None:
        """Write the results of a batch of sends (only rows we still lease). A copy's platform
        reference is stored sealed to its row, with blind indexes to find it."""
        if not outcomes:
            return
        final = [o for o in outcomes if o.status != DeliveryStatus.PENDING]
        retry = [o for o in outcomes if o.status == DeliveryStatus.PENDING]
        if final:
            conn.execute(
                _RECORD_FINAL,
                [
                    {
                        "status": o.status.value,
                        "ref_sealed": (
                            sealer.seal_ref(o.ref_key, o.ref_alt, row_id=o.id, platform=o.platform)
                            if o.ref_key is not None
                            else None
                        ),
                        "ref_index": sealer.ref_index(o.platform, o.ref_key) if o.ref_key else None,
                        "ref_alt_index": sealer.ref_index(o.platform, o.ref_alt) if o.ref_alt else None,
                        "error": o.error,
                        "now": now,
                        "id": o.id,
                        "owner": owner,
                    }
                    for o in final
                ],
            )
        if retry:
            conn.execute(
                _RECORD_RETRY,
                [
                    {
                        "error": o.error,
                        "next": o.next_attempt_at,
                        "id": o.id,
                        "owner": owner,
                        "refund": 1 if o.refund_attempt else 0,
                        "pending": STATUS_PARAMS["pending"],
                    }
                    for o in retry
                ],
            )

    def return_to_pending(self, conn: Connection, owner: str, ids: Sequence[int]) -> None:
        """Give back rows this worker claimed but never started (clean shutdown)."""
        conn.execute(
            text(
                "UPDATE delivery SET status = :pending, lease_owner = NULL,"
                " attempts = attempts - 1 WHERE id = :id AND lease_owner = :owner"
            ),
            [{"id": i, "owner": owner, "pending": STATUS_PARAMS["pending"]} for i in ids],
        )

    def extend_leases(self, conn: Connection, owner: str, ids: Sequence[int], until: float) -> set[int]:
        """Keep the leases of rows still in flight alive; the ids still `owner`'s (`renew_leases`)."""
        return renew_leases(conn, "delivery", owner, ids, until)

    # ---- what a claimed batch needs ----------------------------------------------------------

    def context(self, conn: Connection, rows: Sequence[ClaimedDelivery], sealer: Sealer) -> DeliveryContext:
        """For a claimed batch: each row's destination address, the refs of source copies, and
        the rows whose sealed address or reference does not open (each on its own: one bad row
        never fails its neighbours)."""
        followers = _follower_addresses(conn, [r.follower_id for r in rows if r.follower_id])
        mirrors = _mirror_chats(conn, [r.mirror_id for r in rows if r.mirror_id])
        sealed_sources = _source_refs(conn, [r.source_id for r in rows if r.source_id])
        addresses: dict[int, Address | None] = {}
        broken: dict[int, str] = {}
        sources: dict[int, SourceRef] = {}
        bad_sources: dict[int, str] = {}
        for source_id, (platform, blob) in sealed_sources.items():
            if blob is None:
                sources[source_id] = SourceRef(None, None)
                continue
            try:
                sources[source_id] = SourceRef(*sealer.unseal_ref(blob, row_id=source_id, platform=platform))
            except (UnsealError, ValueError) as exc:
                bad_sources[source_id] = f"sealed reference does not open: {exc}"
        for row in rows:
            if row.follower_id is not None:
                found = followers.get(row.follower_id)
                try:
                    addresses[row.id] = (
                        sealer.unseal(found[0], found[1], table="follower", row_id=row.follower_id)
                        if found
                        else None
                    )
                except (UnsealError, ValueError) as exc:
                    addresses[row.id] = None
                    broken[row.id] = f"sealed address does not open: {exc}"
            elif row.mirror_id is not None:
                mirror = mirrors.get(row.mirror_id)
                addresses[row.id] = Address(mirror[0], mirror[1]) if mirror else None
            else:
                addresses[row.id] = None
            if row.source_id is not None and row.source_id in bad_sources:
                broken.setdefault(row.id, bad_sources[row.source_id])
        return DeliveryContext(addresses, sources, broken)


def _follower_addresses(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, bytes]]:
    """Sealed addresses (platform, blob) of followers by id."""
    if not ids:
        return {}
    rows = conn.execute(
        select(Follower.id, Follower.platform, Follower.sealed).where(col(Follower.id).in_(ids))
    ).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def _mirror_chats(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """Mirror rooms (platform, chat id) by id."""
    if not ids:
        return {}
    rows = conn.execute(
        select(MirrorRoom.id, MirrorRoom.platform, MirrorRoom.chat_id).where(col(MirrorRoom.id).in_(ids))
    ).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def _source_refs(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, bytes | None]]:
    """Sealed platform references (platform, blob) of the copies that follow-up rows target."""
    if not ids:
        return {}
    rows = conn.execute(
        select(Delivery.id, Delivery.platform, Delivery.ref_sealed).where(col(Delivery.id).in_(ids))
    ).all()
    return {r[0]: (r[1], bytes(r[2]) if r[2] is not None else None) for r in rows}


__all__ = ["Outbox"]
