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
        _spec(a.StartArgs, p.parse_start, "/start [handle]", "begin, or follow the channel of a link", _F),
        _spec(a.HelpArgs, p.parse_help, "/help", "list the commands you may use", _F),
        _spec(a.ChannelsArgs, p.parse_channels, "/channels [query]", "find public channels", _F),
        _spec(
            a.InfoArgs,
            p.handle_only(a.InfoArgs),
            "/info <handle>",
            "show a channel's name and description",
            _F,
        ),
        _spec(a.FollowArgs, p.handle_only(a.FollowArgs), "/follow <handle>", "receive a channel's posts", _F),
        _spec(
            a.UnfollowArgs,
            p.handle_only(a.UnfollowArgs),
            "/unfollow <handle>",
            "stop receiving a channel's posts",
            _F,
        ),
        _spec(
            a.MuteArgs,
            p.handle_only(a.MuteArgs),
            "/mute <handle>",
            "keep receiving posts, without notifications",
            _F,
        ),
        _spec(a.UnmuteArgs, p.handle_only(a.UnmuteArgs), "/unmute <handle>", "get notifications again", _F),
        _spec(
            a.FollowingArgs,
            p.no_arguments(a.FollowingArgs),
            "/following",
            "list the channels you follow",
            _F,
        ),
        _spec(a.VoteArgs, p.parse_vote, "/vote <post-id> <option-number>...", "answer a poll", _F),
        _spec(
            a.ResultsArgs,
            p.post_id_only(a.ResultsArgs),
            "/results <post-id>",
            "show a poll's results",
            _F,
        ),
        _spec(
            a.ForgetMeArgs,
            p.no_arguments(a.ForgetMeArgs),
            "/forgetme",
            "erase everything stored about you",
            _F,
        ),
        _spec(a.AcceptArgs, p.parse_accept, "/accept <code>", "become an admin with an invitation code", _F),
        _spec(
            a.SubscribeArgs,
            p.handle_only(a.SubscribeArgs),
            "/subscribe <handle>",
            "pay for 30 days of a channel's paid posts",
            _F,
        ),
        _spec(
            a.UnsubscribeArgs,
            p.handle_only(a.UnsubscribeArgs),
            "/unsubscribe <handle>",
            "stop renewing; access lasts to the end of the paid period",
            _F,
        ),
        _spec(a.RedeemArgs, p.parse_redeem, "/redeem <code>", "redeem an access code for paid posts", _F),
        _spec(a.PrivacyArgs, p.no_arguments(a.PrivacyArgs), "/privacy", "what the bot stores about you", _F),
        _spec(
            a.PaySupportArgs,
            p.no_arguments(a.PaySupportArgs),
            "/paysupport",
            "how to get help with a payment",
            _F,
        ),
        _spec(a.NewChannelArgs, p.parse_newchannel, "/newchannel <handle> <name...>", "create a channel", _O),
        _spec(
            a.DescribeArgs,
            p.parse_describe,
            "/describe <handle> <text...>",
            "set a channel's description",
            _A,
        ),
        _spec(
            a.PostArgs,
            p.parse_post,
            "/post <handle> [--paid|--stars <n>] [text...]",
            "publish now (attach media to send it)",
            _A,
        ),
        _spec(
            a.PollArgs,
            p.parse_poll,
            '/poll <handle> "question" "a" "b" [...] [--multi] [--closes <when>] [--paid]',
            "publish a poll (2-12 options)",
            _A,
        ),
        _spec(
            a.QuizArgs,
            p.parse_quiz,
            '/quiz <handle> "question" "a" "b" [...] --answer <n> [--explain "..."] [--closes <when>]'
            " [--paid]",
            "publish a quiz: a poll with one correct answer, revealed after each vote",
            _A,
        ),
        _spec(
            a.ScheduleArgs,
            p.parse_schedule,
            '/schedule <handle> <when> [--paid] <text...|/poll "question" "a" "b" ...|/quiz ...>',
            "publish a post, poll or quiz later (when: in 90m, tomorrow 09:00, 2026-12-01 09:00)",
            _A,
        ),
        _spec(
            a.EveryArgs,
            p.parse_every,
            '/every <handle> "<days> <HH:MM>" [--paid] <text...>',
            'publish a recurring post (days: daily, mon-fri, "sat,sun", weekdays, weekends)',
            _A,
        ),
        _spec(
            a.ScheduledArgs,
            p.handle_only(a.ScheduledArgs),
            "/scheduled <handle>",
            "list scheduled and recurring posts",
            _A,
        ),
        _spec(
            a.CancelArgs,
            p.parse_cancel,
            "/cancel <post-id | r<n>>",
            "cancel a scheduled post, or stop recurring post r<n>",
            _A,
        ),
        _spec(a.EditArgs, p.parse_edit, "/edit <post-id> <text...>", "replace a post's text everywhere", _A),
        _spec(
            a.DeleteArgs,
            p.post_id_only(a.DeleteArgs),
            "/delete <post-id>",
            "delete a post everywhere",
            _A,
        ),
        _spec(
            a.StatsArgs,
            p.parse_stats,
            "/stats <handle> [chart]",
            "followers, deliveries, reactions, votes; chart: the same as a picture",
            _A,
        ),
        _spec(
            a.AdminsArgs,
            p.handle_only(a.AdminsArgs),
            "/admins <handle>",
            "list a channel's admins by number",
            _A,
        ),
        _spec(
            a.InviteAdminArgs,
            p.handle_only(a.InviteAdminArgs),
            "/invite-admin <handle>",
            "make a one-time admin invite code",
            _A,
        ),
        _spec(
            a.RemoveAdminArgs,
            p.parse_removeadmin,
            "/removeadmin <handle> <admin-number>",
            "remove an admin",
            _A,
        ),
        _spec(
            a.MirrorArgs,
            p.parse_mirror,
            "/mirror <handle> [<platform>:<address>|create <platform>]",
            "list a channel's mirror rooms, or add one (operators)",
            _A,
        ),
        _spec(
            a.DeleteChannelArgs,
            p.handle_only(a.DeleteChannelArgs),
            "/deletechannel <handle>",
            "delete a channel (owner only)",
            _A,
        ),
        _spec(
            a.PriceArgs,
            p.parse_price,
            "/price <handle> <stars|off>",
            "sell 30-day access to paid posts for 1-10000 Stars, or end sales",
            _A,
        ),
        _spec(
            a.TeaserArgs,
            p.parse_teaser,
            "/teaser <handle> <on|off>",
            "tell free followers of each paid post, with a Subscribe button, or not",
            _A,
        ),
        _spec(
            a.HistoryArgs,
            p.parse_history,
            "/history <handle> <n>",
            "how many earlier posts (0-10, from the last 30 days) a new follower gets",
            _A,
        ),
        _spec(
            a.RefundArgs,
            p.parse_refund,
            "/refund <handle> <charge-id>",
            "refund a payment and end its access (owner)",
            _A,
        ),
        _spec(
            a.CodesArgs,
            p.parse_codes,
            "/codes <handle> <count> <days>",
            "mint single-use access codes for days of paid posts (owner)",
            _A,
        ),
        _spec(
            a.RevenueArgs,
            p.handle_only(a.RevenueArgs),
            "/revenue <handle>",
            "subscribers, charges, renewals, refunds and Stars by month (owner)",
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
            return CommandError("Empty command — send /help for the list", "")
        return CommandError(f"Unknown command /{shown} — send /help for the list", "")
    cur = Cursor(text, tokenize(text, end), end)
    try:
        return COMMANDS[name].parse(cur)
    except Malformed as refusal:
        return malformed(name, str(refusal))


def malformed(name: str, message: str) -> CommandError:
    """What is wrong with a command `name` (a lower-case phrase), as the answer: capitalized,
    followed by the command's usage. Also for arguments the engine refuses by their meaning."""
    return CommandError(message[:1].upper() + message[1:], COMMANDS[name].usage)


def help_text(audiences: Collection[Audience]) -> str:
    """The commands someone with these audiences may use, one `usage — summary` per line."""
    return "\n".join(
        f"{spec.usage} — {spec.summary}" for spec in COMMANDS.values() if spec.audience in audiences
    )


def menu_entries(audiences: Collection[Audience]) -> list[tuple[str, str]]:
    """`(name, summary)` of the commands for these audiences, for a chat app's command menu
    (Telegram's setMyCommands): names written with `_` for `-`, which the parser accepts too."""
    chosen = [spec for spec in COMMANDS.values() if spec.audience in audiences]
    return [(spec.name.replace("-", "_"), spec.summary) for spec in chosen]
