"""SQL helpers shared by the store and the notice queue: status values bound, never spelled, and
the lease statements of the two tables workers lease rows from (`delivery`, `notice`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sqlalchemy import Connection, TextClause, text

from bridge.models import DeliveryStatus

#: status values by bind name (`:pending` -> DeliveryStatus.PENDING), for outbox-like tables
STATUS_PARAMS = {status.name.lower(): status.value for status in DeliveryStatus}


def open_predicate(alias: str) -> str:
    """The open-rows partial indexes' predicate (`_OPEN` in bridge.models) on `alias`, spelled
    from the enum but inline: a planner uses a partial index only when the query repeats its
    predicate literally, which a bound parameter does not."""
    return f"{alias}.status IN ('{DeliveryStatus.PENDING.value}', '{DeliveryStatus.LEASED.value}')"


def status_text(statement: str) -> TextClause:
    """`text(statement)` with the status values it names (`:pending`, `:leased`, ...) bound."""
    named = {k: v for k, v in STATUS_PARAMS.items() if f":{k}" in statement}
    return text(statement).bindparams(**named)


#: the tables whose rows workers lease (post copies, and replies and notices)
LeasedTable = Literal["delivery", "notice"]


def release_expired_leases(conn: Connection, table: LeasedTable, now: float) -> int:
    """Return `table`'s rows whose lease expired (their worker died, or stalled) to pending.
    The last holder stays in `lease_owner` until another worker claims the row, so a stalled
    worker that sent it after all still records it (and renews its lease): nobody sends it
    twice. Returns how many."""
    statement = f"UPDATE {table} SET status = :pending WHERE status = :leased AND lease_expires_at < :now"
    return conn.execute(status_text(statement), {"now": now}).rowcount or 0


def renew_leases(
    conn: Connection, table: LeasedTable, owner: str, ids: Sequence[int], until: float
) -> set[int]:
    """Keep the leases of `owner`'s rows in flight alive, taking back one released meanwhile
    that no other worker claimed; returns the ids still `owner`'s (a row another worker
    claimed or finished during a stall is not, and must not be sent again)."""
    if not ids:
        return set()
    listed = ", ".join(str(int(i)) for i in ids)
    statement = (
        f"UPDATE {table} SET lease_expires_at = :until, status = :leased WHERE id IN ({listed})"
        " AND lease_owner = :owner AND status IN (:leased, :pending) RETURNING id"
    )
    return {int(r[0]) for r in conn.execute(status_text(statement), {"owner": owner, "until": until})}


__all__ = [
    "STATUS_PARAMS",
    "LeasedTable",
    "open_predicate",
    "release_expired_leases",
    "renew_leases",
    "status_text",
]
