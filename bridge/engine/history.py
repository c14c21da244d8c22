"""History for new followers: `/history <handle> <n>`, and the earlier posts planned when
someone starts following a channel.

A new follower (a first `/follow`, `/start <handle>`, a follow through the channel's link, a
re-follow) gets the channel's last `n` posts of the past 30 days (the channel's setting, else
`general.history`), marked as earlier posts, after the welcome reply and paced like every
copy. Deleted posts never; a paid post only with paid access (a free follower gets nothing
for it, not even a teaser: the history is a welcome, not an advertisement); a post the
follower already has a copy of is not sent again.
"""

from __future__ import annotations

from bridge.commands import HistoryArgs
from bridge.engine.context import Context, find_channel, require_admin
from bridge.i18n import _
from bridge.models import Channel, Follower
from bridge.ports import Reply

#: how far back the history reaches
HISTORY_PERIOD_S = 30 * 24 * 3600
#: the earlier posts wait this long, so the welcome reply (queued after the command's
#: transaction commits, in the reply lane) reaches the chat first
HISTORY_DELAY_S = 1.0


def history_size(ctx: Context, channel: Channel) -> int:
    """How many earlier posts the channel's new followers get."""
    return channel.history if channel.history is not None else ctx.options.history_default


def plan_history(ctx: Context, channel: Channel, follower: Follower) -> int:
    """Plan a new follower's earlier posts (in the command's transaction); how many."""
    assert channel.id is not None and follower.id is not None
    now = ctx.clock()
    planned = ctx.store.history.plan(
        ctx.s,
        follower.id,
        channel.id,
        history_size(ctx, channel),
        since=now - HISTORY_PERIOD_S,
        now=now,
        due=now + HISTORY_DELAY_S,
        paid_media=ctx.core.paid_media_platforms(),
    )
    if planned:
        ctx.core.wake_after_commit = True
    return planned


def cmd_history(ctx: Context, cmd: HistoryArgs) -> list[Reply]:
    """`/history <handle> <n>`."""
    channel = find_channel(ctx, cmd.handle)
    who = require_admin(ctx, channel)
    assert channel.id is not None
    ctx.store.history.set_size(ctx.s, channel.id, cmd.n)
    ctx.store.channels.audit(ctx.s, channel.id, who, "history", str(cmd.n))
    if cmd.n == 0:
        return [Reply(_("New followers of {name} get no earlier posts.").format(name=channel.name))]
    posts = _("post") if cmd.n == 1 else _("{n} posts").format(n=cmd.n)
    return [Reply(_(
        "New followers of {name} get its last {posts} of the past 30 days."
    ).format(name=channel.name, posts=posts))]


__all__ = ["HISTORY_DELAY_S", "HISTORY_PERIOD_S", "cmd_history", "history_size", "plan_history"]
