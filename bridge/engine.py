"""ChannelEngine: applies commands with authorization, publishes posts, aggregates votes and
reactions. Adapters hand it neutral inbound events; it answers with `Reply` values.

Every command runs in one database transaction: a refused or failed command changes nothing.
Replies never contain anyone's identity; admins see counts and admin numbers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bridge.commands import Audience, Command, CommandError, help_text, parse_command
from bridge.models import (
    AdminInvite,
    AdminRole,
    Channel,
    ChannelAdmin,
    DeliveryAction,
    Follower,
    MediaBlob,
    MediaUpload,
    MirrorRoom,
    PollOption,
    Post,
    PostEdit,
    PostStatus,
    RecurringPost,
    Subscription,
)
from bridge.ports import (
    MEDIA_KINDS,
    Address,
    Button,
    Inbound,
    InboundMedia,
    Message,
    PollVote,
    PostKind,
    Reaction,
    Reply,
)
from bridge.privacy import Sealer
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
_TIMED = ("schedule", "every", "poll", "cancel", "delete", "deletechannel", "edit")
INVITE_TTL_S = 7 * 24 * 3600


class Refusal(Exception):
    """A command was understood but may not be applied; the message says why."""


@dataclass
class EngineOptions:
    """Tunables of the engine (from config; defaults suit tests)."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    max_admins: int = 16
    invite_ttl_s: float = INVITE_TTL_S
    fanout_batch: int = 1000
    planning_lease_s: float = 60.0


@dataclass(frozen=True)
class _Actor:
    """Who sent a command, as the engine sees them: a blind index, never an identity."""

    address: Address
    index: str
    is_operator: bool


class ChannelEngine:
    """The platform-neutral channel engine.

    Adapters call `handle` for every inbound event; the scheduler calls `publish`,
    `publish_scheduled`, `close_poll` and `fire_recurring`; the delivery worker sends what
    publishing planned.
    """

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

    # ---- wiring -----------------------------------------------------------------------------

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

    # ---- inbound ----------------------------------------------------------------------------

    async def handle(self, event: Inbound) -> list[Reply]:
        """Apply one inbound event and return the replies for its sender."""
        actor = self._actor(event.sender)
        try:
            if isinstance(event, Message) and _is_mirror_create(event.text):
                parsed = parse_command(event.text)
                assert isinstance(parsed, Command)
                replies = await self._create_mirror(actor, parsed)
            elif isinstance(event, Message):
                replies = self._handle_message(actor, event)
            elif isinstance(event, PollVote):
                replies = self._handle_native_vote(actor, event)
            elif isinstance(event, Reaction):
                replies = self._handle_reaction(actor, event)
            else:  # pragma: no cover - the Inbound union is closed
                replies = []
        except Refusal as refusal:
            replies = [Reply(str(refusal))]
        self._kick_planning()
        if isinstance(event, Message) and event.text.lstrip()[1:].lower().startswith(_TIMED):
            self._schedule_changed()
        return replies

    def _actor(self, address: Address) -> _Actor:
        index = self.sealer.address_index(address)
        return _Actor(address, index, index in self._operators)

    def _handle_message(self, actor: _Actor, message: Message) -> list[Reply]:
        parsed = parse_command(message.text)
        if parsed is None:
            if message.media is not None:
                return [Reply("To post media, send it with the caption /post <handle> [text].")]
            return [Reply("I only understand commands. Send /help for the list.")]
        if isinstance(parsed, CommandError):
            return [Reply(str(parsed))]
        handler = getattr(self, "_cmd_" + parsed.name.replace("-", "_"), None)
        if handler is None:
            return [Reply(f"/{parsed.name} is not available yet.")]
        with self.store.session() as s:
            result: list[Reply] = handler(s, actor, parsed, message.media)
        return result

    # ---- authorization helpers --------------------------------------------------------------

    def _channel(self, s: Session, handle: str | None) -> Channel:
        channel = self.store.channel_by_handle(s, handle or "")
        if channel is None:
            raise Refusal(f"There is no channel '{handle}'. Send /channels to find one.")
        return channel

    def _require_admin(self, s: Session, actor: _Actor, channel: Channel) -> str:
        """Refuse unless the actor administers the channel; returns the audit actor name."""
        if actor.is_operator:
            return "operator"
        assert channel.id is not None
        admin = self.store.admin_of(s, channel.id, actor.index)
        if admin is None:
            raise Refusal(f"Only admins of '{channel.handle}' can do that.")
        return f"admin #{admin.number}"

    def _require_owner(self, s: Session, actor: _Actor, channel: Channel) -> str:
        if actor.is_operator:
            return "operator"
        assert channel.id is not None
        admin = self.store.admin_of(s, channel.id, actor.index)
        if admin is None or admin.role != AdminRole.OWNER.value:
            raise Refusal(f"Only the owner of '{channel.handle}' can do that.")
        return f"admin #{admin.number}"

    def _post_for_admin(self, s: Session, actor: _Actor, post_id: int | None) -> tuple[Post, Channel, str]:
        post = self.store.post(s, post_id or 0)
        channel = self.store.channel_by_id(s, post.channel_id) if post else None
        if post is None or channel is None or channel.deleted_at is not None:
            raise Refusal(f"There is no post #{post_id}.")
        who = self._require_admin(s, actor, channel)
        return post, channel, who

    def _is_admin_anywhere(self, s: Session, actor: _Actor) -> bool:
        return actor.is_operator or bool(self.store.administered_channels(s, actor.index))

    # ---- follower commands ------------------------------------------------------------------

    def _cmd_help(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        audiences = {Audience.FOLLOWER}
        if self._is_admin_anywhere(s, actor):
            audiences.add(Audience.ADMIN)
        if actor.is_operator:
            audiences.add(Audience.OPERATOR)
        return [Reply(help_text(audiences))]

    def _cmd_start(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        intro = (
            "Welcome to channelbridge: private one-way channels. Nobody can see who else follows, "
            "and admins only see counts. Send /channels to find channels, /help for everything."
        )
        if cmd.handle:
            return [Reply(intro), *self._cmd_follow(s, actor, cmd, media)]
        return [Reply(intro)]

    def _cmd_channels(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channels = self.store.search_channels(s, cmd.query.strip())
        if not channels:
            return [Reply("No channels found." if cmd.query else "There are no channels yet.")]
        lines, buttons = [], []
        for channel in channels:
            assert channel.id is not None
            count = self.store.follower_count(s, channel.id)
            lines.append(f"{channel.handle} — {channel.name} ({_followers(count)})")
            buttons.append(Button(f"Follow {channel.handle}", f"/follow {channel.handle}"))
        return [Reply("Channels:\n" + "\n".join(lines), buttons=tuple(buttons[:10]))]

    def _cmd_info(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        assert channel.id is not None
        count = self.store.follower_count(s, channel.id)
        follower = self.store.follower_by_index(s, actor.index)
        sub = self.store.subscription(s, follower.id, channel.id) if follower and follower.id else None
        state = "You do not follow it."
        buttons = [Button("Follow", f"/follow {channel.handle}")]
        if sub is not None:
            state = "You follow it" + (" (muted)." if sub.muted else ".")
            buttons = [
                Button("Unfollow", f"/unfollow {channel.handle}"),
                Button(
                    "Unmute" if sub.muted else "Mute",
                    f"/{'unmute' if sub.muted else 'mute'} {channel.handle}",
                ),
            ]
        text = f"{channel.name} ({channel.handle}) — {_followers(count)}"
        if channel.description:
            text += f"\n{channel.description}"
        return [Reply(f"{text}\n{state}", buttons=tuple(buttons))]

    def _follower(self, s: Session, actor: _Actor, create: bool) -> Follower | None:
        follower = self.store.follower_by_index(s, actor.index)
        if follower is None and create:
            follower = Follower(
                platform=actor.address.platform,
                account_index=actor.index,
                sealed=self.sealer.seal(actor.address),
                created_at=self.clock(),
            )
            s.add(follower)
            s.flush()
        elif follower is not None and create:
            current = self.sealer.unseal(follower.platform, follower.sealed)
            if actor.address.chat and current.chat != actor.address.chat:
                follower.sealed = self.sealer.seal(actor.address)  # their chat moved
                s.add(follower)
        return follower

    def _cmd_follow(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        assert channel.id is not None
        follower = self._follower(s, actor, create=True)
        assert follower is not None and follower.id is not None
        sub = self.store.subscription(s, follower.id, channel.id)
        if sub is not None and not sub.paused:
            return [Reply(f"You already follow {channel.name}.")]
        if sub is None:
            s.add(Subscription(follower_id=follower.id, channel_id=channel.id, created_at=self.clock()))
        else:
            sub.paused = False
            s.add(sub)
        return [
            Reply(
                f"You now follow {channel.name}. Its posts will arrive here; nobody else can see "
                f"that you follow it. /mute {channel.handle} silences them, "
                f"/unfollow {channel.handle} stops them.",
                buttons=(
                    Button("Mute", f"/mute {channel.handle}"),
                    Button("Unfollow", f"/unfollow {channel.handle}"),
                ),
            )
        ]

    def _subscription(self, s: Session, actor: _Actor, cmd: Command) -> tuple[Subscription, Channel]:
        channel = self._channel(s, cmd.handle)
        follower = self.store.follower_by_index(s, actor.index)
        sub = (
            self.store.subscription(s, follower.id, channel.id)
            if follower and follower.id and channel.id
            else None
        )
        if sub is None:
            raise Refusal(f"You do not follow {channel.handle}.")
        return sub, channel

    def _cmd_unfollow(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        sub, channel = self._subscription(s, actor, cmd)
        s.delete(sub)
        return [Reply(f"You no longer follow {channel.name}. Nothing more will arrive from it.")]

    def _cmd_mute(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        sub, channel = self._subscription(s, actor, cmd)
        sub.muted = True
        s.add(sub)
        return [Reply(f"{channel.name} is muted: posts still arrive, without notifications.")]

    def _cmd_unmute(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        sub, channel = self._subscription(s, actor, cmd)
        sub.muted = False
        s.add(sub)
        return [Reply(f"{channel.name} is unmuted.")]

    def _cmd_following(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        follower = self.store.follower_by_index(s, actor.index)
        subs = self.store.subscriptions_of(s, follower.id) if follower and follower.id else []
        if not subs:
            return [Reply("You follow no channels. Send /channels to find some.")]
        lines = [
            f"{channel.handle} — {channel.name}{' (muted)' if sub.muted else ''}" for sub, channel in subs
        ]
        return [Reply("You follow:\n" + "\n".join(lines))]

    def _poll_for_voting(self, s: Session, post_id: int | None) -> tuple[Post, list[PollOption]]:
        post = self.store.post(s, post_id or 0)
        if (
            post is None
            or post.kind != PostKind.POLL.value
            or post.status
            not in (
                PostStatus.PUBLISHED.value,
                PostStatus.PUBLISHING.value,
            )
        ):
            raise Refusal(f"There is no open poll #{post_id}.")
        if self._poll_closed(post):
            raise Refusal(f"Poll #{post.id} is closed; votes are no longer accepted.")
        return post, self.store.poll_options(s, post.id or 0)

    def _poll_closed(self, post: Post) -> bool:
        if post.poll_closed_at is not None:
            return True
        return post.poll_closes_at is not None and self.clock() >= post.poll_closes_at

    def _cmd_vote(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        post, options = self._poll_for_voting(s, cmd.post_id)
        bad = [n for n in cmd.numbers if not 1 <= n <= len(options)]
        if bad:
            raise Refusal(f"Poll #{post.id} has options 1 to {len(options)}.")
        if len(set(cmd.numbers)) > 1 and not post.poll_multi:
            raise Refusal(f"Poll #{post.id} allows one choice.")
        self.store.set_votes(s, post.id or 0, actor.index, [n - 1 for n in cmd.numbers])
        chosen = ", ".join(options[n - 1].text for n in sorted(set(cmd.numbers)))
        return [
            Reply(f"Your vote on #{post.id} is recorded: {chosen}. You can change it until the poll closes.")
        ]

    def _cmd_results(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        post = self.store.post(s, cmd.post_id or 0)
        if post is None or post.kind != PostKind.POLL.value or post.published_at is None:
            raise Refusal(f"There is no poll #{cmd.post_id}.")
        return [Reply(self._results_text(s, post))]

    def _results_text(self, s: Session, post: Post) -> str:
        options = self.store.poll_options(s, post.id or 0)
        counts, voters = self.store.tally(s, post.id or 0)
        total = sum(counts.values()) or 1
        state = "closed" if self._poll_closed(post) else "open"
        lines = [f"Poll #{post.id}: {post.text} ({state}, {voters} voter{'s' if voters != 1 else ''})"]
        for option in options:
            n = counts.get(option.position, 0)
            lines.append(f"{option.position + 1}. {option.text} — {n} ({round(100 * n / total)}%)")
        return "\n".join(lines)

    def _cmd_forgetme(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        follower = self.store.follower_by_index(s, actor.index)
        if follower is not None:
            self.store.forget_follower(s, follower)
        else:
            self.store.forget_voter(s, actor.index)
        note = ""
        if self.store.administered_channels(s, actor.index):
            note = " Your admin roles remain; an owner can remove them with /removeadmin."
        return [Reply("Done: your follows, votes, reactions and delivery records are erased." + note)]

    # ---- admin commands ---------------------------------------------------------------------

    def _cmd_newchannel(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        if not actor.is_operator:
            raise Refusal("Only operators can create channels.")
        assert cmd.handle is not None
        if self.store.handle_taken(s, cmd.handle):
            raise Refusal(f"The handle '{cmd.handle}' is taken; choose another.")
        channel = Channel(handle=cmd.handle, name=cmd.text.strip(), created_at=self.clock())
        s.add(channel)
        s.flush()
        assert channel.id is not None
        s.add(self._new_admin(channel.id, 1, AdminRole.OWNER, actor.address))
        self.store.audit(s, channel.id, "operator", "newchannel", channel.handle)
        return [
            Reply(
                f"Channel {channel.name} ({channel.handle}) created; you are its owner. "
                f"Post with /post {channel.handle} <text>; followers join with /follow {channel.handle}."
            )
        ]

    def _new_admin(self, channel_id: int, number: int, role: AdminRole, address: Address) -> ChannelAdmin:
        return ChannelAdmin(
            channel_id=channel_id,
            number=number,
            role=role.value,
            account_index=self.sealer.address_index(address),
            platform=address.platform,
            sealed=self.sealer.seal(address),
            added_at=self.clock(),
        )

    def _cmd_deletechannel(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_owner(s, actor, channel)
        channel.deleted_at = self.clock()
        s.add(channel)
        for post in self.store.scheduled_posts(s, channel.id or 0):
            post.status = PostStatus.CANCELLED.value
            s.add(post)
        self.store.audit(s, channel.id, who, "deletechannel", channel.handle)
        return [Reply(f"Channel {channel.handle} is deleted; followers receive nothing more from it.")]

    def _cmd_describe(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        channel.description = cmd.text.strip()[:1000]
        s.add(channel)
        self.store.audit(s, channel.id, who, "describe")
        return [Reply(f"Description of {channel.handle} updated.")]

    def _store_media(self, s: Session, media: InboundMedia, platform: str) -> int:
        digest = hashlib.sha256(media.data or (media.platform_ref or "").encode()).hexdigest()
        size = len(media.data or b"")
        blob = self.store.media_by_hash(s, digest, size) if media.data else None
        if blob is None:
            blob = MediaBlob(
                kind=media.kind.value,
                mime=media.mime,
                filename=media.filename,
                sha256=digest,
                size=size,
                data=media.data,
                width=media.width,
                height=media.height,
                duration=media.duration,
            )
            s.add(blob)
            s.flush()
        assert blob.id is not None
        if media.platform_ref and platform not in self.store.media_refs(s, blob.id):
            s.add(MediaUpload(media_id=blob.id, platform=platform, ref=media.platform_ref))
        return blob.id

    def _new_post(
        self, s: Session, actor: _Actor, channel: Channel, cmd: Command, media: InboundMedia | None
    ) -> Post:
        text = cmd.text.strip()
        if len(text) > MAX_TEXT:
            raise Refusal(f"A post can have at most {MAX_TEXT} characters (this one has {len(text)}).")
        kind = PostKind.TEXT
        media_id = None
        if media is not None:
            if media.kind not in MEDIA_KINDS:
                raise Refusal("Only photos, videos and stickers can be posted as media.")
            if media.kind == PostKind.STICKER and text:
                raise Refusal("A sticker post cannot carry text; post the text separately.")
            kind = media.kind
            media_id = self._store_media(s, media, actor.address.platform)
        elif not text:
            raise Refusal(
                f"Nothing to post. Usage: /post {channel.handle} <text> (or media with that caption)"
            )
        return Post(
            channel_id=channel.id or 0,
            kind=kind.value,
            text=text,
            media_id=media_id,
            created_at=self.clock(),
            author_platform=actor.address.platform,
            author_sealed=self.sealer.seal(actor.address),
        )

    def _cmd_post(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        post = self._new_post(s, actor, channel, cmd, media)
        s.add(post)
        s.flush()
        self.store.audit(s, channel.id, who, "post", f"#{post.id}")
        self._begin_publish(s, post)
        return [Reply(self._published_text(s, post, channel))]

    def _published_text(self, s: Session, post: Post, channel: Channel) -> str:
        count = self.store.follower_count(s, channel.id or 0)
        mirrors = len(self.store.mirrors(s, channel.id or 0))
        where = _followers(count) + (f" and {mirrors} mirror room(s)" if mirrors else "")
        return f"Post #{post.id} is on its way to {where}. /stats {channel.handle} shows its delivery."

    def _build_poll(self, s: Session, actor: _Actor, channel: Channel, cmd: Command) -> Post:
        closes_at = None
        if cmd.when is not None:
            closes_at = self._when(cmd.when)
        post = Post(
            channel_id=channel.id or 0,
            kind=PostKind.POLL.value,
            text=cmd.text.strip(),
            poll_multi=cmd.multi,
            poll_closes_at=closes_at,
            created_at=self.clock(),
            author_platform=actor.address.platform,
            author_sealed=self.sealer.seal(actor.address),
        )
        s.add(post)
        s.flush()
        for position, option in enumerate(cmd.options):
            s.add(PollOption(post_id=post.id or 0, position=position, text=option))
        return post

    def _cmd_poll(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        post = self._build_poll(s, actor, channel, cmd)
        self.store.audit(s, channel.id, who, "poll", f"#{post.id}")
        self._begin_publish(s, post)
        text = self._published_text(s, post, channel)
        if post.poll_closes_at:
            text += f" It closes {self._local(post.poll_closes_at)}."
        return [Reply(text)]

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

    def _cmd_schedule(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        at = self._when(cmd.when or "")
        if cmd.sub is not None:
            post = self._build_poll(s, actor, channel, cmd.sub)
            if post.poll_closes_at is not None and post.poll_closes_at <= at:
                raise Refusal(
                    f"The poll would close ({self._local(post.poll_closes_at)}) before it is "
                    f"published ({self._local(at)}); choose a later --closes."
                )
        else:
            post = self._new_post(s, actor, channel, cmd, media)
            s.add(post)
        post.status = PostStatus.SCHEDULED.value
        post.scheduled_at = at
        s.add(post)
        s.flush()
        self.store.audit(s, channel.id, who, "schedule", f"#{post.id}")
        if self._on_work:
            self._on_work()
        return [Reply(f"Post #{post.id} is scheduled for {self._local(at)}. /cancel {post.id} cancels it.")]

    def _cmd_every(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        if self._parse_recurrence is None:
            raise Refusal("Recurring posts are not available in this process.")
        try:
            recurrence = self._parse_recurrence(cmd.spec or "")
        except ValueError as exc:
            raise Refusal(str(exc)) from exc
        if not cmd.text.strip():
            raise Refusal("A recurring post needs text.")
        now = datetime.fromtimestamp(self.clock(), UTC)
        next_at = recurrence.next_after(now, self.options.tz).timestamp()
        row = RecurringPost(
            channel_id=channel.id or 0,
            spec=recurrence.text,
            text=cmd.text.strip(),
            created_at=self.clock(),
            next_at=next_at,
            author_platform=actor.address.platform,
            author_sealed=self.sealer.seal(actor.address),
        )
        s.add(row)
        s.flush()
        self.store.audit(s, channel.id, who, "every", f"r{row.id}")
        if self._on_work:
            self._on_work()
        return [
            Reply(
                f"Recurring post r{row.id} ({recurrence.text}); next at {self._local(next_at)}. "
                f"/cancel r{row.id} stops it."
            )
        ]

    def _cmd_scheduled(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        self._require_admin(s, actor, channel)
        posts = self.store.scheduled_posts(s, channel.id or 0)
        recurring = self.store.recurring_posts(s, channel.id or 0)
        if not posts and not recurring:
            return [Reply(f"Nothing is scheduled in {channel.handle}.")]
        lines = [f"#{p.id} {p.kind} at {self._local(p.scheduled_at or 0)}: {_preview(p.text)}" for p in posts]
        lines += [f"r{r.id} every {r.spec}: {_preview(r.text)}" for r in recurring]
        return [Reply(f"Scheduled in {channel.handle}:\n" + "\n".join(lines))]

    def _cmd_cancel(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        if cmd.code is not None and cmd.code.startswith("r"):
            return self._cancel_recurring(s, actor, cmd.code)
        post, channel, who = self._post_for_admin(s, actor, cmd.post_id)
        if post.status != PostStatus.SCHEDULED.value:
            raise Refusal(f"Post #{post.id} is not scheduled ({post.status}); use /delete {post.id}.")
        post.status = PostStatus.CANCELLED.value
        s.add(post)
        self.store.audit(s, channel.id, who, "cancel", f"#{post.id}")
        return [Reply(f"Scheduled post #{post.id} is cancelled; it will not be published.")]

    def _cancel_recurring(self, s: Session, actor: _Actor, code: str) -> list[Reply]:
        row = self.store.recurring(s, int(code[1:])) if code[1:].isdigit() else None
        channel = self.store.channel_by_id(s, row.channel_id) if row else None
        if row is None or channel is None or not row.active:
            raise Refusal(f"There is no recurring post {code}.")
        who = self._require_admin(s, actor, channel)
        row.active = False
        s.add(row)
        self.store.audit(s, channel.id, who, "cancel", code)
        return [Reply(f"Recurring post {code} is stopped.")]

    def _cmd_edit(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        post, channel, who = self._post_for_admin(s, actor, cmd.post_id)
        if post.kind in (PostKind.POLL.value, PostKind.STICKER.value):
            raise Refusal(f"A {post.kind} cannot be edited; delete it and post again.")
        if post.status not in (
            PostStatus.PUBLISHED.value,
            PostStatus.PUBLISHING.value,
            PostStatus.SCHEDULED.value,
        ):
            raise Refusal(f"Post #{post.id} is {post.status}; it cannot be edited.")
        new_text = cmd.text.strip()
        if not new_text and post.kind == PostKind.TEXT.value:
            raise Refusal("The new text is empty.")
        if len(new_text) > MAX_TEXT:
            raise Refusal(f"A post can have at most {MAX_TEXT} characters.")
        s.add(PostEdit(post_id=post.id or 0, previous_text=post.text, edited_at=self.clock()))
        post.text = new_text
        post.edited_at = self.clock()
        post.edit_count += 1
        s.add(post)
        s.flush()
        copies = 0
        if post.status != PostStatus.SCHEDULED.value:
            copies = self.store.plan_followups(s, post.id or 0, DeliveryAction.EDIT, self.clock())
        self.store.audit(s, channel.id, who, "edit", f"#{post.id}")
        self._wake()
        return [
            Reply(
                f"Post #{post.id} edited; {copies} delivered cop{'y' if copies == 1 else 'ies'} "
                "will be updated, and copies still to send carry the new text."
            )
        ]

    def _cmd_delete(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        post, channel, who = self._post_for_admin(s, actor, cmd.post_id)
        if post.status == PostStatus.SCHEDULED.value:
            return self._cmd_cancel(s, actor, cmd, media)
        if post.status not in (PostStatus.PUBLISHED.value, PostStatus.PUBLISHING.value):
            raise Refusal(f"Post #{post.id} is {post.status}; there is nothing to delete.")
        post.status = PostStatus.DELETED.value
        post.deleted_at = self.clock()
        s.add(post)
        s.flush()
        skipped = self.store.skip_pending(
            s,
            post.id or 0,
            "post deleted",
            [DeliveryAction.SEND.value, DeliveryAction.EDIT.value, DeliveryAction.CLOSE_POLL.value],
        )
        copies = self.store.plan_followups(s, post.id or 0, DeliveryAction.DELETE, self.clock())
        self.store.audit(s, channel.id, who, "delete", f"#{post.id}")
        self._wake()
        return [
            Reply(
                f"Post #{post.id} deleted: {copies} delivered cop{'y' if copies == 1 else 'ies'} "
                f"will be removed; {skipped} not yet sent will not be sent."
            )
        ]

    def _cmd_stats(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        self._require_admin(s, actor, channel)
        return [Reply(self.stats_text(s, channel))]

    def stats_text(self, s: Session, channel: Channel) -> str:
        """Aggregate statistics of a channel: counts only, never identities."""
        cid = channel.id or 0
        per_platform = self.store.follower_counts_by_platform(s, cid)
        total = sum(n for n, _ in per_platform.values())
        muted = sum(m for _, m in per_platform.values())
        parts = ", ".join(f"{p} {n}" for p, (n, _) in sorted(per_platform.items()))
        lines = [
            f"Stats for {channel.name} ({channel.handle})",
            f"Followers: {total}" + (f" ({parts})" if parts else "") + f"; muted {muted}",
        ]
        paused = self.store.paused_count(s, cid)
        if paused:
            lines.append(f"Paused (blocked the bot or left): {paused}")
        mirrors = self.store.mirrors(s, cid)
        if mirrors:
            lines.append(f"Mirror rooms: {len(mirrors)}")
        for post in self.store.recent_posts(s, cid, limit=5):
            lines.append(self.post_stats_line(s, post))
        return "\n".join(lines)

    def post_stats_line(self, s: Session, post: Post) -> str:
        """One post's delivery status, reactions and poll tally."""
        counts = self.store.delivery_counts(s, post.id or 0)
        delivered = counts.get("delivered", 0)
        pending = counts.get("pending", 0) + counts.get("leased", 0)
        failed = counts.get("failed", 0)
        skipped = counts.get("skipped", 0)
        line = f"#{post.id} {post.kind}"
        if post.status == PostStatus.DELETED.value:
            line += " (deleted)"
        line += f": delivered {delivered}, pending {pending}, failed {failed}"
        if skipped:
            line += f", skipped {skipped}"
        reasons = self.store.failure_reasons(s, post.id or 0)
        if reasons:
            line += " [" + "; ".join(f"{r} ×{n}" for r, n in reasons) + "]"
        reactions = self.store.reaction_counts(s, post.id or 0)
        if reactions:
            line += "; reactions " + " ".join(f"{k} {n}" for k, n in reactions.items())
        if post.kind == PostKind.POLL.value:
            tally, voters = self.store.tally(s, post.id or 0)
            options = self.store.poll_options(s, post.id or 0)
            votes = ", ".join(f"{o.text} {tally.get(o.position, 0)}" for o in options)
            line += f"; votes ({voters} voters): {votes}"
        return line

    def _cmd_admins(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        self._require_admin(s, actor, channel)
        admins = self.store.admins(s, channel.id or 0)
        lines = [
            f"#{a.number} {a.role} ({a.platform})" + (" — you" if a.account_index == actor.index else "")
            for a in admins
        ]
        return [
            Reply(
                f"Admins of {channel.handle} ({len(admins)}/{self.options.max_admins}):\n" + "\n".join(lines)
            )
        ]

    def _cmd_invite_admin(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        if len(self.store.admins(s, channel.id or 0)) >= self.options.max_admins:
            raise Refusal(f"{channel.handle} already has {self.options.max_admins} admins, the most allowed.")
        code = secrets.token_hex(5)
        now = self.clock()
        s.add(
            AdminInvite(
                channel_id=channel.id or 0,
                code_digest=self.sealer.code_digest(code),
                created_at=now,
                expires_at=now + self.options.invite_ttl_s,
            )
        )
        self.store.audit(s, channel.id, who, "invite-admin")
        days = round(self.options.invite_ttl_s / 86400)
        return [
            Reply(
                f"One-time admin code for {channel.handle}: {code}\nIt works once, for {days} days: "
                f"the new admin sends /accept {code} to me."
            )
        ]

    def _cmd_accept(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        invite = self.store.invite_by_digest(s, self.sealer.code_digest((cmd.code or "").strip().lower()))
        if invite is None or invite.used_at is not None:
            raise Refusal("That code is not valid (or was already used).")
        if invite.expires_at <= self.clock():
            raise Refusal("That code has expired; ask an admin for a new one.")
        channel = self.store.channel_by_id(s, invite.channel_id)
        if channel is None or channel.deleted_at is not None:
            raise Refusal("That channel no longer exists.")
        if self.store.admin_of(s, channel.id or 0, actor.index) is not None:
            raise Refusal(f"You are already an admin of {channel.handle}.")
        admins = self.store.admins(s, channel.id or 0)
        if len(admins) >= self.options.max_admins:
            raise Refusal(f"{channel.handle} already has {self.options.max_admins} admins, the most allowed.")
        number = max((a.number for a in admins), default=0) + 1
        s.add(self._new_admin(channel.id or 0, number, AdminRole.ADMIN, actor.address))
        invite.used_at = self.clock()
        s.add(invite)
        self.store.audit(s, channel.id, f"admin #{number}", "accept")
        return [Reply(f"You are now admin #{number} of {channel.name}. Send /help for admin commands.")]

    def _cmd_removeadmin(
        self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_owner(s, actor, channel)
        number = cmd.numbers[0] if cmd.numbers else 0
        target = next((a for a in self.store.admins(s, channel.id or 0) if a.number == number), None)
        if target is None:
            raise Refusal(f"{channel.handle} has no admin #{number}; /admins {channel.handle} lists them.")
        if target.role == AdminRole.OWNER.value:
            raise Refusal("The owner cannot be removed.")
        s.delete(target)
        self.store.audit(s, channel.id, who, "removeadmin", f"#{number}")
        return [Reply(f"Admin #{number} removed from {channel.handle}.")]

    def _cmd_mirror(self, s: Session, actor: _Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        if cmd.text:
            if not actor.is_operator:
                raise Refusal("Only operators can add mirror rooms.")
            if cmd.text == "create matrix":
                # creating a room needs the Matrix adapter: handled by `_create_mirror` (async)
                raise Refusal("Mirror rooms can only be created while the Matrix adapter runs.")
            platform, chat = cmd.text.split(":", 1)
            if any(
                m.platform == platform and m.chat_id == chat for m in self.store.mirrors(s, channel.id or 0)
            ):
                raise Refusal(f"{platform}:{chat} already mirrors {channel.handle}.")
            s.add(
                MirrorRoom(
                    channel_id=channel.id or 0, platform=platform, chat_id=chat, created_at=self.clock()
                )
            )
            self.store.audit(s, channel.id, who, "mirror", platform)
            return [Reply(self._mirror_added(channel, f"{platform}:{chat}"))]
        mirrors = self.store.mirrors(s, channel.id or 0)
        if not mirrors:
            return [
                Reply(
                    f"{channel.handle} has no mirror rooms. Operators add them in the config "
                    '([[channels]] mirrors = ["telegram:<chat id>", "matrix:<room id>"]) or with '
                    f"/mirror {channel.handle} create matrix."
                )
            ]
        lines = [f"{m.platform}:{m.chat_id}" for m in mirrors]
        return [
            Reply(
                f"Mirror rooms of {channel.handle} (members of a room can see each other):\n"
                + "\n".join(lines)
            )
        ]

    @staticmethod
    def _mirror_added(channel: Channel, where: str) -> str:
        return (
            f"{where} now mirrors every new post of {channel.handle}. Members of a mirror room can see "
            "each other: use mirrors for public channels only."
        )

    def set_mirror_factory(
        self, factory: MirrorFactory | None, on_added: Callable[[str, str], None] | None = None
    ) -> None:
        """Install what creates a read-only mirror room on a platform (the Matrix adapter's), and
        what to tell when an operator adds an existing room as a mirror."""
        self._mirror_factory = factory
        self._on_mirror_added = on_added

    def mirror_rooms(self, platform: str) -> list[str]:
        """Every mirror room of every live channel on one platform."""
        with self.store.session() as s:
            return self.store.mirror_chats_of(s, platform)

    async def _create_mirror(self, actor: _Actor, cmd: Command) -> list[Reply]:
        """`/mirror <handle> create matrix`: the bot creates a read-only room and mirrors into it."""
        with self.store.session() as s:
            channel = self._channel(s, cmd.handle)
            if not actor.is_operator:
                raise Refusal("Only operators can add mirror rooms.")
            name, description = channel.name, channel.description
        if self._mirror_factory is None:
            raise Refusal("Mirror rooms can only be created while the Matrix adapter runs.")
        try:
            room = await self._mirror_factory("matrix", name, description or f"Mirror of {name}")
        except Exception as exc:
            log.warning("creating a mirror room failed: %s", type(exc).__name__)
            raise Refusal("The homeserver refused to create the room; nothing was changed.") from exc
        with self.store.session() as s:
            channel = self._channel(s, cmd.handle)
            s.add(
                MirrorRoom(
                    channel_id=channel.id or 0, platform="matrix", chat_id=room, created_at=self.clock()
                )
            )
            self.store.audit(s, channel.id, "operator", "mirror", "matrix")
            return [Reply(self._mirror_added(channel, f"matrix:{room}"))]

    # ---- native votes and reactions -----------------------------------------------------------

    def _handle_native_vote(self, actor: _Actor, vote: PollVote) -> list[Reply]:
        with self.store.session() as s:
            copy = self.store.copy_by_ref(s, actor.address.platform, vote.post_ref)
            if copy is None:
                return []
            post, options = self._poll_for_voting(s, copy.post_id)
            positions = [i for i in vote.option_ids if 0 <= i < len(options)]
            if not post.poll_multi:
                positions = positions[:1]
            self.store.set_votes(s, post.id or 0, actor.index, positions)
        return []

    def _handle_reaction(self, actor: _Actor, reaction: Reaction) -> list[Reply]:
        with self.store.session() as s:
            copy = self.store.copy_by_ref(s, actor.address.platform, reaction.post_ref)
            if copy is None:
                return []
            post = self.store.post(s, copy.post_id)
            if post is None or post.status == PostStatus.DELETED.value:
                return []
            self.store.set_reaction(s, copy.post_id, actor.index, reaction.key)
        return []

    # ---- publishing ---------------------------------------------------------------------------

    def _begin_publish(self, s: Session, post: Post) -> None:
        """Mark a new post publishing in the caller's transaction; planning runs after commit."""
        post.status = PostStatus.PUBLISHING.value
        post.published_at = self.clock()
        post.plan_lease_until = self.clock() + self.options.planning_lease_s
        s.add(post)
        s.flush()
        self._to_plan.append(post.id or 0)

    def _kick_planning(self) -> None:
        pending, self._to_plan = self._to_plan, []
        for post_id in pending:
            self._start_planning(post_id)

    def _start_planning(self, post_id: int) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.plan(post_id)
            return
        task = loop.create_task(self.plan_async(post_id))
        self._planning.add(task)
        task.add_done_callback(self._planning.discard)

    def publish(self, post_id: int) -> bool:
        """Claim a scheduled or draft post (atomically) and plan its fan-out; False if another
        process or wake-up already did."""
        if not self.store.claim_post_for_publishing(post_id, self.clock(), self.options.planning_lease_s):
            return False
        with self.store.session() as s:
            post = self.store.post(s, post_id)
            if post is not None:
                post.published_at = self.clock()
                s.add(post)
        self._start_planning(post_id)
        return True

    def plan(self, post_id: int) -> int:
        """Plan every batch of a publishing post's fan-out now; returns copies planned."""
        total = 0
        while True:
            n = self.store.plan_fanout_batch(
                post_id, self.options.fanout_batch, self.clock(), self.options.planning_lease_s
            )
            if n > 0:
                total += n
                self._wake()
            if n < 0 or n == 0:
                return total

    async def plan_async(self, post_id: int) -> None:
        """Plan a fan-out batch by batch, yielding to the event loop between batches."""
        try:
            while True:
                n = self.store.plan_fanout_batch(
                    post_id, self.options.fanout_batch, self.clock(), self.options.planning_lease_s
                )
                if n > 0:
                    self._wake()
                if n <= 0:
                    return
                await asyncio.sleep(0.002)  # let the worker start sending the planned batch
        except Exception:
            log.exception("planning post %s failed; the sweep will resume it", post_id)

    def resume_stale_planning(self) -> int:
        """Resume fan-outs whose planner died (called periodically by the worker)."""
        with self.store.session() as s:
            stale = self.store.stale_publishing_posts(s, self.clock())
        for post_id in stale:
            self._start_planning(post_id)
        return len(stale)

    async def drain_planning(self) -> None:
        """Wait until every fan-out being planned in this process is planned."""
        while self._planning:
            await asyncio.gather(*list(self._planning), return_exceptions=True)

    def close_poll(self, post_id: int) -> bool:
        """Close a poll now (atomically, once across processes): later votes are refused and
        every delivered copy is closed."""
        if not self.store.claim_poll_close(post_id, self.clock()):
            return False
        with self.store.session() as s:
            post = self.store.post(s, post_id)
            if post is not None and post.status in (PostStatus.PUBLISHED.value, PostStatus.PUBLISHING.value):
                self.store.plan_followups(s, post_id, DeliveryAction.CLOSE_POLL, self.clock())
        self._wake()
        return True

    # ---- scheduling (called by the scheduler package) -----------------------------------------

    def schedule_snapshot(
        self,
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]], list[tuple[int, float]]]:
        """Scheduled posts, open poll deadlines and recurring posts: (id, epoch seconds) each."""
        with self.store.session() as s:
            return self.store.schedule_snapshot(s)

    def set_on_schedule_change(self, callback: Callable[[], None] | None) -> None:
        """Install what to call after a command adds or removes something timed."""
        self._on_schedule_change = callback

    def _schedule_changed(self) -> None:
        if self._on_schedule_change is not None:
            self._on_schedule_change()

    async def publish_scheduled(self, post_id: int, *, grace_s: float, late_policy: str) -> str:
        """Publish a scheduled post whose time has come, once across processes.

        Returns "published", "published late", "skipped" or "not due" / "already handled".
        A post missed by more than `grace_s` is published late or skipped per `late_policy`;
        the author is told either way.
        """
        with self.store.session() as s:
            post = self.store.post(s, post_id)
            if post is None or post.status != PostStatus.SCHEDULED.value or post.scheduled_at is None:
                return "already handled"
            if post.scheduled_at > self.clock():
                return "not due"
            late_by = self.clock() - post.scheduled_at
        if late_by > grace_s and late_policy == "skip":
            if not self.store.skip_scheduled_post(post_id):
                return "already handled"
            await self.notify_author(
                post,
                f"Scheduled post #{post_id} was due {self._local(post.scheduled_at)} but the bridge was "
                f"down; it was {_duration(late_by)} late, so it was skipped (late_policy = skip).",
            )
            return "skipped"
        if not self.publish(post_id):
            return "already handled"
        if late_by > grace_s:
            await self.notify_author(
                post,
                f"Scheduled post #{post_id} was due {self._local(post.scheduled_at)}; the bridge was down, "
                f"so it went out {_duration(late_by)} late (late_policy = publish).",
            )
            return "published late"
        await self.notify_author(post, f"Scheduled post #{post_id} is going out now.")
        return "published"

    async def fire_recurring(self, recurring_id: int, due_at: float) -> int | None:
        """Post one occurrence of a recurring post (once across processes); returns the new
        post's id, or None when another wake-up already posted this occurrence."""
        if self._parse_recurrence is None:
            return None
        if due_at > self.clock() + 1.0:
            return None  # not due yet: a stray wake-up must not post early
        with self.store.session() as s:
            row = self.store.recurring(s, recurring_id)
            if row is None or not row.active or row.next_at != due_at:
                return None
            recurrence = self._parse_recurrence(row.spec)
        after = datetime.fromtimestamp(max(due_at, self.clock()), UTC)
        next_at = recurrence.next_after(after, self.options.tz).timestamp()
        if not self.store.claim_recurrence(recurring_id, due_at, next_at):
            return None
        with self.store.session() as s:
            post = Post(
                channel_id=row.channel_id,
                kind=PostKind.TEXT.value,
                text=row.text,
                created_at=self.clock(),
                recurring_id=recurring_id,
                author_platform=row.author_platform,
                author_sealed=row.author_sealed,
            )
            channel = self.store.channel_by_id(s, row.channel_id)
            if channel is None or channel.deleted_at is not None:
                return None
            s.add(post)
            s.flush()
            self._begin_publish(s, post)
        self._kick_planning()
        self._schedule_changed()
        return post.id

    def _wake(self) -> None:
        if self._on_work is not None:
            self._on_work()

    # ---- operator configuration ------------------------------------------------------------

    def ensure_channel(
        self, handle: str, name: str, description: str, public: bool, mirrors: Collection[tuple[str, str]]
    ) -> None:
        """Create or update a channel the operator declared in config, with its mirror rooms."""
        with self.store.session() as s:
            channel = self.store.channel_by_handle(s, handle)
            if channel is None:
                channel = Channel(
                    handle=handle, name=name, description=description, public=public, created_at=self.clock()
                )
            else:
                channel.name, channel.description, channel.public = name, description, public
            s.add(channel)
            s.flush()
            existing = {(m.platform, m.chat_id) for m in self.store.mirrors(s, channel.id or 0)}
            for platform, chat in mirrors:
                if (platform, chat) not in existing:
                    s.add(
                        MirrorRoom(
                            channel_id=channel.id or 0,
                            platform=platform,
                            chat_id=chat,
                            created_at=self.clock(),
                        )
                    )

    async def notify_author(self, post: Post, text: str) -> None:
        """Tell the admin who made a post something about it (progress, schedule outcome)."""
        if self._notify is None or post.author_platform is None or post.author_sealed is None:
            return
        address = self.sealer.unseal(post.author_platform, post.author_sealed)
        try:
            await self._notify(address, text)
        except Exception as exc:  # a notice must never break the caller; it is recorded in the log
            log.warning("could not notify the author of post %s: %s", post.id, type(exc).__name__)


def _followers(n: int) -> str:
    return f"{n} follower{'s' if n != 1 else ''}"


def _is_mirror_create(text: str) -> bool:
    parsed = parse_command(text) if "create" in text.lower() else None
    return isinstance(parsed, Command) and parsed.name == "mirror" and parsed.text == "create matrix"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def _preview(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
