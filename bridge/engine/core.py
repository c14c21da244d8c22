"""The engine's long-lived part: options, who counts as an operator, the hooks the app installs,
and the rules every command handler and every timed action share (authors, publishing, time).

`EngineCore` is composed into `ChannelEngine` and reached by handlers through their
`Context`; it holds no per-command state.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bridge.i18n import _, ngettext, speaking
from bridge.models import AdminRole, ChannelAdmin, Post, PostStatus, RecurringPost
from bridge.platforms import Platforms
from bridge.ports import Address, PostKind, StarsGateway
from bridge.privacy import Sealer, UnsealError
from bridge.store import Store
from bridge.when import format_timestamp, parse_when

log = logging.getLogger(__name__)

MirrorFactory = Callable[[str, str, str], Awaitable[str]]
"""`create(platform, name, topic) -> room id`: makes a read-only mirror room on a platform."""

Notify = Callable[[Address, str], Awaitable[None]]
"""Sends a notice to one person's chat with the bot (progress, scheduling outcomes)."""

MAX_TEXT = 16_000
_MB = 1024 * 1024
INVITE_TTL_S = 7 * 24 * 3600


class Refusal(Exception):
    """A command was understood but may not be applied; the message says why."""


class BadArguments(Exception):
    """Arguments of the right shape that no installed platform takes (an unknown platform, a
    malformed room address): answered like a malformed command, with the command's usage."""


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
            PostKind.VOICE: 50 * _MB,
        }
    )
    payments_enabled: bool = False  #: config `[payments] enabled`: `/price` works
    payments_teaser: bool = True  #: the teaser setting of a channel's first tier
    payments_support: str = ""  #: the contact `/paysupport` shows
    #: tell a follower that paid access ended this long after it did (a renewal may be on its way)
    payments_expiry_notice_grace_s: float = 600.0
    #: earlier posts a channel's new followers get unless `/history` set it; the app passes
    #: config `general.history` (3 by default), engine tests opt in
    history_default: int = 0


@dataclass(frozen=True)
class Actor:
    """Who sent a command, as the engine sees them: a blind index, never an identity."""

    address: Address
    index: str
    is_operator: bool


@dataclass
class Hooks:
    """What the app installs into the engine after building it (each may stay None)."""

    notify: Notify | None = None  #: sends notices to admins
    on_work: Callable[[], None] | None = None  #: wakes the delivery worker
    on_schedule_change: Callable[[], None] | None = None  #: the scheduler re-reads what is timed
    mirror_factory: MirrorFactory | None = None  #: creates a mirror room (an adapter that can)
    on_mirror_added: Callable[[str, str], None] | None = None  #: an existing room became a mirror
    #: lines about the bot's sending (rates, 429s): shown to operators in /stats
    sending_report: Callable[[], list[str]] | None = None
    #: per platform, the adapter that refunds and cancels Stars payments (`/refund`, `/unsubscribe`)
    stars: dict[str, StarsGateway] = field(default_factory=dict)


class AcceptGuard:
    """Counts wrong `/accept` codes per sender (in memory, by blind index) to slow guessing."""

    def __init__(self, options: EngineOptions, clock: Callable[[], float]) -> None:
        self._options = options
        self._clock = clock
        self._failures: dict[str, list[float]] = {}

    def blocked_for(self, index: str) -> float:
        """Seconds until this sender may try another code (0: now)."""
        now = self._clock()
        window = self._options.accept_window_s
        recent = [t for t in self._failures.get(index, []) if t > now - window]
        if recent:
            self._failures[index] = recent
        else:
            self._failures.pop(index, None)
        if len(recent) < self._options.accept_failures:
            return 0.0
        return recent[0] + window - now

    def failed(self, index: str) -> None:
        """Remember a wrong code (stale senders are dropped when the table grows large)."""
        now = self._clock()
        if len(self._failures) > 10_000:
            cutoff = now - self._options.accept_window_s
            self._failures = {k: v for k, v in self._failures.items() if v[-1] > cutoff}
        self._failures.setdefault(index, []).append(now)


class EngineCore:
    """The store, the sealer, the options, the clock and the hooks, with the shared rules."""

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        *,
        operators: Iterable[Address] = (),
        options: EngineOptions | None = None,
        clock: Callable[[], float] = time.time,
        hooks: Hooks | None = None,
        platforms: Platforms | None = None,
    ) -> None:
        self.store = store
        #: the installed platforms: how their mirror rooms are addressed
        self.platforms = platforms if platforms is not None else Platforms.discover()
        self.sealer = sealer
        self.options = options or EngineOptions()
        self.clock = clock
        self.hooks = hooks or Hooks()
        self.operators = {sealer.address_index(a) for a in operators}
        self.accept_guard = AcceptGuard(self.options, clock)
        #: posts made publishing in a command's transaction, planned once it commits
        self.to_plan: list[int] = []
        #: a command planned rows itself (not through a fan-out): wake the worker after commit
        self.wake_after_commit = False

    def paid_media_platforms(self) -> tuple[str, ...]:
        """The platforms whose people buy a pay-per-post copy as paid media (Telegram)."""
        return tuple(plugin.name for plugin in self.platforms if plugin.paid_media)

    async def tell(self, address: Address, compose: Callable[[], str]) -> None:
        """Send one person a notice of the bridge's own (no command of theirs asked for it), in
        the language they chose with `/lang` (else `general.language`): `compose` writes the
        text once that language is in force. Nothing is sent when the app installed no notify."""
        notify = self.hooks.notify
        if notify is None:
            return
        with self.store.unit_of_work() as s:
            language = self.store.languages.of_address(s, self.sealer, address)
        with speaking(language):
            text = compose()
        await notify(address, text)

    def actor(self, address: Address) -> Actor:
        """The sender as the engine sees them."""
        index = self.sealer.address_index(address)
        return Actor(address, index, index in self.operators)

    def local(self, ts: float) -> str:
        """A moment in the operator's timezone, with UTC beside it (its date too when it differs)."""
        return format_timestamp(ts, self.options.tz)

    def when(self, text: str) -> float:
        """The epoch seconds a `<when>` names; a `Refusal` saying why when it cannot be used."""
        try:
            moment = parse_when(text, now=datetime.fromtimestamp(self.clock(), UTC), tz=self.options.tz)
        except ValueError as exc:  # a WhenError: its message is for the person
            raise Refusal(str(exc)) from exc
        return moment.timestamp()

    def poll_closed(self, post: Post) -> bool:
        """Whether a poll no longer takes votes."""
        if post.poll_closed_at is not None:
            return True
        return post.poll_closes_at is not None and self.clock() >= post.poll_closes_at

    def wake(self) -> None:
        """Wake the delivery worker: rows were planned."""
        if self.hooks.on_work is not None:
            self.hooks.on_work()

    def schedule_changed(self) -> None:
        """Tell the scheduler that something timed was added or removed."""
        if self.hooks.on_schedule_change is not None:
            self.hooks.on_schedule_change()

    def begin_publish(self, s: Session, post: Post) -> None:
        """Mark a new post publishing in the caller's transaction; planning runs after commit."""
        post.status = PostStatus.PUBLISHING.value
        post.published_at = self.clock()
        post.plan_lease_until = self.clock() + self.options.planning_lease_s
        s.add(post)
        s.flush()
        self.to_plan.append(post.id or 0)

    def add_admin(
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

    def open_author(self, row: Post | RecurringPost) -> Address | None:
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

    def seal_author(self, s: Session, row: Post | RecurringPost, address: Address) -> None:
        """Record who made a post or recurring post, sealed to that row (flushed for its id)."""
        row.author_platform = address.platform
        s.add(row)
        s.flush()
        row.author_sealed = self.sealer.seal(address, table=str(row.__tablename__), row_id=row.id or 0)
        s.add(row)

    def author_still_admin(self, s: Session, channel_id: int, row: Post | RecurringPost) -> bool:
        """Whether the author of a scheduled or recurring post may still post in the channel
        (an operator, or an admin of it) when it fires (an author who cannot be read may not)."""
        author = self.open_author(row)
        if author is None:
            return False
        index = self.sealer.address_index(author)
        return index in self.operators or self.store.channels.admin_of(s, channel_id, index) is not None


def followers_text(n: int) -> str:
    """`1 follower`, `2 followers`."""
    return ngettext("{n} follower", "{n} followers", n).format(n=n)


def duration_text(seconds: float) -> str:
    """A delay for people: `40 s`, `12 min`, `3 h 5 min`."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return _("{seconds} s").format(seconds=int(seconds))
    if minutes < 120:
        return _("{minutes} min").format(minutes=minutes)
    return _("{hours} h {minutes} min").format(hours=minutes // 60, minutes=minutes % 60)


def new_invite_code() -> str:
    """A one-time admin code: 128 random bits as 32 hex digits, one word that a double click
    or a long press selects whole (dashes or spaces in it would split the selection)."""
    return secrets.token_hex(16)


def normalize_code(code: str) -> str:
    """A typed code as it is digested: lower case, without separators people add to read it."""
    return "".join(ch for ch in code.lower() if ch not in "- \t")


def preview(text: str, limit: int = 40) -> str:
    """The start of a text on one line, cut with `…`."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
