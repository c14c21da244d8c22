"""A new follower's history: copies of the channel's last posts, marked as earlier posts, and
the channel's history setting (the caller's session).

The window is the channel's last `n` posts of the period the follower may receive (published,
not deleted; a paid or pay-per-post one only with access, see `_MAY_RECEIVE`); of those, the
ones the follower already has a copy of are not sent again (`bridge.store.copies`).
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import text
from sqlmodel import Session

from bridge.store.copies import FOLLOWER_POSTS, copy_params, plan_copies

#: who may receive a post: a free one anyone; a paid one (or pay-per-post elsewhere than on a
#: paid-media platform) those with paid access now or the channel's admins
_MAY_RECEIVE = (
    " AND ((p.paid = :no AND p.stars IS NULL)"
    " OR EXISTS (SELECT 1 FROM entitlement e WHERE e.follower_id = f.id AND e.channel_id = :c"
    " AND e.paid_until > :now)"
    " OR EXISTS (SELECT 1 FROM channeladmin a WHERE a.channel_id = :c AND a.account_index = f.account_index)"
    "{paid_media})"
)
#: -- history_window -- the last `:n` posts of the period the follower may receive
_WINDOW = (
    "SELECT p.id"
    + FOLLOWER_POSTS
    + " AND p.status IN (:published, :publishing) AND p.published_at >= :since"
    + "{may} ORDER BY p.id DESC LIMIT :n"
)


class History:
    """Named queries of a new follower's history."""

    def set_size(self, s: Session, channel_id: int, n: int) -> None:
        """Set how many earlier posts the channel's new followers get (0: none)."""
        s.connection().execute(
            text("UPDATE channel SET history = :n WHERE id = :c"), {"n": n, "c": channel_id}
        )

    def plan(
        self,
        s: Session,
        follower_id: int,
        channel_id: int,
        n: int,
        *,
        since: float,
        now: float,
        due: float,
        paid_media: Collection[str] = (),
    ) -> int:
        """Plan the follower's copies of the channel's last `n` posts published since `since`
        that they may receive and do not have yet, oldest first, marked earlier and due at
        `due` (after the welcome reply); returns how many."""
        if n <= 0:
            return 0
        params: dict[str, object] = {**copy_params(follower_id, channel_id, now), "since": since, "n": n}
        params.update(no=False, due=due)
        names = sorted(paid_media)
        marks = ", ".join(f":pm{i}" for i in range(len(names)))
        extra = f" OR (p.stars IS NOT NULL AND f.platform IN ({marks}))" if names else ""
        params.update({f"pm{i}": name for i, name in enumerate(names)})
        conn = s.connection()
        window = [
            int(r[0])
            for r in conn.execute(text(_WINDOW.format(may=_MAY_RECEIVE.format(paid_media=extra))), params)
        ]
        if not window:
            return 0
        return plan_copies(conn, " AND p.id IN :window", {**params, "window": window}, earlier=True)

    def add_link_follow(self, s: Session, channel_id: int) -> None:
        """Count one follow that came through the channel's link."""
        s.connection().execute(
            text("UPDATE channel SET link_follows = link_follows + 1 WHERE id = :c"), {"c": channel_id}
        )


__all__ = ["History"]
