"""The SQL that plans copies of earlier posts for one follower, shared by a new subscriber's
back catalogue (`Payments.plan_catch_up`) and a new follower's history (`History.plan`).

Both plan a `send` row per post the follower has no copy of yet (so a second follow or a
second payment never sends a post twice), oldest post first (per-chat order keeps the copies
in publication order), and include a post still being planned only once its planner has
passed this follower (else the fan-out itself sends it). Parameters they use: `:f` follower
id, `:c` channel id, `:send`, `:pending`, `:published`, `:publishing`, `:now`, `:due`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, bindparam, text
from sqlalchemy.engine import Connection

from bridge.models import DeliveryAction, DeliveryStatus, PostStatus

#: -- follower_posts -- the channel's posts joined to one follower and their subscription
FOLLOWER_POSTS = (
    " FROM post p, follower f, subscription sub"
    " WHERE f.id = :f AND sub.follower_id = :f AND sub.channel_id = :c AND p.channel_id = :c"
)
#: the post is out (published), or its fan-out already passed this follower
PLANNER_PASSED = " AND (p.status = :published OR (p.status = :publishing AND p.plan_cursor >= :f))"
#: the follower has no copy of the post yet (a send row in any state)
NO_COPY_YET = (
    " AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.post_id = p.id"
    " AND d.follower_id = :f AND d.action = :send)"
)
#: -- insert_copies -- one send row per selected post (`{where}` follows FOLLOWER_POSTS)
_INSERT = (
    "INSERT INTO delivery (post_id, action, platform, follower_id, silent, status,"
    " attempts, next_attempt_at, created_at, earlier)"
    " SELECT p.id, :action, f.platform, f.id, sub.muted, :pending, 0, :due, :now, :earlier"
    + FOLLOWER_POSTS
    + "{where} ORDER BY p.id"
)


def copy_params(follower_id: int, channel_id: int, now: float) -> dict[str, object]:
    """The parameters every statement of this module binds."""
    return {
        "f": follower_id,
        "c": channel_id,
        "now": now,
        "due": now,
        "send": DeliveryAction.SEND.value,
        "pending": DeliveryStatus.PENDING.value,
        "published": PostStatus.PUBLISHED.value,
        "publishing": PostStatus.PUBLISHING.value,
    }


def plan_copies(conn: Connection, where: str, params: dict[str, object], *, earlier: bool = False) -> int:
    """Plan a copy of each post of the channel that matches `where` (SQL on `p` following
    FOLLOWER_POSTS, its parameters in `params`, which start from `copy_params`) and that the
    follower still has no copy of, oldest first, due at `:due`; returns how many. The posts'
    kept figures are dropped: `/stats` counts their copies again."""
    where += PLANNER_PASSED + NO_COPY_YET
    expanding: list[BindParameter[Any]] = [
        bindparam(name, expanding=True) for name, value in params.items() if isinstance(value, list)
    ]
    select_ids = text("SELECT p.id" + FOLLOWER_POSTS + where + " ORDER BY p.id").bindparams(*expanding)
    post_ids = [int(r[0]) for r in conn.execute(select_ids, params)]
    if not post_ids:
        return 0
    insert = text(_INSERT.format(where=where)).bindparams(*expanding)
    # PostgreSQL types each parameter once: the inserted action is bound apart from `:send`
    conn.execute(insert, {**params, "earlier": earlier, "action": params["send"]})
    conn.execute(
        text("UPDATE post SET planned = planned + 1, send_counts = NULL WHERE id IN :planned_ids").bindparams(
            bindparam("planned_ids", expanding=True)
        ),
        {"planned_ids": post_ids},
    )
    return len(post_ids)


__all__ = ["FOLLOWER_POSTS", "NO_COPY_YET", "PLANNER_PASSED", "copy_params", "plan_copies"]
