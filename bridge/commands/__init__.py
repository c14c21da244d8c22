"""The command grammar: one message text -> a `Command`, a `CommandError` (with usage) or None.

Pure syntax, no I/O. The same grammar serves every platform; prefixes `/` and `!` both work.

Tokenizing rules:

- Tokens are separated by whitespace. A token that *starts* with a double quote (`"`, `“`, `”`
  or `„`) is quoted: it runs to the next `"`, `“` or `”` and may hold spaces and newlines.
  There are no escapes; a quote elsewhere in a token is an ordinary character.
- Tokens are read only as far as a command needs them. Free text (a post, a description, an
  edit) is the untouched remainder of the original message after the consumed tokens, minus
  the whitespace that separates it from them: quotes, spacing and newlines are kept exactly.
  An unbalanced quote is an error only where the command needs that token.
- Handles are lower-cased and must be 3-32 of `a-z 0-9 _`. Post ids are `12` or `#12`;
  `/cancel` also takes a recurring post's id `r3` (returned lower-cased in `code`).
- `<when>` is only split off here (see `tokens.split_when`); `bridge.when.parse_when` interprets
  it later. `/every` takes its recurrence spec as one quoted token (`"mon-fri 08:00"`), or
  unquoted as a bare `HH:MM` (daily) or up to four day words followed by `HH:MM`
  (`daily 09:00`, `sat, sun 10:30`, `every day 07:00`); `bridge.when.parse_recurrence`
  interprets it.
- `/poll` flags are unquoted tokens starting with `--` (or a phone's auto-corrected `—`):
  `--multi`, `--closes <when>` and `--paid`, anywhere after the handle. A quoted `"--multi"`
  is an option.
- A post's options come before its text: `/post <handle> [--paid|--stars <n>] text`,
  `/schedule <handle> <when> [--paid] text`, `/every <handle> <spec> [--paid] text`. A leading
  unquoted word shaped like an option (`--word`) that is none is refused, so a typo never
  publishes a paid post to everyone; a lone `—` or `---` is text.
- `/quiz` takes the poll's flags except `--multi` (a quiz has one correct answer), plus
  `--answer <n>` (required, 1-based, must name an option) and `--explain <text>` (one token,
  quoted when it has spaces; at most 200 characters, Telegram's limit for a quiz explanation).
- In `/schedule <handle> <when> /poll ...` (or `/quiz ...`) the poll may repeat the schedule's
  handle; a first unquoted token equal to that handle is skipped, anything else is the question.
- `/post` and `/schedule` accept empty text (media may carry the post); the engine refuses a
  post with neither. `/help` ignores anything after it; other commands refuse extra tokens.

Layout: `args` (one frozen dataclass of typed arguments per command), `tokens` (tokenizer and
cursor), `parsers` (one parser per command), `specs` (the table: name, usage, summary,
audience and parser of every command; `parse_command`, `help_text`, `menu_entries`). Nothing
here imports the store or the engine; handlers are bound in `bridge.engine.registry`.
"""

from bridge.commands.args import (
    ARGS_BY_NAME,
    AcceptArgs,
    AdminsArgs,
    CancelArgs,
    ChannelsArgs,
    CodesArgs,
    Command,
    CommandError,
    DeleteArgs,
    DeleteChannelArgs,
    DescribeArgs,
    EditArgs,
    EveryArgs,
    FollowArgs,
    FollowingArgs,
    ForgetMeArgs,
    HandleArgs,
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
from bridge.commands.parsers import (
    MAX_DESCRIPTION_LEN,
    MAX_EXPLANATION_LEN,
    MAX_NAME_LEN,
    MAX_OPTION_LEN,
    MAX_POLL_OPTIONS,
    MAX_QUERY_LEN,
    MAX_QUESTION_LEN,
    MIN_POLL_OPTIONS,
)
from bridge.commands.specs import (
    COMMANDS,
    Audience,
    CommandSpec,
    canonical_name,
    help_text,
    malformed,
    menu_entries,
    parse_command,
)
from bridge.commands.tokens import COMMAND_PREFIXES

__all__ = [
    "ARGS_BY_NAME",
    "COMMANDS",
    "COMMAND_PREFIXES",
    "MAX_DESCRIPTION_LEN",
    "MAX_EXPLANATION_LEN",
    "MAX_NAME_LEN",
    "MAX_OPTION_LEN",
    "MAX_POLL_OPTIONS",
    "MAX_QUERY_LEN",
    "MAX_QUESTION_LEN",
    "MIN_POLL_OPTIONS",
    "AcceptArgs",
    "AdminsArgs",
    "Audience",
    "CancelArgs",
    "ChannelsArgs",
    "CodesArgs",
    "Command",
    "CommandError",
    "CommandSpec",
    "DeleteArgs",
    "DeleteChannelArgs",
    "DescribeArgs",
    "EditArgs",
    "EveryArgs",
    "FollowArgs",
    "FollowingArgs",
    "ForgetMeArgs",
    "HandleArgs",
    "HelpArgs",
    "HistoryArgs",
    "InfoArgs",
    "InviteAdminArgs",
    "LangArgs",
    "MirrorArgs",
    "MuteArgs",
    "NewChannelArgs",
    "PaySupportArgs",
    "PollArgs",
    "PostArgs",
    "PriceArgs",
    "PrivacyArgs",
    "QuizArgs",
    "RedeemArgs",
    "RefundArgs",
    "RemoveAdminArgs",
    "ResultsArgs",
    "RevenueArgs",
    "ScheduleArgs",
    "ScheduledArgs",
    "StartArgs",
    "StatsArgs",
    "SubscribeArgs",
    "TeaserArgs",
    "UnfollowArgs",
    "UnmuteArgs",
    "UnsubscribeArgs",
    "VoteArgs",
    "canonical_name",
    "help_text",
    "malformed",
    "menu_entries",
    "parse_command",
]
