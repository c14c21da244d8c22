"""ChannelEngine: applies commands with authorization, publishes posts, aggregates votes and
reactions. Adapters hand it neutral inbound events; it answers with `Reply` values.

Every command runs in one database transaction: a refused or failed command changes nothing.
Replies never contain anyone's identity; admins see counts and admin numbers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime

from bridge.admin_commands import AdminCommands
from bridge.commands import Command, CommandError, parse_command
from bridge.engine_base import (
    INVITE_TTL_S,
    MAX_TEXT,
    Actor,
    EngineBase,
    EngineOptions,
    MirrorFactory,
    Notify,
    Recurrence,
    RecurrenceParser,
    Refusal,
    WhenParser,
    duration_text,
)
from bridge.follower_commands import FollowerCommands
from bridge.models import (
    Channel,
    DeliveryAction,
    MirrorRoom,
    Post,
    PostStatus,
)
from bridge.outcomes import PublishOutcome
from bridge.ports import (
    DeliveryError,
    Inbound,
    MediaTooLarge,
    Message,
    PollVote,
    PostKind,
    Reaction,
    Reply,
)
from bridge.safetext import clean, is_single_emoji
from bridge.store import ScheduleSnapshot

__all__ = [
    "INVITE_TTL_S",
    "MAX_TEXT",
    "ChannelEngine",
    "EngineBase",
    "EngineOptions",
    "MirrorFactory",
    "Notify",
    "Recurrence",
    "RecurrenceParser",
    "Refusal",
    "WhenParser",
]

log = logging.getLogger(__name__)

#: commands whose media is kept (and so downloaded, once the sender is authorized)
_WITH_MEDIA = frozenset({"post", "schedule"})
#: commands after which the scheduler re-reads what is timed
_TIMED = frozenset({"schedule", "every", "poll", "cancel", "delete", "deletechannel", "edit"})


class ChannelEngine(FollowerCommands, AdminCommands):
    """The platform-neutral channel engine.

    Adapters call `handle` for every inbound event; the scheduler calls `publish`,
    `publish_scheduled`, `close_poll` and `fire_recurring`; the delivery worker sends what
    publishing planned.
    """

    async def handle(self, event: Inbound) -> list[Reply]:
        """Apply one inbound event and return the replies for its sender."""
        actor = self._actor(event.sender)
        parsed = parse_command(event.text) if isinstance(event, Message) else None
        try:
            if isinstance(event, Message):
                if event.media is not None:
                    event = await self._with_media(actor, event, parsed)
                if isinstance(parsed, Command) and parsed.name == "mirror" and parsed.text == "create matrix":
                    replies = await self._create_mirror(actor, parsed)  # talks to a platform: async
                else:
                    replies = self._handle_message(actor, event, parsed)
            elif isinstance(event, PollVote):
                replies = self._handle_native_vote(actor, event)
            elif isinstance(event, Reaction):
                replies = self._handle_reaction(actor, event)
            else:  # pragma: no cover - the Inbound union is closed
                replies = []
        except Refusal as refusal:
            replies = [Reply(str(refusal))]
        replies = [replace(r, text=clean(r.text), html=clean(r.html) if r.html else r.html) for r in replies]
        self._kick_planning()
        if isinstance(parsed, Command) and parsed.name in _TIMED:
            self._schedule_changed()
        return replies

    async def _with_media(
        self, actor: Actor, message: Message, parsed: Command | CommandError | None
    ) -> Message:
        """Download a message's media only for an admin posting it, within the kind's cap.

        Anything else (a stranger's photo captioned `/help`, a caption that is no command)
        never triggers a download: the media goes on without bytes, and no handler uses it.
        """
        media = message.media
        assert media is not None
        if not isinstance(parsed, Command) or parsed.name not in _WITH_MEDIA:
            return message
        with self.store.unit_of_work() as s:
            self._require_admin(s, actor, self._channel(s, parsed.handle))
        cap = self.options.media_limits.get(media.kind)
        if cap is None:
            raise Refusal("Only photos, videos and stickers can be posted as media.")
        too_big = Refusal(
            f"This {media.kind.value} is larger than the {round(cap / (1024 * 1024), 3):g} MB allowed for a "
            f"{media.kind.value}; nothing was posted. Send a smaller one."
        )
        if (media.size or 0) > cap or len(media.data or b"") > cap:
            raise too_big
        if media.data is not None or media.fetch is None:
            return message
        try:
            data = await media.fetch(cap)
        except MediaTooLarge as exc:
            raise too_big from exc
        except DeliveryError as exc:
            if media.platform_ref:  # the platform can still reuse its own copy
                log.warning("inbound media could not be downloaded: %s", type(exc).__name__)
                return message
            raise Refusal(
                f"The {media.kind.value} could not be downloaded; nothing was posted. Try again."
            ) from exc
        if len(data) > cap:
            raise too_big
        return replace(message, media=replace(media, data=data, size=len(data), fetch=None))

    def _handle_message(
        self, actor: Actor, message: Message, parsed: Command | CommandError | None
    ) -> list[Reply]:
        if parsed is None:
            if message.media is not None:
                return [Reply("To post media, send it with the caption /post <handle> [text].")]
            return [Reply("I only understand commands. Send /help for the list.")]
        if isinstance(parsed, CommandError):
            return [Reply(str(parsed))]
        handler = getattr(self, "_cmd_" + parsed.name.replace("-", "_"), None)
        if handler is None:
            return [Reply(f"/{parsed.name} is not available yet.")]
        with self.store.unit_of_work() as s:
            result: list[Reply] = handler(s, actor, parsed, message.media)
        return result

    def set_mirror_factory(
        self, factory: MirrorFactory | None, on_added: Callable[[str, str], None] | None = None
    ) -> None:
        """Install what creates a read-only mirror room on a platform (the Matrix adapter's), and
        what to tell when an operator adds an existing room as a mirror."""
        self._mirror_factory = factory
        self._on_mirror_added = on_added

    def mirror_rooms(self, platform: str) -> list[str]:
        """Every mirror room of every live channel on one platform."""
        with self.store.unit_of_work() as s:
            return self.store.channels.mirror_chats_of(s, platform)

    def _handle_native_vote(self, actor: Actor, vote: PollVote) -> list[Reply]:
        with self.store.unit_of_work() as s:
            platform = actor.address.platform
            index = self.sealer.ref_index(platform, vote.post_ref)
            copy = self.store.posts.copy_by_ref_index(s, platform, index)
            if copy is None:
                return []
            post, options = self._poll_for_voting(s, copy.post_id)
            positions = [i for i in vote.option_ids if 0 <= i < len(options)]
            if not post.poll_multi:
                positions = positions[:1]
            self.store.posts.set_votes(s, post.id or 0, actor.index, positions)
        return []

    def _handle_reaction(self, actor: Actor, reaction: Reaction) -> list[Reply]:
        if reaction.key is not None and not is_single_emoji(reaction.key):
            return []  # only one emoji counts; anything else is not a reaction
        with self.store.unit_of_work() as s:
            platform = actor.address.platform
            index = self.sealer.ref_index(platform, reaction.post_ref)
            copy = self.store.posts.copy_by_ref_index(s, platform, index)
            if copy is None:
                return []
            post = self.store.posts.get(s, copy.post_id)
            if post is None or post.status == PostStatus.DELETED.value:
                return []
            self.store.posts.set_reaction(s, copy.post_id, actor.index, reaction.key)
        return []

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
        lease_s = self.options.planning_lease_s
        if not self.store.atomically(self.store.schedule.claim_publishing, post_id, self.clock(), lease_s):
            return False
        with self.store.unit_of_work() as s:
            post = self.store.posts.get(s, post_id)
            if post is not None:
                post.published_at = self.clock()
                s.add(post)
        self._start_planning(post_id)
        return True

    def plan(self, post_id: int) -> int:
        """Plan every batch of a publishing post's fan-out now; returns copies planned."""
        total = 0
        while True:
            batch, lease_s = self.options.fanout_batch, self.options.planning_lease_s
            n = self.store.atomically(self.store.fanout.plan_batch, post_id, batch, self.clock(), lease_s)
            if n > 0:
                total += n
                self._wake()
            if n < 0 or n == 0:
                return total

    async def plan_async(self, post_id: int) -> None:
        """Plan a fan-out batch by batch, yielding to the event loop between batches."""
        try:
            while True:
                batch, lease_s = self.options.fanout_batch, self.options.planning_lease_s
                n = self.store.atomically(self.store.fanout.plan_batch, post_id, batch, self.clock(), lease_s)
                if n > 0:
                    self._wake()
                if n <= 0:
                    return
                await asyncio.sleep(0.002)  # let the worker start sending the planned batch
        except Exception:
            log.exception("planning post %s failed; the sweep will resume it", post_id)

    def resume_stale_planning(self) -> int:
        """Resume fan-outs whose planner died (called periodically by the worker)."""
        with self.store.unit_of_work() as s:
            stale = self.store.schedule.stale_publishing(s, self.clock())
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
        if not self.store.atomically(self.store.schedule.claim_poll_close, post_id, self.clock()):
            return False
        with self.store.unit_of_work() as s:
            post = self.store.posts.get(s, post_id)
            if post is not None and post.status in (PostStatus.PUBLISHED.value, PostStatus.PUBLISHING.value):
                self.store.fanout.plan_followups(s, post_id, DeliveryAction.CLOSE_POLL, self.clock())
        self._wake()
        return True

    def schedule_snapshot(self) -> ScheduleSnapshot:
        """Scheduled posts, open poll deadlines and recurring posts, each with its due time."""
        with self.store.unit_of_work() as s:
            return self.store.schedule.snapshot(s)

    def set_on_schedule_change(self, callback: Callable[[], None] | None) -> None:
        """Install what to call after a command adds or removes something timed."""
        self._on_schedule_change = callback

    async def publish_scheduled(self, post_id: int, *, grace_s: float, late_policy: str) -> PublishOutcome:
        """Publish a scheduled post whose time has come, once across processes.

        Returns what it did (`PublishOutcome`).
        A post missed by more than `grace_s` is published late or skipped per `late_policy`;
        the author is told either way. A post whose author is no longer an admin (nor an
        operator) is skipped, and the channel's owner is told, not the author.
        """
        with self.store.unit_of_work() as s:
            post = self.store.posts.get(s, post_id)
            if post is None or post.status != PostStatus.SCHEDULED.value or post.scheduled_at is None:
                return PublishOutcome.ALREADY_HANDLED
            if post.scheduled_at > self.clock():
                return PublishOutcome.NOT_DUE
            late_by = self.clock() - post.scheduled_at
            author_ok = self._author_still_admin(s, post.channel_id, post)
        if not author_ok:
            if not self.store.atomically(self.store.schedule.claim_skip, post_id):
                return PublishOutcome.ALREADY_HANDLED
            await self.notify_owner(
                post.channel_id,
                f"Scheduled post #{post_id} was due {self._local(post.scheduled_at)} but was skipped: "
                "its author is no longer an admin of the channel.",
            )
            return PublishOutcome.SKIPPED
        if late_by > grace_s and late_policy == "skip":
            if not self.store.atomically(self.store.schedule.claim_skip, post_id):
                return PublishOutcome.ALREADY_HANDLED
            await self.notify_author(
                post,
                f"Scheduled post #{post_id} was due {self._local(post.scheduled_at)} but the bridge was "
                f"down; it was {duration_text(late_by)} late, so it was skipped (late_policy = skip).",
            )
            return PublishOutcome.SKIPPED
        if not self.publish(post_id):
            return PublishOutcome.ALREADY_HANDLED
        if late_by > grace_s:
            await self.notify_author(
                post,
                f"Scheduled post #{post_id} was due {self._local(post.scheduled_at)}; the bridge was down, "
                f"so it went out {duration_text(late_by)} late (late_policy = publish).",
            )
            return PublishOutcome.PUBLISHED_LATE
        await self.notify_author(post, f"Scheduled post #{post_id} is going out now.")
        return PublishOutcome.PUBLISHED

    async def fire_recurring(self, recurring_id: int, due_at: float) -> int | None:
        """Post one occurrence of a recurring post (once across processes); returns the new
        post's id, or None when another wake-up already posted this occurrence. A recurring
        post whose author is no longer an admin is stopped instead, and the owner told."""
        if self._parse_recurrence is None:
            return None
        if due_at > self.clock() + 1.0:
            return None  # not due yet: a stray wake-up must not post early
        with self.store.unit_of_work() as s:
            row = self.store.schedule.recurring(s, recurring_id)
            if row is None or not row.active or row.next_at != due_at:
                return None
            recurrence = self._parse_recurrence(row.spec)
            author_ok = self._author_still_admin(s, row.channel_id, row)
        if not author_ok:
            if self.store.atomically(self.store.schedule.claim_stop_recurring, recurring_id, due_at):
                await self.notify_owner(
                    row.channel_id,
                    f"Recurring post r{recurring_id} ({row.spec}) was stopped and its post of "
                    f"{self._local(due_at)} skipped: its author is no longer an admin of the channel.",
                )
                self._schedule_changed()
            return None
        after = datetime.fromtimestamp(max(due_at, self.clock()), UTC)
        next_at = recurrence.next_after(after, self.options.tz).timestamp()
        if not self.store.atomically(self.store.schedule.claim_recurrence, recurring_id, due_at, next_at):
            return None
        with self.store.unit_of_work() as s:
            post = Post(
                channel_id=row.channel_id,
                kind=PostKind.TEXT.value,
                text=row.text,
                created_at=self.clock(),
                recurring_id=recurring_id,
            )
            channel = self.store.channels.by_id(s, row.channel_id)
            if channel is None or channel.deleted_at is not None:
                return None
            s.add(post)
            s.flush()
            author = self._open_author(row)
            if author is not None:  # the post's own copy of its author, sealed to the post
                self._seal_author(s, post, author)
            self._begin_publish(s, post)
        self._kick_planning()
        self._schedule_changed()
        return post.id

    def ensure_channel(
        self, handle: str, name: str, description: str, public: bool, mirrors: Collection[tuple[str, str]]
    ) -> None:
        """Create or update a channel the operator declared in config, with its mirror rooms."""
        with self.store.unit_of_work() as s:
            channel = self.store.channels.by_handle(s, handle)
            if channel is None:
                channel = Channel(
                    handle=handle, name=name, description=description, public=public, created_at=self.clock()
                )
            else:
                channel.name, channel.description, channel.public = name, description, public
            s.add(channel)
            s.flush()
            existing = {(m.platform, m.chat_id) for m in self.store.channels.mirrors(s, channel.id or 0)}
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

    async def notify_owner(self, channel_id: int, text: str) -> None:
        """Tell a channel's owner something about the channel (nobody, if it has no owner)."""
        if self._notify is None:
            return
        with self.store.unit_of_work() as s:
            owner = self.store.channels.owner(s, channel_id)
        if owner is None:
            return
        try:
            owner_address = self.sealer.unseal(
                owner.platform, owner.sealed, table="channeladmin", row_id=owner.id or 0
            )
            await self._notify(owner_address, text)
        except Exception as exc:  # a notice must never break the caller; it is recorded in the log
            log.warning("could not notify the owner of channel %s: %s", channel_id, type(exc).__name__)

    async def notify_author(self, post: Post, text: str) -> None:
        """Tell the admin who made a post something about it (progress, schedule outcome)."""
        if self._notify is None:
            return
        address = self._open_author(post)
        if address is None:
            return
        try:
            await self._notify(address, text)
        except Exception as exc:  # a notice must never break the caller; it is recorded in the log
            log.warning("could not notify the author of post %s: %s", post.id, type(exc).__name__)
