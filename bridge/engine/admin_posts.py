"""Admin commands about posts: create, describe and delete channels; post, poll, schedule and
repeat; list and cancel what is timed; edit and delete posts everywhere.

One plain function per command, `cmd_<name>(ctx, args) -> replies`, bound to its command in
`bridge.engine.registry`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from bridge.commands import (
    CancelArgs,
    DeleteArgs,
    DeleteChannelArgs,
    DescribeArgs,
    EditArgs,
    EveryArgs,
    NewChannelArgs,
    PollArgs,
    PostArgs,
    QuizArgs,
    ScheduleArgs,
    ScheduledArgs,
)
from bridge.engine.context import Context, find_channel, post_for_admin, require_admin, require_owner
from bridge.engine.core import MAX_TEXT, Refusal, followers_text, preview
from bridge.i18n import _, ngettext
from bridge.models import (
    AdminRole,
    Channel,
    DeliveryAction,
    MediaBlob,
    MediaUpload,
    PollOption,
    Post,
    PostEdit,
    PostStatus,
    RecurringPost,
)
from bridge.ports import MEDIA_KINDS, InboundMedia, PostKind, Reply
from bridge.safetext import clean, one_line
from bridge.when import parse_recurrence


def cmd_newchannel(ctx: Context, cmd: NewChannelArgs) -> list[Reply]:
    """`/newchannel <handle> <name...>`."""
    s, actor = ctx.s, ctx.actor
    if not actor.is_operator:
        raise Refusal(_("Only operators can create channels."))
    if ctx.store.channels.handle_taken(s, cmd.handle):
        raise Refusal(_("The handle '{handle}' is taken; choose another.").format(handle=cmd.handle))
    name = one_line(cmd.text)
    if not name:
        raise Refusal(_("The name has no visible characters; choose another."))
    channel = Channel(handle=cmd.handle, name=name, created_at=ctx.clock(), last_admin_number=1)
    s.add(channel)
    s.flush()
    assert channel.id is not None
    ctx.core.add_admin(s, channel.id, 1, AdminRole.OWNER, actor.address)
    ctx.store.channels.audit(s, channel.id, "operator", "newchannel", channel.handle)
    return [
        Reply(
            _(
                "Channel {name} ({handle}) created; you are its owner. Post with /post "
                "{handle} <text>; followers join with /follow {handle}."
            ).format(name=channel.name, handle=channel.handle)
        )
    ]


def cmd_deletechannel(ctx: Context, cmd: DeleteChannelArgs) -> list[Reply]:
    """`/deletechannel <handle>`."""
    s = ctx.s
    channel = find_channel(ctx, cmd.handle)
    who = require_owner(ctx, channel)
    channel.deleted_at = ctx.clock()
    s.add(channel)
    for post in ctx.store.schedule.scheduled_posts(s, channel.id or 0):
        post.status = PostStatus.CANCELLED.value
        s.add(post)
    ctx.store.channels.audit(s, channel.id, who, "deletechannel", channel.handle)
    return [Reply(_(
        "Channel {handle} is deleted; followers receive nothing more from it."
    ).format(handle=channel.handle))]


def cmd_describe(ctx: Context, cmd: DescribeArgs) -> list[Reply]:
    """`/describe <handle> <text...>`."""
    s = ctx.s
    channel = find_channel(ctx, cmd.handle)
    who = require_admin(ctx, channel)
    channel.description = clean(cmd.text).strip()
    s.add(channel)
    ctx.store.channels.audit(s, channel.id, who, "describe")
    return [Reply(_("Description of {handle} updated.").format(handle=channel.handle))]


def _store_media(ctx: Context, media: InboundMedia) -> int:
    """Store an inbound media's bytes once (by hash) and remember the platform's own copy."""
    s, platform = ctx.s, ctx.actor.address.platform
    digest = hashlib.sha256(media.data or (media.platform_ref or "").encode()).hexdigest()
    size = len(media.data or b"")
    blob = ctx.store.posts.media_by_hash(s, digest, size) if media.data else None
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
    if media.platform_ref and platform not in ctx.store.posts.media_refs(s, blob.id):
        s.add(MediaUpload(media_id=blob.id, platform=platform, ref=media.platform_ref))
    return blob.id


def check_paid(ctx: Context, channel: Channel, paid: bool, stars: int | None) -> None:
    """Refuse a paid or pay-per-post post the channel cannot sell: payments must be on, and a
    `--paid` post needs a tier (on sale, or ended with subscribers left to read it)."""
    if not (paid or stars):
        return
    if not ctx.options.payments_enabled:
        raise Refusal(
            _("Payments are off on this bot, so a post cannot be paid; post it without --paid/--stars.")
        )
    if paid and ctx.store.payments.last_tier(ctx.s, channel.id or 0) is None:
        raise Refusal(
            _(
                "{handle} has no paid tier: set one with /price {handle} <stars> first."
            ).format(handle=channel.handle)
        )
    if stars and (ctx.media is None or ctx.media.kind not in (PostKind.PHOTO, PostKind.VIDEO)):
        raise Refusal(_("A --stars post is a photo or a video: send the media with this caption."))


def _new_post(
    ctx: Context, channel: Channel, typed_text: str, paid: bool = False, stars: int | None = None
) -> Post:
    """A text or media post from the sender (not yet added to the session)."""
    s, actor, media = ctx.s, ctx.actor, ctx.media
    text = typed_text.strip()
    if len(text) > MAX_TEXT:
        raise Refusal(_(
            "A post can have at most {MAX_TEXT} characters (this one has {n_text})."
        ).format(MAX_TEXT=MAX_TEXT, n_text=len(text)))
    kind = PostKind.TEXT
    media_id = None
    if media is not None:
        if media.kind not in MEDIA_KINDS:
            raise Refusal(_("Only photos, videos, voice notes and stickers can be posted as media."))
        if media.kind == PostKind.STICKER and text:
            raise Refusal(_("A sticker post cannot carry text; post the text separately."))
        kind = media.kind
        media_id = _store_media(ctx, media)
    elif not text:
        raise Refusal(_(
            "Nothing to post. Usage: /post {handle} <text> (or media with that caption)"
        ).format(handle=channel.handle))
    check_paid(ctx, channel, paid, stars)
    post = Post(
        channel_id=channel.id or 0,
        kind=kind.value,
        text=text,
        media_id=media_id,
        created_at=ctx.clock(),
        paid=paid,
        stars=stars,
    )
    ctx.core.seal_author(s, post, actor.address)
    return post


def cmd_post(ctx: Context, cmd: PostArgs) -> list[Reply]:
    """`/post <handle> [text...]`."""
    s = ctx.s
    channel = find_channel(ctx, cmd.handle)
    who = require_admin(ctx, channel)
    post = _new_post(ctx, channel, cmd.text, cmd.paid, cmd.stars)
    s.add(post)
    s.flush()
    ctx.store.channels.audit(s, channel.id, who, "post", f"#{post.id}")
    ctx.core.begin_publish(s, post)
    return [Reply(_published_text(ctx, post, channel))]


def _published_text(ctx: Context, post: Post, channel: Channel) -> str:
    s = ctx.s
    count = ctx.store.followers.count(s, channel.id or 0)
    mirrors = len(ctx.store.channels.mirrors(s, channel.id or 0))
    if post.paid or post.stars:
        return _paid_published_text(ctx, post, channel, count, mirrors)
    where = followers_text(count) + (_(
        " and {mirrors} mirror room(s)"
    ).format(mirrors=mirrors) if mirrors else "")
    return _(
        "Post #{post_id} is on its way to {where}. /stats {handle} shows its delivery."
    ).format(post_id=post.id, where=where, handle=channel.handle)


def _paid_published_text(ctx: Context, post: Post, channel: Channel, count: int, mirrors: int) -> str:
    """Where a paid or pay-per-post post goes (counts only)."""
    cid = channel.id or 0
    subscribers = ctx.store.payments.subscribers(ctx.s, cid, ctx.clock())
    tier = ctx.store.payments.last_tier(ctx.s, cid)
    others = _("the others get nothing (teaser off)")
    if tier is not None and tier.teaser:
        others = _("the others get a one-line teaser")
    if post.stars:
        text = (
            _(
                "Post #{post_id} is on its way to {followers_text} as pay-per-post "
                "({stars} Stars): where the platform sells paid media they buy it there; "
                "elsewhere those with paid access ({subscribers} now) get it and {others}."
            ).format(
                post_id=post.id,
                followers_text=followers_text(count),
                stars=post.stars,
                subscribers=subscribers,
                others=others,
            )
        )
    else:
        text = (
            _(
                "Post #{post_id} is on its way to subscribers: those of {followers_text} "
                "with paid access ({subscribers} now) and admins who follow; {others}."
            ).format(
                post_id=post.id,
                followers_text=followers_text(count),
                subscribers=subscribers,
                others=others,
            )
        )
    if mirrors:
        text += _(" Mirror rooms get no paid posts.")
    return text + f" /stats {channel.handle} shows its delivery."


def _build_poll(ctx: Context, channel: Channel, cmd: PollArgs) -> Post:
    s, actor = ctx.s, ctx.actor
    closes_at = None
    if cmd.when is not None:
        closes_at = ctx.core.when(cmd.when)
    check_paid(ctx, channel, cmd.paid, None)
    post = Post(
        channel_id=channel.id or 0,
        kind=PostKind.POLL.value,
        text=clean(cmd.text).strip(),
        poll_multi=cmd.multi,
        poll_closes_at=closes_at,
        created_at=ctx.clock(),
        paid=cmd.paid,
    )
    if isinstance(cmd, QuizArgs):
        post.quiz_correct = cmd.correct
        post.quiz_explanation = one_line(cmd.explanation)
    ctx.core.seal_author(s, post, actor.address)
    for position, option in enumerate(cmd.options):
        s.add(PollOption(post_id=post.id or 0, position=position, text=one_line(option)))
    return post


def cmd_poll(ctx: Context, cmd: PollArgs) -> list[Reply]:
    """`/poll <handle> "question" "a" "b" [...] [--multi] [--closes <when>]`."""
    s = ctx.s
    channel = find_channel(ctx, cmd.handle)
    who = require_admin(ctx, channel)
    post = _build_poll(ctx, channel, cmd)
    ctx.store.channels.audit(s, channel.id, who, cmd.name, f"#{post.id}")
    ctx.core.begin_publish(s, post)
    text = _published_text(ctx, post, channel)
    if post.poll_closes_at:
        text += _(" It closes {local}.").format(local=ctx.core.local(post.poll_closes_at))
    return [Reply(text)]


def cmd_quiz(ctx: Context, cmd: QuizArgs) -> list[Reply]:
    """`/quiz <handle> "question" "a" "b" [...] --answer <n> [--explain "..."] [--closes <when>]`."""
    return cmd_poll(ctx, cmd)


def cmd_schedule(ctx: Context, cmd: ScheduleArgs) -> list[Reply]:
    """`/schedule <handle> <when> <text...|/poll "question" "a" "b" ...>`."""
    s = ctx.s
    channel = find_channel(ctx, cmd.handle)
    who = require_admin(ctx, channel)
    at = ctx.core.when(cmd.when)
    if cmd.sub is not None:
        post = _build_poll(ctx, channel, cmd.sub)
        if post.poll_closes_at is not None and post.poll_closes_at <= at:
            raise Refusal(
                _(
                    "The poll would close ({local}) before it is published ({local2}); "
                    "choose a later --closes."
                ).format(local=ctx.core.local(post.poll_closes_at), local2=ctx.core.local(at))
            )
    else:
        post = _new_post(ctx, channel, cmd.text, cmd.paid)
        s.add(post)
    post.status = PostStatus.SCHEDULED.value
    post.scheduled_at = at
    s.add(post)
    s.flush()
    ctx.store.channels.audit(s, channel.id, who, "schedule", f"#{post.id}")
    ctx.core.wake()
    return [Reply(_(
        "Post #{post_id} is scheduled for {local}. /cancel {post_id} cancels it."
    ).format(post_id=post.id, local=ctx.core.local(at)))]


def cmd_every(ctx: Context, cmd: EveryArgs) -> list[Reply]:
    """`/every <handle> "<days> <HH:MM>" <text...>`."""
    s, actor = ctx.s, ctx.actor
    channel = find_channel(ctx, cmd.handle)
    who = require_admin(ctx, channel)
    try:
        recurrence = parse_recurrence(cmd.spec)
    except ValueError as exc:
        raise Refusal(str(exc)) from exc
    if not cmd.text.strip():
        raise Refusal(_("A recurring post needs text."))
    check_paid(ctx, channel, cmd.paid, None)
    now = datetime.fromtimestamp(ctx.clock(), UTC)
    next_at = recurrence.next_after(now, ctx.options.tz).timestamp()
    row = RecurringPost(
        channel_id=channel.id or 0,
        spec=recurrence.text,
        text=cmd.text.strip(),
        created_at=ctx.clock(),
        next_at=next_at,
        paid=cmd.paid,
    )
    ctx.core.seal_author(s, row, actor.address)
    ctx.store.channels.audit(s, channel.id, who, "every", f"r{row.id}")
    ctx.core.wake()
    return [
        Reply(
            _(
                "Recurring post r{row_id} ({text}); next at {local}. /cancel r{row_id} "
                "stops it."
            ).format(row_id=row.id, text=recurrence.text, local=ctx.core.local(next_at))
        )
    ]


def cmd_scheduled(ctx: Context, cmd: ScheduledArgs) -> list[Reply]:
    """`/scheduled <handle>`."""
    s = ctx.s
    channel = find_channel(ctx, cmd.handle)
    require_admin(ctx, channel)
    posts = ctx.store.schedule.scheduled_posts(s, channel.id or 0)
    recurring = ctx.store.schedule.recurring_posts(s, channel.id or 0)
    if not posts and not recurring:
        return [Reply(_("Nothing is scheduled in {handle}.").format(handle=channel.handle))]
    lines = [
        _("#{p_id} {kind} at {local}: {text}").format(
            p_id=p.id, kind=p.kind, local=ctx.core.local(p.scheduled_at or 0), text=preview(p.text)
        )
        for p in posts
    ]
    lines += [_(
        "r{r_id} every {spec}: {text}"
    ).format(r_id=r.id, spec=r.spec, text=preview(r.text)) for r in recurring]
    return [Reply(_("Scheduled in {handle}:\n").format(handle=channel.handle) + "\n".join(lines))]


def cmd_cancel(ctx: Context, cmd: CancelArgs) -> list[Reply]:
    """`/cancel <post-id | r<n>>`."""
    s = ctx.s
    if cmd.code is not None and cmd.code.startswith("r"):
        return _cancel_recurring(ctx, cmd.code)
    post, channel, who = post_for_admin(ctx, cmd.post_id)
    if post.status != PostStatus.SCHEDULED.value:
        raise Refusal(_(
            "Post #{post_id} is not scheduled ({status}); use /delete {post_id}."
        ).format(post_id=post.id, status=post.status))
    post.status = PostStatus.CANCELLED.value
    s.add(post)
    ctx.store.channels.audit(s, channel.id, who, "cancel", f"#{post.id}")
    return [Reply(_(
        "Scheduled post #{post_id} is cancelled; it will not be published."
    ).format(post_id=post.id))]


def _cancel_recurring(ctx: Context, code: str) -> list[Reply]:
    s = ctx.s
    row = ctx.store.schedule.recurring(s, int(code[1:])) if code[1:].isdigit() else None
    channel = ctx.store.channels.by_id(s, row.channel_id) if row else None
    if row is None or channel is None or not row.active:
        raise Refusal(_("There is no recurring post {code}.").format(code=code))
    who = require_admin(ctx, channel)
    row.active = False
    s.add(row)
    ctx.store.channels.audit(s, channel.id, who, "cancel", code)
    return [Reply(_("Recurring post {code} is stopped.").format(code=code))]


def cmd_edit(ctx: Context, cmd: EditArgs) -> list[Reply]:
    """`/edit <post-id> <text...>`."""
    s = ctx.s
    post, channel, who = post_for_admin(ctx, cmd.post_id)
    if post.kind in (PostKind.POLL.value, PostKind.STICKER.value):
        raise Refusal(_("A {kind} cannot be edited; delete it and post again.").format(kind=post.kind))
    if post.status not in (
        PostStatus.PUBLISHED.value,
        PostStatus.PUBLISHING.value,
        PostStatus.SCHEDULED.value,
    ):
        raise Refusal(_(
            "Post #{post_id} is {status}; it cannot be edited."
        ).format(post_id=post.id, status=post.status))
    new_text = cmd.text.strip()
    if not new_text and post.kind == PostKind.TEXT.value:
        raise Refusal(_("The new text is empty."))
    if len(new_text) > MAX_TEXT:
        raise Refusal(_("A post can have at most {MAX_TEXT} characters.").format(MAX_TEXT=MAX_TEXT))
    s.add(PostEdit(post_id=post.id or 0, previous_text=post.text, edited_at=ctx.clock()))
    post.text = new_text
    post.edited_at = ctx.clock()
    post.edit_count += 1
    s.add(post)
    s.flush()
    copies = 0
    if post.status != PostStatus.SCHEDULED.value:
        copies = ctx.store.fanout.plan_followups(s, post.id or 0, DeliveryAction.EDIT, ctx.clock())
    ctx.store.channels.audit(s, channel.id, who, "edit", f"#{post.id}")
    ctx.core.wake()
    return [
        Reply(
            ngettext(
                "Post #{post_id} edited; {copies} delivered copy will be updated, "
                "and copies still to send carry the new text.",
                "Post #{post_id} edited; {copies} delivered copies will be updated, "
                "and copies still to send carry the new text.",
                copies,
            ).format(post_id=post.id, copies=copies)
        )
    ]


def cmd_delete(ctx: Context, cmd: DeleteArgs) -> list[Reply]:
    """`/delete <post-id>`."""
    s = ctx.s
    post, channel, who = post_for_admin(ctx, cmd.post_id)
    if post.status == PostStatus.SCHEDULED.value:
        return cmd_cancel(ctx, CancelArgs(post_id=cmd.post_id))
    if post.status not in (PostStatus.PUBLISHED.value, PostStatus.PUBLISHING.value):
        raise Refusal(_(
            "Post #{post_id} is {status}; there is nothing to delete."
        ).format(post_id=post.id, status=post.status))
    post.status = PostStatus.DELETED.value
    post.deleted_at = ctx.clock()
    s.add(post)
    s.flush()
    skipped = ctx.store.fanout.skip_pending(
        s,
        post.id or 0,
        "post deleted",
        [DeliveryAction.SEND.value, DeliveryAction.EDIT.value, DeliveryAction.CLOSE_POLL.value],
    )
    copies = ctx.store.fanout.plan_followups(s, post.id or 0, DeliveryAction.DELETE, ctx.clock())
    ctx.store.channels.audit(s, channel.id, who, "delete", f"#{post.id}")
    ctx.core.wake()
    return [
        Reply(
            ngettext(
                "Post #{post_id} deleted: {copies} delivered copy will be removed; "
                "{skipped} not yet sent will not be sent.",
                "Post #{post_id} deleted: {copies} delivered copies will be removed; "
                "{skipped} not yet sent will not be sent.",
                copies,
            ).format(post_id=post.id, copies=copies, skipped=skipped)
        )
    ]
