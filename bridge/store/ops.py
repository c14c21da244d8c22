"""What an operator sees of a running deployment: queue depths, the oldest open row, follower
totals, scheduled posts, leases, heartbeats and per-process snapshots. Counts, times and
process names only: nothing here reads a sealed column or a blind index.

Every method runs Core SQL on the caller's `Connection` (`Database.connection()`): metrics
call them at scrape time, so each is an index probe or a scan of a small table.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from bridge.models import DeliveryAction, DeliveryStatus, NoticeLane, PostStatus
from bridge.store.sql import open_predicate

#: the lane of post copies (the `delivery` table), beside the notice lanes
COPY_LANE = "copy"
#: keyvalue keys of the process snapshots `bridge.status` writes
SNAPSHOT_PREFIX = "status:"

_LANES = {int(lane): lane.name.lower() for lane in NoticeLane}


@dataclass(frozen=True)
class KeyRow:
    """A keyvalue row (a lease, a heartbeat, a snapshot) seen by an operator."""

    key: str
    value: str
    updated_at: float


class Ops:
    """Named read-only queries for metrics and `channelbridge status` (the caller's connection)."""

    def queue_depth(self, conn: Connection) -> dict[tuple[str, str], int]:
        """Open rows (pending or leased) per (platform, lane): `copy` for post copies,
        `reply`/`notice` for the reply lane."""
        return {key: count for key, (count, _) in self._open(conn).items()}

    def oldest_open(self, conn: Connection) -> float | None:
        """When the oldest row still waiting to be sent (a copy or a notice) was queued."""
        return self._oldest(conn, self._open(conn))

    def open_rows(self, conn: Connection) -> tuple[dict[tuple[str, str], int], float | None]:
        """`queue_depth` and `oldest_open` in one pass over the open-rows indexes."""
        found = self._open(conn)
        return {key: count for key, (count, _) in found.items()}, self._oldest(conn, found)

    def _open(self, conn: Connection) -> dict[tuple[str, str], tuple[int, int]]:
        """(platform, lane) -> (open rows, smallest open row id), counted from the partial
        index of open copies by platform (SQLite is told to use it: its planner would read
        every row for the platform otherwise)."""
        hint = " INDEXED BY ix_delivery_open_platform" if conn.dialect.name == "sqlite" else ""
        found: dict[tuple[str, str], tuple[int, int]] = {}
        copies = conn.execute(
            text(
                f"SELECT platform, count(*), min(id) FROM delivery d{hint} WHERE {open_predicate('d')}"
                " GROUP BY platform"
            )
        ).all()
        for platform, count, first in copies:
            found[(str(platform), COPY_LANE)] = (int(count), int(first))
        notices = conn.execute(
            text(
                f"SELECT platform, lane, count(*), min(id) FROM notice n WHERE {open_predicate('n')}"
                " GROUP BY platform, lane"
            )
        ).all()
        for platform, lane, count, first in notices:
            found[(str(platform), _LANES.get(int(lane), str(lane)))] = (int(count), -int(first))
        return found

    def _oldest(self, conn: Connection, found: dict[tuple[str, str], tuple[int, int]]) -> float | None:
        """The creation time of the oldest of the rows named by `_open` (copies by their id,
        notices by the negated id)."""
        copies = [first for first in (v[1] for v in found.values()) if first > 0]
        notices = [-first for first in (v[1] for v in found.values()) if first < 0]
        times: list[float] = []
        if copies:
            value = conn.execute(
                text("SELECT created_at FROM delivery WHERE id = :id"), {"id": min(copies)}
            ).scalar()
            times += [float(value)] if value is not None else []
        if notices:
            value = conn.execute(
                text("SELECT min(created_at) FROM notice WHERE id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": notices},
            ).scalar()
            times += [float(value)] if value is not None else []
        return min(times) if times else None

    def followers_by_platform(self, conn: Connection) -> dict[str, int]:
        """Active (not paused) subscriptions per platform, summed over channels, from the
        counter table (never a scan of the subscriptions)."""
        rows = conn.execute(
            text("SELECT platform, coalesce(sum(active), 0) FROM followercount GROUP BY platform")
        ).all()
        return {str(platform): int(total) for platform, total in rows}

    def scheduled_due(self, conn: Connection, now: float) -> int:
        """Scheduled posts whose time has come but that were not published yet."""
        value = conn.execute(
            text("SELECT count(*) FROM post WHERE status = :s AND scheduled_at <= :now"),
            {"s": PostStatus.SCHEDULED.value, "now": now},
        ).scalar()
        return int(value or 0)

    def next_scheduled(self, conn: Connection, limit: int) -> list[tuple[int, float]]:
        """The next scheduled posts: (post id, when), soonest first."""
        rows = conn.execute(
            text(
                "SELECT id, scheduled_at FROM post WHERE status = :s AND scheduled_at IS NOT NULL"
                " ORDER BY scheduled_at, id LIMIT :lim"
            ),
            {"s": PostStatus.SCHEDULED.value, "lim": limit},
        ).all()
        return [(int(pid), float(at)) for pid, at in rows]

    def next_recurring(self, conn: Connection, limit: int) -> list[tuple[int, float]]:
        """The next occurrences of recurring posts: (recurring id, when), soonest first."""
        rows = conn.execute(
            text(
                "SELECT id, next_at FROM recurringpost WHERE active = :on AND next_at IS NOT NULL"
                " ORDER BY next_at, id LIMIT :lim"
            ),
            {"on": True, "lim": limit},
        ).all()
        return [(int(rid), float(at)) for rid, at in rows]

    def keys(self, conn: Connection, prefix: str) -> list[KeyRow]:
        """Keyvalue rows whose key starts with `prefix` (`lease:`, `member:`, `status:`)."""
        rows = conn.execute(
            text("SELECT key, value, updated_at FROM keyvalue WHERE substr(key, 1, :n) = :p ORDER BY key"),
            {"p": prefix, "n": len(prefix)},
        ).all()
        return [KeyRow(str(k), str(v), float(u)) for k, v, u in rows if str(k).startswith(prefix)]

    def put_key(self, conn: Connection, key: str, value: str, now: float) -> None:
        """Write one keyvalue row (a process snapshot)."""
        updated = conn.execute(
            text("UPDATE keyvalue SET value = :v, updated_at = :now WHERE key = :k"),
            {"k": key, "v": value, "now": now},
        )
        if (updated.rowcount or 0) == 0:
            conn.execute(
                text(
                    "INSERT INTO keyvalue (key, value, updated_at) VALUES (:k, :v, :now)"
                    " ON CONFLICT (key) DO NOTHING"
                ),
                {"k": key, "v": value, "now": now},
            )

    def drop_key(self, conn: Connection, key: str) -> None:
        """Remove one keyvalue row (a process's snapshot at a clean stop)."""
        conn.execute(text("DELETE FROM keyvalue WHERE key = :k"), {"k": key})

    def first_copy_pending(self, conn: Connection, post_id: int, recorded_at: float) -> float | None:
        """The post's publication time when no copy of it was delivered before `recorded_at`
        (the copies recorded then were its first); None otherwise."""
        row = conn.execute(
            text(
                "SELECT p.published_at, (SELECT 1 FROM delivery d WHERE d.post_id = p.id"
                " AND d.status = :delivered AND d.action = :send AND d.done_at < :t LIMIT 1)"
                " FROM post p WHERE p.id = :p"
            ),
            {
                "p": post_id,
                "t": recorded_at,
                "delivered": DeliveryStatus.DELIVERED.value,
                "send": DeliveryAction.SEND.value,
            },
        ).first()
        if row is None or row[0] is None or row[1] is not None:
            return None
        return float(row[0])


__all__ = ["COPY_LANE", "SNAPSHOT_PREFIX", "KeyRow", "Ops"]
