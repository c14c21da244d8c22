"""Updates pushed to a webhook: recorded (sealed) before they are acknowledged, claimed by one
processor, then reduced to their update_id for a day of deduplication (the received_update table).
A polled update, in several processes, is only claimed by its update_id (`first_claim`).

Every query takes a Core connection (`Store.connection()`): the receiver records a batch of
updates in one transaction, so a burst costs one commit per batch, not one per update.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

#: seals one update body, bound to its update id: (plain, update id) -> sealed
SealFn = Callable[[bytes, int], bytes]


@dataclass(frozen=True)
class ClaimedUpdate:
    """A recorded update handed to one processor: its row and its sealed body."""

    row_id: int
    update_id: int
    body: bytes


class Updates:
    """Named queries on received updates."""

    def __init__(self, is_postgres: bool) -> None:
        self._lock = " FOR UPDATE SKIP LOCKED" if is_postgres else ""

    def record(
        self, conn: Connection, platform: str, updates: Sequence[tuple[int, bytes]], now: float, seal: SealFn
    ) -> list[bool]:
        """Record each `(update_id, plain body)` in one statement, the body sealed for its
        update id; True for an update seen for the first time, False for a redelivery (already
        recorded, or twice in this batch: nothing changes)."""
        first: dict[int, bytes] = {}
        for update_id, plain in updates:
            first.setdefault(update_id, plain)
        if not first:
            return []
        values = ", ".join(f"(:p, :u{n}, :b{n}, :now, false, 0)" for n in range(len(first)))
        params: dict[str, object] = {"p": platform, "now": now}
        for n, (update_id, plain) in enumerate(first.items()):
            params[f"u{n}"] = update_id
            params[f"b{n}"] = seal(plain, update_id)
        inserted = {
            int(row[0])
            for row in conn.execute(
                text(
                    "INSERT INTO received_update (platform, update_id, body, received_at, done,"
                    f" claimed_until) VALUES {values}"
                    " ON CONFLICT (platform, update_id) DO NOTHING RETURNING update_id"
                ),
                params,
            )
        }
        fresh: list[bool] = []
        for update_id, _ in updates:
            fresh.append(update_id in inserted)
            inserted.discard(update_id)  # the same update twice in one batch: the second is old
        return fresh

    def first_claim(self, conn: Connection, platform: str, update_id: int, now: float) -> bool:
        """Claim a polled update for handling: True for the first claim of `(platform,
        update_id)`, False when any process (or a webhook delivery) already claimed it."""
        row = conn.execute(
            text(
                "INSERT INTO received_update (platform, update_id, body, received_at, done,"
                " claimed_until) VALUES (:p, :u, NULL, :now, true, 0)"
                " ON CONFLICT (platform, update_id) DO NOTHING RETURNING id"
            ),
            {"p": platform, "u": update_id, "now": now},
        ).first()
        return row is not None

    def claim(
        self, conn: Connection, platform: str, owner: str, now: float, lease_s: float, limit: int
    ) -> list[ClaimedUpdate]:
        """Take up to `limit` unprocessed updates, oldest first, that no live processor holds
        (a processor that died lets its claims lapse after `lease_s`)."""
        rows = conn.execute(
            text(
                "SELECT id, update_id, body FROM received_update WHERE platform = :p AND done = false"
                " AND claimed_until < :now AND body IS NOT NULL ORDER BY id LIMIT :n" + self._lock
            ),
            {"p": platform, "now": now, "n": limit},
        ).all()
        if not rows:
            return []
        conn.execute(
            text(
                "UPDATE received_update SET claimed_by = :o, claimed_until = :until"
                " WHERE id IN (" + ", ".join(str(int(r[0])) for r in rows) + ")"
            ),
            {"o": owner, "until": now + lease_s},
        )
        return [ClaimedUpdate(int(r[0]), int(r[1]), bytes(r[2])) for r in rows]

    def done(self, conn: Connection, row_id: int) -> None:
        """The update was processed: drop its body, keep its update_id for deduplication."""
        conn.execute(
            text("UPDATE received_update SET done = true, body = NULL, claimed_by = NULL WHERE id = :id"),
            {"id": row_id},
        )

    def release(self, conn: Connection, owner: str) -> int:
        """Give back what `owner` claimed and did not finish (a clean stop, or a restart of the
        only process on SQLite); returns how many."""
        return conn.execute(
            text(
                "UPDATE received_update SET claimed_by = NULL, claimed_until = 0"
                " WHERE done = false AND (claimed_by = :o OR :o = '*')"
            ),
            {"o": owner},
        ).rowcount

    def purge(self, conn: Connection, before: float) -> int:
        """Forget processed update ids received before `before` (the platform redelivers for a
        day at most); returns how many."""
        return conn.execute(
            text("DELETE FROM received_update WHERE done = true AND received_at < :t"), {"t": before}
        ).rowcount

    def pending(self, conn: Connection, platform: str) -> int:
        """How many recorded updates wait to be processed."""
        return int(
            conn.execute(
                text("SELECT count(*) FROM received_update WHERE platform = :p AND done = false"),
                {"p": platform},
            ).scalar_one()
        )
