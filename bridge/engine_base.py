"""The engine's shared state and helpers: who is asking (operator, admin, follower),
authorization, time formatting, and the hooks the app installs.

The command groups (`bridge.follower_commands`, `bridge.admin_commands`) and the engine
itself (`bridge.engine`) build on `EngineBase`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bridge.commands import Command
from bridge.models import (
    AdminRole,
    Channel,
    ChannelAdmin,
    DeliveryStatus,
    Follower,
    PollOption,
    Post,
    PostStatus,
    RecurringPost,
    Subscription,
)
from bridge.ports import (
    Address,
    PostKind,
)
from bridge.privacy import Sealer, UnsealError
from bridge.store import Store

log = logging.getLogger(__name__)

WhenParser = Callable[..., datetime]
"""`parse_when(text, *, now=aware UTC datetime, tz=ZoneInfo) -> aware UTC datetime`; raises
ValueError with a message for the user."""


class Recurrence(Protocol):
    """A parsed `/every` spec (see `scheduler.when.Recurrence`)."""

    @property
    def text(self) -> str:
        """The normalized spec, e.g. `mon-fri 08:00`."""

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        """The next occurrence strictly after `after` (aware UTC)."""


RecurrenceParser = Callable[[str], Recurrence]
"""`parse_recurrence(spec) -> Recurrence`; raises ValueError with a message for the user."""

MirrorFactory = Callable[[str, str, str], Awaitable[str]]
"""`create(platform, name, topic) -> room id`: makes a read-only mirror room on a platform."""

Notify = Callable[[Address, str], Awaitable[None]]
"""Sends a notice to one person's chat with the bot (progress, scheduling outcomes)."""

MAX_TEXT = 16_000
_MB = 1024 * 1024
INVITE_TTL_S = 7 * 24 * 3600


class Refusal(Exception):
    """A command was understood but may not be applied; the message says why."""


@dataclass
class EngineOptions:
    """Tunables of the engine (from config; defaults suit tests)."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    max_admins: int = 16
    invite_ttl_s: float = INVITE_TTL_S
    max_open_invites: int = 5  #: unused, unexpired invite codes per channel
    accept_failures: int = 5  #: wrong `/accept` codes per sender within `accept_window_s`
    accept_window_s: float = 600.0
    fanout_batch: int = 1000
    planning_lease_s: float = 60.0
    #: the largest inbound media accepted per kind, in bytes (config `[media]`)
    media_limits: dict[PostKind, int] = field(
        default_factory=lambda: {
            PostKind.PHOTO: 10 * _MB,
            PostKind.VIDEO: 50 * _MB,
            PostKind.STICKER: 1 * _MB,
        }
    )


@dataclass(frozen=True)
class Actor:
    """Who sent a command, as the engine sees them: a blind index, never an identity."""

    address: Address
    index: str
    is_operator: bool


class EngineBase:
    """State and helpers shared by every part of the engine."""

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        *,
        operators: Iterable[Address] = (),
        options: EngineOptions | None = None,
        parse_when: WhenParser | None = None,
        parse_recurrence: RecurrenceParser | None = None,
        clock: Callable[[], float] = time.time,
        notify: Notify | None = None,
        on_work: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.options = options or EngineOptions()
        self._operators = {sealer.address_index(a) for a in operators}
        self._parse_when = parse_when
        self.clock = clock
        self._notify = notify
        self._on_work = on_work
        self._parse_recurrence = parse_recurrence
        self._planning: set[asyncio.Task[None]] = set()
        self._to_plan: list[int] = []
        self._on_schedule_change: Callable[[], None] | None = None
        self._mirror_factory: MirrorFactory | None = None
        self._on_mirror_added: Callable[[str, str], None] | None = None
        self._accept_failures: dict[str, list[float]] = {}
        #: lines about the bot's sending (rates, 429s): shown to operators in /stats
        self._sending_report: Callable[[], list[str]] | None = None

    def set_sending_report(self, report: Callable[[], list[str]] | None) -> None:
        """Install what operators see of the bot's sending in `/stats` (counts and rates)."""
        self._sending_report = report

    def is_operator_index(self, index: str) -> bool:
        """Whether a blind index is an operator's (operators are not throttled)."""
        return index in self._operators

    def add_operator(self, address: Address) -> None:
        """Treat `address` as an operator (the console's local user)."""
        self._operators.add(self.sealer.address_index(address))

    def set_notify(self, notify: Notify | None) -> None:
        """Install the function used to send notices to admins."""
        self._notify = notify

    def set_on_work(self, on_work: Callable[[], None] | None) -> None:
        """Install the callback that wakes the delivery worker when rows are planned."""
        self._on_work = on_work

    def set_time_parsers(self, parse_when: WhenParser, parse_recurrence: RecurrenceParser) -> None:
        """Install the `<when>` and `/every` parsers (they live in the scheduler package)."""
        self._parse_when = parse_when
        self._parse_recurrence = parse_recurrence

    def _actor(self, address: Address) -> Actor:
        index = self.sealer.address_index(address)
        return Actor(address, index, index in self._operators)

    def _channel(self, s: Session, handle: str | None) -> Channel:
        channel = self.store.channels.by_handle(s, handle or "")
        if channel is None:
            raise Refusal(f"There is no channel '{handle}'. Send /channels to find one.")
        return channel

    def _require_admin(self, s: Session, actor: Actor, channel: Channel) -> str:
        """Refuse unless the actor administers the channel; returns the audit actor name."""
        if actor.is_operator:
            return "operator"
        assert channel.id is not None
        admin = self.store.channels.admin_of(s, channel.id, actor.index)
        if admin is None:
            raise Refusal(f"Only admins of '{channel.handle}' can do that.")
        return f"admin #{admin.number}"

    def _require_owner(self, s: Session, actor: Actor, channel: Channel) -> str:
        if actor.is_operator:
            return "operator"
        assert channel.id is not None
        admin = self.store.channels.admin_of(s, channel.id, actor.index)
        if admin is None or admin.role != AdminRole.OWNER.value:
            raise Refusal(f"Only the owner of '{channel.handle}' can do that.")
        return f"admin #{admin.number}"

    def _post_for_admin(self, s: Session, actor: Actor, post_id: int | None) -> tuple[Post, Channel, str]:
        post = self.store.posts.get(s, post_id or 0)
        channel = self.store.channels.by_id(s, post.channel_id) if post else None
        if post is None or channel is None or channel.deleted_at is not None:
            raise Refusal(f"There is no post #{post_id}.")
        who = self._require_admin(s, actor, channel)
        return post, channel, who

    def _is_admin_anywhere(self, s: Session, actor: Actor) -> bool:
        return actor.is_operator or bool(self.store.channels.administered_by(s, actor.index))

    def _follower(self, s: Session, actor: Actor, create: bool) -> Follower | None:
        follower = self.store.followers.by_index(s, actor.index)
        if follower is None and create:
            follower = Follower(
                platform=actor.address.platform,
                account_index=actor.index,
                sealed=b"",  # sealed to the row's id once it has one
                created_at=self.clock(),
            )
            s.add(follower)
            s.flush()
            follower.sealed = self.sealer.seal(actor.address, table="follower", row_id=follower.id or 0)
            s.add(follower)
        elif follower is not None and create:
            try:
                current: Address | None = self.sealer.unseal(
                    follower.platform, follower.sealed, table="follower", row_id=follower.id or 0
                )
            except UnsealError:  # unreadable (altered, or another key): they are here, seal them anew
                log.warning("follower %s had an unreadable sealed address; sealed again", follower.id)
                current = None
            if current is None or (actor.address.chat and current.chat != actor.address.chat):
                follower.sealed = self.sealer.seal(actor.address, table="follower", row_id=follower.id or 0)
                s.add(follower)  # their chat moved
        return follower

    def _subscription(self, s: Session, actor: Actor, cmd: Command) -> tuple[Subscription, Channel]:
        channel = self._channel(s, cmd.handle)
        follower = self.store.followers.by_index(s, actor.index)
        sub = (
            self.store.followers.subscription(s, follower.id, channel.id)
            if follower and follower.id and channel.id
            else None
        )
        if sub is None:
            raise Refusal(f"You do not follow {channel.handle}.")
        return sub, channel

    def _may_see(self, s: Session, actor: Actor, post: Post) -> bool:
        """Whether the actor may read and answer a post: not deleted, of a live channel, and
        the channel is public or the actor follows it, holds a delivered copy of the post, or
        administers it."""
        channel = self.store.channels.by_id(s, post.channel_id)
        if channel is None or channel.deleted_at is not None or post.status == PostStatus.DELETED.value:
            return False
        if channel.public or actor.is_operator:
            return True
        if self.store.channels.admin_of(s, post.channel_id, actor.index) is not None:
            return True
        follower = self.store.followers.by_index(s, actor.index)
        if follower is None or follower.id is None:
            return False
        if self.store.followers.subscription(s, follower.id, post.channel_id) is not None:
            return True
        copy = self.store.posts.copy_for_follower(s, post.id or 0, follower.id)
        return copy is not None and copy.status == DeliveryStatus.DELIVERED.value

    def _poll_for_voting(
        self, s: Session, post_id: int | None, actor: Actor | None = None
    ) -> tuple[Post, list[PollOption]]:
        """An open poll the actor may vote in (None: the platform already proved they hold a
        copy). A poll they may not see is refused exactly like one that does not exist."""
        post = self.store.posts.get(s, post_id or 0)
        channel = self.store.channels.by_id(s, post.channel_id) if post else None
        if (
            post is None
            or channel is None
            or channel.deleted_at is not None
            or (actor is not None and not self._may_see(s, actor, post))
            or post.kind != PostKind.POLL.value
            or post.status
            not in (
                PostStatus.PUBLISHED.value,
                PostStatus.PUBLISHING.value,
            )
        ):
            raise Refusal(f"There is no open poll #{post_id} in a channel you follow.")
        if self._poll_closed(post):
            raise Refusal(f"Poll #{post.id} is closed; votes are no longer accepted.")
        return post, self.store.posts.poll_options(s, post.id or 0)

    def _poll_closed(self, post: Post) -> bool:
        if post.poll_closed_at is not None:
            return True
        return post.poll_closes_at is not None and self.clock() >= post.poll_closes_at

    def _results_text(self, s: Session, post: Post) -> str:
        options = self.store.posts.poll_options(s, post.id or 0)
        counts, voters = self.store.posts.tally(s, post.id or 0)
        total = sum(counts.values()) or 1
        state = "closed" if self._poll_closed(post) else "open"
        lines = [f"Poll #{post.id}: {post.text} ({state}, {voters} voter{'s' if voters != 1 else ''})"]
        for option in options:
            n = counts.get(option.position, 0)
            lines.append(f"{option.position + 1}. {option.text} — {n} ({round(100 * n / total)}%)")
        return "\n".join(lines)

    def _add_admin(
        self, s: Session, channel_id: int, number: int, role: AdminRole, address: Address
    ) -> ChannelAdmin:
        """Add an admin row; its sealed address is bound to the row's id."""
        admin = ChannelAdmin(
            channel_id=channel_id,
            number=number,
            role=role.value,
            account_index=self.sealer.address_index(address),
            platform=address.platform,
            sealed=b"",
            added_at=self.clock(),
        )
        s.add(admin)
        s.flush()
        admin.sealed = self.sealer.seal(address, table="channeladmin", row_id=admin.id or 0)
        s.add(admin)
        return admin

    def _open_author(self, row: Post | RecurringPost) -> Address | None:
        """Who made a post or recurring post (None: unknown, or the sealed value does not open)."""
        if row.author_platform is None or row.author_sealed is None:
            return None
        try:
            return self.sealer.unseal(
                row.author_platform, row.author_sealed, table=str(row.__tablename__), row_id=row.id or 0
            )
        except UnsealError as exc:
            log.warning("the author of %s %s cannot be read: %s", row.__tablename__, row.id, exc)
            return None

    def _seal_author(self, s: Session, row: Post | RecurringPost, address: Address) -> None:
        """Record who made a post or recurring post, sealed to that row (flushed for its id)."""
        row.author_platform = address.platform
        s.add(row)
        s.flush()
        row.author_sealed = self.sealer.seal(address, table=str(row.__tablename__), row_id=row.id or 0)
        s.add(row)

    def _author_still_admin(self, s: Session, channel_id: int, row: Post | RecurringPost) -> bool:
        """Whether the author of a scheduled or recurring post may still post in the channel
        (an operator, or an admin of it) when it fires (an author who cannot be read may not)."""
        author = self._open_author(row)
        if author is None:
            return False
        index = self.sealer.address_index(author)
        return index in self._operators or self.store.channels.admin_of(s, channel_id, index) is not None

    def _accept_blocked_for(self, actor: Actor) -> float:
        """Seconds until this sender may try another `/accept` code (0: now)."""
        now = self.clock()
        recent = [
            t for t in self._accept_failures.get(actor.index, []) if t > now - self.options.accept_window_s
        ]
        if recent:
            self._accept_failures[actor.index] = recent
        else:
            self._accept_failures.pop(actor.index, None)
        if len(recent) < self.options.accept_failures:
            return 0.0
        return recent[0] + self.options.accept_window_s - now

    def _accept_failed(self, actor: Actor) -> None:
        """Remember a wrong `/accept` code (in memory, by blind index; stale senders dropped)."""
        now = self.clock()
        if len(self._accept_failures) > 10_000:
            cutoff = now - self.options.accept_window_s
            self._accept_failures = {k: v for k, v in self._accept_failures.items() if v[-1] > cutoff}
        self._accept_failures.setdefault(actor.index, []).append(now)

    def _when(self, text: str) -> float:
        if self._parse_when is None:
            raise Refusal("Scheduling is not available in this process.")
        try:
            moment = self._parse_when(text, now=datetime.fromtimestamp(self.clock(), UTC), tz=self.options.tz)
        except ValueError as exc:
            raise Refusal(str(exc)) from exc
        return moment.timestamp()

    def _local(self, ts: float) -> str:
        """A moment in the operator's timezone, with UTC beside it (its date too when it differs)."""
        local = datetime.fromtimestamp(ts, self.options.tz)
        utc = datetime.fromtimestamp(ts, UTC)
        if local.utcoffset() == utc.utcoffset():
            return f"{utc:%Y-%m-%d %H:%M} UTC"
        utc_text = f"{utc:%H:%M}" if utc.date() == local.date() else f"{utc:%Y-%m-%d %H:%M}"
        return f"{local:%Y-%m-%d %H:%M} {self.options.tz.key} ({utc_text} UTC)"

    def _begin_publish(self, s: Session, post: Post) -> None:
        """Mark a new post publishing in the caller's transaction; planning runs after commit."""
        post.status = PostStatus.PUBLISHING.value
        post.published_at = self.clock()
        post.plan_lease_until = self.clock() + self.options.planning_lease_s
        s.add(post)
        s.flush()
        self._to_plan.append(post.id or 0)

    def _wake(self) -> None:
        if self._on_work is not None:
            self._on_work()

    def _schedule_changed(self) -> None:
        if self._on_schedule_change is not None:
            self._on_schedule_change()


def followers_text(n: int) -> str:
    return f"{n} follower{'s' if n != 1 else ''}"


def duration_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def new_invite_code() -> str:
    """A one-time admin code: 128 random bits as 32 hex digits, one word that a double click
    or a long press selects whole (dashes or spaces in it would split the selection)."""
    return secrets.token_hex(16)


def normalize_code(code: str) -> str:
    """A typed code as it is digested: lower case, without separators people add to read it."""
    return "".join(ch for ch in code.lower() if ch not in "- \t")


def preview(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
