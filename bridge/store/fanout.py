"""Fan-out planning and its figures: send rows per follower, follow-ups, counts, progress."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, func, select

from bridge.models import Delivery, DeliveryAction, DeliveryStatus, Post, PostStatus
from bridge.privacy import Sealed
from bridge.store.rows import FailureReason, ProgressReport, SendCounts

_PENDING = DeliveryStatus.PENDING.value
_SEND = DeliveryAction.SEND.value
_TEASER = DeliveryAction.TEASER.value

#: -- plan_mirrors -- the first batch of a post also goes to every mirror room of its channel
_PLAN_MIRRORS = text(
    "INSERT INTO delivery (post_id, action, platform, mirror_id, silent, status,"
    " attempts, next_attempt_at, created_at)"
    " SELECT :post, :send, platform, id, :f, :pending, 0, :now, :now"
    " FROM mirrorroom WHERE channel_id = :ch"
)

#: -- plan_bound -- the follower id that ends the next batch (None: the rest fits in it)
_PLAN_BOUND = text(
    "SELECT follower_id FROM subscription WHERE channel_id = :ch"
    " AND follower_id > :after ORDER BY follower_id LIMIT 1 OFFSET :off"
)

#: -- plan_followers -- one send row per active subscription after the cursor (INSERT ... SELECT)
_PLAN_FOLLOWERS = (
    "INSERT INTO delivery (post_id, action, platform, follower_id, silent, status,"
    " attempts, next_attempt_at, created_at)"
    " SELECT :post, :send, f.platform, f.id, s.muted, :pending, 0, :now, :now"
    " FROM subscription s JOIN follower f ON f.id = s.follower_id"
    " WHERE s.channel_id = :ch AND s.paused = :paused AND s.follower_id > :after"
)

#: -- plan_gated -- a paid (or pay-per-post) post: a send row per follower with access (paid
#: until later than now, or an admin of the channel: their follower row shares the admin's
#: blind index), a teaser row per other follower (when the tier's teaser is off, `{access}` is
#: added to the WHERE clause and nobody without access gets a row)
_PLAN_GATED = (
    "INSERT INTO delivery (post_id, action, platform, follower_id, silent, status,"
    " attempts, next_attempt_at, created_at)"
    " SELECT :post, CASE WHEN {access} THEN :send ELSE :teaser END, f.platform, f.id, s.muted,"
    " :pending, 0, :now, :now"
    " FROM subscription s JOIN follower f ON f.id = s.follower_id"
    " LEFT JOIN entitlement e ON e.follower_id = s.follower_id AND e.channel_id = s.channel_id"
    " LEFT JOIN channeladmin a ON a.channel_id = s.channel_id AND a.account_index = f.account_index"
    " WHERE s.channel_id = :ch AND s.paused = :paused AND s.follower_id > :after"
)
#: who has access to a gated post: an entitlement running past now, or an admin of the channel
_ACCESS = "(e.paid_until > :now OR a.id IS NOT NULL)"

#: -- plan_followups -- an edit/delete/close for copies of a post (all delivered ones, or one)
_PLAN_FOLLOWUPS = (
    "INSERT INTO delivery (post_id, action, platform, follower_id, mirror_id, source_id,"
    " silent, status, attempts, next_attempt_at, created_at, earlier)"
    " SELECT post_id, :action, platform, follower_id, mirror_id, id, silent, :pending,"
    " 0, :now, :now, earlier FROM delivery"
)


class Fanout:
    """Named queries that plan a post's deliveries and report on them (the caller's session)."""

    def plan_batch(
        self,
        s: Session,
        post_id: int,
        batch: int,
        now: float,
        lease_s: float,
        paid_media: Collection[str] = (),
    ) -> int:
        """Plan one batch of send deliveries for a publishing post; returns rows planned.

        Followers are taken in id order after the post's `plan_cursor`, by `INSERT ... SELECT`
        so no follower is loaded into memory; the cursor moves in the same transaction, so a
        crashed planner resumes exactly where it stopped. Mirror rooms go with the first batch.
        Returns -1 when planning is complete (the post is then `published`).

        A paid post (`post.paid`) goes only to followers with access (an entitlement running
        past `now`, or an admin of the channel); the others get a teaser row when the channel's
        latest tier has its teaser on, else nothing; mirror rooms get nothing. A pay-per-post
        (`post.stars`) goes as a send row to every follower on a platform in `paid_media` (they
        buy it there) and elsewhere like a paid post.
        """
        conn = s.connection()
        row = conn.execute(
            text("SELECT channel_id, plan_cursor, status, paid, stars FROM post WHERE id = :id"),
            {"id": post_id},
        ).first()
        if row is None or row.status != PostStatus.PUBLISHING.value:
            return -1
        channel_id, cursor = row.channel_id, row.plan_cursor
        gated = bool(row.paid) or bool(row.stars)
        common = {"post": post_id, "ch": channel_id, "now": now, "send": _SEND, "pending": _PENDING}
        planned = 0
        if cursor == 0 and not gated:  # mirrors never get a paid post
            planned += conn.execute(_PLAN_MIRRORS, {**common, "f": False}).rowcount or 0
        bound = conn.execute(_PLAN_BOUND, {"ch": channel_id, "after": cursor, "off": batch - 1}).scalar()
        upper = " AND s.follower_id <= :upper" if bound is not None else ""
        params = {**common, "after": cursor, "upper": bound, "paused": False}
        if gated:
            sql = self._gated_sql(conn, channel_id, bool(row.stars), paid_media, params) + upper
        else:
            sql = _PLAN_FOLLOWERS + upper
        planned += conn.execute(text(sql), params).rowcount or 0
        if bound is None:
            conn.execute(
                text(
                    "UPDATE post SET status = :published, planned = planned + :n,"
                    " plan_cursor = -1, plan_lease_until = NULL WHERE id = :id"
                ),
                {"id": post_id, "n": planned, "published": PostStatus.PUBLISHED.value},
            )
            return -1 if planned == 0 else planned
        conn.execute(
            text(
                "UPDATE post SET planned = planned + :n, plan_cursor = :cur,"
                " plan_lease_until = :lease WHERE id = :id"
            ),
            {"id": post_id, "n": planned, "cur": bound, "lease": now + lease_s},
        )
        return planned

    def _gated_sql(
        self,
        conn: Connection,
        channel_id: int,
        stars: bool,
        paid_media: Collection[str],
        params: dict[str, object],
    ) -> str:
        """The `INSERT ... SELECT` of a paid or pay-per-post batch (its parameters added)."""
        teaser = conn.execute(
            text("SELECT teaser FROM tier WHERE channel_id = :ch ORDER BY id DESC LIMIT 1"),
            {"ch": channel_id},
        ).scalar()
        access = _ACCESS
        if stars and paid_media:
            names = sorted(paid_media)
            marks = ", ".join(f":pm{i}" for i in range(len(names)))
            access = f"({access[1:-1]} OR f.platform IN ({marks}))"
            params.update({f"pm{i}": name for i, name in enumerate(names)})
        params["teaser"] = _TEASER
        sql = _PLAN_GATED.format(access=access)
        return sql if teaser else sql + f" AND {access}"

    def plan_followups(self, s: Session, post_id: int, action: DeliveryAction, now: float) -> int:
        """Plan an edit/delete/close for every delivered copy of a post; returns the count.
        Only sent copies (`send` rows) are followed up: a teaser is never edited or deleted."""
        result = s.connection().execute(
            text(_PLAN_FOLLOWUPS + " WHERE post_id = :post AND action = :send AND status = :delivered"),
            {
                "post": post_id,
                "action": action.value,
                "now": now,
                "send": _SEND,
                "pending": _PENDING,
                "delivered": DeliveryStatus.DELIVERED.value,
            },
        )
        return result.rowcount or 0

    def plan_catch_up(self, conn: Connection, delivered: Sequence[tuple[int, int, int]], now: float) -> None:
        """Copies delivered while their post changed: plan a delete (post deleted meanwhile) or
        an edit (post edited after the copy was rendered). Items: (send id, post id, edit count
        the copy was rendered with). Runs on the worker's Core connection."""
        ids = sorted({p for _, p, _ in delivered})
        rows = conn.execute(select(Post.id, Post.status, Post.edit_count).where(col(Post.id).in_(ids))).all()
        states = {r[0]: (r[1], r[2]) for r in rows}
        for send_id, post_id, rendered in delivered:
            status, edit_count = states.get(post_id, (None, 0))
            if status == PostStatus.DELETED.value:
                self._plan_followup_for(conn, send_id, DeliveryAction.DELETE, now)
            elif edit_count > rendered:
                self._plan_followup_for(conn, send_id, DeliveryAction.EDIT, now)

    def _plan_followup_for(self, conn: Connection, send_id: int, action: DeliveryAction, now: float) -> None:
        conn.execute(
            text(_PLAN_FOLLOWUPS + " WHERE id = :id"),
            {"id": send_id, "action": action.value, "now": now, "pending": _PENDING},
        )

    def skip_pending(self, s: Session, post_id: int, reason: str, actions: Sequence[str]) -> int:
        """Mark not-yet-sent rows of a post skipped (e.g. the post was deleted)."""
        result = s.connection().execute(
            text(
                "UPDATE delivery SET status = :skipped, error = :reason, lease_owner = NULL"
                " WHERE post_id = :post AND status = :pending AND action IN :actions"
            ).bindparams(bindparam("actions", expanding=True)),
            {
                "post": post_id,
                "reason": reason,
                "actions": list(actions),
                "skipped": DeliveryStatus.SKIPPED.value,
                "pending": _PENDING,
            },
        )
        return result.rowcount or 0

    # ---- figures -------------------------------------------------------------------------

    def _by_status(self, s: Session, post_id: int) -> dict[str, int]:
        rows = s.exec(
            select(Delivery.status, func.count())
            .where(Delivery.post_id == post_id, Delivery.action == _SEND)
            .group_by(col(Delivery.status))
        ).all()
        return {status: int(n) for status, n in rows}

    def _any_open_send(self, s: Session, post_id: int) -> bool:
        """Whether a copy of the post is still to be sent (one probe of ix_delivery_post_status)."""
        row = s.connection().execute(
            text(
                "SELECT 1 FROM delivery WHERE post_id = :post AND status IN (:pending, :leased)"
                " AND action = :send LIMIT 1"
            ),
            {"post": post_id, "pending": _PENDING, "leased": DeliveryStatus.LEASED.value, "send": _SEND},
        )
        return row.first() is not None

    def teaser_count(self, s: Session, post_id: int) -> int:
        """How many teasers of a paid post were sent (a count, for `/stats`)."""
        return int(
            s.connection()
            .execute(
                text(
                    "SELECT count(*) FROM delivery"
                    " WHERE post_id = :post AND action = :teaser AND status = :done"
                ),
                {"post": post_id, "teaser": _TEASER, "done": DeliveryStatus.DELIVERED.value},
            )
            .scalar_one()
        )

    def send_counts(self, s: Session, post: Post) -> SendCounts:
        """A post's copies per status. Once a published post has nothing left to send its
        figures no longer change: they are kept on the post, so `/stats` does not count 100k
        rows again (a `/forgetme` that removes one of its receipts drops the kept figures)."""
        if post.send_counts:
            kept = {str(k): int(v) for k, v in json.loads(post.send_counts).items()}
            return SendCounts.from_statuses(kept)
        by_status = self._by_status(s, post.id or 0)
        counts = SendCounts.from_statuses(by_status)
        if _settled(post) and not counts.pending:
            post.send_counts = json.dumps(by_status)
            s.add(post)
        return counts

    def failure_reasons(self, s: Session, post_id: int, limit: int = 3) -> list[FailureReason]:
        """The commonest failure reasons of a post's sends (no identities: reasons only)."""
        rows = s.exec(
            select(Delivery.error, func.count())
            .where(Delivery.post_id == post_id, Delivery.status == DeliveryStatus.FAILED.value)
            .group_by(col(Delivery.error))
            .order_by(func.count().desc())
            .limit(limit)
        ).all()
        return [FailureReason(str(e), int(n)) for e, n in rows]

    def progress(
        self, s: Session, post_id: int, now: float, threshold: int, interval_s: float
    ) -> ProgressReport | None:
        """What the author of a post should be told now: a large fan-out's progress figures (at
        most every `interval_s`), and once, when it is over, the final summary (for a large
        fan-out, or any with failures). Claims the summary: it is reported once."""
        post = s.get(Post, post_id)
        if post is None or not post.author_platform or not post.author_sealed:
            return None
        large = post.planned >= threshold
        settled = _settled(post)
        # Called after every batch of recorded sends: the copies are counted (100k rows for a
        # large post, seconds of a blocked event loop on a busy machine) only when a report is
        # due, and whether any copy is still open is one index probe.
        due = post.progress_notified_at is None or now - post.progress_notified_at >= interval_s
        still_sending = not settled or self._any_open_send(s, post_id)
        if still_sending and not (large and due):
            return None
        if not still_sending and post.summary_sent:
            return None
        counts = SendCounts.from_statuses(self._by_status(s, post_id))
        author = Sealed("post", post_id, post.author_platform, bytes(post.author_sealed))
        finished = counts.pending == 0 and settled
        if finished and not post.summary_sent:
            if not large and counts.failed == 0:
                return None
            post.summary_sent = True
            s.add(post)
            reasons = tuple(self.failure_reasons(s, post_id))
            return ProgressReport(
                author, post_id, counts, progress=large, done=True, summary=True, reasons=reasons
            )
        if finished or not large:
            return None
        if post.progress_notified_at is not None and now - post.progress_notified_at < interval_s:
            return None
        post.progress_notified_at = now
        s.add(post)
        return ProgressReport(author, post_id, counts, progress=True, done=False, summary=False)

    def reset_summary(self, s: Session, post_id: int) -> None:
        """The final summary could not be sent: let the next report try again."""
        s.connection().execute(
            text("UPDATE post SET summary_sent = :f WHERE id = :id"), {"f": False, "id": post_id}
        )


def _settled(post: Post) -> bool:
    """Whether a post's fan-out is fully planned (published, or deleted): once nothing of it is
    pending, its figures no longer change."""
    return post.status in (PostStatus.PUBLISHED.value, PostStatus.DELETED.value)


__all__ = ["Fanout"]
