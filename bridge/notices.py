"""The notice queue: every message the bot sends that is not a copy of a post.

Command replies, admin notices, progress messages and summaries are rows of the `notice` table
(sealed destination, sealed body) that the delivery worker claims ahead of fan-out copies and
sends under the same rate limiter and retry rules. A reply therefore survives a 429, a flood
penalty and a restart: it is dropped only when its recipient is gone.

Order: notices to one chat are claimed one at a time, oldest first (a blind index of the chat
says which rows share one), so a person's answers arrive in the order of their commands.
A post's progress message is one row that each update re-opens; once sent, later updates
edit that message (its reference is kept sealed in the row).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam, text
from sqlalchemy.exc import IntegrityError

from bridge.models import DeliveryStatus, NoticeLane
from bridge.ports import Address, Button, Invoice, MessageRef, Reply
from bridge.privacy import Sealed, Sealer, UnsealError
from bridge.store import Store
from bridge.store.sql import open_predicate, release_expired_leases, renew_leases, status_text

log = logging.getLogger(__name__)

_NOTICE_COLUMNS = (
    "lane, platform, chat_index, sealed, body, post_id, status, attempts, next_attempt_at, created_at, stale"
)


@dataclass(frozen=True)
class ClaimedNotice:
    """A notice a worker has leased. `address` and `reply` are None when the row does not
    unseal (the privacy key changed): the worker records it failed without sending."""

    id: int
    lane: int
    platform: str
    address: Address | None
    reply: Reply | None
    post_id: int | None
    attempts: int
    created_at: float


@dataclass(frozen=True)
class NoticeOutcome:
    """What happened to one claimed notice, recorded in a batch."""

    id: int
    status: DeliveryStatus
    ref: MessageRef | None = None
    error: str | None = None
    next_attempt_at: float | None = None
    refund_attempt: bool = False  #: the platform asked us to wait: this try does not count
    gone: bool = False  #: the recipient is gone: the row is removed
    platform: str = ""  #: the notice's platform (a progress message's reference is sealed with it)


class NoticeQueue:
    """Reads and writes the `notice` table; every method is one short transaction."""

    def __init__(self, store: Store, sealer: Sealer, *, progress_interval_s: float = 5.0) -> None:
        self.store = store
        self.sealer = sealer
        #: a progress message is edited at most this often
        self.progress_interval_s = progress_interval_s

    # ---- writing --------------------------------------------------------------------------

    def enqueue(self, address: Address, replies: Sequence[Reply], lane: NoticeLane, now: float) -> int:
        """Queue messages for one person's chat, in order; returns how many were queued."""
        if not replies:
            return 0
        chat = self._chat_index(address)
        with self.store.connection() as conn:
            for reply in replies:
                notice_id = self._insert(conn, lane, address.platform, chat, None, now)
                self._seal_row(conn, notice_id, address, reply)
        return len(replies)

    def update_progress(self, post_id: int, author: Sealed, text_: str, now: float) -> None:
        """Set the text of a post's progress message: the first update sends it, later ones edit
        it, at most once per `progress_interval_s`. An update that finds the message being sent
        right now is kept too (`stale`): it goes out as an edit once that send is recorded."""
        address = self.sealer.open(author)
        greatest = "MAX" if self.store.is_sqlite else "GREATEST"
        with self.store.connection() as conn:
            row = conn.execute(text("SELECT id FROM notice WHERE post_id = :post"), {"post": post_id}).first()
            if row is not None:
                conn.execute(
                    status_text(
                        "UPDATE notice SET body = :body, attempts = 0, error = NULL,"
                        " stale = (status = :leased),"
                        " status = CASE WHEN status = :leased THEN status ELSE :pending END,"
                        " next_attempt_at = CASE WHEN status = :leased THEN next_attempt_at"
                        " WHEN sent_at IS NULL THEN :now"
                        f" ELSE {greatest}(sent_at + :gap, :now) END"
                        " WHERE id = :id"
                    ),
                    {
                        "body": self._seal_body(row.id, address.platform, Reply(text_)),
                        "now": now,
                        "gap": self.progress_interval_s,
                        "id": row.id,
                    },
                )
                return
        try:
            with self.store.connection() as conn:
                notice_id = self._insert(
                    conn, NoticeLane.NOTICE, address.platform, self._chat_index(address), post_id, now
                )
                self._seal_row(conn, notice_id, address, Reply(text_))
        except IntegrityError:  # another process created it a moment ago: the next update edits it
            return

    # ---- the worker's side ----------------------------------------------------------------

    def claim(
        self, owner: str, now: float, lease_s: float, limit: int, platforms: Sequence[str] | None = None
    ) -> list[ClaimedNotice]:
        """Lease up to `limit` due notices, replies first, at most one per chat at a time."""
        if platforms is not None and not platforms:
            return []
        lock = " FOR UPDATE SKIP LOCKED" if self.store.is_postgres else ""
        only = " AND n.platform IN :platforms" if platforms is not None else ""
        statement = status_text(
            "UPDATE notice SET status = :leased, lease_owner = :owner, lease_expires_at = :exp,"
            " attempts = attempts + 1 WHERE id IN (SELECT n.id FROM notice n"
            " WHERE n.status = :pending AND n.next_attempt_at <= :now" + only + " AND NOT EXISTS"
            " (SELECT 1 FROM notice e WHERE e.chat_index = n.chat_index AND e.id < n.id"
            f" AND {open_predicate('e')} AND e.post_id IS NULL)"
            " ORDER BY n.lane, n.next_attempt_at, n.id LIMIT :lim" + lock + ")"
            " RETURNING id, lane, platform, sealed, body, post_id, ref_sealed, attempts, created_at"
        )
        params: dict[str, object] = {"owner": owner, "exp": now + lease_s, "now": now, "lim": limit}
        if platforms is not None:
            statement = statement.bindparams(bindparam("platforms", expanding=True))
            params["platforms"] = list(platforms)
        with self.store.connection() as conn:
            rows = conn.execute(statement, params).all()
        claimed = [self._open(row) for row in rows]
        return sorted(claimed, key=lambda c: (c.lane, c.id))

    def record(self, owner: str, outcomes: Sequence[NoticeOutcome], now: float) -> None:
        """Write a batch of outcomes: sent replies and notices are removed, a sent progress
        message keeps its sealed reference for the next edit; retries wait; failures stay."""
        if not outcomes:
            return
        with self.store.connection() as conn:
            done = [o.id for o in outcomes if o.status == DeliveryStatus.DELIVERED]
            if done:
                conn.execute(
                    text(
                        "DELETE FROM notice WHERE id IN :ids AND lease_owner = :owner AND post_id IS NULL"
                    ).bindparams(bindparam("ids", expanding=True)),
                    {"ids": done, "owner": owner},
                )
            sent = [o for o in outcomes if o.status == DeliveryStatus.DELIVERED]
            if sent:
                conn.execute(
                    status_text(
                        "UPDATE notice SET lease_owner = NULL, lease_expires_at = NULL, error = NULL,"
                        " sent_at = :now, ref_sealed = COALESCE(:ref, ref_sealed),"
                        " status = CASE WHEN stale THEN :pending ELSE :delivered END,"
                        " next_attempt_at = :next, stale = :f"
                        " WHERE id = :id AND lease_owner = :owner"
                    ),
                    [
                        {
                            "id": o.id,
                            "owner": owner,
                            "now": now,
                            "ref": self._seal_ref(o, o.platform),
                            "next": now + self.progress_interval_s,  # an update made while it was sent
                            "f": False,
                        }
                        for o in sent
                    ],
                )
            gone = [o.id for o in outcomes if o.gone]
            if gone:  # a progress message whose author is gone: nothing more to edit
                conn.execute(
                    text("DELETE FROM notice WHERE id IN :ids AND lease_owner = :owner").bindparams(
                        bindparam("ids", expanding=True)
                    ),
                    {"ids": gone, "owner": owner},
                )
            failed = [o for o in outcomes if o.status == DeliveryStatus.FAILED and not o.gone]
            if failed:
                conn.execute(
                    status_text(
                        "UPDATE notice SET status = :failed, error = :error, lease_owner = NULL,"
                        " lease_expires_at = NULL WHERE id = :id AND lease_owner = :owner"
                    ),
                    [{"id": o.id, "owner": owner, "error": o.error} for o in failed],
                )
            retry = [o for o in outcomes if o.status == DeliveryStatus.PENDING]
            if retry:
                conn.execute(
                    status_text(
                        "UPDATE notice SET status = :pending, error = :error, next_attempt_at = :next,"
                        " lease_owner = NULL, lease_expires_at = NULL, attempts = attempts - :refund,"
                        " stale = :f"
                        " WHERE id = :id AND lease_owner = :owner"
                    ),
                    [
                        {
                            "id": o.id,
                            "owner": owner,
                            "error": o.error,
                            "next": o.next_attempt_at,
                            "refund": 1 if o.refund_attempt else 0,
                            "f": False,
                        }
                        for o in retry
                    ],
                )

    def next_due_at(self, platforms: Sequence[str] | None = None) -> float | None:
        """When the soonest pending notice (of `platforms`, when given) is due."""
        if platforms is not None and not platforms:
            return None
        sql = "SELECT min(next_attempt_at) FROM notice WHERE status = :pending"
        statement = status_text(sql)
        params: dict[str, object] = {}
        if platforms is not None:
            statement = status_text(sql + " AND platform IN :platforms").bindparams(
                bindparam("platforms", expanding=True)
            )
            params["platforms"] = list(platforms)
        with self.store.connection() as conn:
            value = conn.execute(statement, params).scalar()
        return float(value) if value is not None else None

    def has_leased(self) -> bool:
        """Whether any worker holds a lease on a notice."""
        with self.store.connection() as conn:
            row = conn.execute(status_text("SELECT 1 FROM notice WHERE status = :leased LIMIT 1")).first()
        return row is not None

    def release_expired(self, now: float) -> int:
        """Return notices whose lease expired to pending (`release_expired_leases`)."""
        with self.store.connection() as conn:
            return release_expired_leases(conn, "notice", now)

    def return_to_pending(self, owner: str, ids: Sequence[int]) -> None:
        """Give back notices this worker claimed but never started (clean shutdown)."""
        if not ids:
            return
        with self.store.connection() as conn:
            conn.execute(
                status_text(
                    "UPDATE notice SET status = :pending, lease_owner = NULL, attempts = attempts - 1"
                    " WHERE id = :id AND lease_owner = :owner"
                ),
                [{"id": i, "owner": owner} for i in ids],
            )

    def extend_leases(self, owner: str, ids: Sequence[int], until: float) -> set[int]:
        """Keep the leases of notices still in flight alive; the ids still `owner`'s (`renew_leases`)."""
        with self.store.connection() as conn:
            return renew_leases(conn, "notice", owner, ids, until)

    def reseal(self, new: Sealer, batch: int = 500) -> tuple[int, int]:
        """Re-seal every queued notice (address, body, reference) and re-index its chat under
        `new` (`channelbridge rotate-key`), one transaction per batch; rows already under `new`
        are passed over, so a rotation killed half-way resumes. Returns (re-sealed, unreadable):
        an unreadable notice is marked failed."""
        done = bad = 0
        after = 0
        while True:
            with self.store.connection() as conn:
                rows = conn.execute(
                    text(
                        "SELECT id, platform, sealed, body, ref_sealed FROM notice WHERE id > :after"
                        " ORDER BY id LIMIT :n"
                    ),
                    {"after": after, "n": batch},
                ).all()
                if not rows:
                    return done, bad
                after = rows[-1].id
                for row in rows:
                    if new.is_current(bytes(row.sealed)):
                        continue
                    try:
                        self._reseal_row(conn, row, new)
                        done += 1
                    except (UnsealError, ValueError):
                        bad += 1
                        conn.execute(
                            status_text("UPDATE notice SET status = :failed, error = :e WHERE id = :id"),
                            {"id": row.id, "e": "does not unseal with the key being rotated"},
                        )

    def _reseal_row(self, conn: Connection, row: Row[Any], new: Sealer) -> None:
        notice_id, platform = int(row.id), str(row.platform)
        address = self.sealer.unseal(platform, bytes(row.sealed), table="notice", row_id=notice_id)
        body = self.sealer.unseal_bytes(
            bytes(row.body), table="notice.body", row_id=notice_id, platform=platform
        )
        ref = None
        if row.ref_sealed is not None:
            plain = self.sealer.unseal_bytes(
                bytes(row.ref_sealed), table="notice.ref", row_id=notice_id, platform=platform
            )
            ref = new.seal_bytes(plain, table="notice.ref", row_id=notice_id, platform=platform)
        conn.execute(
            text(
                "UPDATE notice SET sealed = :sealed, body = :body, ref_sealed = :ref, chat_index = :chat"
                " WHERE id = :id"
            ),
            {
                "id": notice_id,
                "sealed": new.seal(address, table="notice", row_id=notice_id),
                "body": new.seal_bytes(body, table="notice.body", row_id=notice_id, platform=platform),
                "ref": ref,
                "chat": new.blind_index(platform, "chat\x00" + address.target),
            },
        )

    def open_for(self, address: Address) -> int:
        """How many notices to this person's chat are still to be sent."""
        with self.store.connection() as conn:
            value = conn.execute(
                text(f"SELECT count(*) FROM notice n WHERE n.chat_index = :chat AND {open_predicate('n')}"),
                {"chat": self._chat_index(address)},
            ).scalar()
        return int(value or 0)

    def counts(self) -> dict[tuple[int, str], int]:
        """Rows per (lane, status): what an operator sees of the queue (counts only)."""
        with self.store.connection() as conn:
            rows = conn.execute(text("SELECT lane, status, count(*) FROM notice GROUP BY lane, status")).all()
        return {(int(r[0]), str(r[1])): int(r[2]) for r in rows}

    # ---- sealing ---------------------------------------------------------------------------
    # Each blob is bound to its row: the address to ("notice", id), the body to
    # ("notice.body", id) and a progress message's reference to ("notice.ref", id), so no blob
    # opens in another row or another column.

    def _insert(
        self, conn: Connection, lane: NoticeLane, platform: str, chat: str, post_id: int | None, now: float
    ) -> int:
        return int(
            conn.execute(
                status_text(
                    f"INSERT INTO notice ({_NOTICE_COLUMNS}) VALUES (:lane, :platform, :chat, :e, :e,"
                    " :post, :pending, 0, :now, :now, :f) RETURNING id"
                ),
                {
                    "f": False,
                    "lane": int(lane),
                    "platform": platform,
                    "chat": chat,
                    "e": b"",
                    "post": post_id,
                    "now": now,
                },
            ).scalar_one()
        )

    def _seal_row(self, conn: Connection, notice_id: int, address: Address, reply: Reply) -> None:
        conn.execute(
            text("UPDATE notice SET sealed = :sealed, body = :body WHERE id = :id"),
            {
                "id": notice_id,
                "sealed": self.sealer.seal(address, table="notice", row_id=notice_id),
                "body": self._seal_body(notice_id, address.platform, reply),
            },
        )

    def _chat_index(self, address: Address) -> str:
        return self.sealer.blind_index(address.platform, "chat\x00" + address.target)

    def _seal_body(self, notice_id: int, platform: str, reply: Reply) -> bytes:
        data = {
            "text": reply.text,
            "html": reply.html,
            "buttons": [[b.label, b.command, b.url] for b in reply.buttons],
            "invoice": dataclasses.asdict(reply.invoice) if reply.invoice is not None else None,
            "image": base64.b64encode(reply.image).decode() if reply.image is not None else None,
        }
        plain = json.dumps(data).encode()
        return self.sealer.seal_bytes(plain, table="notice.body", row_id=notice_id, platform=platform)

    def _seal_ref(self, outcome: NoticeOutcome, platform: str) -> bytes | None:
        if outcome.ref is None:
            return None
        plain = outcome.ref.key.encode()
        return self.sealer.seal_bytes(plain, table="notice.ref", row_id=outcome.id, platform=platform)

    def _open(self, row: Row[Any]) -> ClaimedNotice:
        platform = str(row.platform)
        address: Address | None = None
        reply: Reply | None = None
        notice_id = int(row.id)
        try:
            address = self.sealer.unseal(platform, bytes(row.sealed), table="notice", row_id=notice_id)
            body = self.sealer.unseal_bytes(
                bytes(row.body), table="notice.body", row_id=notice_id, platform=platform
            )
            data = json.loads(body)
            edit_of = None
            if row.post_id is not None and row.ref_sealed is not None:
                ref = self.sealer.unseal_bytes(
                    bytes(row.ref_sealed), table="notice.ref", row_id=notice_id, platform=platform
                )
                edit_of = ref.decode()
            invoice = data.get("invoice")
            reply = Reply(
                data["text"],
                buttons=tuple(Button(*button) for button in data["buttons"]),
                html=data["html"],
                edit_of=edit_of,
                invoice=Invoice(**invoice) if invoice else None,
                image=base64.b64decode(data["image"]) if data.get("image") else None,
            )
        except (UnsealError, ValueError, KeyError, TypeError):
            log.error("notice %s does not unseal with this privacy key; it is marked failed", row.id)
            address, reply = None, None
        return ClaimedNotice(
            id=int(row.id),
            lane=int(row.lane),
            platform=platform,
            address=address,
            reply=reply,
            post_id=row.post_id,
            attempts=int(row.attempts),
            created_at=float(row.created_at),
        )
