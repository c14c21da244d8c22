"""What a command handler is given, `Context`, and the checks handlers share: which channel,
whether the sender administers it, owns it, follows it, may see a post or vote in a poll.

Every check that refuses raises `Refusal` with the sentence the sender reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session

from bridge.engine.core import Actor, EngineCore, EngineOptions, Refusal
from bridge.i18n import _, ngettext
from bridge.models import (
    AdminRole,
    Channel,
    DeliveryStatus,
    Follower,
    PollOption,
    Post,
    PostStatus,
    Subscription,
)
from bridge.ports import InboundMedia, PostKind
from bridge.privacy import Sealer, UnsealError
from bridge.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """One command being applied: the engine's core, the command's transaction, who sent it,
    and the media that came with it (downloaded only for commands that keep media)."""

    core: EngineCore
    s: Session  #: the command's one transaction: a refusal rolls everything back
    actor: Actor
    media: InboundMedia | None = None

    @property
    def store(self) -> Store:
        """The store (queries take `s`)."""
        return self.core.store

    @property
    def sealer(self) -> Sealer:
        """Seals addresses and computes blind indexes."""
        return self.core.sealer

    @property
    def options(self) -> EngineOptions:
        """The engine's tunables."""
        return self.core.options

    @property
    def clock(self) -> Callable[[], float]:
        """Epoch seconds now (the engine's clock: tests move it)."""
        return self.core.clock


def find_channel(ctx: Context, handle: str | None) -> Channel:
    """The live channel with this handle, or a refusal pointing to /channels."""
    channel = ctx.store.channels.by_handle(ctx.s, handle or "")
    if channel is None:
        raise Refusal(_(
            "There is no channel '{handle}'. Send /channels to find one."
        ).format(handle=handle))
    return channel


def require_admin(ctx: Context, channel: Channel) -> str:
    """Refuse unless the sender administers the channel; returns the audit actor name."""
    if ctx.actor.is_operator:
        return "operator"
    assert channel.id is not None
    admin = ctx.store.channels.admin_of(ctx.s, channel.id, ctx.actor.index)
    if admin is None:
        raise Refusal(_("Only admins of '{handle}' can do that.").format(handle=channel.handle))
    return f"admin #{admin.number}"


def require_owner(ctx: Context, channel: Channel) -> str:
    """Refuse unless the sender owns the channel (or is an operator); returns the audit name."""
    if ctx.actor.is_operator:
        return "operator"
    assert channel.id is not None
    admin = ctx.store.channels.admin_of(ctx.s, channel.id, ctx.actor.index)
    if admin is None or admin.role != AdminRole.OWNER.value:
        raise Refusal(_("Only the owner of '{handle}' can do that.").format(handle=channel.handle))
    return f"admin #{admin.number}"


def post_for_admin(ctx: Context, post_id: int | None) -> tuple[Post, Channel, str]:
    """A post of a live channel the sender administers, its channel and the audit name."""
    post = ctx.store.posts.get(ctx.s, post_id or 0)
    channel = ctx.store.channels.by_id(ctx.s, post.channel_id) if post else None
    if post is None or channel is None or channel.deleted_at is not None:
        raise Refusal(_("There is no post #{post_id}.").format(post_id=post_id))
    who = require_admin(ctx, channel)
    return post, channel, who


def is_admin_anywhere(ctx: Context) -> bool:
    """Whether the sender is an operator or administers at least one channel."""
    return ctx.actor.is_operator or bool(ctx.store.channels.administered_by(ctx.s, ctx.actor.index))


def follower_row(core: EngineCore, s: Session, actor: Actor, create: bool) -> Follower | None:
    """The sender's follower row (made when `create`); their sealed chat is renewed if it moved."""
    follower = core.store.followers.by_index(s, actor.index)
    if follower is None and create:
        follower = Follower(
            platform=actor.address.platform,
            account_index=actor.index,
            sealed=b"",  # sealed to the row's id once it has one
            created_at=core.clock(),
        )
        s.add(follower)
        s.flush()
        follower.sealed = core.sealer.seal(actor.address, table="follower", row_id=follower.id or 0)
        s.add(follower)
    elif follower is not None and create:
        try:
            current = core.sealer.unseal(
                follower.platform, follower.sealed, table="follower", row_id=follower.id or 0
            )
        except UnsealError:  # unreadable (altered, or another key): they are here, seal them anew
            log.warning("follower %s had an unreadable sealed address; sealed again", follower.id)
            current = None
        if current is None or (actor.address.chat and current.chat != actor.address.chat):
            follower.sealed = core.sealer.seal(actor.address, table="follower", row_id=follower.id or 0)
            s.add(follower)  # their chat moved
    return follower


def subscription_of(ctx: Context, handle: str) -> tuple[Subscription, Channel]:
    """The sender's subscription to a channel, or a refusal saying they do not follow it."""
    channel = find_channel(ctx, handle)
    follower = ctx.store.followers.by_index(ctx.s, ctx.actor.index)
    sub = (
        ctx.store.followers.subscription(ctx.s, follower.id, channel.id)
        if follower and follower.id and channel.id
        else None
    )
    if sub is None:
        raise Refusal(_("You do not follow {handle}.").format(handle=channel.handle))
    return sub, channel


def may_see(ctx: Context, post: Post) -> bool:
    """Whether the sender may read and answer a post: not deleted, of a live channel, and
    the channel is public or the sender follows it, holds a delivered copy of the post, or
    administers it. A paid post only to those with paid access now, its admins and operators."""
    s, store, actor = ctx.s, ctx.store, ctx.actor
    channel = store.channels.by_id(s, post.channel_id)
    if channel is None or channel.deleted_at is not None or post.status == PostStatus.DELETED.value:
        return False
    if post.paid:
        return entitled(ctx, post.channel_id)
    if channel.public or actor.is_operator:
        return True
    if store.channels.admin_of(s, post.channel_id, actor.index) is not None:
        return True
    follower = store.followers.by_index(s, actor.index)
    if follower is None or follower.id is None:
        return False
    if store.followers.subscription(s, follower.id, post.channel_id) is not None:
        return True
    copy = store.posts.copy_for_follower(s, post.id or 0, follower.id)
    return copy is not None and copy.status == DeliveryStatus.DELIVERED.value


def entitled(ctx: Context, channel_id: int) -> bool:
    """Whether the sender may read the channel's paid posts now: an operator, an admin of the
    channel, or a follower whose paid access has not ended."""
    s, store, actor = ctx.s, ctx.store, ctx.actor
    if actor.is_operator or store.channels.admin_of(s, channel_id, actor.index) is not None:
        return True
    follower = store.followers.by_index(s, actor.index)
    return (
        follower is not None
        and follower.id is not None
        and store.payments.entitled(s, follower.id, channel_id, ctx.clock())
    )


def poll_for_voting(
    ctx: Context, post_id: int | None, *, check_visibility: bool = True
) -> tuple[Post, list[PollOption]]:
    """An open poll the sender may vote in (`check_visibility=False`: the platform already
    proved they hold a copy). A poll they may not see is refused exactly like one that does
    not exist."""
    post = ctx.store.posts.get(ctx.s, post_id or 0)
    channel = ctx.store.channels.by_id(ctx.s, post.channel_id) if post else None
    if (
        post is None
        or channel is None
        or channel.deleted_at is not None
        or (check_visibility and not may_see(ctx, post))
        or post.kind != PostKind.POLL.value
        or post.status not in (PostStatus.PUBLISHED.value, PostStatus.PUBLISHING.value)
    ):
        raise Refusal(_(
            "There is no open poll #{post_id} in a channel you follow."
        ).format(post_id=post_id))
    if ctx.core.poll_closed(post):
        raise Refusal(_("Poll #{post_id} is closed; votes are no longer accepted.").format(post_id=post.id))
    return post, ctx.store.posts.poll_options(ctx.s, post.id or 0)


def results_text(ctx: Context, post: Post) -> str:
    """A poll's tally across every platform, with percentages."""
    options = ctx.store.posts.poll_options(ctx.s, post.id or 0)
    counts, voters = ctx.store.posts.tally(ctx.s, post.id or 0)
    total = sum(counts.values()) or 1
    state = _("closed") if ctx.core.poll_closed(post) else _("open")
    lines = [
        ngettext(
            "Poll #{post_id}: {text} ({state}, {voters} voter)",
            "Poll #{post_id}: {text} ({state}, {voters} voters)",
            voters,
        ).format(post_id=post.id, text=post.text, state=state, voters=voters)
    ]
    for option in options:
        n = counts.get(option.position, 0)
        lines.append(f"{option.position + 1}. {option.text} — {n} ({round(100 * n / total)}%)")
    return "\n".join(lines)
