"""Follower commands: find, follow, mute and leave channels, vote, see results, be forgotten.

One plain function per command, `cmd_<name>(ctx, args) -> replies`, bound to its command in
`bridge.engine.registry`.
"""

from __future__ import annotations

from bridge.commands import (
    AcceptArgs,
    Audience,
    ChannelsArgs,
    FollowArgs,
    FollowingArgs,
    ForgetMeArgs,
    HelpArgs,
    InfoArgs,
    MuteArgs,
    ResultsArgs,
    StartArgs,
    UnfollowArgs,
    UnmuteArgs,
    VoteArgs,
    help_text,
)
from bridge.engine import quizzes
from bridge.engine.context import (
    Context,
    find_channel,
    follower_row,
    is_admin_anywhere,
    may_see,
    poll_for_voting,
    results_text,
    subscription_of,
)
from bridge.engine.core import Refusal, followers_text, normalize_code
from bridge.engine.history import plan_history
from bridge.i18n import _
from bridge.models import AdminRole
from bridge.ports import Button, PostKind, Reply


def cmd_help(ctx: Context, cmd: HelpArgs) -> list[Reply]:
    """`/help`."""
    actor = ctx.actor
    audiences = {Audience.FOLLOWER}
    if is_admin_anywhere(ctx):
        audiences.add(Audience.ADMIN)
    if actor.is_operator:
        audiences.add(Audience.OPERATOR)
    return [Reply(help_text(audiences))]


def cmd_start(ctx: Context, cmd: StartArgs) -> list[Reply]:
    """`/start [handle]`."""
    intro = (
        "Welcome to channelbridge: private one-way channels. Nobody can see who else follows, "
        "and admins only see counts. Send /channels to find channels, /help for everything."
    )
    if cmd.handle:  # what the channel's link t.me/<bot>?start=<handle> sends
        return [Reply(intro), *follow(ctx, cmd.handle, via_link=True)]
    return [Reply(intro)]


def cmd_channels(ctx: Context, cmd: ChannelsArgs) -> list[Reply]:
    """`/channels [query]`."""
    s = ctx.s
    channels = ctx.store.channels.search(s, cmd.query.strip())
    if not channels:
        return [Reply(_("No channels found.") if cmd.query else _("There are no channels yet."))]
    lines, buttons = [], []
    for channel in channels:
        assert channel.id is not None
        count = ctx.store.followers.count(s, channel.id)
        lines.append(f"{channel.handle} — {channel.name} ({followers_text(count)})")
        buttons.append(Button(_(
            "Follow {handle}"
        ).format(handle=channel.handle), f"/follow {channel.handle}"))
    return [Reply("Channels:\n" + "\n".join(lines), buttons=tuple(buttons[:10]))]


def cmd_info(ctx: Context, cmd: InfoArgs) -> list[Reply]:
    """`/info <handle>`."""
    s, actor = ctx.s, ctx.actor
    channel = find_channel(ctx, cmd.handle)
    assert channel.id is not None
    count = ctx.store.followers.count(s, channel.id)
    follower = ctx.store.followers.by_index(s, actor.index)
    sub = ctx.store.followers.subscription(s, follower.id, channel.id) if follower and follower.id else None
    state = _("You do not follow it.")
    buttons = [Button(_("Follow"), f"/follow {channel.handle}")]
    if sub is not None:
        state = _("You follow it") + (_(" (muted).") if sub.muted else ".")
        buttons = [
            Button(_("Unfollow"), f"/unfollow {channel.handle}"),
            Button(
                _("Unmute") if sub.muted else _("Mute"),
                f"/{'unmute' if sub.muted else 'mute'} {channel.handle}",
            ),
        ]
    tier = ctx.store.payments.tier_of(s, channel.id) if ctx.options.payments_enabled else None
    if tier is not None:
        buttons.append(Button(_(
            "Subscribe ({price} Stars / 30 days)"
        ).format(price=tier.price), f"/subscribe {channel.handle}"))
    text = f"{channel.name} ({channel.handle}) — {followers_text(count)}"
    if channel.description:
        text += f"\n{channel.description}"
    return [Reply(f"{text}\n{state}", buttons=tuple(buttons))]


def cmd_follow(ctx: Context, cmd: FollowArgs) -> list[Reply]:
    """`/follow <handle>`."""
    return follow(ctx, cmd.handle, via_link=False)


def follow(ctx: Context, handle: str, *, via_link: bool) -> list[Reply]:
    """Make the sender follow a channel; a new follower gets its earlier posts after this
    answer, and a follow through the channel's link is counted (a count, never who)."""
    s, actor = ctx.s, ctx.actor
    channel = find_channel(ctx, handle)
    assert channel.id is not None
    follower = follower_row(ctx.core, s, actor, create=True)
    assert follower is not None and follower.id is not None
    # a follower paused (they had blocked the bot) who follows again resumes: not a new follower
    resumed = ctx.store.followers.subscription(s, follower.id, channel.id) is not None
    if not ctx.store.followers.subscribe(s, follower, channel.id, ctx.clock()):
        return [Reply(_("You already follow {name}.").format(name=channel.name))]
    if via_link:
        ctx.store.history.add_link_follow(s, channel.id)
    if not resumed:
        plan_history(ctx, channel, follower)
    return [
        Reply(
            _(
                "You now follow {name}. Its posts will arrive here; nobody else can see "
                "that you follow it. /mute {handle} silences them, /unfollow {handle} "
                "stops them."
            ).format(name=channel.name, handle=channel.handle),
            buttons=(
                Button(_("Mute"), f"/mute {channel.handle}"),
                Button(_("Unfollow"), f"/unfollow {channel.handle}"),
            ),
        )
    ]


def cmd_unfollow(ctx: Context, cmd: UnfollowArgs) -> list[Reply]:
    """`/unfollow <handle>`."""
    s, actor = ctx.s, ctx.actor
    sub, channel = subscription_of(ctx, cmd.handle)
    ctx.store.followers.unsubscribe(s, sub, actor.address.platform)
    return [Reply(_(
        "You no longer follow {name}. Nothing more will arrive from it."
    ).format(name=channel.name))]


def cmd_mute(ctx: Context, cmd: MuteArgs) -> list[Reply]:
    """`/mute <handle>`."""
    s, actor = ctx.s, ctx.actor
    sub, channel = subscription_of(ctx, cmd.handle)
    ctx.store.followers.set_muted(s, sub, actor.address.platform, True)
    return [Reply(_(
        "{name} is muted: posts still arrive, without notifications."
    ).format(name=channel.name))]


def cmd_unmute(ctx: Context, cmd: UnmuteArgs) -> list[Reply]:
    """`/unmute <handle>`."""
    s, actor = ctx.s, ctx.actor
    sub, channel = subscription_of(ctx, cmd.handle)
    ctx.store.followers.set_muted(s, sub, actor.address.platform, False)
    return [Reply(_("{name} is unmuted.").format(name=channel.name))]


def cmd_following(ctx: Context, cmd: FollowingArgs) -> list[Reply]:
    """`/following`."""
    s, actor = ctx.s, ctx.actor
    follower = ctx.store.followers.by_index(s, actor.index)
    subs = ctx.store.followers.subscriptions_of(s, follower.id) if follower and follower.id else []
    if not subs:
        return [Reply(_("You follow no channels. Send /channels to find some."))]
    muted = _(" (muted)")
    lines = [f"{channel.handle} — {channel.name}{muted if sub.muted else ''}" for sub, channel in subs]
    return [Reply("You follow:\n" + "\n".join(lines))]


def cmd_vote(ctx: Context, cmd: VoteArgs) -> list[Reply]:
    """`/vote <post-id> <option-number>...`."""
    s, actor = ctx.s, ctx.actor
    post, options = poll_for_voting(ctx, cmd.post_id)
    bad = [n for n in cmd.numbers if not 1 <= n <= len(options)]
    if bad:
        raise Refusal(_(
            "Poll #{post_id} has options 1 to {n_options}."
        ).format(post_id=post.id, n_options=len(options)))
    if len(set(cmd.numbers)) > 1 and not post.poll_multi:
        raise Refusal(_("Poll #{post_id} allows one choice.").format(post_id=post.id))
    if quizzes.is_quiz(post):
        if not quizzes.first_answer(ctx, post, [cmd.numbers[0] - 1]):
            raise Refusal(_(
                "You already answered quiz #{post_id}; a quiz counts the first answer."
            ).format(post_id=post.id))
        return [quizzes.reveal(post, options, cmd.numbers[0] - 1)]
    ctx.store.posts.set_votes(s, post.id or 0, actor.index, [n - 1 for n in cmd.numbers])
    chosen = ", ".join(options[n - 1].text for n in sorted(set(cmd.numbers)))
    return [Reply(_(
        "Your vote on #{post_id} is recorded: {chosen}. You can change it until the poll "
        "closes."
    ).format(post_id=post.id, chosen=chosen))]


def cmd_results(ctx: Context, cmd: ResultsArgs) -> list[Reply]:
    """`/results <post-id>`."""
    s = ctx.s
    post = ctx.store.posts.get(s, cmd.post_id)
    if (
        post is None
        or post.kind != PostKind.POLL.value
        or post.published_at is None
        or not may_see(ctx, post)
    ):
        raise Refusal(_("There is no poll #{post_id} in a channel you follow.").format(post_id=cmd.post_id))
    text = results_text(ctx, post)
    if quizzes.is_quiz(post):
        text += "\n" + quizzes.score_line(ctx, post)
    return [Reply(text)]


def cmd_forgetme(ctx: Context, cmd: ForgetMeArgs) -> list[Reply]:
    """`/forgetme`."""
    s, actor = ctx.s, ctx.actor
    follower = ctx.store.followers.by_index(s, actor.index)
    if follower is not None:
        ctx.store.followers.forget(s, follower)
    else:
        ctx.store.followers.forget_voter(s, actor.index)
    ctx.store.languages.forget(s, actor.index)
    note = ""
    if ctx.store.channels.administered_by(s, actor.index):
        note = _(" Your admin roles remain; an owner can remove them with /removeadmin.")
    return [Reply("Done: your follows, votes, reactions and delivery records are erased." + note)]


def cmd_accept(ctx: Context, cmd: AcceptArgs) -> list[Reply]:
    """`/accept <code>`."""
    s, actor = ctx.s, ctx.actor
    wait = ctx.core.accept_guard.blocked_for(actor.index)
    if wait > 0:
        raise Refusal(
            _(
                "Too many wrong codes; try again in {value} min. Ask the admin who invited "
                "you to check the code."
            ).format(value=max(1, round(wait / 60)))
        )
    invite = ctx.store.invite_by_digest(s, ctx.sealer.code_digest(normalize_code(cmd.code)))
    if invite is None or invite.used_at is not None:
        ctx.core.accept_guard.failed(actor.index)
        raise Refusal(_("That code is not valid (or was already used)."))
    if invite.expires_at <= ctx.clock():
        ctx.core.accept_guard.failed(actor.index)
        raise Refusal(_("That code has expired; ask an admin for a new one."))
    channel = ctx.store.channels.by_id(s, invite.channel_id)
    if channel is None or channel.deleted_at is not None:
        raise Refusal(_("That channel no longer exists."))
    if ctx.store.channels.admin_of(s, channel.id or 0, actor.index) is not None:
        raise Refusal(_("You are already an admin of {handle}.").format(handle=channel.handle))
    if not ctx.store.channels.redeem_invite(s, invite.id or 0, ctx.clock()):
        raise Refusal(_("That code is not valid (or was already used)."))
    number = ctx.store.channels.next_admin_number(s, channel.id or 0)  # queues admissions to the channel
    if len(ctx.store.channels.admins(s, channel.id or 0)) >= ctx.options.max_admins:
        raise Refusal(_(
            "{handle} already has {max_admins} admins, the most allowed."
        ).format(handle=channel.handle, max_admins=ctx.options.max_admins))
    ctx.core.add_admin(s, channel.id or 0, number, AdminRole.ADMIN, actor.address)
    ctx.store.channels.audit(s, channel.id, f"admin #{number}", "accept")
    return [Reply(_(
        "You are now admin #{number} of {name}. Send /help for admin commands."
    ).format(number=number, name=channel.name))]
