"""The command registry: every command's handler, bound to its spec, in one list.

A command's grammar, usage, summary and audience are declared once in `bridge.commands`;
here each is bound to the plain function that applies it, with two facts the engine needs:
whether the scheduler must re-read what is timed after it (`timed`), and whether media sent
with it is kept, and so downloaded once the sender is authorized (`keeps_media`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bridge.commands import (
    COMMANDS,
    AcceptArgs,
    AdminsArgs,
    CancelArgs,
    ChannelsArgs,
    CodesArgs,
    Command,
    CommandSpec,
    DeleteArgs,
    DeleteChannelArgs,
    DescribeArgs,
    EditArgs,
    EveryArgs,
    FollowArgs,
    FollowingArgs,
    ForgetMeArgs,
    HelpArgs,
    HistoryArgs,
    InfoArgs,
    InviteAdminArgs,
    LangArgs,
    MirrorArgs,
    MuteArgs,
    NewChannelArgs,
    PaySupportArgs,
    PollArgs,
    PostArgs,
    PriceArgs,
    PrivacyArgs,
    QuizArgs,
    RedeemArgs,
    RefundArgs,
    RemoveAdminArgs,
    ResultsArgs,
    RevenueArgs,
    ScheduleArgs,
    ScheduledArgs,
    StartArgs,
    StatsArgs,
    SubscribeArgs,
    TeaserArgs,
    UnfollowArgs,
    UnmuteArgs,
    UnsubscribeArgs,
    VoteArgs,
)
from bridge.engine import about, codes, followers, history, language, payments, subscriptions
from bridge.engine import admin_channels as channels
from bridge.engine import admin_posts as posts
from bridge.engine.context import Context
from bridge.ports import Reply

C = TypeVar("C", bound=Command)


@dataclass(frozen=True)
class Route:
    """One command bound to its handler."""

    spec: CommandSpec  #: name, grammar, usage, summary, audience
    run: Callable[[Context, Command], list[Reply]]  #: the handler, for this command's arguments
    timed: bool  #: the scheduler re-reads what is timed after it
    keeps_media: bool  #: media sent with it is downloaded and stored


def _route(
    args: type[C],
    handler: Callable[[Context, C], list[Reply]],
    *,
    timed: bool = False,
    keeps_media: bool = False,
) -> Route:
    def run(ctx: Context, cmd: Command) -> list[Reply]:
        assert isinstance(cmd, args)
        return handler(ctx, cmd)

    run.__doc__ = handler.__doc__
    return Route(COMMANDS[args.name], run, timed, keeps_media)


#: the class of a command's arguments -> its route; one line per command
ROUTES: dict[type[Command], Route] = {
    route.spec.args: route
    for route in (
        _route(StartArgs, followers.cmd_start),
        _route(HelpArgs, followers.cmd_help),
        _route(ChannelsArgs, followers.cmd_channels),
        _route(InfoArgs, followers.cmd_info),
        _route(FollowArgs, followers.cmd_follow),
        _route(UnfollowArgs, followers.cmd_unfollow),
        _route(MuteArgs, followers.cmd_mute),
        _route(UnmuteArgs, followers.cmd_unmute),
        _route(FollowingArgs, followers.cmd_following),
        _route(VoteArgs, followers.cmd_vote),
        _route(ResultsArgs, followers.cmd_results),
        _route(ForgetMeArgs, followers.cmd_forgetme),
        _route(AcceptArgs, followers.cmd_accept),
        _route(SubscribeArgs, subscriptions.cmd_subscribe),
        _route(UnsubscribeArgs, subscriptions.cmd_unsubscribe),
        _route(RedeemArgs, codes.cmd_redeem),
        _route(PrivacyArgs, about.cmd_privacy),
        _route(PaySupportArgs, payments.cmd_paysupport),
        _route(LangArgs, language.cmd_lang),
        _route(NewChannelArgs, posts.cmd_newchannel),
        _route(DescribeArgs, posts.cmd_describe),
        _route(PostArgs, posts.cmd_post, keeps_media=True),
        _route(PollArgs, posts.cmd_poll, timed=True),
        _route(QuizArgs, posts.cmd_quiz, timed=True),
        _route(ScheduleArgs, posts.cmd_schedule, timed=True, keeps_media=True),
        _route(EveryArgs, posts.cmd_every, timed=True),
        _route(ScheduledArgs, posts.cmd_scheduled),
        _route(CancelArgs, posts.cmd_cancel, timed=True),
        _route(EditArgs, posts.cmd_edit, timed=True),
        _route(DeleteArgs, posts.cmd_delete, timed=True),
        _route(StatsArgs, channels.cmd_stats),
        _route(AdminsArgs, channels.cmd_admins),
        _route(InviteAdminArgs, channels.cmd_invite_admin),
        _route(RemoveAdminArgs, channels.cmd_removeadmin),
        _route(MirrorArgs, channels.cmd_mirror),  # `create <platform>` is async: `channels.create_mirror`
        _route(DeleteChannelArgs, posts.cmd_deletechannel, timed=True),
        _route(PriceArgs, payments.cmd_price),
        _route(TeaserArgs, payments.cmd_teaser),
        _route(RefundArgs, subscriptions.cmd_refund),
        _route(CodesArgs, codes.cmd_codes),
        _route(RevenueArgs, payments.cmd_revenue),
        _route(HistoryArgs, history.cmd_history),
    )
}

_unrouted = sorted(set(COMMANDS) - {route.spec.name for route in ROUTES.values()})
if _unrouted:  # a command in the grammar without a handler is a programming error
    raise RuntimeError(f"commands without a handler in bridge.engine.registry: {_unrouted}")
