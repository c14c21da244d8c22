"""Admin commands about a channel itself: statistics (counts only, never identities), admins
and invitations, mirror rooms.

One plain function per command, `cmd_<name>(ctx, args) -> replies`, bound to its command in
`bridge.engine.registry`.
"""

from __future__ import annotations

import logging

from bridge.commands import AdminsArgs, InviteAdminArgs, MirrorArgs, RemoveAdminArgs, StatsArgs
from bridge.engine.context import Context, find_channel, require_admin, require_owner
from bridge.engine.core import Actor, BadArguments, EngineCore, Refusal, new_invite_code, normalize_code
from bridge.i18n import _, ngettext
from bridge.models import AdminInvite, AdminRole, Channel, MirrorRoom, Post, PostStatus
from bridge.platforms import Platforms, either
from bridge.ports import PostKind, Reply
from bridge.safetext import is_single_emoji

log = logging.getLogger(__name__)


def cmd_stats(ctx: Context, cmd: StatsArgs) -> list[Reply]:
    """`/stats <handle>`."""
    actor = ctx.actor
    channel = find_channel(ctx, cmd.handle)
    require_admin(ctx, channel)
    text_ = stats_text(ctx, channel)
    if actor.is_operator and ctx.core.hooks.sending_report is not None:
        text_ += "\n" + "\n".join(ctx.core.hooks.sending_report())
    return [Reply(text_)]


def stats_text(ctx: Context, channel: Channel) -> str:
    """Aggregate statistics of a channel: counts only, never identities."""
    s = ctx.s
    cid = channel.id or 0
    per_platform = ctx.store.followers.counts_by_platform(s, cid)
    total = sum(n for n, _ in per_platform.values())
    muted = sum(m for _, m in per_platform.values())
    parts = ", ".join(f"{p} {n}" for p, (n, _) in sorted(per_platform.items()))
    lines = [
        _("Stats for {name} ({handle})").format(name=channel.name, handle=channel.handle),
        _("Followers: {total}").format(total=total)
        + (f" ({parts})" if parts else "")
        + _("; muted {muted}").format(muted=muted),
    ]
    paused = ctx.store.followers.paused_count(s, cid)
    if paused:
        lines.append(_("Paused (blocked the bot or left): {paused}").format(paused=paused))
    mirrors = ctx.store.channels.mirrors(s, cid)
    if mirrors:
        lines.append(_("Mirror rooms: {n_mirrors}").format(n_mirrors=len(mirrors)))
    lines.append(_(
        "Follows through the channel's link: {link_follows}"
    ).format(link_follows=channel.link_follows))
    if ctx.store.payments.last_tier(s, cid) is not None:
        lines.append(_(
            "Subscribers now: {subscribers}"
        ).format(subscribers=ctx.store.payments.subscribers(s, cid, ctx.clock())))
    for post in ctx.store.posts.recent(s, cid, limit=5):
        lines.append(post_stats_line(ctx, post))
    return "\n".join(lines)


def post_stats_line(ctx: Context, post: Post) -> str:
    """One post's delivery status, reactions and poll tally."""
    s = ctx.s
    counts = ctx.store.fanout.send_counts(s, post)
    delivered, pending, failed, skipped = counts.delivered, counts.pending, counts.failed, counts.skipped
    line = f"#{post.id} {post.kind}"
    if post.status == PostStatus.DELETED.value:
        line += _(" (deleted)")
    line += _(
        ": delivered {delivered}, pending {pending}, failed {failed}"
    ).format(delivered=delivered, pending=pending, failed=failed)
    if skipped:
        line += _(", skipped {skipped}").format(skipped=skipped)
    if post.paid or post.stars:
        teasers = ctx.store.fanout.teaser_count(s, post.id or 0)
        line += _(
            "; for subscribers: {delivered} sent, {teasers} teasers"
        ).format(delivered=delivered, teasers=teasers)
    if post.stars:
        line += ngettext(
            "; {purchases} purchase at {stars} Stars",
            "; {purchases} purchases at {stars} Stars",
            post.purchases,
        ).format(purchases=post.purchases, stars=post.stars)
    reasons = ctx.store.fanout.failure_reasons(s, post.id or 0) if failed else []
    if reasons:
        line += " [" + "; ".join(f"{r} ×{n}" for r, n in reasons) + "]"
    reactions = {
        k: n for k, n in ctx.store.posts.reaction_counts(s, post.id or 0).items() if is_single_emoji(k)
    }
    if reactions:
        line += "; reactions " + " ".join(f"{k} {n}" for k, n in reactions.items())
    if post.kind == PostKind.POLL.value:
        tally, voters = ctx.store.posts.tally(s, post.id or 0)
        options = ctx.store.posts.poll_options(s, post.id or 0)
        votes = ", ".join(f"{o.text} {tally.get(o.position, 0)}" for o in options)
        line += _("; votes ({voters} voters): {votes}").format(voters=voters, votes=votes)
    return line


def cmd_admins(ctx: Context, cmd: AdminsArgs) -> list[Reply]:
    """`/admins <handle>`."""
    s, actor = ctx.s, ctx.actor
    channel = find_channel(ctx, cmd.handle)
    require_admin(ctx, channel)
    admins = ctx.store.channels.admins(s, channel.id or 0)
    lines = [
        f"#{a.number} {a.role} ({a.platform})" + (_(" — you") if a.account_index == actor.index else "")
        for a in admins
    ]
    return [
        Reply(
            _("Admins of {handle} ({n_admins}/{max_admins}):").format(
                handle=channel.handle, n_admins=len(admins), max_admins=ctx.options.max_admins
            )
            + "\n"
            + "\n".join(lines)
        )
    ]


def cmd_invite_admin(ctx: Context, cmd: InviteAdminArgs) -> list[Reply]:
    """`/invite-admin <handle>`."""
    s, actor = ctx.s, ctx.actor
    channel = find_channel(ctx, cmd.handle)
    who = require_admin(ctx, channel)
    if len(ctx.store.channels.admins(s, channel.id or 0)) >= ctx.options.max_admins:
        raise Refusal(_(
            "{handle} already has {max_admins} admins, the most allowed."
        ).format(handle=channel.handle, max_admins=ctx.options.max_admins))
    now = ctx.clock()
    if ctx.store.channels.outstanding_invites(s, channel.id or 0, now) >= ctx.options.max_open_invites:
        raise Refusal(
            _(
                "{handle} already has {max_open_invites} unused admin codes; a new one can "
                "be made once one of them is accepted or expires."
            ).format(handle=channel.handle, max_open_invites=ctx.options.max_open_invites)
        )
    inviter = ctx.store.channels.admin_of(s, channel.id or 0, actor.index)
    code = new_invite_code()
    s.add(
        AdminInvite(
            channel_id=channel.id or 0,
            code_digest=ctx.sealer.code_digest(normalize_code(code)),
            created_at=now,
            expires_at=now + ctx.options.invite_ttl_s,
            created_by=inviter.id if inviter else None,
        )
    )
    ctx.store.channels.audit(s, channel.id, who, "invite-admin")
    days = round(ctx.options.invite_ttl_s / 86400)
    return [
        Reply(
            _(
                "One-time admin code for {handle}: {code}\nIt works once, for {days} days: "
                "the new admin sends /accept {code} to me."
            ).format(handle=channel.handle, code=code, days=days)
        )
    ]


def cmd_removeadmin(ctx: Context, cmd: RemoveAdminArgs) -> list[Reply]:
    """`/removeadmin <handle> <admin-number>`."""
    s = ctx.s
    channel = find_channel(ctx, cmd.handle)
    who = require_owner(ctx, channel)
    number = cmd.admin_number
    target = next((a for a in ctx.store.channels.admins(s, channel.id or 0) if a.number == number), None)
    if target is None:
        raise Refusal(_(
            "{handle} has no admin #{number}; /admins {handle} lists them."
        ).format(handle=channel.handle, number=number))
    if target.role == AdminRole.OWNER.value:
        raise Refusal(_("The owner cannot be removed."))
    revoked = ctx.store.channels.revoke_invites_by(s, target.id or 0)
    s.delete(target)
    ctx.store.channels.audit(s, channel.id, who, "removeadmin", f"#{number}")
    note = (
        ngettext(
            " The {revoked} unused admin code(s) they made no longer work.",
            " The {revoked} unused admin code(s) they made no longer work.",
            revoked,
        ).format(revoked=revoked)
        if revoked
        else ""
    )
    return [Reply(_(
        "Admin #{number} removed from {handle}.{note}"
    ).format(number=number, handle=channel.handle, note=note))]


def cmd_mirror(ctx: Context, cmd: MirrorArgs) -> list[Reply]:
    """`/mirror <handle> [<platform>:<address>|create <platform>]`."""
    s, actor = ctx.s, ctx.actor
    check_mirror_address(ctx.core.platforms, cmd)
    channel = find_channel(ctx, cmd.handle)
    who = require_admin(ctx, channel)
    if cmd.platform:
        if not actor.is_operator:
            raise Refusal(_("Only operators can add mirror rooms."))
        if cmd.create:
            # creating a room needs that platform's adapter: handled by `create_mirror` (async)
            raise Refusal(_no_creator(cmd.platform))
        platform, chat = cmd.platform, cmd.address
        mirrors = ctx.store.channels.mirrors(s, channel.id or 0)
        if any(m.platform == platform and m.chat_id == chat for m in mirrors):
            raise Refusal(_(
                "{platform}:{chat} already mirrors {handle}."
            ).format(platform=platform, chat=chat, handle=channel.handle))
        s.add(MirrorRoom(channel_id=channel.id or 0, platform=platform, chat_id=chat, created_at=ctx.clock()))
        ctx.store.channels.audit(s, channel.id, who, "mirror", platform)
        if ctx.core.hooks.on_mirror_added is not None:  # the adapter treats it as a mirror from now on
            ctx.core.hooks.on_mirror_added(platform, chat)
        return [Reply(_mirror_added(channel, f"{platform}:{chat}"))]
    mirrors = ctx.store.channels.mirrors(s, channel.id or 0)
    if not mirrors:
        return [Reply(_no_mirrors(ctx.core.platforms, channel.handle))]
    lines = [f"{m.platform}:{m.chat_id}" for m in mirrors]
    return [
        Reply(
            _(
                "Mirror rooms of {handle} (members of a room can see each other):\n"
            ).format(handle=channel.handle) + "\n".join(lines)
        )
    ]


def check_mirror_address(platforms: Platforms, cmd: MirrorArgs) -> None:
    """Refuse (as malformed) a platform no plug-in takes mirror rooms on, a room address that
    platform does not write that way, or `create` where the bot cannot create rooms."""
    if not cmd.platform:
        return
    creatable = platforms.creatable_mirror_platforms()
    if cmd.create:
        if not platforms.can_create_mirror(cmd.platform):
            if not creatable:
                raise BadArguments(_("no installed platform lets the bot create mirror rooms"))
            how = either(f"create {name}" for name in creatable)
            raise BadArguments(_("the bot can create mirror rooms only with {how}").format(how=how))
        return
    syntax = platforms.mirror_syntax(cmd.platform)
    if syntax is None:
        ways = [f"create {name}" for name in creatable]
        ways += [
            f"{name}:{known.placeholder}"
            for name in platforms.mirror_platforms()
            if (known := platforms.mirror_syntax(name)) is not None
        ]
        raise BadArguments(_(
            "expected {either}, not '{text}'"
        ).format(either=either(ways), text=cmd.text[:40]))
    if not platforms.valid_mirror_address(cmd.platform, cmd.address):
        raise BadArguments(_(
            "'{address}' is not {noun} ({hint})"
        ).format(address=cmd.address[:40], noun=syntax.noun, hint=syntax.hint))


def _no_creator(platform: str) -> str:
    return _(
        "Mirror rooms can only be created while the {capitalize} adapter runs."
    ).format(capitalize=platform.capitalize())


def _no_mirrors(platforms: Platforms, handle: str) -> str:
    configured = ", ".join(
        f'"{name}:{syntax.placeholder}"'
        for name in platforms.mirror_platforms()
        if (syntax := platforms.mirror_syntax(name)) is not None
    )
    creatable = platforms.creatable_mirror_platforms()
    created = " or ".join(f"/mirror {handle} create {name}" for name in creatable)
    if not configured:
        return _(
            "{handle} has no mirror rooms, and no installed platform takes them."
        ).format(handle=handle)
    text = (
        _(
            "{handle} has no mirror rooms. Operators add them in the config ([[channels]] "
            "mirrors = [{configured}])"
        ).format(handle=handle, configured=configured)
    )
    return text + (_(" or with {created}.").format(created=created) if created else ".")


def _mirror_added(channel: Channel, where: str) -> str:
    return (
        _(
            "{where} now mirrors every new post of {handle}. Members of a mirror room can "
            "see each other: use mirrors for public channels only."
        ).format(where=where, handle=channel.handle)
    )


async def create_mirror(core: EngineCore, actor: Actor, cmd: MirrorArgs) -> list[Reply]:
    """`/mirror <handle> create <platform>`: the bot creates a read-only room and mirrors into it.

    Asynchronous (it talks to a platform), so it runs outside the command's transaction: one
    to check, one to record the room.
    """
    check_mirror_address(core.platforms, cmd)
    with core.store.unit_of_work() as s:
        channel = find_channel(Context(core, s, actor), cmd.handle)
        if not actor.is_operator:
            raise Refusal(_("Only operators can add mirror rooms."))
        name, description = channel.name, channel.description
    factory = core.hooks.mirror_factory
    if factory is None:
        raise Refusal(_no_creator(cmd.platform))
    try:
        room = await factory(cmd.platform, name, description or _("Mirror of {name}").format(name=name))
    except Exception as exc:
        log.warning("creating a mirror room failed: %s", type(exc).__name__)
        raise Refusal(_("The homeserver refused to create the room; nothing was changed.")) from exc
    with core.store.unit_of_work() as s:
        channel = find_channel(Context(core, s, actor), cmd.handle)
        s.add(
            MirrorRoom(
                channel_id=channel.id or 0, platform=cmd.platform, chat_id=room, created_at=core.clock()
            )
        )
        core.store.channels.audit(s, channel.id, "operator", "mirror", cmd.platform)
        return [Reply(_mirror_added(channel, f"{cmd.platform}:{room}"))]
