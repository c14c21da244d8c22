"""What is timed: scheduled posts, poll deadlines, recurring posts, and their atomic claims.

Each claim is one conditional UPDATE in the caller's transaction; it returns `Claim.WON` for
exactly one caller however many processes or wake-ups race for it.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session, col, select

from bridge.models import Post, PostStatus, RecurringPost
from bridge.outcomes import Claim
from bridge.ports import PostKind
from bridge.store.rows import Due, ScheduleSnapshot


class Schedule:
    """Named queries on timed things (the caller's session)."""

    def scheduled_posts(self, s: Session, channel_id: int) -> list[Post]:
        """A channel's posts waiting for their time, soonest first."""
        return list(
            s.exec(
                select(Post)
                .where(Post.channel_id == channel_id, Post.status == PostStatus.SCHEDULED.value)
                .order_by(col(Post.scheduled_at))
            )
        )

    def due_posts(self, s: Session, now: float, limit: int = 100) -> list[Post]:
        """Scheduled posts whose time has come."""
        return list(
            s.exec(
                select(Post)
                .where(Post.status == PostStatus.SCHEDULED.value, col(Post.scheduled_at) <= now)
                .order_by(col(Post.scheduled_at))
                .limit(limit)
            )
        )

    def stale_publishing(self, s: Session, now: float) -> list[int]:
        """Posts whose fan-out planner died mid-way (their planning lease ran out)."""
        ids = s.exec(
            select(Post.id).where(
                Post.status == PostStatus.PUBLISHING.value, col(Post.plan_lease_until) < now
            )
        ).all()
        return [int(i) for i in ids if i is not None]

    def snapshot(self, s: Session) -> ScheduleSnapshot:
        """What the scheduler must wake up for: scheduled posts, open poll deadlines and active
        recurring posts, each with its due time."""
        posts = s.exec(
            select(Post.id, Post.scheduled_at).where(
                Post.status == PostStatus.SCHEDULED.value, col(Post.scheduled_at).is_not(None)
            )
        ).all()
        polls = s.exec(
            select(Post.id, Post.poll_closes_at).where(
                Post.kind == PostKind.POLL.value,
                col(Post.poll_closes_at).is_not(None),
                col(Post.poll_closed_at).is_(None),
                col(Post.status).in_(
                    [PostStatus.PUBLISHED.value, PostStatus.PUBLISHING.value, PostStatus.SCHEDULED.value]
                ),
            )
        ).all()
        recurring = s.exec(
            select(RecurringPost.id, RecurringPost.next_at).where(
                col(RecurringPost.active).is_(True),
                col(RecurringPost.next_at).is_not(None),
            )
        ).all()
        return ScheduleSnapshot(
            [Due(int(i), float(a)) for i, a in posts if i is not None and a is not None],
            [Due(int(i), float(a)) for i, a in polls if i is not None and a is not None],
            [Due(int(i), float(a)) for i, a in recurring if i is not None and a is not None],
        )

    # ---- claims --------------------------------------------------------------------------

    def claim_publishing(self, s: Session, post_id: int, now: float, lease_s: float) -> Claim:
        """Move a post from scheduled (or draft) to publishing, with a planning lease."""
        result = s.connection().execute(
            text(
                "UPDATE post SET status = :publishing, plan_lease_until = :lease "
                "WHERE id = :id AND status IN (:scheduled, :draft)"
            ),
            {
                "id": post_id,
                "lease": now + lease_s,
                "publishing": PostStatus.PUBLISHING.value,
                "scheduled": PostStatus.SCHEDULED.value,
                "draft": PostStatus.DRAFT.value,
            },
        )
        return Claim.of(result.rowcount)

    def claim_skip(self, s: Session, post_id: int) -> Claim:
        """Mark a scheduled post skipped (late policy, or its author is no longer an admin)."""
        result = s.connection().execute(
            text("UPDATE post SET status = :skipped WHERE id = :id AND status = :scheduled"),
            {"id": post_id, "skipped": PostStatus.SKIPPED.value, "scheduled": PostStatus.SCHEDULED.value},
        )
        return Claim.of(result.rowcount)

    def claim_poll_close(self, s: Session, post_id: int, now: float) -> Claim:
        """Close a poll."""
        result = s.connection().execute(
            text(
                "UPDATE post SET poll_closed_at = :now"
                " WHERE id = :id AND kind = :poll AND poll_closed_at IS NULL"
            ),
            {"id": post_id, "now": now, "poll": PostKind.POLL.value},
        )
        return Claim.of(result.rowcount)

    def claim_recurrence(self, s: Session, recurring_id: int, due_at: float, next_at: float) -> Claim:
        """Move a recurring post from the occurrence `due_at` to `next_at` (so two processes or
        two wake-ups post that occurrence once)."""
        result = s.connection().execute(
            text(
                "UPDATE recurringpost SET next_at = :next WHERE id = :id AND next_at = :due AND active = :t"
            ),
            {"id": recurring_id, "due": due_at, "next": next_at, "t": True},
        )
        return Claim.of(result.rowcount)

    def claim_stop_recurring(self, s: Session, recurring_id: int, due_at: float) -> Claim:
        """Stop a recurring post at its occurrence `due_at`."""
        result = s.connection().execute(
            text("UPDATE recurringpost SET active = :f WHERE id = :id AND next_at = :due AND active = :t"),
            {"id": recurring_id, "due": due_at, "f": False, "t": True},
        )
        return Claim.of(result.rowcount)

    # ---- recurring posts -----------------------------------------------------------------

    def recurring(self, s: Session, recurring_id: int) -> RecurringPost | None:
        """A recurring post by id."""
        return s.get(RecurringPost, recurring_id)

    def recurring_posts(self, s: Session, channel_id: int) -> list[RecurringPost]:
        """A channel's active recurring posts."""
        return list(
            s.exec(
                select(RecurringPost).where(
                    RecurringPost.channel_id == channel_id, col(RecurringPost.active).is_(True)
                )
            )
        )

    def all_active_recurring(self, s: Session) -> list[RecurringPost]:
        """Every active recurring post."""
        return list(s.exec(select(RecurringPost).where(col(RecurringPost.active).is_(True))))


__all__ = ["Schedule"]
