"""Followers and their subscriptions: follow, mute, pause, forget, bulk import, the counters."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, delete, func, select

from bridge.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    Follower,
    FollowerCount,
    PostReaction,
    QuizAnswer,
    Subscription,
    Vote,
)
from bridge.ports import Address
from bridge.privacy import Sealer
from bridge.store.rows import Followed, PlatformCount

#: a subscription's (muted, paused) state; None is no subscription
_State = tuple[bool, bool] | None

_FOLLOWER_GONE = "follower is gone"


def _weights(state: _State) -> tuple[int, int, int]:
    if state is None:
        return 0, 0, 0
    muted, paused = state
    return int(not paused), int(muted and not paused), int(paused)


def count_change(
    conn: Connection, channel_id: int, platform: str, old: _State, new: _State, times: int = 1
) -> None:
    """Move the follower counters of `times` subscriptions going from `old` to `new` (muted,
    paused). Runs in the transaction that changed them."""
    delta = [times * (n - o) for n, o in zip(_weights(new), _weights(old), strict=True)]
    if not any(delta):
        return
    key = {"c": channel_id, "p": platform}
    conn.execute(
        text(
            "INSERT INTO followercount (channel_id, platform, active, muted, paused)"
            " VALUES (:c, :p, 0, 0, 0) ON CONFLICT (channel_id, platform) DO NOTHING"
        ),
        key,
    )
    conn.execute(
        text(
            "UPDATE followercount SET active = active + :a, muted = muted + :m, paused = paused + :z"
            " WHERE channel_id = :c AND platform = :p"
        ),
        {**key, "a": delta[0], "m": delta[1], "z": delta[2]},
    )


class Followers:
    """Named queries on followers and subscriptions (the caller's session)."""

    def by_index(self, s: Session, account_index: str) -> Follower | None:
        """A follower by the blind index of their platform identity."""
        return s.exec(select(Follower).where(Follower.account_index == account_index)).first()

    def subscription(self, s: Session, follower_id: int, channel_id: int) -> Subscription | None:
        """One follower's subscription to one channel."""
        return s.exec(
            select(Subscription).where(
                Subscription.follower_id == follower_id, Subscription.channel_id == channel_id
            )
        ).first()

    def subscriptions_of(self, s: Session, follower_id: int) -> list[Followed]:
        """What a follower follows (live channels)."""
        rows = s.exec(
            select(Subscription, Channel)
            .join(Channel, col(Channel.id) == col(Subscription.channel_id))
            .where(Subscription.follower_id == follower_id)
            .where(col(Channel.deleted_at).is_(None))
            .order_by(col(Channel.handle))
        ).all()
        return [Followed(sub, channel) for sub, channel in rows]

    # ---- counts --------------------------------------------------------------------------

    def count(self, s: Session, channel_id: int) -> int:
        """How many follow the channel (paused ones excluded), from the counter table."""
        value = s.exec(
            select(func.sum(FollowerCount.active)).where(FollowerCount.channel_id == channel_id)
        ).one()
        return int(value or 0)

    def counts_by_platform(self, s: Session, channel_id: int) -> dict[str, PlatformCount]:
        """Per platform with followers: active followers, muted among them."""
        rows = s.exec(
            select(FollowerCount.platform, FollowerCount.active, FollowerCount.muted).where(
                FollowerCount.channel_id == channel_id, FollowerCount.active > 0
            )
        ).all()
        return {platform: PlatformCount(int(n), int(m)) for platform, n, m in rows}

    def paused_count(self, s: Session, channel_id: int) -> int:
        """Subscriptions paused because the platform said the follower is gone."""
        value = s.exec(
            select(func.sum(FollowerCount.paused)).where(FollowerCount.channel_id == channel_id)
        ).one()
        return int(value or 0)

    # ---- following -----------------------------------------------------------------------

    def subscribe(self, s: Session, follower: Follower, channel_id: int, now: float) -> bool:
        """Make a follower follow a channel (or resume a paused subscription); False when they
        already follow it."""
        assert follower.id is not None
        conn = s.connection()
        resumed = conn.execute(
            text(
                "UPDATE subscription SET paused = :f WHERE follower_id = :fid AND channel_id = :c"
                " AND paused = :t RETURNING muted"
            ),
            {"f": False, "t": True, "fid": follower.id, "c": channel_id},
        ).first()
        if resumed is not None:
            muted = bool(resumed.muted)
            count_change(conn, channel_id, follower.platform, (muted, True), (muted, False))
            return True
        if self.subscription(s, follower.id, channel_id) is not None:
            return False
        s.add(Subscription(follower_id=follower.id, channel_id=channel_id, created_at=now))
        s.flush()
        count_change(conn, channel_id, follower.platform, None, (False, False))
        return True

    def unsubscribe(self, s: Session, sub: Subscription, platform: str) -> None:
        """End one subscription."""
        conn = s.connection()
        gone = conn.execute(
            text("DELETE FROM subscription WHERE id = :id RETURNING muted, paused"), {"id": sub.id}
        ).first()
        if gone is not None:
            s.expunge(sub)
            count_change(conn, sub.channel_id, platform, (bool(gone.muted), bool(gone.paused)), None)

    def set_muted(self, s: Session, sub: Subscription, platform: str, muted: bool) -> None:
        """Mute or unmute one subscription."""
        conn = s.connection()
        changed = conn.execute(
            text("UPDATE subscription SET muted = :m WHERE id = :id AND muted = :was RETURNING paused"),
            {"m": muted, "was": not muted, "id": sub.id},
        ).first()
        if changed is not None:
            paused = bool(changed.paused)
            count_change(conn, sub.channel_id, platform, (not muted, paused), (muted, paused))

    def pause(self, s: Session, follower_id: int) -> None:
        """The platform says this follower is gone: pause every subscription of theirs and skip
        what is still pending for them."""
        conn = s.connection()
        paused = conn.execute(
            text(
                "UPDATE subscription SET paused = :t WHERE follower_id = :f AND paused = :no"
                " RETURNING channel_id, muted"
            ),
            {"t": True, "no": False, "f": follower_id},
        ).all()
        platform = conn.execute(
            text("SELECT platform FROM follower WHERE id = :f"), {"f": follower_id}
        ).scalar()
        for row in paused:
            muted = bool(row.muted)
            count_change(conn, row.channel_id, str(platform), (muted, False), (muted, True))
        conn.execute(
            text(
                "UPDATE delivery SET status = :skipped, error = :why, "
                "lease_owner = NULL WHERE follower_id = :f AND status = :pending"
            ),
            {
                "f": follower_id,
                "why": _FOLLOWER_GONE,
                "skipped": DeliveryStatus.SKIPPED.value,
                "pending": DeliveryStatus.PENDING.value,
            },
        )

    # ---- forgetting ----------------------------------------------------------------------

    def forget(self, s: Session, follower: Follower) -> None:
        """Remove every trace of a follower: subscriptions, votes, reactions, receipts, paid access."""
        assert follower.id is not None
        self.forget_voter(s, follower.account_index)
        conn = s.connection()
        gone = conn.execute(
            text("DELETE FROM subscription WHERE follower_id = :f RETURNING channel_id, muted, paused"),
            {"f": follower.id},
        ).all()
        for row in gone:
            count_change(conn, row.channel_id, follower.platform, (bool(row.muted), bool(row.paused)), None)
        conn.execute(
            text(
                "UPDATE post SET send_counts = NULL WHERE id IN"
                " (SELECT post_id FROM delivery WHERE follower_id = :f)"
            ),
            {"f": follower.id},
        )
        s.exec(delete(Delivery).where(col(Delivery.follower_id) == follower.id))
        # paid access goes with them: a later follower given the same row id must not inherit it
        conn.execute(text("DELETE FROM entitlement WHERE follower_id = :f"), {"f": follower.id})
        s.delete(follower)

    def forget_voter(self, s: Session, account_index: str) -> None:
        """Remove votes, quiz answers and reactions of someone (a follower, or a mirror member)."""
        s.exec(delete(Vote).where(col(Vote.voter_index) == account_index))
        s.exec(delete(QuizAnswer).where(col(QuizAnswer.voter_index) == account_index))
        s.exec(delete(PostReaction).where(col(PostReaction.reactor_index) == account_index))

    # ---- bulk import ---------------------------------------------------------------------

    def bulk_import(
        self,
        conn: Connection,
        channel_id: int,
        addresses: Iterable[Address],
        sealer: Sealer,
        now: float,
        batch: int = 5000,
    ) -> int:
        """Make every address a follower of the channel, in bulk (an operator migrating an
        audience; benchmarks), on a Core connection. Addresses are sealed and indexed like any
        follower's; someone already following is left as they are. Returns how many were given."""
        given = 0
        chunk: list[tuple[str, str, Address]] = []  # (platform, blind index, address)
        subscribe = text(
            "INSERT INTO subscription (follower_id, channel_id, muted, paused, created_at)"
            " SELECT f.id, :ch, :f, :f, :now FROM follower f WHERE f.account_index IN :indexes"
            " AND NOT EXISTS (SELECT 1 FROM subscription s WHERE s.follower_id = f.id AND s.channel_id = :ch)"
        ).bindparams(bindparam("indexes", expanding=True))
        seal = sealer.seal

        def flush() -> None:
            # a sealed address is bound to its row id: insert first, seal the new rows after
            conn.execute(
                text(
                    "INSERT INTO follower (platform, account_index, sealed, created_at)"
                    " VALUES (:p, :i, :s, :now) ON CONFLICT (account_index) DO NOTHING"
                ),
                [{"p": p, "i": i, "s": b"", "now": now} for p, i, _ in chunk],
            )
            by_index = {i: a for _, i, a in chunk}
            fresh = conn.execute(
                text(
                    "SELECT id, account_index FROM follower WHERE account_index IN :indexes AND sealed = :e"
                ).bindparams(bindparam("indexes", expanding=True)),
                {"indexes": list(by_index), "e": b""},
            ).all()
            if fresh:
                conn.execute(
                    text("UPDATE follower SET sealed = :s WHERE id = :id"),
                    [
                        {"id": r.id, "s": seal(by_index[r.account_index], table="follower", row_id=r.id)}
                        for r in fresh
                        if r.account_index in by_index
                    ],
                )
            for platform in sorted({p for p, _, _ in chunk}):
                indexes = [i for p, i, _ in chunk if p == platform]
                added = conn.execute(
                    subscribe, {"ch": channel_id, "f": False, "now": now, "indexes": indexes}
                ).rowcount
                count_change(conn, channel_id, platform, None, (False, False), times=added or 0)
            chunk.clear()

        for address in addresses:
            chunk.append((address.platform, sealer.address_index(address), address))
            given += 1
            if len(chunk) >= batch:
                flush()
        if chunk:
            flush()
        return given


__all__ = ["Followers", "count_change"]
