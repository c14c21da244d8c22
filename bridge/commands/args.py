"""The parsed commands: one frozen dataclass of typed arguments per command, and `CommandError`.

Every class here is a `Command`; its `name` is the command's canonical name. A parsed command
carries only the fields its command has. `Command(name, **fields)` builds the class of the
command `name` (so `Command("follow", handle="news") == FollowArgs(handle="news")`): tests and
examples can write a command without naming its class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from bridge.i18n import _


class _CommandType(type):
    """Lets `Command(name, **fields)` stand for the typed arguments of the command `name`."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Command:
            name, *rest = args
            return ARGS_BY_NAME[name](*rest, **kwargs)
        return super().__call__(*args, **kwargs)


class Command(metaclass=_CommandType):
    """A well-formed command: the base of every command's typed arguments."""

    name: ClassVar[str]  #: canonical name, e.g. "invite-admin"


@dataclass(frozen=True)
class CommandError:
    """A malformed command, as a value: what is wrong and how to write it."""

    message: str  #: one line saying what is wrong (no trailing period)
    usage: str  #: the command's one-line usage ("" for unknown commands)

    def __str__(self) -> str:
        """The message followed by the usage, on one line."""
        if not self.usage:
            return self.message
        return _("{message}. Usage: {usage}").format(message=self.message, usage=self.usage)


# --- commands about one channel, named by its handle ----------------------------------------


@dataclass(frozen=True)
class HandleArgs(Command):
    """A command whose only argument is a channel handle (lower-cased, valid)."""

    handle: str


@dataclass(frozen=True)
class InfoArgs(HandleArgs):
    """`/info <handle>`."""

    name = "info"


@dataclass(frozen=True)
class FollowArgs(HandleArgs):
    """`/follow <handle>`."""

    name = "follow"


@dataclass(frozen=True)
class UnfollowArgs(HandleArgs):
    """`/unfollow <handle>`."""

    name = "unfollow"


@dataclass(frozen=True)
class MuteArgs(HandleArgs):
    """`/mute <handle>`."""

    name = "mute"


@dataclass(frozen=True)
class UnmuteArgs(HandleArgs):
    """`/unmute <handle>`."""

    name = "unmute"


@dataclass(frozen=True)
class ScheduledArgs(HandleArgs):
    """`/scheduled <handle>`."""

    name = "scheduled"


@dataclass(frozen=True)
class StatsArgs(HandleArgs):
    """`/stats <handle> [chart]`."""

    name = "stats"
    chart: bool = False  #: a PNG chart instead of the figures


@dataclass(frozen=True)
class AdminsArgs(HandleArgs):
    """`/admins <handle>`."""

    name = "admins"


@dataclass(frozen=True)
class InviteAdminArgs(HandleArgs):
    """`/invite-admin <handle>`."""

    name = "invite-admin"


@dataclass(frozen=True)
class DeleteChannelArgs(HandleArgs):
    """`/deletechannel <handle>`."""

    name = "deletechannel"


@dataclass(frozen=True)
class RevenueArgs(HandleArgs):
    """`/revenue <handle>`."""

    name = "revenue"


# --- commands without arguments -------------------------------------------------------------


@dataclass(frozen=True)
class HelpArgs(Command):
    """`/help` (anything after it is ignored)."""

    name = "help"


@dataclass(frozen=True)
class FollowingArgs(Command):
    """`/following`."""

    name = "following"


@dataclass(frozen=True)
class ForgetMeArgs(Command):
    """`/forgetme`."""

    name = "forgetme"


@dataclass(frozen=True)
class PaySupportArgs(Command):
    """`/paysupport`."""

    name = "paysupport"


# --- commands with their own arguments ------------------------------------------------------


@dataclass(frozen=True)
class StartArgs(Command):
    """`/start [handle]`: the handle of a deep link, if any."""

    name = "start"
    handle: str | None = None


@dataclass(frozen=True)
class ChannelsArgs(Command):
    """`/channels [query]`."""

    name = "channels"
    query: str = ""  #: stripped, at most MAX_QUERY_LEN characters


@dataclass(frozen=True)
class VoteArgs(Command):
    """`/vote <post-id> <option-number>...`."""

    name = "vote"
    post_id: int
    numbers: tuple[int, ...]  #: option numbers, 1-based, unique, in the order typed


@dataclass(frozen=True)
class ResultsArgs(Command):
    """`/results <post-id>`."""

    name = "results"
    post_id: int


@dataclass(frozen=True)
class AcceptArgs(Command):
    """`/accept <code>`."""

    name = "accept"
    code: str  #: as typed, stripped


@dataclass(frozen=True)
class NewChannelArgs(Command):
    """`/newchannel <handle> <name...>`."""

    name = "newchannel"
    handle: str
    text: str  #: the channel's name


@dataclass(frozen=True)
class DescribeArgs(Command):
    """`/describe <handle> <text...>`."""

    name = "describe"
    handle: str
    text: str  #: the description exactly as typed


@dataclass(frozen=True)
class PostArgs(Command):
    """`/post <handle> [text...]` (media may carry the post)."""

    name = "post"
    handle: str
    text: str = ""  #: exactly as typed after the handle (and its flags)
    paid: bool = False  #: --paid: for subscribers only
    stars: int | None = None  #: --stars <n>: pay-per-post price (media on Telegram)


@dataclass(frozen=True)
class PollArgs(Command):
    """`/poll <handle> "question" "a" "b" [...] [--multi] [--closes <when>]`."""

    name = "poll"
    handle: str
    text: str  #: the question
    options: tuple[str, ...]  #: stripped, 2..12, unique
    multi: bool = False  #: --multi
    when: str | None = None  #: raw <when> of --closes
    paid: bool = False  #: --paid: for subscribers only


@dataclass(frozen=True)
class QuizArgs(PollArgs):
    """`/quiz <handle> "question" "a" "b" ... --answer <n> [--explain "..."] [--closes <when>]
    [--paid]`: a poll with one correct option (never `multi`)."""

    name = "quiz"
    correct: int = 0  #: the correct option's 0-based position (`--answer` is 1-based)
    explanation: str = ""  #: --explain: shown with the correct answer (at most 200 characters)


@dataclass(frozen=True)
class ScheduleArgs(Command):
    """`/schedule <handle> <when> <text...>`, or `/schedule <handle> <when> /poll ...` (or `/quiz ...`)."""

    name = "schedule"
    handle: str
    when: str  #: raw <when> text
    text: str = ""  #: exactly as typed after the <when> (and --paid)
    sub: PollArgs | None = None  #: the poll or quiz to schedule (its own `paid` says whether it is paid)
    paid: bool = False  #: --paid: the text post is for subscribers only


@dataclass(frozen=True)
class EveryArgs(Command):
    """`/every <handle> "<days> <HH:MM>" <text...>`."""

    name = "every"
    handle: str
    spec: str  #: raw recurrence spec
    text: str
    paid: bool = False  #: --paid: every occurrence is for subscribers only


@dataclass(frozen=True)
class CancelArgs(Command):
    """`/cancel <post-id>` or `/cancel r<n>`: exactly one of the two fields is set."""

    name = "cancel"
    post_id: int | None = None
    code: str | None = None  #: a recurring post's id, lower-cased ("r3")


@dataclass(frozen=True)
class EditArgs(Command):
    """`/edit <post-id> <text...>`."""

    name = "edit"
    post_id: int
    text: str


@dataclass(frozen=True)
class DeleteArgs(Command):
    """`/delete <post-id>`."""

    name = "delete"
    post_id: int


@dataclass(frozen=True)
class RemoveAdminArgs(Command):
    """`/removeadmin <handle> <admin-number>`."""

    name = "removeadmin"
    handle: str
    numbers: tuple[int, ...]  #: the one admin number

    @property
    def admin_number(self) -> int:
        """The admin to remove."""
        return self.numbers[0] if self.numbers else 0


@dataclass(frozen=True)
class MirrorArgs(Command):
    """`/mirror <handle> [<platform>:<address>|create <platform>]`.

    The grammar checks the shape only; which platforms exist and how their rooms are addressed
    is the plug-ins' to say (`bridge.platforms`), so the engine checks the address."""

    name = "mirror"
    handle: str
    platform: str = ""  #: "" lists the mirror rooms; else the platform, lower-cased
    address: str = ""  #: the room's address on that platform ("" with `create`)
    create: bool = False  #: the bot creates the room itself

    @property
    def text(self) -> str:
        """What was asked, as written: "", "create <platform>" or "<platform>:<address>"."""
        if not self.platform:
            return ""
        return f"create {self.platform}" if self.create else f"{self.platform}:{self.address}"


@dataclass(frozen=True)
class PriceArgs(Command):
    """`/price <handle> <stars|off>`."""

    name = "price"
    handle: str
    stars: int | None  #: the 30-day price in Stars (1-10000); None: `off`, sales end


@dataclass(frozen=True)
class SubscribeArgs(HandleArgs):
    """`/subscribe <handle>`."""

    name = "subscribe"


@dataclass(frozen=True)
class UnsubscribeArgs(HandleArgs):
    """`/unsubscribe <handle>`."""

    name = "unsubscribe"


@dataclass(frozen=True)
class TeaserArgs(Command):
    """`/teaser <handle> <on|off>`."""

    name = "teaser"
    handle: str
    on: bool


@dataclass(frozen=True)
class HistoryArgs(Command):
    """`/history <handle> <n>`."""

    name = "history"
    handle: str
    n: int  #: earlier posts a new follower gets, 0-10 (0: none)


@dataclass(frozen=True)
class RefundArgs(Command):
    """`/refund <handle> <charge-id>`."""

    name = "refund"
    handle: str
    charge_id: str  #: Telegram's telegram_payment_charge_id, as typed


@dataclass(frozen=True)
class CodesArgs(Command):
    """`/codes <handle> <count> <days>`."""

    name = "codes"
    handle: str
    count: int  #: 1-100 codes
    days: int  #: 1-366 days of access each


@dataclass(frozen=True)
class RedeemArgs(Command):
    """`/redeem <code>`."""

    name = "redeem"
    code: str  #: as typed, stripped (normalized by the engine)


@dataclass(frozen=True)
class PrivacyArgs(Command):
    """`/privacy`."""

    name = "privacy"


@dataclass(frozen=True)
class LangArgs(Command):
    """`/lang [language]`."""

    name = "lang"
    language: str | None = None  #: a known language code ("fr", "en"); None: say the current one


#: canonical name -> the class of that command's arguments
ARGS_BY_NAME: dict[str, type[Command]] = {
    cls.name: cls
    for cls in (
        StartArgs,
        HelpArgs,
        ChannelsArgs,
        InfoArgs,
        FollowArgs,
        UnfollowArgs,
        MuteArgs,
        UnmuteArgs,
        FollowingArgs,
        VoteArgs,
        ResultsArgs,
        ForgetMeArgs,
        AcceptArgs,
        NewChannelArgs,
        DescribeArgs,
        PostArgs,
        PollArgs,
        QuizArgs,
        ScheduleArgs,
        EveryArgs,
        ScheduledArgs,
        CancelArgs,
        EditArgs,
        DeleteArgs,
        StatsArgs,
        AdminsArgs,
        InviteAdminArgs,
        RemoveAdminArgs,
        MirrorArgs,
        DeleteChannelArgs,
        PriceArgs,
        RevenueArgs,
        PaySupportArgs,
        SubscribeArgs,
        UnsubscribeArgs,
        TeaserArgs,
        RefundArgs,
        CodesArgs,
        RedeemArgs,
        PrivacyArgs,
        LangArgs,
        HistoryArgs,
    )
}
