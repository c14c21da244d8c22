"""The command table: every command's spec, in help order, and `parse_command`.

A new command is one `_spec(...)` line here (with its parser in `bridge.commands.parsers` and
its arguments in `bridge.commands.args`) plus one registration of its handler in
`bridge.engine.registry`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from dataclasses import dataclass

from bridge.commands import args as a
from bridge.commands import parsers as p
from bridge.commands.args import Command, CommandError
from bridge.commands.tokens import COMMAND_PREFIXES, Cursor, Malformed, show, tokenize
from bridge.i18n import N_, _


class Audience(enum.StrEnum):
    """Who may use a command (the engine enforces it; help lists by it)."""

    FOLLOWER = "follower"  #: anyone talking to the bot
    ADMIN = "admin"  #: an admin of the channel named in the command
    OPERATOR = "operator"  #: a person listed in the operators section of the config


@dataclass(frozen=True)
class CommandSpec:
    """One command, declared once: its name, grammar, help line and audience.

    The handler that applies it is bound in the engine layer (`bridge.engine.registry`).
    """

    args: type[Command]  #: the class of its parsed arguments (its `name` is the command's)
    usage: str  #: one-line usage, shown with every refusal of a malformed command
    summary: str  #: what it does, for /help and chat apps' command menus
    audience: Audience  #: who may use it (help lists by it)
    parse: Callable[[Cursor], Command]  #: its grammar: the tokens after its name -> its arguments

    @property
    def name(self) -> str:
        """The canonical name, e.g. "invite-admin"."""
        return self.args.name


def _spec(
    args: type[Command],
    parse: Callable[[Cursor], Command],
    usage: str,
    summary: str,
    audience: Audience,
) -> CommandSpec:
    return CommandSpec(args, usage, summary, audience, parse)


_F, _A, _O = Audience.FOLLOWER, Audience.ADMIN, Audience.OPERATOR

#: canonical name -> spec, in help order
COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        _spec(a.StartArgs, p.parse_start, N_(
            "/start [handle]"
        ), N_(
            "begin, or follow the channel of a link"
        ), _F),
        _spec(a.HelpArgs, p.parse_help, "/help", N_("list the commands you may use"), _F),
        _spec(a.ChannelsArgs, p.parse_channels, N_("/channels [query]"), N_("find public channels"), _F),
        _spec(
            a.InfoArgs,
            p.handle_only(a.InfoArgs),
            N_("/info <handle>"),
            N_("show a channel's name and description"),
            _F,
        ),
        _spec(a.FollowArgs, p.handle_only(a.FollowArgs), N_(
            "/follow <handle>"
        ), N_(
            "receive a channel's posts"
        ), _F),
        _spec(
            a.UnfollowArgs,
            p.handle_only(a.UnfollowArgs),
            N_("/unfollow <handle>"),
            N_("stop receiving a channel's posts"),
            _F,
        ),
        _spec(
            a.MuteArgs,
            p.handle_only(a.MuteArgs),
            N_("/mute <handle>"),
            N_("keep receiving posts, without notifications"),
            _F,
        ),
        _spec(a.UnmuteArgs, p.handle_only(a.UnmuteArgs), N_(
            "/unmute <handle>"
        ), N_(
            "get notifications again"
        ), _F),
        _spec(
            a.FollowingArgs,
            p.no_arguments(a.FollowingArgs),
            "/following",
            N_("list the channels you follow"),
            _F,
        ),
        _spec(a.VoteArgs, p.parse_vote, N_("/vote <post-id> <option-number>..."), N_("answer a poll"), _F),
        _spec(
            a.ResultsArgs,
            p.post_id_only(a.ResultsArgs),
            N_("/results <post-id>"),
            N_("show a poll's results"),
            _F,
        ),
        _spec(
            a.ForgetMeArgs,
            p.no_arguments(a.ForgetMeArgs),
            "/forgetme",
            N_("erase everything stored about you"),
            _F,
        ),
        _spec(a.AcceptArgs, p.parse_accept, N_(
            "/accept <code>"
        ), N_(
            "become an admin with an invitation code"
        ), _F),
        _spec(
            a.SubscribeArgs,
            p.handle_only(a.SubscribeArgs),
            N_("/subscribe <handle>"),
            N_("pay for 30 days of a channel's paid posts"),
            _F,
        ),
        _spec(
            a.UnsubscribeArgs,
            p.handle_only(a.UnsubscribeArgs),
            N_("/unsubscribe <handle>"),
            N_("stop renewing; access lasts to the end of the paid period"),
            _F,
        ),
        _spec(a.RedeemArgs, p.parse_redeem, N_(
            "/redeem <code>"
        ), N_(
            "redeem an access code for paid posts"
        ), _F),
        _spec(a.PrivacyArgs, p.no_arguments(a.PrivacyArgs), "/privacy", N_(
            "what the bot stores about you"
        ), _F),
        _spec(
            a.PaySupportArgs,
            p.no_arguments(a.PaySupportArgs),
            "/paysupport",
            N_("how to get help with a payment"),
            _F,
        ),
        _spec(
            a.LangArgs,
            p.parse_lang,
            N_("/lang [fr|en]"),
            N_("choose the language the bot answers you in"),
            _F,
        ),
        _spec(a.NewChannelArgs, p.parse_newchannel, N_(
            "/newchannel <handle> <name...>"
        ), N_(
            "create a channel"
        ), _O),
        _spec(
            a.DescribeArgs,
            p.parse_describe,
            N_("/describe <handle> <text...>"),
            N_("set a channel's description"),
            _A,
        ),
        _spec(
            a.PostArgs,
            p.parse_post,
            N_("/post <handle> [--paid|--stars <n>] [text...]"),
            N_("publish now (attach media to send it)"),
            _A,
        ),
        _spec(
            a.PollArgs,
            p.parse_poll,
            N_("/poll <handle> \"question\" \"a\" \"b\" [...] [--multi] [--closes <when>] [--paid]"),
            N_("publish a poll (2-12 options)"),
            _A,
        ),
        _spec(
            a.QuizArgs,
            p.parse_quiz,
            N_(
                "/quiz <handle> \"question\" \"a\" \"b\" [...] --answer <n> [--explain "
                "\"...\"] [--closes <when>] [--paid]"
            ),
            N_("publish a quiz: a poll with one correct answer, revealed after each vote"),
            _A,
        ),
        _spec(
            a.ScheduleArgs,
            p.parse_schedule,
            N_("/schedule <handle> <when> [--paid] <text...|/poll \"question\" \"a\" \"b\" ...|/quiz ...>"),
            N_("publish a post, poll or quiz later (when: in 90m, tomorrow 09:00, 2026-12-01 09:00)"),
            _A,
        ),
        _spec(
            a.EveryArgs,
            p.parse_every,
            N_("/every <handle> \"<days> <HH:MM>\" [--paid] <text...>"),
            N_("publish a recurring post (days: daily, mon-fri, \"sat,sun\", weekdays, weekends)"),
            _A,
        ),
        _spec(
            a.ScheduledArgs,
            p.handle_only(a.ScheduledArgs),
            N_("/scheduled <handle>"),
            N_("list scheduled and recurring posts"),
            _A,
        ),
        _spec(
            a.CancelArgs,
            p.parse_cancel,
            N_("/cancel <post-id | r<n>>"),
            N_("cancel a scheduled post, or stop recurring post r<n>"),
            _A,
        ),
        _spec(a.EditArgs, p.parse_edit, N_(
            "/edit <post-id> <text...>"
        ), N_(
            "replace a post's text everywhere"
        ), _A),
        _spec(
            a.DeleteArgs,
            p.post_id_only(a.DeleteArgs),
            N_("/delete <post-id>"),
            N_("delete a post everywhere"),
            _A,
        ),
        _spec(
            a.StatsArgs,
            p.parse_stats,
            N_("/stats <handle> [chart]"),
            N_("followers, deliveries, reactions, votes; chart: the same as a picture"),
            _A,
        ),
        _spec(
            a.AdminsArgs,
            p.handle_only(a.AdminsArgs),
            N_("/admins <handle>"),
            N_("list a channel's admins by number"),
            _A,
        ),
        _spec(
            a.InviteAdminArgs,
            p.handle_only(a.InviteAdminArgs),
            N_("/invite-admin <handle>"),
            N_("make a one-time admin invite code"),
            _A,
        ),
        _spec(
            a.RemoveAdminArgs,
            p.parse_removeadmin,
            N_("/removeadmin <handle> <admin-number>"),
            N_("remove an admin"),
            _A,
        ),
        _spec(
            a.MirrorArgs,
            p.parse_mirror,
            N_("/mirror <handle> [<platform>:<address>|create <platform>]"),
            N_("list a channel's mirror rooms, or add one (operators)"),
            _A,
        ),
        _spec(
            a.DeleteChannelArgs,
            p.handle_only(a.DeleteChannelArgs),
            N_("/deletechannel <handle>"),
            N_("delete a channel (owner only)"),
            _A,
        ),
        _spec(
            a.PriceArgs,
            p.parse_price,
            N_("/price <handle> <stars|off>"),
            N_("sell 30-day access to paid posts for 1-10000 Stars, or end sales"),
            _A,
        ),
        _spec(
            a.TeaserArgs,
            p.parse_teaser,
            N_("/teaser <handle> <on|off>"),
            N_("tell free followers of each paid post, with a Subscribe button, or not"),
            _A,
        ),
        _spec(
            a.HistoryArgs,
            p.parse_history,
            N_("/history <handle> <n>"),
            N_("how many earlier posts (0-10, from the last 30 days) a new follower gets"),
            _A,
        ),
        _spec(
            a.RefundArgs,
            p.parse_refund,
            N_("/refund <handle> <charge-id>"),
            N_("refund a payment and end its access (owner)"),
            _A,
        ),
        _spec(
            a.CodesArgs,
            p.parse_codes,
            N_("/codes <handle> <count> <days>"),
            N_("mint single-use access codes for days of paid posts (owner)"),
            _A,
        ),
        _spec(
            a.RevenueArgs,
            p.handle_only(a.RevenueArgs),
            N_("/revenue <handle>"),
            N_("subscribers, charges, renewals, refunds and Stars by month (owner)"),
            _A,
        ),
    )
}

#: alias key (lower case, without '-' and '_') -> canonical name
_ALIASES: dict[str, str] = {name.replace("-", ""): name for name in COMMANDS}


def canonical_name(word: str) -> str | None:
    """The canonical command name for `word` (without prefix; `@bot` suffix allowed), or None.

    Case-insensitive; `-` and `_` are ignored, so `invite_admin`, `inviteadmin` and
    `Invite-Admin` are all `invite-admin`.
    """
    base = word.split("@", 1)[0].lower().replace("-", "").replace("_", "")
    return _ALIASES.get(base)


def parse_command(text: str) -> Command | CommandError | None:
    """Parse one message. None when it is not a command (does not start with `/` or `!`).

    Never raises: malformed input of any kind becomes a `CommandError` with a one-line
    message and that command's usage.
    """
    start = len(text) - len(text.lstrip())
    if start >= len(text) or not text.startswith(COMMAND_PREFIXES, start):
        return None
    end = start + 1
    while end < len(text) and not text[end].isspace():
        end += 1
    typed = text[start + 1 : end]
    name = canonical_name(typed)
    if name is None:
        shown = show(typed.split("@", 1)[0], 30)
        if not shown:
            return CommandError(_("Empty command — send /help for the list"), "")
        return CommandError(_("Unknown command /{shown} — send /help for the list").format(shown=shown), "")
    cur = Cursor(text, tokenize(text, end), end)
    try:
        return COMMANDS[name].parse(cur)
    except Malformed as refusal:
        return malformed(name, str(refusal))


def malformed(name: str, message: str) -> CommandError:
    """What is wrong with a command `name` (a lower-case phrase), as the answer: capitalized,
    followed by the command's usage. Also for arguments the engine refuses by their meaning."""
    return CommandError(message[:1].upper() + message[1:], _(COMMANDS[name].usage))


def help_text(audiences: Collection[Audience]) -> str:
    """The commands someone with these audiences may use, one `usage — summary` per line."""
    return "\n".join(
        f"{_(spec.usage)} — {_(spec.summary)}" for spec in COMMANDS.values() if spec.audience in audiences
    )


def menu_entries(audiences: Collection[Audience]) -> list[tuple[str, str]]:
    """`(name, summary)` of the commands for these audiences, for a chat app's command menu
    (Telegram's setMyCommands): names written with `_` for `-`, which the parser accepts too."""
    chosen = [spec for spec in COMMANDS.values() if spec.audience in audiences]
    return [(spec.name.replace("-", "_"), _(spec.summary)) for spec in chosen]
