"""Coordination between processes: named leases and membership heartbeats (the keyvalue table)."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

from bridge.outcomes import Claim


def _lease_key(name: str) -> str:
    return f"lease:{name}"


def _member_key(owner: str) -> str:
    return f"member:{owner}"


class Leases:
    """Named queries on leases and heartbeats (the caller's session)."""

    def hold(self, s: Session, name: str, owner: str, now: float, ttl_s: float) -> Claim:
        """Take or renew the lease `name` for `owner`; WON while we hold it. A lease whose
        holder stopped renewing for `ttl_s` passes to the next process that asks."""
        conn = s.connection()
        key = _lease_key(name)
        conn.execute(
            text(
                "INSERT INTO keyvalue (key, value, updated_at) VALUES (:k, '', 0)"
                " ON CONFLICT (key) DO NOTHING"
            ),
            {"k": key},
        )
        result = conn.execute(
            text(
                "UPDATE keyvalue SET value = :owner, updated_at = :now WHERE key = :k"
                " AND (value = :owner OR value = '' OR updated_at < :stale)"
            ),
            {"k": key, "owner": owner, "now": now, "stale": now - ttl_s},
        )
        return Claim.of(result.rowcount)

    def release(self, s: Session, name: str, owner: str) -> None:
        """Give a lease up at once (clean shutdown), so another process takes it without waiting."""
        s.connection().execute(
            text("UPDATE keyvalue SET value = '', updated_at = 0 WHERE key = :k AND value = :owner"),
            {"k": _lease_key(name), "owner": owner},
        )

    def holder(self, s: Session, name: str, now: float, ttl_s: float) -> str | None:
        """Who holds a lease now (None: nobody)."""
        row = (
            s.connection()
            .execute(text("SELECT value, updated_at FROM keyvalue WHERE key = :k"), {"k": _lease_key(name)})
            .first()
        )
        if row is None or not row.value or row.updated_at < now - ttl_s:
            return None
        return str(row.value)

    def heartbeat(self, s: Session, owner: str, now: float, ttl_s: float) -> int:
        """Record that `owner` is alive; returns how many processes are alive (itself included)."""
        conn = s.connection()
        key = _member_key(owner)
        updated = conn.execute(
            text("UPDATE keyvalue SET updated_at = :now WHERE key = :k"), {"k": key, "now": now}
        )
        if (updated.rowcount or 0) == 0:
            conn.execute(
                text("INSERT INTO keyvalue (key, value, updated_at) VALUES (:k, :owner, :now)"),
                {"k": key, "owner": owner, "now": now},
            )
        conn.execute(
            text("DELETE FROM keyvalue WHERE key LIKE :members AND updated_at < :old"),
            {"old": now - 10 * ttl_s, "members": _member_key("%")},
        )
        alive = conn.execute(
            text("SELECT count(*) FROM keyvalue WHERE key LIKE :members AND updated_at >= :fresh"),
            {"fresh": now - ttl_s, "members": _member_key("%")},
        ).scalar()
        return max(1, int(alive or 0))

    def leave(self, s: Session, owner: str) -> None:
        """Remove a process's heartbeat (clean shutdown)."""
        s.connection().execute(text("DELETE FROM keyvalue WHERE key = :k"), {"k": _member_key(owner)})


__all__ = ["Leases"]
