"""ChannelEngine: applies commands with authorization, publishes posts, aggregates votes and
reactions. Adapters hand it neutral inbound events; it answers with `Reply` values.

Every command runs in one database transaction: a refused or failed command changes nothing.
Replies never contain anyone's identity; admins see counts and admin numbers. Commands are
applied by the handlers bound in `bridge.engine.registry`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from sqlmodel import Session

from bridge.commands import (
    Command,
    CommandError,
    MirrorArgs,
    RefundArgs,
    StatsArgs,
    UnsubscribeArgs,
    malformed,
    parse_command,
)
from bridge.engine import chart, paid_posts, payment_events, subscriptions
from bridge.engine.admin_channels import create_mirror
from bridge.engine.context import Context, follower_row
from bridge.engine.core import (
    Actor,
    BadArguments,
    EngineCore,
    EngineOptions,
    Hooks,
    MirrorFactory,
    Notify,
    Refusal,
    duration_text,
)
from bridge.engine.inbound import native_vote, reaction, with_media
from bridge.engine.language import language_for
from bridge.engine.registry import ROUTES
from bridge.i18n import _, speaking
from bridge.metrics import CommandOutcome
from bridge.models import Channel, DeliveryAction, Follower, MirrorRoom, Post, PostStatus
from bridge.outcomes import PublishOutcome
from bridge.platforms import Platforms
from bridge.ports import (
    Address,
    Inbound,
    Message,
    PaidMediaPurchased,
    PaymentReceived,
    PaymentRefunded,
    PollVote,
    PostKind,
    PreCheckout,
    Reaction,
    Reply,
    StarsGateway,
)
from bridge.privacy import Sealer
from bridge.safetext import clean
from bridge.store import ScheduleSnapshot, Store
from bridge.when import parse_recurrence

log = logging.getLogger(__name__)


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
        parse_when: object = None,
        parse_recurrence: object = None,
        clock: Callable[[], float] = time.time,
        notify: Notify | None = None,
        on_work: Callable[[], None] | None = None,
        platforms: Platforms | None = None,
    ) -> None:
        """`parse_when` and `parse_recurrence` are accepted for callers written when the time
        grammar was injected; the engine always uses `bridge.when`'s."""
        del parse_when, parse_recurrence
        self._core = EngineCore(
            store,
            sealer,
            operators=operators,
            options=options,
            clock=clock,
            hooks=Hooks(notify=notify, on_work=on_work),
            platforms=platforms,
        )
        self._planning: set[asyncio.Task[None]] = set()
        self._observer: Callable[[str, CommandOutcome], None] | None = None

    @property
    def store(self) -> Store:
        """The store the engine works on."""
        return self._core.store

    @property
    def sealer(self) -> Sealer:
        """Seals addresses and computes blind indexes."""
        return self._core.sealer

    @property
    def options(self) -> EngineOptions:
        """The engine's tunables (tests may change them in place)."""
        return self._core.options

    @property
    def clock(self) -> Callable[[], float]:
        """Epoch seconds now."""
        return self._core.clock

    def set_sending_report(self, report: Callable[[], list[str]] | None) -> None:
        """Install what operators see of the bot's sending in `/stats` (counts and rates)."""
        self._core.hooks.sending_report = report

    def is_operator_index(self, index: str) -> bool:
        """Whether a blind index is an operator's (operators are not throttled)."""
        return index in self._core.operators

    def add_operator(self, address: Address) -> None:
        """Treat `address` as an operator (the console's local user)."""
        self._core.operators.add(self.sealer.address_index(address))

    def set_notify(self, notify: Notify | None) -> None:
        """Install the function used to send notices to admins."""
        self._core.hooks.notify = notify

    def set_on_work(self, on_work: Callable[[], None] | None) -> None:
        """Install the callback that wakes the delivery worker when rows are planned."""
        self._core.hooks.on_work = on_work

    def _actor(self, address: Address) -> Actor:
        return self._core.actor(address)

    def _follower(self, s: Session, actor: Actor, create: bool) -> Follower | None:
        return follower_row(self._core, s, actor, create)

    async def handle(self, event: Inbound) -> list[Reply]:
        """Apply one inbound event and return the replies for its sender."""
        actor = self._core.actor(event.sender)
        with speaking(self._language(actor, event)):
            return await self._handle(actor, event)

    def language_of(self, event: Inbound) -> str | None:
        """The language to answer the sender of `event` in (their /lang choice, else what their
        platform reports), or None for the default."""
        return self._language(self._core.actor(event.sender), event)

    def _language(self, actor: Actor, event: Inbound) -> str | None:
        reported = event.language if isinstance(event, Message) else None
        with self.store.unit_of_work() as s:
            return language_for(self._core, s, actor.index, reported)

    async def _handle(self, actor: Actor, event: Inbound) -> list[Reply]:
        parsed = parse_command(event.text) if isinstance(event, Message) else None
        try:
            if isinstance(event, Message):
                if event.media is not None:
                    event = await with_media(self._core, actor, event, parsed)
                if isinstance(parsed, MirrorArgs) and parsed.create:
                    replies = await create_mirror(self._core, actor, parsed)  # talks to a platform: async
                elif isinstance(parsed, StatsArgs) and parsed.chart:
                    replies = await chart.stats_chart(self._core, actor, parsed)  # drawn off the loop
                elif isinstance(parsed, RefundArgs | UnsubscribeArgs):
                    replies = await subscriptions.with_gateway(self._core, actor, parsed)  # async too
                else:
                    replies = self._handle_message(actor, event, parsed)
            elif isinstance(event, PollVote):
                replies = native_vote(self._core, actor, event)
            elif isinstance(event, Reaction):
                replies = reaction(self._core, actor, event)
            elif isinstance(event, PaidMediaPurchased):
                replies = paid_posts.purchased(self._core, actor, event)
            elif isinstance(event, PreCheckout | PaymentReceived | PaymentRefunded):
                replies = await payment_events.handle(self._core, actor, event)
            else:  # pragma: no cover - the Inbound union is closed
                replies = []
        except Refusal as refusal:
            replies = [Reply(str(refusal))]
            self._observe(event, parsed, CommandOutcome.REFUSED)
        except BadArguments as bad:
            assert isinstance(parsed, Command)  # only a handler raises it
            replies = [Reply(str(malformed(parsed.name, str(bad))))]
            self._observe(event, parsed, CommandOutcome.MALFORMED)
        except Exception:
            self._observe(event, parsed, CommandOutcome.ERROR)
            raise
        else:
            outcome = CommandOutcome.MALFORMED if isinstance(parsed, CommandError) else CommandOutcome.OK
            self._observe(event, parsed, outcome)
        replies = [replace(r, text=clean(r.text), html=clean(r.html) if r.html else r.html) for r in replies]
        self._kick_planning()
        if isinstance(parsed, Command) and ROUTES[type(parsed)].timed:
            self._core.schedule_changed()
        return replies

    def set_command_observer(self, observer: Callable[[str, CommandOutcome], None] | None) -> None:
        """Install what is told of every command's outcome (the text it came in, for its
        registry name only: `bridge.metrics.command_label`)."""
        self._observer = observer

    def _observe(
        self, event: Inbound, parsed: Command | CommandError | None, outcome: CommandOutcome
    ) -> None:
        if parsed is None or self._observer is None or not isinstance(event, Message):
            return
        try:
            self._observer(event.text, outcome)
        except Exception:  # counting must never change an answer
            log.exception("the command observer failed")

    def _handle_message(
        self, actor: Actor, message: Message, parsed: Command | CommandError | None
    ) -> list[Reply]:
        if parsed is None:
            if message.media is not None:
                return [Reply(_("To post media, send it with the caption /post <handle> [text]."))]
            return [Reply(_("I only understand commands. Send /help for the list."))]
        if isinstance(parsed, CommandError):
            return [Reply(str(parsed))]
        route = ROUTES[type(parsed)]
        with self.store.unit_of_work() as s:
            return route.run(Context(self._core, s, actor, message.media), parsed)

    def set_mirror_factory(
        self, factory: MirrorFactory | None, on_added: Callable[[str, str], None] | None = None
    ) -> None:
        """Install what creates a read-only mirror room on a platform (its adapter's), and
        what to tell when an operator adds an existing room as a mirror."""
        self._core.hooks.mirror_factory = factory
        self._core.hooks.on_mirror_added = on_added

    def set_stars_gateways(self, gateways: Mapping[str, StarsGateway]) -> None:
        """Install, per platform, the adapter that refunds Stars payments and cancels
        subscriptions (`/refund`, `/unsubscribe`)."""
        self._core.hooks.stars = dict(gateways)

    def mirror_rooms(self, platform: str) -> list[str]:
        """Every mirror room of every live channel on one platform."""
        with self.store.unit_of_work() as s:
            return self.store.channels.mirror_chats_of(s, platform)

    def _kick_planning(self) -> None:
        pending, self._core.to_plan = self._core.to_plan, []
        if self._core.wake_after_commit:
            self._core.wake_after_commit = False
            self._core.wake()
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
            n = self.store.atomically(
                self.store.fanout.plan_batch,
                post_id,
                self.options.fanout_batch,
                self.clock(),
                self.options.planning_lease_s,
                self._core.paid_media_platforms(),
            )
            if n > 0:
                total += n
                self._core.wake()
            if n < 0 or n == 0:
                return total

    async def plan_async(self, post_id: int) -> None:
        """Plan a fan-out batch by batch, yielding to the event loop between batches."""
        try:
            while True:
                n = self.store.atomically(
                    self.store.fanout.plan_batch,
                    post_id,
                    self.options.fanout_batch,
                    self.clock(),
                    self.options.planning_lease_s,
                    self._core.paid_media_platforms(),
                )
                if n > 0:
                    self._core.wake()
                if n <= 0:
                    return
                await asyncio.sleep(0.002)  # let the worker start sending the planned batch
        except Exception:
            log.exception("planning post %s failed; the sweep will resume it", post_id)

    async def notice_expired_access(self) -> int:
        """Tell followers whose paid access ended (past the grace) once each; returns how many
        notices this call queued. Called by the scheduler's sweep (and tests)."""
        return await paid_posts.notice_expiries(self._core)

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
        self._core.wake()
        return True

    def schedule_snapshot(self) -> ScheduleSnapshot:
        """Scheduled posts, open poll deadlines and recurring posts, each with its due time."""
        with self.store.unit_of_work() as s:
            return self.store.schedule.snapshot(s)

    def set_on_schedule_change(self, callback: Callable[[], None] | None) -> None:
        """Install what to call after a command adds or removes something timed."""
        self._core.hooks.on_schedule_change = callback

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
            author_ok = self._core.author_still_admin(s, post.channel_id, post)
        if not author_ok:
            if not self.store.atomically(self.store.schedule.claim_skip, post_id):
                return PublishOutcome.ALREADY_HANDLED
            due = post.scheduled_at
            await self.notify_owner(
                post.channel_id,
                lambda: _(
                    "Scheduled post #{post_id} was due {local} but was skipped: its author "
                    "is no longer an admin of the channel."
                ).format(post_id=post_id, local=self._core.local(due)),
            )
            return PublishOutcome.SKIPPED
        if late_by > grace_s and late_policy == "skip":
            if not self.store.atomically(self.store.schedule.claim_skip, post_id):
                return PublishOutcome.ALREADY_HANDLED
            due = post.scheduled_at
            await self.notify_author(
                post,
                lambda: _(
                    "Scheduled post #{post_id} was due {local} but the bridge was down; it "
                    "was {duration_text} late, so it was skipped (late_policy = skip)."
                ).format(post_id=post_id, local=self._core.local(due), duration_text=duration_text(late_by)),
            )
            return PublishOutcome.SKIPPED
        if not self.publish(post_id):
            return PublishOutcome.ALREADY_HANDLED
        if late_by > grace_s:
            due = post.scheduled_at
            await self.notify_author(
                post,
                lambda: _(
                    "Scheduled post #{post_id} was due {local}; the bridge was down, so it "
                    "went out {duration_text} late (late_policy = publish)."
                ).format(post_id=post_id, local=self._core.local(due), duration_text=duration_text(late_by)),
            )
            return PublishOutcome.PUBLISHED_LATE
        await self.notify_author(post, lambda: _(
            "Scheduled post #{post_id} is going out now."
        ).format(post_id=post_id))
        return PublishOutcome.PUBLISHED

    async def fire_recurring(self, recurring_id: int, due_at: float) -> int | None:
        """Post one occurrence of a recurring post (once across processes); returns the new
        post's id, or None when another wake-up already posted this occurrence. A recurring
        post whose author is no longer an admin is stopped instead, and the owner told."""
        if due_at > self.clock() + 1.0:
            return None  # not due yet: a stray wake-up must not post early
        with self.store.unit_of_work() as s:
            row = self.store.schedule.recurring(s, recurring_id)
            if row is None or not row.active or row.next_at != due_at:
                return None
            recurrence = parse_recurrence(row.spec)
            author_ok = self._core.author_still_admin(s, row.channel_id, row)
        if not author_ok:
            if self.store.atomically(self.store.schedule.claim_stop_recurring, recurring_id, due_at):
                spec = row.spec
                await self.notify_owner(
                    row.channel_id,
                    lambda: _(
                        "Recurring post r{recurring_id} ({spec}) was stopped and its post "
                        "of {local} skipped: its author is no longer an admin of the "
                        "channel."
                    ).format(recurring_id=recurring_id, spec=spec, local=self._core.local(due_at)),
                )
                self._core.schedule_changed()
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
                paid=row.paid,
            )
            channel = self.store.channels.by_id(s, row.channel_id)
            if channel is None or channel.deleted_at is not None:
                return None
            s.add(post)
            s.flush()
            author = self._core.open_author(row)
            if author is not None:  # the post's own copy of its author, sealed to the post
                self._core.seal_author(s, post, author)
            self._core.begin_publish(s, post)
        self._kick_planning()
        self._core.schedule_changed()
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

    async def notify_owner(self, channel_id: int, compose: Callable[[], str]) -> None:
        """Tell a channel's owner something about the channel (nobody, if it has no owner), in
        the owner's language: `compose` writes the text."""
        with self.store.unit_of_work() as s:
            owner = self.store.channels.owner(s, channel_id)
        if owner is None:
            return
        try:
            owner_address = self.sealer.unseal(
                owner.platform, owner.sealed, table="channeladmin", row_id=owner.id or 0
            )
            await self._core.tell(owner_address, compose)
        except Exception as exc:  # a notice must never break the caller; it is recorded in the log
            log.warning("could not notify the owner of channel %s: %s", channel_id, type(exc).__name__)

    async def notify_author(self, post: Post, compose: Callable[[], str]) -> None:
        """Tell the admin who made a post something about it (a schedule outcome), in their
        language: `compose` writes the text."""
        address = self._core.open_author(post)
        if address is None:
            return
        try:
            await self._core.tell(address, compose)
        except Exception as exc:  # a notice must never break the caller; it is recorded in the log
            log.warning("could not notify the author of post %s: %s", post.id, type(exc).__name__)
