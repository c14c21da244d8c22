"""What `/stats <handle> chart` draws: a daily snapshot of each channel's follower count, and
the figures of its last posts (copies per status, reactions). Counts only (the caller's
session)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, text
from sqlmodel import Session

from bridge.models import Post
from bridge.store.fanout import Fanout


@dataclass(frozen=True)
class PostFigures:
    """One post's reach and reactions, as a chart draws them."""

    post_id: int
    delivered: int
    failed: int
    pending: int
    reactions: int


@dataclass(frozen=True)
class ChartData:
    """Everything a channel's chart shows: counts only, never who."""

    channel_name: str
    followers: list[tuple[str, int]]  #: ("YYYY-MM-DD", followers), oldest first
    posts: list[PostFigures]  #: oldest first


def day_of(at: float) -> str:
    """The UTC day of an epoch time, as a snapshot names it."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


#: -- snapshot -- today's follower count of one channel (or of every live one), kept once a day
_SNAPSHOT = (
    "INSERT INTO followersnapshot (channel_id, day, followers, taken_at)"
    " SELECT c.id, :day, COALESCE((SELECT sum(fc.active) FROM followercount fc"
    " WHERE fc.channel_id = c.id), 0), :now FROM channel c WHERE c.deleted_at IS NULL{one}"
    " ON CONFLICT (channel_id, day) DO UPDATE SET followers = excluded.followers,"
    " taken_at = excluded.taken_at"
)


class Charts:
    """Named queries of the follower snapshots and the chart's figures."""

    def snapshot(self, s: Session, now: float, channel_id: int | None = None) -> int:
        """Record today's follower count of every live channel (or of one); a second snapshot
        the same day replaces the first. Returns the rows written."""
        one = " AND c.id = :c" if channel_id is not None else ""
        result = s.connection().execute(
            text(_SNAPSHOT.format(one=one)), {"day": day_of(now), "now": now, "c": channel_id}
        )
        return result.rowcount or 0

    def followers_over_time(self, s: Session, channel_id: int, days: int = 365) -> list[tuple[str, int]]:
        """The channel's daily follower counts, oldest first (at most `days` of them)."""
        rows = s.connection().execute(
            text(
                "SELECT day, followers FROM followersnapshot WHERE channel_id = :c ORDER BY day DESC LIMIT :n"
            ),
            {"c": channel_id, "n": days},
        )
        return sorted((str(r.day), int(r.followers)) for r in rows)

    def last_posts(self, s: Session, fanout: Fanout, channel_id: int, limit: int = 30) -> list[PostFigures]:
        """Reach (copies delivered, failed, pending) and reactions of the channel's last
        published posts, oldest first. Settled posts' copies are read from their kept figures."""
        posts = s.connection().execute(
            text(
                "SELECT id FROM post WHERE channel_id = :c AND published_at IS NOT NULL"
                " ORDER BY id DESC LIMIT :n"
            ),
            {"c": channel_id, "n": limit},
        )
        ids = sorted(int(r[0]) for r in posts)
        if not ids:
            return []
        reactions = {
            int(r[0]): int(r[1])
            for r in s.connection().execute(
                text(
                    "SELECT post_id, count(*) FROM postreaction WHERE post_id IN :ids GROUP BY post_id"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": ids},
            )
        }
        figures = []
        for post_id in ids:
            post = s.get(Post, post_id)
            assert post is not None
            counts = fanout.send_counts(s, post)
            figures.append(
                PostFigures(
                    post_id, counts.delivered, counts.failed, counts.pending, reactions.get(post_id, 0)
                )
            )
        return figures


__all__ = ["ChartData", "Charts", "PostFigures", "day_of"]
