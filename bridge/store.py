"""The database: engine and session factory, schema creation, and every named query.

Other modules call queries here by name; SQL lives nowhere else. SQLite (WAL) is the embedded
default; PostgreSQL is the scale-out store (claims use `FOR UPDATE SKIP LOCKED` there).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError as OperationalError_
from sqlalchemy.exc import ProgrammingError
from sqlmodel import Session, SQLModel, col, create_engine, delete, func, select

from bridge.models import (
    AdminInvite,
    AdminRole,
    AuditEntry,
    Channel,
    ChannelAdmin,
    Delivery,
    DeliveryAction,
    DeliveryStatus,
    Follower,
    FollowerCount,
    KeyValue,
    MediaBlob,
    MediaUpload,
    MirrorRoom,
    PollOption,
    Post,
    PostReaction,
    PostStatus,
    RecurringPost,
    Subscription,
    Vote,
)
from bridge.ports import Address, Content, MediaContent, PollContent, PostKind
from bridge.privacy import KEY_RECORD, Sealed, Sealer, UnsealError

#: per-chat order: a row is claimed only when no earlier row to the same follower or mirror is
#: still open, so a later copy never overtakes an earlier one waiting for a retry
_HEAD_OF_CHAT = (
    " AND NOT EXISTS (SELECT 1 FROM delivery e WHERE e.follower_id = d.follower_id"
    " AND e.id < d.id AND e.status IN ('pending', 'leased'))"
    " AND NOT EXISTS (SELECT 1 FROM delivery e WHERE e.mirror_id = d.mirror_id"
    " AND e.id < d.id AND e.status IN ('pending', 'leased'))"
)


def sqlite_url(data_dir: Path) -> str:
    """The default database URL: a SQLite file in the data directory."""
    return f"sqlite:///{(data_dir / 'channelbridge.db').resolve()}"


def private_sqlite_file(path: Path) -> None:
    """Make the SQLite file and its directory private before SQLite opens them: the directory
    0700 when we create it, the database 0600 (SQLite gives its -wal and -shm files the
    database file's mode); an existing database, WAL or SHM readable by others is tightened."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@dataclass(frozen=True)
class ClaimedDelivery:
    """An outbox row a worker has leased, with what it needs to act on it."""

    id: int
    post_id: int
    action: str
    platform: str
    follower_id: int | None
    mirror_id: int | None
    source_id: int | None
    silent: bool
    attempts: int
    created_at: float = 0.0


@dataclass(frozen=True)
class ProgressReport:
    """What a post's author is to be told: the progress message's new text, the summary."""

    author: Sealed  #: who posted, sealed in the post's row
    progress: str | None  #: the text of the progress message (edited in place), if it changes
    summary: str | None  #: the final summary, sent once as a message of its own


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one claimed row, recorded in a batch."""

    id: int
    status: DeliveryStatus
    ref_key: str | None = None
    ref_alt: str | None = None
    error: str | None = None
    next_attempt_at: float | None = None
    refund_attempt: bool = False  #: the platform asked us to wait: this try does not count
    platform: str = ""  #: the row's platform (its sealed reference is bound to it)


@dataclass(frozen=True)
class DeliveryContext:
    """What a claimed batch needs loaded: each row's destination, the references of the copies
    follow-ups target, and rows whose sealed data does not open (with the reason)."""

    addresses: dict[int, Address | None]
    sources: dict[int, tuple[str | None, str | None]]
    broken: dict[int, str]


class Store:
    """Owns the SQLAlchemy engine; every query the product runs is a method here."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith("postgresql")
        if self.is_sqlite:
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                private_sqlite_file(Path(path))
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)

    def create_schema(self) -> None:
        """Create every table that does not exist yet."""
        SQLModel.metadata.create_all(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A Core connection in a transaction (hot paths that do not need the ORM)."""
        with self.engine.begin() as conn:
            yield conn

    # ---- channels -----------------------------------------------------------------------

    def channel_by_handle(self, s: Session, handle: str) -> Channel | None:
        """A live channel by its handle."""
        return s.exec(
            select(Channel).where(Channel.handle == handle, col(Channel.deleted_at).is_(None))
        ).first()

    def channel_by_id(self, s: Session, channel_id: int) -> Channel | None:
        """A channel by id (deleted ones included)."""
        return s.get(Channel, channel_id)

    def handle_taken(self, s: Session, handle: str) -> bool:
        """Whether any channel, even a deleted one, ever had this handle."""
        return s.exec(select(Channel.id).where(Channel.handle == handle)).first() is not None

    def search_channels(self, s: Session, query: str, limit: int = 20) -> list[Channel]:
        """Public live channels whose handle or name contains `query` (taken literally: `%` and
        `_` are escaped)."""
        stmt = select(Channel).where(col(Channel.deleted_at).is_(None), Channel.public == True)  # noqa: E712
        if query:
            needle = query.lower()
            stmt = stmt.where(
                func.lower(Channel.handle).contains(needle, autoescape=True)
                | func.lower(Channel.name).contains(needle, autoescape=True)
            )
        return list(s.exec(stmt.order_by(Channel.handle).limit(limit)))

    def follower_count(self, s: Session, channel_id: int) -> int:
        """How many follow the channel (paused ones excluded), from the counter table."""
        value = s.exec(
            select(func.sum(FollowerCount.active)).where(FollowerCount.channel_id == channel_id)
        ).one()
        return int(value or 0)

    def follower_counts_by_platform(self, s: Session, channel_id: int) -> dict[str, tuple[int, int]]:
        """Per platform with followers: (active followers, muted among them)."""
        rows = s.exec(
            select(FollowerCount.platform, FollowerCount.active, FollowerCount.muted).where(
                FollowerCount.channel_id == channel_id, FollowerCount.active > 0
            )
        ).all()
        return {platform: (int(n), int(m)) for platform, n, m in rows}

    def paused_count(self, s: Session, channel_id: int) -> int:
        """Subscriptions paused because the platform said the follower is gone."""
        value = s.exec(
            select(func.sum(FollowerCount.paused)).where(FollowerCount.channel_id == channel_id)
        ).one()
        return int(value or 0)

    def _count_change(
        self,
        conn: Connection,
        channel_id: int,
        platform: str,
        old: tuple[bool, bool] | None,
        new: tuple[bool, bool] | None,
        times: int = 1,
    ) -> None:
        """Move the follower counters of `times` subscriptions going from `old` to `new` (muted,
        paused); None is no subscription. Runs in the transaction that changed them."""

        def weights(state: tuple[bool, bool] | None) -> tuple[int, int, int]:
            if state is None:
                return 0, 0, 0
            muted, paused = state
            return int(not paused), int(muted and not paused), int(paused)

        delta = [times * (n - o) for n, o in zip(weights(new), weights(old), strict=True)]
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
            self._count_change(conn, channel_id, follower.platform, (muted, True), (muted, False))
            return True
        if self.subscription(s, follower.id, channel_id) is not None:
            return False
        s.add(Subscription(follower_id=follower.id, channel_id=channel_id, created_at=now))
        s.flush()
        self._count_change(conn, channel_id, follower.platform, None, (False, False))
        return True

    def unsubscribe(self, s: Session, sub: Subscription, platform: str) -> None:
        """End one subscription."""
        conn = s.connection()
        gone = conn.execute(
            text("DELETE FROM subscription WHERE id = :id RETURNING muted, paused"), {"id": sub.id}
        ).first()
        if gone is not None:
            s.expunge(sub)
            self._count_change(conn, sub.channel_id, platform, (bool(gone.muted), bool(gone.paused)), None)

    def set_muted(self, s: Session, sub: Subscription, platform: str, muted: bool) -> None:
        """Mute or unmute one subscription."""
        conn = s.connection()
        changed = conn.execute(
            text("UPDATE subscription SET muted = :m WHERE id = :id AND muted = :was RETURNING paused"),
            {"m": muted, "was": not muted, "id": sub.id},
        ).first()
        if changed is not None:
            paused = bool(changed.paused)
            self._count_change(conn, sub.channel_id, platform, (not muted, paused), (muted, paused))

    def mirrors(self, s: Session, channel_id: int) -> list[MirrorRoom]:
        """The mirror rooms of a channel."""
        return list(s.exec(select(MirrorRoom).where(MirrorRoom.channel_id == channel_id)))

    def mirror_chats_of(self, s: Session, platform: str) -> list[str]:
        """Chat ids of every mirror room on a platform (live channels)."""
        rows = s.exec(
            select(MirrorRoom.chat_id)
            .join(Channel, col(Channel.id) == col(MirrorRoom.channel_id))
            .where(MirrorRoom.platform == platform, col(Channel.deleted_at).is_(None))
        ).all()
        return sorted(set(rows))

    def import_followers(
        self, channel_id: int, addresses: Iterable[Address], sealer: Sealer, now: float, batch: int = 5000
    ) -> int:
        """Make every address a follower of the channel, in bulk (an operator migrating an
        audience; benchmarks). Addresses are sealed and indexed like any follower's; someone
        already following is left as they are. Returns how many addresses were given."""
        given = 0
        chunk: list[tuple[str, str, Address]] = []  # (platform, blind index, address)

        subscribe = text(
            "INSERT INTO subscription (follower_id, channel_id, muted, paused, created_at)"
            " SELECT f.id, :ch, :f, :f, :now FROM follower f WHERE f.account_index IN :indexes"
            " AND NOT EXISTS (SELECT 1 FROM subscription s WHERE s.follower_id = f.id AND s.channel_id = :ch)"
        ).bindparams(bindparam("indexes", expanding=True))

        seal = sealer.seal

        def flush(conn: Connection) -> None:
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
                text("SELECT id, account_index FROM follower WHERE account_index IN :indexes AND sealed = :e")
                .bindparams(bindparam("indexes", expanding=True)),
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
                self._count_change(conn, channel_id, platform, None, (False, False), times=added or 0)
            chunk.clear()

        with self.connection() as conn:
            for address in addresses:
                chunk.append((address.platform, sealer.address_index(address), address))
                given += 1
                if len(chunk) >= batch:
                    flush(conn)
            if chunk:
                flush(conn)
        return given

    # ---- admins -------------------------------------------------------------------------

    def admin_of(self, s: Session, channel_id: int, account_index: str) -> ChannelAdmin | None:
        """The admin row of that account in that channel, if any."""
        return s.exec(
            select(ChannelAdmin).where(
                ChannelAdmin.channel_id == channel_id, ChannelAdmin.account_index == account_index
            )
        ).first()

    def admins(self, s: Session, channel_id: int) -> list[ChannelAdmin]:
        """A channel's admins by number."""
        return list(
            s.exec(
                select(ChannelAdmin)
                .where(ChannelAdmin.channel_id == channel_id)
                .order_by(col(ChannelAdmin.number))
            )
        )

    def administered_channels(self, s: Session, account_index: str) -> list[Channel]:
        """Live channels where the account is an admin."""
        return list(
            s.exec(
                select(Channel)
                .join(ChannelAdmin, col(ChannelAdmin.channel_id) == col(Channel.id))
                .where(ChannelAdmin.account_index == account_index)
                .where(col(Channel.deleted_at).is_(None))
                .order_by(Channel.handle)
            )
        )

    def invite_by_digest(self, s: Session, digest: str) -> AdminInvite | None:
        """An admin invite by the keyed digest of its code."""
        return s.exec(select(AdminInvite).where(AdminInvite.code_digest == digest)).first()

    def outstanding_invites(self, s: Session, channel_id: int, now: float) -> int:
        """Invites of a channel neither used nor expired."""
        return s.exec(
            select(func.count())
            .select_from(AdminInvite)
            .where(
                AdminInvite.channel_id == channel_id,
                col(AdminInvite.used_at).is_(None),
                AdminInvite.expires_at > now,
            )
        ).one()

    def revoke_invites_by(self, s: Session, admin_id: int) -> int:
        """Delete the unused invites an admin made (they are being removed); returns how many."""
        result = s.connection().execute(
            text("DELETE FROM admininvite WHERE created_by = :a AND used_at IS NULL"), {"a": admin_id}
        )
        return result.rowcount or 0

    def redeem_invite(self, s: Session, invite_id: int, now: float) -> bool:
        """Mark an invite used, atomically: True for exactly one caller, however many processes
        race for the same code (the row lock makes the loser see `used_at` set)."""
        result = s.connection().execute(
            text("UPDATE admininvite SET used_at = :now WHERE id = :id AND used_at IS NULL"),
            {"id": invite_id, "now": now},
        )
        return (result.rowcount or 0) == 1

    def next_admin_number(self, s: Session, channel_id: int) -> int:
        """Hand out a channel's next admin number (never one used before). On PostgreSQL this
        locks the channel row until the transaction ends, so admissions to one channel queue."""
        number = (
            s.connection()
            .execute(
                text(
                    "UPDATE channel SET last_admin_number = last_admin_number + 1 WHERE id = :id"
                    " RETURNING last_admin_number"
                ),
                {"id": channel_id},
            )
            .scalar_one()
        )
        return int(number)

    def channel_owner(self, s: Session, channel_id: int) -> ChannelAdmin | None:
        """The owner's admin row (channels declared in config may have none)."""
        return s.exec(
            select(ChannelAdmin).where(
                ChannelAdmin.channel_id == channel_id, ChannelAdmin.role == AdminRole.OWNER.value
            )
        ).first()

    # ---- followers ----------------------------------------------------------------------

    def follower_by_index(self, s: Session, account_index: str) -> Follower | None:
        """A follower by the blind index of their platform identity."""
        return s.exec(select(Follower).where(Follower.account_index == account_index)).first()

    def subscription(self, s: Session, follower_id: int, channel_id: int) -> Subscription | None:
        """One follower's subscription to one channel."""
        return s.exec(
            select(Subscription).where(
                Subscription.follower_id == follower_id, Subscription.channel_id == channel_id
            )
        ).first()

    def subscriptions_of(self, s: Session, follower_id: int) -> list[tuple[Subscription, Channel]]:
        """What a follower follows (live channels)."""
        return list(
            s.exec(
                select(Subscription, Channel)
                .join(Channel, col(Channel.id) == col(Subscription.channel_id))
                .where(Subscription.follower_id == follower_id)
                .where(col(Channel.deleted_at).is_(None))
                .order_by(Channel.handle)
            ).all()
        )

    def forget_follower(self, s: Session, follower: Follower) -> None:
        """Remove every trace of a follower: subscriptions, votes, reactions, receipts."""
        assert follower.id is not None
        s.exec(delete(Vote).where(col(Vote.voter_index) == follower.account_index))
        s.exec(delete(PostReaction).where(col(PostReaction.reactor_index) == follower.account_index))
        conn = s.connection()
        gone = conn.execute(
            text("DELETE FROM subscription WHERE follower_id = :f RETURNING channel_id, muted, paused"),
            {"f": follower.id},
        ).all()
        for row in gone:
            self._count_change(
                conn, row.channel_id, follower.platform, (bool(row.muted), bool(row.paused)), None
            )
        conn.execute(
            text(
                "UPDATE post SET send_counts = NULL WHERE id IN"
                " (SELECT post_id FROM delivery WHERE follower_id = :f)"
            ),
            {"f": follower.id},
        )
        s.exec(delete(Delivery).where(col(Delivery.follower_id) == follower.id))
        s.delete(follower)

    def forget_voter(self, s: Session, account_index: str) -> None:
        """Remove votes and reactions of someone who is not a follower (e.g. a mirror member)."""
        s.exec(delete(Vote).where(col(Vote.voter_index) == account_index))
        s.exec(delete(PostReaction).where(col(PostReaction.reactor_index) == account_index))

    def pause_follower(self, s: Session, follower_id: int) -> None:
        """The platform says this follower is gone: pause every subscription of theirs."""
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
            self._count_change(conn, row.channel_id, str(platform), (muted, False), (muted, True))
        s.connection().execute(
            text(
                "UPDATE delivery SET status = 'skipped', error = 'follower is gone', "
                "lease_owner = NULL WHERE follower_id = :f AND status = 'pending'"
            ),
            {"f": follower_id},
        )

    # ---- posts, polls, reactions ----------------------------------------------------------

    def post(self, s: Session, post_id: int) -> Post | None:
        """A post by id."""
        return s.get(Post, post_id)

    def poll_options(self, s: Session, post_id: int) -> list[PollOption]:
        """A poll's options in order."""
        return list(
            s.exec(select(PollOption).where(PollOption.post_id == post_id).order_by(col(PollOption.position)))
        )

    def tally(self, s: Session, post_id: int) -> tuple[dict[int, int], int]:
        """Votes per option position, and the number of distinct voters."""
        rows = s.exec(
            select(Vote.position, func.count()).where(Vote.post_id == post_id).group_by(col(Vote.position))
        ).all()
        voters = s.exec(
            select(func.count(func.distinct(Vote.voter_index))).where(Vote.post_id == post_id)
        ).one()
        return {int(p): int(n) for p, n in rows}, int(voters)

    def set_votes(self, s: Session, post_id: int, voter_index: str, positions: Sequence[int]) -> None:
        """Replace one voter's choices in one poll."""
        s.exec(delete(Vote).where(col(Vote.post_id) == post_id, col(Vote.voter_index) == voter_index))
        for position in sorted(set(positions)):
            s.add(Vote(post_id=post_id, voter_index=voter_index, position=position))

    def set_reaction(self, s: Session, post_id: int, reactor_index: str, key: str | None) -> None:
        """Replace (or with None, remove) one reactor's reaction on one post."""
        s.exec(
            delete(PostReaction).where(
                col(PostReaction.post_id) == post_id, col(PostReaction.reactor_index) == reactor_index
            )
        )
        if key:
            s.add(PostReaction(post_id=post_id, reactor_index=reactor_index, key=key))

    def reaction_counts(self, s: Session, post_id: int) -> dict[str, int]:
        """Reactions per emoji on a post."""
        rows = s.exec(
            select(PostReaction.key, func.count())
            .where(PostReaction.post_id == post_id)
            .group_by(PostReaction.key)
        ).all()
        return {k: int(n) for k, n in sorted(rows, key=lambda r: (-r[1], r[0]))}

    def recent_posts(self, s: Session, channel_id: int, limit: int = 5) -> list[Post]:
        """The latest published (or deleted) posts of a channel, newest first."""
        return list(
            s.exec(
                select(Post)
                .where(Post.channel_id == channel_id)
                .where(col(Post.published_at).is_not(None))
                .order_by(col(Post.id).desc())
                .limit(limit)
            )
        )

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

    def claim_post_for_publishing(self, post_id: int, now: float, lease_s: float) -> bool:
        """Atomically move a post from scheduled (or draft) to publishing; True if we won."""
        with self.connection() as conn:
            result = conn.execute(
                text(
                    "UPDATE post SET status = 'publishing', plan_lease_until = :lease "
                    "WHERE id = :id AND status IN ('scheduled', 'draft')"
                ),
                {"id": post_id, "lease": now + lease_s},
            )
            return (result.rowcount or 0) == 1

    def stale_publishing_posts(self, s: Session, now: float) -> list[int]:
        """Posts whose fan-out planner died mid-way (their planning lease ran out)."""
        return list(
            s.exec(
                select(Post.id).where(
                    Post.status == PostStatus.PUBLISHING.value, col(Post.plan_lease_until) < now
                )
            ).all()  # type: ignore[arg-type]
        )

    def media(self, s: Session, media_id: int) -> MediaBlob | None:
        """A media blob by id."""
        return s.get(MediaBlob, media_id)

    def media_by_hash(self, s: Session, sha256: str, size: int) -> MediaBlob | None:
        """An already stored blob with the same content."""
        return s.exec(select(MediaBlob).where(MediaBlob.sha256 == sha256, MediaBlob.size == size)).first()

    def media_refs(self, s: Session, media_id: int) -> dict[str, str]:
        """Platform references of an uploaded blob."""
        rows = s.exec(select(MediaUpload).where(MediaUpload.media_id == media_id))
        return {row.platform: row.ref for row in rows}

    def save_media_ref(self, media_id: int, platform: str, ref: str) -> None:
        """Remember a platform's reference for a blob (first one wins)."""
        with self.session() as s:
            exists = s.exec(
                select(MediaUpload).where(MediaUpload.media_id == media_id, MediaUpload.platform == platform)
            ).first()
            if exists is None:
                s.add(MediaUpload(media_id=media_id, platform=platform, ref=ref))

    def forget_media_ref(self, media_id: int, platform: str, ref: str) -> None:
        """A platform refused a stored reference: forget it, so the next copy uploads again."""
        with self.connection() as conn:
            conn.execute(
                text("DELETE FROM mediaupload WHERE media_id = :m AND platform = :p AND ref = :r"),
                {"m": media_id, "p": platform, "r": ref},
            )

    def audit(self, s: Session, channel_id: int | None, actor: str, action: str, detail: str = "") -> None:
        """Append to the admin audit log."""
        s.add(AuditEntry(channel_id=channel_id, actor=actor, action=action, detail=detail, at=time.time()))

    # ---- fan-out planning -----------------------------------------------------------------

    def plan_fanout_batch(self, post_id: int, batch: int, now: float, lease_s: float) -> int:
        """Plan one batch of send deliveries for a publishing post; returns rows planned.

        Followers are taken in id order after the post's `plan_cursor`, by `INSERT ... SELECT`
        so no follower is loaded into memory; the cursor moves in the same transaction, so a
        crashed planner resumes exactly where it stopped. Mirror rooms go with the first batch.
        Returns -1 when planning is complete (the post is then `published`).
        """
        with self.connection() as conn:
            row = conn.execute(
                text("SELECT channel_id, plan_cursor, status FROM post WHERE id = :id"),
                {"id": post_id},
            ).first()
            if row is None or row.status != PostStatus.PUBLISHING.value:
                return -1
            channel_id, cursor = row.channel_id, row.plan_cursor
            planned = 0
            if cursor == 0:
                planned += (
                    conn.execute(
                        text(
                            "INSERT INTO delivery (post_id, action, platform, mirror_id, silent, status,"
                            " attempts, next_attempt_at, created_at)"
                            " SELECT :post, 'send', platform, id, :f, 'pending', 0, :now, :now"
                            " FROM mirrorroom WHERE channel_id = :ch"
                        ),
                        {"post": post_id, "ch": channel_id, "now": now, "f": False},
                    ).rowcount
                    or 0
                )
            bound = conn.execute(
                text(
                    "SELECT follower_id FROM subscription WHERE channel_id = :ch"
                    " AND follower_id > :after ORDER BY follower_id LIMIT 1 OFFSET :off"
                ),
                {"ch": channel_id, "after": cursor, "off": batch - 1},
            ).scalar()
            upper = " AND s.follower_id <= :upper" if bound is not None else ""
            planned += (
                conn.execute(
                    text(
                        "INSERT INTO delivery (post_id, action, platform, follower_id, silent, status,"
                        " attempts, next_attempt_at, created_at)"
                        " SELECT :post, 'send', f.platform, f.id, s.muted, 'pending', 0, :now, :now"
                        " FROM subscription s JOIN follower f ON f.id = s.follower_id"
                        " WHERE s.channel_id = :ch AND s.paused = :paused AND s.follower_id > :after" + upper
                    ),
                    {
                        "post": post_id,
                        "ch": channel_id,
                        "after": cursor,
                        "upper": bound,
                        "now": now,
                        "paused": False,
                    },
                ).rowcount
                or 0
            )
            if bound is None:
                conn.execute(
                    text(
                        "UPDATE post SET status = 'published', planned = planned + :n,"
                        " plan_cursor = -1, plan_lease_until = NULL WHERE id = :id"
                    ),
                    {"id": post_id, "n": planned},
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

    def plan_followups(self, s: Session, post_id: int, action: DeliveryAction, now: float) -> int:
        """Plan an edit/delete/close for every delivered copy of a post; returns the count."""
        result = s.connection().execute(
            text(
                "INSERT INTO delivery (post_id, action, platform, follower_id, mirror_id, source_id,"
                " silent, status, attempts, next_attempt_at, created_at)"
                " SELECT post_id, :action, platform, follower_id, mirror_id, id, silent, 'pending',"
                " 0, :now, :now FROM delivery"
                " WHERE post_id = :post AND action = 'send' AND status = 'delivered'"
            ),
            {"post": post_id, "action": action.value, "now": now},
        )
        return result.rowcount or 0

    def plan_followup_for(self, conn: Connection, send_id: int, action: DeliveryAction, now: float) -> None:
        """Plan an edit/delete for one copy that was delivered after the post changed."""
        conn.execute(
            text(
                "INSERT INTO delivery (post_id, action, platform, follower_id, mirror_id, source_id,"
                " silent, status, attempts, next_attempt_at, created_at)"
                " SELECT post_id, :action, platform, follower_id, mirror_id, id, silent, 'pending',"
                " 0, :now, :now FROM delivery WHERE id = :id"
            ),
            {"id": send_id, "action": action.value, "now": now},
        )

    def skip_pending(self, s: Session, post_id: int, reason: str, actions: Sequence[str]) -> int:
        """Mark not-yet-sent rows of a post skipped (e.g. the post was deleted)."""
        result = s.connection().execute(
            text(
                "UPDATE delivery SET status = 'skipped', error = :reason, lease_owner = NULL"
                " WHERE post_id = :post AND status = 'pending' AND action IN :actions"
            ).bindparams(bindparam("actions", expanding=True)),
            {"post": post_id, "reason": reason, "actions": list(actions)},
        )
        return result.rowcount or 0

    def delivery_counts(self, s: Session, post_id: int, action: str = "send") -> dict[str, int]:
        """Rows per status for one post and action."""
        rows = s.exec(
            select(Delivery.status, func.count())
            .where(Delivery.post_id == post_id, Delivery.action == action)
            .group_by(Delivery.status)
        ).all()
        return {status: int(n) for status, n in rows}

    def send_counts(self, s: Session, post: Post) -> dict[str, int]:
        """A post's copies per status. Once a published post has nothing left to send its
        figures no longer change: they are kept on the post, so `/stats` does not count 100k
        rows again (a `/forgetme` that removes one of its receipts drops the kept figures)."""
        if post.send_counts:
            return {str(k): int(v) for k, v in json.loads(post.send_counts).items()}
        counts = self.delivery_counts(s, post.id or 0)
        settled = post.status in (PostStatus.PUBLISHED.value, PostStatus.DELETED.value)
        if settled and not counts.get("pending") and not counts.get("leased"):
            post.send_counts = json.dumps(counts)
            s.add(post)
        return counts

    def failure_reasons(self, s: Session, post_id: int, limit: int = 3) -> list[tuple[str, int]]:
        """The commonest failure reasons of a post's sends (no identities: reasons only)."""
        rows = s.exec(
            select(Delivery.error, func.count())
            .where(Delivery.post_id == post_id, Delivery.status == DeliveryStatus.FAILED.value)
            .group_by(Delivery.error)
            .order_by(func.count().desc())
            .limit(limit)
        ).all()
        return [(str(e), int(n)) for e, n in rows]

    def copy_by_ref_index(self, s: Session, platform: str, ref_index: str) -> Delivery | None:
        """The delivered send whose platform reference (key or alt) has the blind index
        `ref_index` (`Sealer.ref_index`)."""
        found = s.exec(
            select(Delivery).where(
                Delivery.platform == platform,
                Delivery.ref_index == ref_index,
                Delivery.action == DeliveryAction.SEND.value,
            )
        ).first()
        if found is None:
            found = s.exec(
                select(Delivery).where(
                    Delivery.platform == platform,
                    Delivery.ref_alt_index == ref_index,
                    Delivery.action == DeliveryAction.SEND.value,
                )
            ).first()
        return found

    def copy_for_follower(self, s: Session, post_id: int, follower_id: int) -> Delivery | None:
        """The send row of one post to one follower."""
        return s.exec(
            select(Delivery).where(
                Delivery.post_id == post_id,
                Delivery.follower_id == follower_id,
                Delivery.action == DeliveryAction.SEND.value,
            )
        ).first()

    # ---- the outbox -------------------------------------------------------------------------

    def claim_deliveries(
        self, owner: str, now: float, lease_s: float, limit: int, platforms: Sequence[str] | None = None
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` due rows for `owner` (SKIP LOCKED on PostgreSQL), only of
        `platforms` when given (a process claims only what its running adapters can send)."""
        lock = " FOR UPDATE SKIP LOCKED" if self.is_postgres else ""
        only = " AND platform IN :platforms" if platforms is not None else ""
        sql = (
            "UPDATE delivery SET status = 'leased', lease_owner = :owner,"
            " lease_expires_at = :exp, attempts = attempts + 1"
            " WHERE id IN (SELECT id FROM delivery d WHERE status = 'pending'"
            " AND next_attempt_at <= :now" + only + _HEAD_OF_CHAT + " ORDER BY next_attempt_at, id"
            " LIMIT :lim" + lock + ")"
            " RETURNING id, post_id, action, platform, follower_id, mirror_id, source_id,"
            " silent, attempts, created_at"
        )
        statement = text(sql)
        params: dict[str, object] = {"owner": owner, "exp": now + lease_s, "now": now, "lim": limit}
        if platforms is not None:
            if not platforms:
                return []
            statement = statement.bindparams(bindparam("platforms", expanding=True))
            params["platforms"] = list(platforms)
        with self.connection() as conn:
            rows = conn.execute(statement, params).all()
        return sorted(
            (
                ClaimedDelivery(
                    id=r.id,
                    post_id=r.post_id,
                    action=r.action,
                    platform=r.platform,
                    follower_id=r.follower_id,
                    mirror_id=r.mirror_id,
                    source_id=r.source_id,
                    silent=bool(r.silent),
                    attempts=r.attempts,
                    created_at=r.created_at,
                )
                for r in rows
            ),
            key=lambda c: c.id,
        )

    def release_expired_leases(self, now: float) -> int:
        """Return rows whose worker died (lease expired) to pending."""
        with self.connection() as conn:
            result = conn.execute(
                text(
                    "UPDATE delivery SET status = 'pending', lease_owner = NULL"
                    " WHERE status = 'leased' AND lease_expires_at < :now"
                ),
                {"now": now},
            )
            return result.rowcount or 0

    def next_due_at(self, platforms: Sequence[str] | None = None) -> float | None:
        """When the soonest pending row (of `platforms`, when given) is due."""
        sql = "SELECT min(next_attempt_at) FROM delivery WHERE status = 'pending'"
        statement = text(sql)
        params: dict[str, object] = {}
        if platforms is not None:
            if not platforms:
                return None
            statement = text(sql + " AND platform IN :platforms").bindparams(
                bindparam("platforms", expanding=True)
            )
            params["platforms"] = list(platforms)
        with self.connection() as conn:
            value = conn.execute(statement, params).scalar()
            return float(value) if value is not None else None

    def has_leased_rows(self) -> bool:
        """Whether any worker holds a lease on a row."""
        with self.connection() as conn:
            return (
                conn.execute(text("SELECT 1 FROM delivery WHERE status = 'leased' LIMIT 1")).first()
                is not None
            )

    def record_outcomes(
        self, owner: str, outcomes: Sequence[DeliveryOutcome], now: float, sealer: Sealer
    ) -> None:
        """Write the results of a batch of sends in one transaction (only rows we still lease).
        A copy's platform reference is stored sealed to its row, with blind indexes to find it."""
        if not outcomes:
            return
        final = [o for o in outcomes if o.status != DeliveryStatus.PENDING]
        retry = [o for o in outcomes if o.status == DeliveryStatus.PENDING]
        with self.connection() as conn:
            if final:
                conn.execute(
                    text(
                        "UPDATE delivery SET status = :status, ref_sealed = :ref_sealed,"
                        " ref_index = :ref_index, ref_alt_index = :ref_alt_index, error = :error,"
                        " lease_owner = NULL, lease_expires_at = NULL, done_at = :now"
                        " WHERE id = :id AND lease_owner = :owner"
                    ),
                    [
                        {
                            "status": o.status.value,
                            "ref_sealed": (
                                sealer.seal_ref(o.ref_key, o.ref_alt, row_id=o.id, platform=o.platform)
                                if o.ref_key is not None
                                else None
                            ),
                            "ref_index": sealer.ref_index(o.platform, o.ref_key) if o.ref_key else None,
                            "ref_alt_index": sealer.ref_index(o.platform, o.ref_alt) if o.ref_alt else None,
                            "error": o.error,
                            "now": now,
                            "id": o.id,
                            "owner": owner,
                        }
                        for o in final
                    ],
                )
            if retry:
                conn.execute(
                    text(
                        "UPDATE delivery SET status = 'pending', error = :error,"
                        " next_attempt_at = :next, lease_owner = NULL, lease_expires_at = NULL,"
                        " attempts = attempts - :refund"
                        " WHERE id = :id AND lease_owner = :owner"
                    ),
                    [
                        {
                            "error": o.error,
                            "next": o.next_attempt_at,
                            "id": o.id,
                            "owner": owner,
                            "refund": 1 if o.refund_attempt else 0,
                        }
                        for o in retry
                    ],
                )

    def follower_addresses(self, conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, bytes]]:
        """Sealed addresses of followers by id."""
        if not ids:
            return {}
        rows = conn.execute(
            select(Follower.id, Follower.platform, Follower.sealed).where(col(Follower.id).in_(ids))
        ).all()
        return {r[0]: (r[1], r[2]) for r in rows}

    def mirror_chats(self, conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """Mirror rooms (platform, chat id) by id."""
        if not ids:
            return {}
        rows = conn.execute(
            select(MirrorRoom.id, MirrorRoom.platform, MirrorRoom.chat_id).where(col(MirrorRoom.id).in_(ids))
        ).all()
        return {r[0]: (r[1], r[2]) for r in rows}

    def source_refs(self, conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, bytes | None]]:
        """Sealed platform references (platform, blob) of the copies that follow-up rows target."""
        if not ids:
            return {}
        rows = conn.execute(
            select(Delivery.id, Delivery.platform, Delivery.ref_sealed).where(col(Delivery.id).in_(ids))
        ).all()
        return {r[0]: (r[1], bytes(r[2]) if r[2] is not None else None) for r in rows}

    def post_states(self, conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        """(status, edit_count) of posts by id: lets the worker notice changes mid-send."""
        if not ids:
            return {}
        rows = conn.execute(select(Post.id, Post.status, Post.edit_count).where(col(Post.id).in_(ids))).all()
        return {r[0]: (r[1], r[2]) for r in rows}

    # ---- the privacy key: its fingerprint, and re-sealing with a new one -------------------

    def key_record(self) -> dict[str, Any] | None:
        """The recorded privacy-key state (`fingerprint`, and `rotating_to` while a rotation
        runs), or None (a new database, or the table does not exist yet)."""
        try:
            with self.connection() as conn:
                value = conn.execute(
                    text("SELECT value FROM keyvalue WHERE key = :k"), {"k": KEY_RECORD}
                ).scalar()
        except (OperationalError_, ProgrammingError):  # no schema yet
            return None
        return json.loads(value) if value else None

    def record_key_if_absent(self, fingerprint: str) -> dict[str, Any]:
        """Record the first key's fingerprint (a race between processes: the first wins);
        returns the record as it now is."""
        with self.connection() as conn:
            conn.execute(
                text(
                    "INSERT INTO keyvalue (key, value, updated_at) VALUES (:k, :v, :now)"
                    " ON CONFLICT (key) DO NOTHING"
                ),
                {"k": KEY_RECORD, "v": json.dumps({"fingerprint": fingerprint}), "now": time.time()},
            )
        record = self.key_record()
        assert record is not None
        return record

    def set_key_record(self, record: dict[str, Any]) -> None:
        """Replace the privacy-key state (rotation steps)."""
        self.set_value(KEY_RECORD, json.dumps(record))

    def has_sealed_data(self) -> bool:
        """Whether anything sealed is stored (then a lost key must not be replaced silently)."""
        try:
            with self.connection() as conn:
                return any(
                    conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None
                    for table in ("follower", "channeladmin", "post")
                )
        except (OperationalError_, ProgrammingError):
            return False

    def sealed_after(
        self, conn: Connection, table: str, column: str, platform_column: str, after: int, limit: int,
        *, with_index: bool = False,
    ) -> list[Any]:
        """The next rows (id, platform, blob[, account_index]) holding a sealed value, by id."""
        index = ", account_index" if with_index else ""
        return list(
            conn.execute(
                text(
                    f"SELECT id, {platform_column} AS platform, {column} AS blob{index} FROM {table}"
                    f" WHERE id > :after AND {column} IS NOT NULL ORDER BY id LIMIT :n"
                ),
                {"after": after, "n": limit},
            ).all()
        )

    def reseal(self, conn: Connection, table: str, column: str, updates: Sequence[tuple[int, bytes]]) -> None:
        """Store re-sealed values (row id, blob)."""
        if updates:
            conn.execute(
                text(f"UPDATE {table} SET {column} = :b WHERE id = :id"),
                [{"id": row_id, "b": blob} for row_id, blob in updates],
            )

    def reindex_accounts(
        self, conn: Connection, table: str, updates: Sequence[tuple[int, bytes, str, str]]
    ) -> None:
        """Re-sealed accounts (row id, blob, old index, new index): the row, and the votes and
        reactions that carry the old blind index, move to the new one."""
        if not updates:
            return
        conn.execute(
            text(f"UPDATE {table} SET sealed = :b, account_index = :new WHERE id = :id"),
            [{"id": i, "b": b, "new": new} for i, b, _, new in updates],
        )
        moves = [{"old": old, "new": new} for _, _, old, new in updates if old != new]
        if moves:
            conn.execute(text("UPDATE vote SET voter_index = :new WHERE voter_index = :old"), moves)
            conn.execute(
                text("UPDATE postreaction SET reactor_index = :new WHERE reactor_index = :old"), moves
            )

    def reseal_refs(
        self, conn: Connection, updates: Sequence[tuple[int, bytes, str | None, str | None]]
    ) -> None:
        """Re-sealed delivery references (row id, blob, key index, alt index)."""
        if updates:
            conn.execute(
                text(
                    "UPDATE delivery SET ref_sealed = :b, ref_index = :i, ref_alt_index = :a"
                    " WHERE id = :id"
                ),
                [{"id": d, "b": b, "i": i, "a": a} for d, b, i, a in updates],
            )

    def void_unused_invites(self) -> int:
        """Delete admin invites not yet accepted (their codes' digests depend on the key)."""
        with self.connection() as conn:
            return conn.execute(text("DELETE FROM admininvite WHERE used_at IS NULL")).rowcount or 0

    # ---- key/value state ------------------------------------------------------------------

    def get_value(self, key: str) -> str | None:
        """A stored piece of process state."""
        with self.session() as s:
            row = s.get(KeyValue, key)
            return row.value if row else None

    def set_value(self, key: str, value: str) -> None:
        """Store a piece of process state."""
        with self.session() as s:
            row = s.get(KeyValue, key)
            if row is None:
                s.add(KeyValue(key=key, value=value, updated_at=time.time()))
            else:
                row.value = value
                row.updated_at = time.time()
                s.add(row)

    # ---- recurring posts ------------------------------------------------------------------

    def recurring_posts(self, s: Session, channel_id: int) -> list[RecurringPost]:
        """A channel's active recurring posts."""
        return list(
            s.exec(
                select(RecurringPost).where(
                    RecurringPost.channel_id == channel_id,
                    RecurringPost.active == True,  # noqa: E712
                )
            )
        )

    def recurring(self, s: Session, recurring_id: int) -> RecurringPost | None:
        """A recurring post by id."""
        return s.get(RecurringPost, recurring_id)

    def all_active_recurring(self, s: Session) -> list[RecurringPost]:
        """Every active recurring post (the scheduler registers a cron job for each)."""
        return list(s.exec(select(RecurringPost).where(RecurringPost.active == True)))  # noqa: E712

    # ---- worker support ---------------------------------------------------------------------

    def delivery_context(self, rows: Sequence[ClaimedDelivery], sealer: Sealer) -> DeliveryContext:
        """For a claimed batch: each row's destination address, the refs of source copies, and
        the rows whose sealed address or reference does not open (each on its own: one bad row
        never fails its neighbours)."""
        with self.connection() as conn:
            followers = self.follower_addresses(conn, [r.follower_id for r in rows if r.follower_id])
            mirrors = self.mirror_chats(conn, [r.mirror_id for r in rows if r.mirror_id])
            sealed_sources = self.source_refs(conn, [r.source_id for r in rows if r.source_id])
        addresses: dict[int, Address | None] = {}
        broken: dict[int, str] = {}
        sources: dict[int, tuple[str | None, str | None]] = {}
        bad_sources: dict[int, str] = {}
        for source_id, (platform, blob) in sealed_sources.items():
            if blob is None:
                sources[source_id] = (None, None)
                continue
            try:
                sources[source_id] = sealer.unseal_ref(blob, row_id=source_id, platform=platform)
            except (UnsealError, ValueError) as exc:
                bad_sources[source_id] = f"sealed reference does not open: {exc}"
        for row in rows:
            if row.follower_id is not None:
                found = followers.get(row.follower_id)
                try:
                    addresses[row.id] = (
                        sealer.unseal(found[0], found[1], table="follower", row_id=row.follower_id)
                        if found
                        else None
                    )
                except (UnsealError, ValueError) as exc:
                    addresses[row.id] = None
                    broken[row.id] = f"sealed address does not open: {exc}"
            elif row.mirror_id is not None:
                mirror = mirrors.get(row.mirror_id)
                addresses[row.id] = Address(mirror[0], mirror[1]) if mirror else None
            else:
                addresses[row.id] = None
            if row.source_id is not None and row.source_id in bad_sources:
                broken.setdefault(row.id, bad_sources[row.source_id])
        return DeliveryContext(addresses, sources, broken)

    def return_to_pending(self, owner: str, ids: Sequence[int]) -> None:
        """Give back rows this worker claimed but never started (clean shutdown)."""
        with self.connection() as conn:
            conn.execute(
                text(
                    "UPDATE delivery SET status = 'pending', lease_owner = NULL,"
                    " attempts = attempts - 1 WHERE id = :id AND lease_owner = :owner"
                ),
                [{"id": i, "owner": owner} for i in ids],
            )

    def extend_leases(self, owner: str, ids: Sequence[int], until: float) -> None:
        """Keep the leases of rows still in flight alive."""
        with self.connection() as conn:
            conn.execute(
                text("UPDATE delivery SET lease_expires_at = :until WHERE id = :id AND lease_owner = :owner"),
                [{"id": i, "owner": owner, "until": until} for i in ids],
            )

    def pause_follower_now(self, follower_id: int) -> None:
        """`pause_follower` in its own transaction."""
        with self.session() as s:
            self.pause_follower(s, follower_id)

    def media_data(self, media_id: int) -> bytes | None:
        """The bytes of a media blob."""
        with self.connection() as conn:
            data = conn.execute(select(MediaBlob.data).where(MediaBlob.id == media_id)).scalar()
            return bytes(data) if data is not None else None

    def load_post_view(self, post_id: int, now: float) -> dict[str, Any] | None:
        """Everything the worker needs to render copies of a post (media bytes excluded)."""
        with self.session() as s:
            post = s.get(Post, post_id)
            if post is None:
                return None
            channel = s.get(Channel, post.channel_id)
            if channel is None:
                return None
            media = None
            refs: dict[str, str] = {}
            if post.media_id is not None:
                blob = s.get(MediaBlob, post.media_id)
                if blob is not None:
                    refs = self.media_refs(s, post.media_id)
                    media = MediaContent(
                        blob_id=post.media_id,
                        kind=PostKind(blob.kind),
                        mime=blob.mime,
                        filename=blob.filename,
                        data=None,
                        width=blob.width,
                        height=blob.height,
                        duration=blob.duration,
                    )
            poll = None
            if post.kind == PostKind.POLL.value:
                poll = PollContent(
                    question=post.text,
                    options=tuple(o.text for o in self.poll_options(s, post_id)),
                    multi=post.poll_multi,
                    closed=post.poll_closed_at is not None,
                )
            content = Content(
                post_id=post_id,
                kind=PostKind(post.kind),
                channel_handle=channel.handle,
                channel_name=channel.name,
                text=post.text,
                media=media,
                poll=poll,
                edited=post.edit_count > 0,
            )
            author = (
                Sealed("post", post_id, post.author_platform, bytes(post.author_sealed))
                if post.author_platform and post.author_sealed
                else None
            )
            return {
                "post_id": post_id,
                "status": post.status,
                "edit_count": post.edit_count,
                "content": content,
                "media_id": post.media_id,
                "media_refs": refs,
                "loaded_at": now,
                "author": author,
            }

    def plan_catch_up(self, delivered: Sequence[tuple[int, int, int]], now: float) -> None:
        """Copies delivered while their post changed: plan a delete (post deleted meanwhile) or
        an edit (post edited after the copy was rendered). Items: (send id, post id, edit count
        the copy was rendered with)."""
        with self.connection() as conn:
            states = self.post_states(conn, sorted({p for _, p, _ in delivered}))
            for send_id, post_id, rendered in delivered:
                status, edit_count = states.get(post_id, (None, 0))
                if status == PostStatus.DELETED.value:
                    self.plan_followup_for(conn, send_id, DeliveryAction.DELETE, now)
                elif edit_count > rendered:
                    self.plan_followup_for(conn, send_id, DeliveryAction.EDIT, now)

    def reset_summary(self, post_id: int) -> None:
        """The final summary could not be sent: let the next report try again."""
        with self.connection() as conn:
            conn.execute(
                text("UPDATE post SET summary_sent = :f WHERE id = :id"), {"f": False, "id": post_id}
            )

    def progress_report(
        self, post_id: int, now: float, threshold: int, interval_s: float
    ) -> ProgressReport | None:
        """What the author of a post should see now: the figures of a large fan-out's progress
        message (at most every `interval_s`), and once, when it is over, the final summary
        (for a large fan-out, or any with failures)."""
        with self.session() as s:
            post = s.get(Post, post_id)
            if post is None or not post.author_platform or not post.author_sealed:
                return None
            counts = self.delivery_counts(s, post_id)
            delivered = counts.get("delivered", 0)
            pending = counts.get("pending", 0) + counts.get("leased", 0)
            failed = counts.get("failed", 0)
            skipped = counts.get("skipped", 0)
            author = Sealed("post", post_id, post.author_platform, bytes(post.author_sealed))
            large = post.planned >= threshold
            finished = pending == 0 and post.status in (
                PostStatus.PUBLISHED.value,
                PostStatus.DELETED.value,
            )
            figures = f"delivered {delivered}, pending {pending}, failed {failed}"
            if finished and not post.summary_sent:
                if not large and failed == 0:
                    return None
                post.summary_sent = True
                s.add(post)
                summary = f"Post #{post_id} finished: delivered {delivered}, failed {failed}"
                if skipped:
                    summary += f", skipped {skipped}"
                reasons = self.failure_reasons(s, post_id)
                if reasons:
                    summary += " (" + "; ".join(f"{r} ×{n}" for r, n in reasons) + ")"
                progress = f"Post #{post_id} progress: {figures} (done)." if large else None
                return ProgressReport(author, progress, summary + ".")
            if finished or not large:
                return None
            if post.progress_notified_at is not None and now - post.progress_notified_at < interval_s:
                return None
            post.progress_notified_at = now
            s.add(post)
            return ProgressReport(author, f"Post #{post_id} progress: {figures}.", None)

    # ---- scheduling ---------------------------------------------------------------------------

    def skip_scheduled_post(self, post_id: int) -> bool:
        """Atomically mark a scheduled post skipped (late policy); True if we won."""
        with self.connection() as conn:
            result = conn.execute(
                text("UPDATE post SET status = 'skipped' WHERE id = :id AND status = 'scheduled'"),
                {"id": post_id},
            )
            return (result.rowcount or 0) == 1

    def stop_recurring(self, recurring_id: int, due_at: float) -> bool:
        """Atomically stop a recurring post at its occurrence `due_at`; True if this call did."""
        with self.connection() as conn:
            result = conn.execute(
                text(
                    "UPDATE recurringpost SET active = :f WHERE id = :id AND next_at = :due AND active = :t"
                ),
                {"id": recurring_id, "due": due_at, "f": False, "t": True},
            )
            return (result.rowcount or 0) == 1

    def claim_poll_close(self, post_id: int, now: float) -> bool:
        """Atomically close a poll; True if this call closed it."""
        with self.connection() as conn:
            result = conn.execute(
                text(
                    "UPDATE post SET poll_closed_at = :now"
                    " WHERE id = :id AND kind = 'poll' AND poll_closed_at IS NULL"
                ),
                {"id": post_id, "now": now},
            )
            return (result.rowcount or 0) == 1

    def claim_recurrence(self, recurring_id: int, due_at: float, next_at: float) -> bool:
        """Atomically move a recurring post from the occurrence `due_at` to `next_at`; True if
        this call won the occurrence (so two processes or two wake-ups post it once)."""
        with self.connection() as conn:
            result = conn.execute(
                text(
                    "UPDATE recurringpost SET next_at = :next"
                    " WHERE id = :id AND next_at = :due AND active = :t"
                ),
                {"id": recurring_id, "due": due_at, "next": next_at, "t": True},
            )
            return (result.rowcount or 0) == 1

    def schedule_snapshot(
        self, s: Session
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]], list[tuple[int, float]]]:
        """What the scheduler must wake up for: scheduled posts (id, at), open poll deadlines
        (id, at) and active recurring posts (id, next at)."""
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
        return (
            [(int(i), float(a)) for i, a in posts if i is not None and a is not None],
            [(int(i), float(a)) for i, a in polls if i is not None and a is not None],
            [(int(i), float(a)) for i, a in recurring if i is not None and a is not None],
        )

    # ---- coordination between processes -----------------------------------------------------

    def hold_lease(self, name: str, owner: str, now: float, ttl_s: float) -> bool:
        """Take or renew the lease `name` for `owner`; True while we hold it. A lease whose
        holder stopped renewing for `ttl_s` passes to the next process that asks."""
        key = f"lease:{name}"
        with self.connection() as conn:
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
            return (result.rowcount or 0) == 1

    def release_lease(self, name: str, owner: str) -> None:
        """Give a lease up at once (clean shutdown), so another process takes it without waiting."""
        with self.connection() as conn:
            conn.execute(
                text("UPDATE keyvalue SET value = '', updated_at = 0 WHERE key = :k AND value = :owner"),
                {"k": f"lease:{name}", "owner": owner},
            )

    def lease_holder(self, name: str, now: float, ttl_s: float) -> str | None:
        """Who holds a lease now (None: nobody)."""
        with self.connection() as conn:
            row = conn.execute(
                text("SELECT value, updated_at FROM keyvalue WHERE key = :k"), {"k": f"lease:{name}"}
            ).first()
        if row is None or not row.value or row.updated_at < now - ttl_s:
            return None
        return str(row.value)

    def heartbeat(self, owner: str, now: float, ttl_s: float) -> int:
        """Record that `owner` is alive; returns how many processes are alive (itself included)."""
        key = f"member:{owner}"
        with self.connection() as conn:
            updated = conn.execute(
                text("UPDATE keyvalue SET updated_at = :now WHERE key = :k"), {"k": key, "now": now}
            )
            if (updated.rowcount or 0) == 0:
                conn.execute(
                    text("INSERT INTO keyvalue (key, value, updated_at) VALUES (:k, :owner, :now)"),
                    {"k": key, "owner": owner, "now": now},
                )
            conn.execute(
                text("DELETE FROM keyvalue WHERE key LIKE 'member:%' AND updated_at < :old"),
                {"old": now - 10 * ttl_s},
            )
            alive = conn.execute(
                text("SELECT count(*) FROM keyvalue WHERE key LIKE 'member:%' AND updated_at >= :fresh"),
                {"fresh": now - ttl_s},
            ).scalar()
        return max(1, int(alive or 0))

    def leave(self, owner: str) -> None:
        """Remove a process's heartbeat (clean shutdown)."""
        with self.connection() as conn:
            conn.execute(text("DELETE FROM keyvalue WHERE key = :k"), {"k": f"member:{owner}"})
