"""The command grammar: one message text -> `Command`, `CommandError` (with usage) or None.

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
- `<when>` is only split off here (see `_split_when`); `scheduler.when.parse_when` interprets
  it later. `/every` takes its recurrence spec as one quoted token (`"mon-fri 08:00"`), or
  unquoted as a bare `HH:MM` (daily) or up to four day words followed by `HH:MM`
  (`daily 09:00`, `sat, sun 10:30`, `every day 07:00`); `scheduler.when.parse_recurrence`
  interprets it.
- `/poll` flags are unquoted tokens starting with `--` (or a phone's auto-corrected `—`):
  `--multi` and `--closes <when>`, anywhere after the handle. A quoted `"--multi"` is an option.
- In `/schedule <handle> <when> /poll ...` the poll may repeat the schedule's handle; a first
  unquoted token equal to that handle is skipped, anything else is the question.
- `/post` and `/schedule` accept empty text (media may carry the post); the engine refuses a
  post with neither. `/help` ignores anything after it; other commands refuse extra tokens.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

MIN_POLL_OPTIONS = 2
MAX_POLL_OPTIONS = 12
MAX_OPTION_LEN = 100
MAX_QUESTION_LEN = 300
MAX_QUERY_LEN = 64
MAX_NAME_LEN = 128
MAX_DESCRIPTION_LEN = 1000

_HANDLE_RE = re.compile(r"[a-z0-9_]{3,32}")
_POST_ID_RE = re.compile(r"#?([0-9]{1,18})")
_RECURRING_RE = re.compile(r"[rR][0-9]{1,18}")
_NUMBER_RE = re.compile(r"#?([0-9]{1,9})")
_TELEGRAM_CHAT_RE = re.compile(r"-?[0-9]{1,20}|@[A-Za-z0-9_]{5,32}")
_MATRIX_ROOM_RE = re.compile(
    r"![^\s:|]{1,200}:(?:[A-Za-z0-9.\-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)
_HHMM_RE = re.compile(r"[0-9]{1,2}:[0-9]{2}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME_RE = re.compile(r"[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?")
_ZONE_RE = re.compile(
    r"(?i:z|utc|gmt)|[+-][0-9]{2}(:?[0-9]{2})?|[A-Za-z_]+(/[A-Za-z0-9_+-]+)+",
)
_ISO_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?"
    r"(?P<zone>Z|[+-][0-9]{2}(:?[0-9]{2})?|\[[^\]]+\])?",
    re.IGNORECASE,
)
_DURATION_RE = re.compile(r"([0-9]+[a-z]+)+", re.IGNORECASE)
_DURATION_UNITS = frozenset(
    [
        "m",
        "min",
        "mins",
        "minute",
        "minutes",
        "h",
        "hr",
        "hrs",
        "hour",
        "hours",
        "d",
        "day",
        "days",
        "w",
        "week",
        "weeks",
    ]
)
_WEEKDAYS = frozenset(
    [
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
        "tues",
        "thur",
        "thurs",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
)
_DAY_WORDS = (
    _WEEKDAYS
    | {d + "s" for d in _WEEKDAYS}
    | frozenset(["daily", "everyday", "every", "day", "weekday", "weekdays", "weekend", "weekends"])
)
_DAY_SPLIT_RE = re.compile(r"[,\-–—]")
_OPEN_QUOTES = frozenset('"“”„')
_CLOSE_QUOTES = frozenset('"“”')
_FLAG_PREFIXES = ("--", "—")
COMMAND_PREFIXES = ("/", "!")  #: what starts a command on every platform


class Audience(enum.StrEnum):
    """Who may use a command (the engine enforces it; help lists by it)."""

    FOLLOWER = "follower"  #: anyone talking to the bot
    ADMIN = "admin"  #: an admin of the channel named in the command
    OPERATOR = "operator"  #: a person listed in the operators section of the config


@dataclass(frozen=True)
class CommandSpec:
    """One command's help entry: canonical name, one-line usage, summary, audience."""

    name: str
    usage: str
    summary: str
    audience: Audience


def _spec(name: str, usage: str, summary: str, audience: Audience) -> tuple[str, CommandSpec]:
    return name, CommandSpec(name, usage, summary, audience)


_F, _A, _O = Audience.FOLLOWER, Audience.ADMIN, Audience.OPERATOR

#: canonical name -> spec, in help order
COMMANDS: dict[str, CommandSpec] = dict(
    [
        _spec("start", "/start [handle]", "begin, or follow the channel of a link", _F),
        _spec("help", "/help", "list the commands you may use", _F),
        _spec("channels", "/channels [query]", "find public channels", _F),
        _spec("info", "/info <handle>", "show a channel's name and description", _F),
        _spec("follow", "/follow <handle>", "receive a channel's posts", _F),
        _spec("unfollow", "/unfollow <handle>", "stop receiving a channel's posts", _F),
        _spec("mute", "/mute <handle>", "keep receiving posts, without notifications", _F),
        _spec("unmute", "/unmute <handle>", "get notifications again", _F),
        _spec("following", "/following", "list the channels you follow", _F),
        _spec("vote", "/vote <post-id> <option-number>...", "answer a poll", _F),
        _spec("results", "/results <post-id>", "show a poll's results", _F),
        _spec("forgetme", "/forgetme", "erase everything stored about you", _F),
        _spec("accept", "/accept <code>", "become an admin with an invitation code", _F),
        _spec("newchannel", "/newchannel <handle> <name...>", "create a channel", _O),
        _spec("describe", "/describe <handle> <text...>", "set a channel's description", _A),
        _spec("post", "/post <handle> [text...]", "publish now (attach media to send it)", _A),
        _spec(
            "poll",
            '/poll <handle> "question" "a" "b" [...] [--multi] [--closes <when>]',
            "publish a poll (2-12 options)",
            _A,
        ),
        _spec(
            "schedule",
            '/schedule <handle> <when> <text...|/poll "question" "a" "b" ...>',
            "publish a post or poll later (when: in 90m, tomorrow 09:00, 2026-12-01 09:00)",
            _A,
        ),
        _spec(
            "every",
            '/every <handle> "<days> <HH:MM>" <text...>',
            'publish a recurring post (days: daily, mon-fri, "sat,sun", weekdays, weekends)',
            _A,
        ),
        _spec("scheduled", "/scheduled <handle>", "list scheduled and recurring posts", _A),
        _spec(
            "cancel", "/cancel <post-id | r<n>>", "cancel a scheduled post, or stop recurring post r<n>", _A
        ),
        _spec("edit", "/edit <post-id> <text...>", "replace a post's text everywhere", _A),
        _spec("delete", "/delete <post-id>", "delete a post everywhere", _A),
        _spec("stats", "/stats <handle>", "followers, deliveries, reactions, votes", _A),
        _spec("admins", "/admins <handle>", "list a channel's admins by number", _A),
        _spec("invite-admin", "/invite-admin <handle>", "make a one-time admin invite code", _A),
        _spec("removeadmin", "/removeadmin <handle> <admin-number>", "remove an admin", _A),
        _spec(
            "mirror",
            "/mirror <handle> [create matrix|telegram:<chat id>|matrix:<room id>]",
            "list a channel's mirror rooms, or add one (operators)",
            _A,
        ),
        _spec("deletechannel", "/deletechannel <handle>", "delete a channel (owner only)", _A),
    ]
)

#: alias key (lower case, without '-' and '_') -> canonical name
_ALIASES: dict[str, str] = {name.replace("-", ""): name for name in COMMANDS}


@dataclass(frozen=True)
class Command:
    """A well-formed command. Only the fields its command uses are set."""

    name: str  #: canonical name, e.g. "invite-admin"
    handle: str | None = None  #: lower-cased, valid handle
    text: str = ""  #: free text exactly as typed after the consumed tokens (poll: the question)
    post_id: int | None = None
    numbers: tuple[int, ...] = ()  #: /vote option numbers (1-based); /removeadmin admin number
    options: tuple[str, ...] = ()  #: /poll options, stripped, 2..12, unique
    multi: bool = False  #: /poll --multi
    when: str | None = None  #: raw <when> text (/schedule, /poll --closes)
    spec: str | None = None  #: /every recurrence spec, raw
    code: str | None = None  #: /accept code; /cancel r<n> recurring post id, lower-cased ("r3")
    query: str = ""  #: /channels query
    sub: Command | None = None  #: /schedule ... /poll ...: the poll to schedule


@dataclass(frozen=True)
class CommandError:
    """A malformed command, as a value: what is wrong and how to write it."""

    message: str  #: one line saying what is wrong (no trailing period)
    usage: str  #: the command's one-line usage ("" for unknown commands)

    def __str__(self) -> str:
        """The message followed by the usage, on one line."""
        return f"{self.message}. Usage: {self.usage}" if self.usage else self.message


@dataclass(frozen=True)
class _Token:
    """One token: its value (quotes removed) and its span in the original text."""

    value: str
    start: int
    end: int
    quoted: bool = False
    broken: bool = False  #: an opening quote without its closing quote


class _Refusal(Exception):
    """Internal: a command is malformed; carries the one-line message."""


def _tokenize(text: str, pos: int) -> list[_Token]:
    """Split `text[pos:]` into tokens (see the module docstring); never raises."""
    tokens: list[_Token] = []
    n = len(text)
    i = pos
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return tokens
        if text[i] in _OPEN_QUOTES:
            j = i + 1
            while j < n and text[j] not in _CLOSE_QUOTES:
                j += 1
            if j >= n:
                tokens.append(_Token(text[i + 1 :], i, n, quoted=True, broken=True))
                return tokens
            tokens.append(_Token(text[i + 1 : j], i, j + 1, quoted=True))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            tokens.append(_Token(text[i:j], i, j))
            i = j


def _show(value: str, limit: int = 40) -> str:
    """A user-typed value made safe for a one-line message."""
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _Cursor:
    """Reads tokens of one command left to right and remembers where the last one ended."""

    def __init__(self, text: str, tokens: list[_Token], pos: int) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.end = pos  #: end of the last consumed token (or of the command name)

    def peek(self, k: int = 0) -> _Token | None:
        """The k-th token not yet consumed, or None."""
        j = self.i + k
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> _Token | None:
        """Consume one token; an unbalanced quote is refused here."""
        tok = self.peek()
        if tok is None:
            return None
        if tok.broken:
            raise _Refusal(f"unbalanced quote in {_show(self.text[tok.start :])}")
        self.i += 1
        self.end = tok.end
        return tok

    def skip(self, count: int) -> None:
        """Consume `count` tokens already checked with `peek`."""
        for _ in range(count):
            self.take()

    def rest(self) -> str:
        """The original text after the consumed tokens, minus the separating whitespace."""
        return self.text[self.end :].lstrip()

    def at_end(self) -> bool:
        """Whether no token remains."""
        return self.peek() is None

    def no_more(self, what: str) -> None:
        """Refuse any token left over."""
        tok = self.peek()
        if tok is not None:
            raise _Refusal(f"unexpected {_show(tok.value)!r} after {what}")

    def handle(self) -> str:
        """Consume a required channel handle."""
        tok = self.take()
        if tok is None:
            raise _Refusal("missing the channel handle")
        return _valid_handle(tok.value)

    def post_id(self) -> int:
        """Consume a required post id (`12` or `#12`)."""
        tok = self.take()
        if tok is None:
            raise _Refusal("missing the post id")
        m = _POST_ID_RE.fullmatch(tok.value)
        if m is None or int(m.group(1)) < 1:
            raise _Refusal(f"{_show(tok.value)!r} is not a post id (like 12 or #12)")
        return int(m.group(1))


def _valid_handle(value: str) -> str:
    handle = value.lower()
    if _HANDLE_RE.fullmatch(handle) is None:
        raise _Refusal(f"{_show(value)!r} is not a valid handle (3-32 characters of a-z, 0-9 and _)")
    return handle


def _split_when(tokens: Sequence[_Token]) -> int:
    """How many of `tokens` (from index 0) make up a `<when>`; 0 only when `tokens` is empty.

    Syntax only: `in 90m`, `in 90 min`, `in 1h30m`, `today|tomorrow HH:MM`,
    `<weekday> HH:MM`, `YYYY-MM-DD HH:MM[:SS] [zone]`, `YYYY-MM-DDTHH:MM[:SS][zone] [zone]`,
    `HH:MM`, or one quoted token. Anything else: one token (parse_when refuses it later).
    """
    if not tokens:
        return 0
    first = tokens[0]
    if first.quoted:
        return 1

    def plain(k: int) -> str | None:
        if k < len(tokens) and not tokens[k].quoted:
            return tokens[k].value
        return None

    def is_hhmm(k: int) -> bool:
        v = plain(k)
        return v is not None and _HHMM_RE.fullmatch(v) is not None

    def is_zone(k: int) -> bool:
        v = plain(k)
        return v is not None and _ZONE_RE.fullmatch(v) is not None

    word = first.value.lower()
    if word == "in":
        second = plain(1)
        if second is not None and _DURATION_RE.fullmatch(second):
            return 2
        third = plain(2)
        if (
            second is not None
            and second.isascii()
            and second.isdigit()
            and third is not None
            and third.lower() in _DURATION_UNITS
        ):
            return 3
        return 1
    if word in {"today", "tomorrow"} or word in _WEEKDAYS:
        return 2 if is_hhmm(1) else 1
    if _DATE_RE.fullmatch(first.value):
        second = plain(1)
        if second is None or _TIME_RE.fullmatch(second) is None:
            return 1
        return 3 if is_zone(2) else 2
    m = _ISO_RE.fullmatch(first.value)
    if m is not None:
        return 2 if m.group("zone") is None and is_zone(1) else 1
    return 1


def _take_when(cur: _Cursor, what: str) -> str:
    """Consume a `<when>` and return its raw text (tokens joined by one space)."""
    count = _split_when(cur.tokens[cur.i :])
    if count == 0:
        raise _Refusal(f"missing {what} (like: in 90m, tomorrow 09:00, 2026-12-01 09:00)")
    first = cur.peek()
    if first is not None and first.broken:
        cur.take()  # refuses the unbalanced quote
    parts = [cur.tokens[cur.i + k].value for k in range(count)]
    cur.skip(count)
    when = " ".join(p.strip() for p in parts).strip()
    if not when:
        raise _Refusal(f"{what} is empty")
    return when


def _is_day_words(value: str) -> bool:
    words = [w for w in _DAY_SPLIT_RE.split(value.lower()) if w]
    return bool(words) and all(w in _DAY_WORDS for w in words)


def _take_recurrence(cur: _Cursor) -> str:
    """Consume a recurrence spec: one quoted token, `HH:MM`, or day words then `HH:MM`."""
    first = cur.peek()
    if first is None:
        raise _Refusal('missing the schedule, like "mon-fri 08:00"')
    if first.quoted or _HHMM_RE.fullmatch(first.value):
        tok = cur.take()
        assert tok is not None
        spec = tok.value.strip()
        if not spec:
            raise _Refusal("the schedule is empty")
        return spec
    k = 0
    while k < 4:
        tok = cur.peek(k)
        if tok is None or tok.quoted or not _is_day_words(tok.value):
            break
        k += 1
    time_tok = cur.peek(k)
    if k > 0 and time_tok is not None and not time_tok.quoted and _HHMM_RE.fullmatch(time_tok.value):
        parts = [t.value for t in cur.tokens[cur.i : cur.i + k + 1]]
        cur.skip(k + 1)
        return " ".join(parts)
    tok = cur.take()
    assert tok is not None
    return tok.value


def _is_flag(tok: _Token) -> bool:
    return not tok.quoted and tok.value.startswith(_FLAG_PREFIXES)


def _flag_name(value: str) -> str:
    for prefix in _FLAG_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix) :].lower()
    return value.lower()


def _poll_body(cur: _Cursor, handle: str) -> Command:
    """Parse `"question" "a" "b" ... [--multi] [--closes <when>]` up to the end."""
    positional: list[str] = []
    multi = False
    closes: str | None = None
    while not cur.at_end():
        tok = cur.take()
        assert tok is not None
        if _is_flag(tok):
            flag = _flag_name(tok.value)
            if flag == "multi":
                multi = True
            elif flag == "closes":
                if closes is not None:
                    raise _Refusal("--closes given twice")
                closes = _take_when(cur, "the time after --closes")
            else:
                raise _Refusal(f"unknown option {_show(tok.value)!r} (use --multi or --closes)")
        else:
            positional.append(tok.value.strip())
    if not positional:
        raise _Refusal("missing the question")
    question, options = positional[0], positional[1:]
    if not question:
        raise _Refusal("the question is empty")
    if len(question) > MAX_QUESTION_LEN:
        raise _Refusal(f"the question is longer than {MAX_QUESTION_LEN} characters")
    if len(options) < MIN_POLL_OPTIONS:
        raise _Refusal(f"a poll needs at least {MIN_POLL_OPTIONS} options")
    if len(options) > MAX_POLL_OPTIONS:
        raise _Refusal(f"a poll has at most {MAX_POLL_OPTIONS} options, got {len(options)}")
    seen: set[str] = set()
    for number, option in enumerate(options, start=1):
        if not option:
            raise _Refusal(f"option {number} is empty")
        if len(option) > MAX_OPTION_LEN:
            raise _Refusal(f"option {number} is longer than {MAX_OPTION_LEN} characters")
        key = option.casefold()
        if key in seen:
            raise _Refusal(f"option {_show(option)!r} appears twice")
        seen.add(key)
    return Command("poll", handle=handle, text=question, options=tuple(options), multi=multi, when=closes)


# --- one parser per command shape -------------------------------------------------------


def _p_nothing(name: str) -> Callable[[_Cursor], Command]:
    def parse(cur: _Cursor) -> Command:
        cur.no_more(f"/{name}")
        return Command(name)

    return parse


def _p_handle_only(name: str) -> Callable[[_Cursor], Command]:
    def parse(cur: _Cursor) -> Command:
        handle = cur.handle()
        cur.no_more("the handle")
        return Command(name, handle=handle)

    return parse


def _p_post_id_only(name: str) -> Callable[[_Cursor], Command]:
    def parse(cur: _Cursor) -> Command:
        post_id = cur.post_id()
        cur.no_more("the post id")
        return Command(name, post_id=post_id)

    return parse


def _p_help(cur: _Cursor) -> Command:
    return Command("help")


def _p_start(cur: _Cursor) -> Command:
    if cur.at_end():
        return Command("start")
    handle = cur.handle()
    cur.no_more("the handle")
    return Command("start", handle=handle)


def _p_channels(cur: _Cursor) -> Command:
    query = cur.rest().strip()
    if len(query) > MAX_QUERY_LEN:
        raise _Refusal(f"the search is longer than {MAX_QUERY_LEN} characters")
    return Command("channels", query=query)


def _p_vote(cur: _Cursor) -> Command:
    post_id = cur.post_id()
    numbers: list[int] = []
    while not cur.at_end():
        tok = cur.take()
        assert tok is not None
        for part in tok.value.split(","):
            if not part:
                continue
            m = _NUMBER_RE.fullmatch(part)
            if m is None:
                raise _Refusal(f"{_show(part)!r} is not an option number")
            number = int(m.group(1))
            if not 1 <= number <= MAX_POLL_OPTIONS:
                raise _Refusal(f"option numbers go from 1 to {MAX_POLL_OPTIONS}, not {number}")
            if number not in numbers:
                numbers.append(number)
    if not numbers:
        raise _Refusal("missing the option number(s) to vote for")
    return Command("vote", post_id=post_id, numbers=tuple(numbers))


def _p_accept(cur: _Cursor) -> Command:
    tok = cur.take()
    if tok is None or not tok.value.strip():
        raise _Refusal("missing the invitation code")
    cur.no_more("the code")
    return Command("accept", code=tok.value.strip())


def _p_newchannel(cur: _Cursor) -> Command:
    handle = cur.handle()
    name = cur.rest()
    only = cur.peek()
    if only is not None and only.quoted and not only.broken and cur.peek(1) is None:
        name = only.value
    name = name.strip()
    if not name:
        raise _Refusal("missing the channel's name")
    if len(name) > MAX_NAME_LEN:
        raise _Refusal(f"the name is longer than {MAX_NAME_LEN} characters")
    return Command("newchannel", handle=handle, text=name)


def _p_mirror(cur: _Cursor) -> Command:
    handle = cur.handle()
    if cur.at_end():
        return Command("mirror", handle=handle)
    first = cur.take()
    assert first is not None
    word = first.value.lower()
    if word == "create":
        target = cur.take()
        if target is None or target.value.lower() != "matrix":
            raise _Refusal(
                "only Matrix mirror rooms can be created by the bot: /mirror <handle> create matrix"
            )
        cur.no_more("the platform")
        return Command("mirror", handle=handle, text="create matrix")
    kind, _, chat = first.value.partition(":")
    if kind.lower() not in ("telegram", "matrix") or not chat:
        raise _Refusal(
            f"expected create matrix, telegram:<chat id> or matrix:<room id>, not '{_show(first.value)}'"
        )
    if kind.lower() == "telegram" and _TELEGRAM_CHAT_RE.fullmatch(chat) is None:
        raise _Refusal(f"'{_show(chat)}' is not a Telegram chat id (a number like -1001234567890)")
    if kind.lower() == "matrix" and _MATRIX_ROOM_RE.fullmatch(chat) is None:
        raise _Refusal(f"'{_show(chat)}' is not a Matrix room id (like !abcdef:example.org)")
    cur.no_more("the mirror room")
    return Command("mirror", handle=handle, text=f"{kind.lower()}:{chat}")


def _p_describe(cur: _Cursor) -> Command:
    handle = cur.handle()
    text = cur.rest()
    if not text.strip():
        raise _Refusal("missing the description")
    if len(text.strip()) > MAX_DESCRIPTION_LEN:
        raise _Refusal(f"the description is longer than {MAX_DESCRIPTION_LEN} characters")
    return Command("describe", handle=handle, text=text)


def _p_post(cur: _Cursor) -> Command:
    handle = cur.handle()
    return Command("post", handle=handle, text=cur.rest())


def _p_poll(cur: _Cursor) -> Command:
    handle = cur.handle()
    return _poll_body(cur, handle)


def _p_schedule(cur: _Cursor) -> Command:
    handle = cur.handle()
    when = _take_when(cur, "the time")
    nxt = cur.peek()
    if nxt is not None and not nxt.quoted and _is_poll_word(nxt.value):
        cur.take()
        again = cur.peek()
        if again is not None and not again.quoted and again.value.lower() == handle:
            cur.take()
        return Command("schedule", handle=handle, when=when, sub=_poll_body(cur, handle))
    return Command("schedule", handle=handle, when=when, text=cur.rest())


def _is_poll_word(value: str) -> bool:
    if value[:1] not in ("/", "!"):
        return False
    return value[1:].split("@", 1)[0].lower() == "poll"


def _p_every(cur: _Cursor) -> Command:
    handle = cur.handle()
    spec = _take_recurrence(cur)
    text = cur.rest()
    if not text.strip():
        raise _Refusal("missing the text to post")
    return Command("every", handle=handle, spec=spec, text=text)


def _p_edit(cur: _Cursor) -> Command:
    post_id = cur.post_id()
    text = cur.rest()
    if not text.strip():
        raise _Refusal("missing the new text")
    return Command("edit", post_id=post_id, text=text)


def _p_cancel(cur: _Cursor) -> Command:
    tok = cur.peek()
    if tok is not None and not tok.quoted and _RECURRING_RE.fullmatch(tok.value):
        cur.take()
        cur.no_more("the recurring post id")
        return Command("cancel", code=tok.value.lower())
    post_id = cur.post_id()
    cur.no_more("the post id")
    return Command("cancel", post_id=post_id)


def _p_removeadmin(cur: _Cursor) -> Command:
    handle = cur.handle()
    tok = cur.take()
    if tok is None:
        raise _Refusal("missing the admin number (see /admins)")
    m = _NUMBER_RE.fullmatch(tok.value)
    if m is None or int(m.group(1)) < 1:
        raise _Refusal(f"{_show(tok.value)!r} is not an admin number (see /admins)")
    cur.no_more("the admin number")
    return Command("removeadmin", handle=handle, numbers=(int(m.group(1)),))


_PARSERS: dict[str, Callable[[_Cursor], Command]] = {
    "start": _p_start,
    "help": _p_help,
    "channels": _p_channels,
    "info": _p_handle_only("info"),
    "follow": _p_handle_only("follow"),
    "unfollow": _p_handle_only("unfollow"),
    "mute": _p_handle_only("mute"),
    "unmute": _p_handle_only("unmute"),
    "following": _p_nothing("following"),
    "vote": _p_vote,
    "results": _p_post_id_only("results"),
    "forgetme": _p_nothing("forgetme"),
    "accept": _p_accept,
    "newchannel": _p_newchannel,
    "describe": _p_describe,
    "post": _p_post,
    "poll": _p_poll,
    "schedule": _p_schedule,
    "every": _p_every,
    "scheduled": _p_handle_only("scheduled"),
    "cancel": _p_cancel,
    "edit": _p_edit,
    "delete": _p_post_id_only("delete"),
    "stats": _p_handle_only("stats"),
    "admins": _p_handle_only("admins"),
    "invite-admin": _p_handle_only("invite-admin"),
    "removeadmin": _p_removeadmin,
    "mirror": _p_mirror,
    "deletechannel": _p_handle_only("deletechannel"),
}


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
    if start >= len(text) or text[start] not in "/!":
        return None
    end = start + 1
    while end < len(text) and not text[end].isspace():
        end += 1
    typed = text[start + 1 : end]
    name = canonical_name(typed)
    if name is None:
        shown = _show(typed.split("@", 1)[0], 30)
        if not shown:
            return CommandError("Empty command — send /help for the list", "")
        return CommandError(f"Unknown command /{shown} — send /help for the list", "")
    cur = _Cursor(text, _tokenize(text, end), end)
    try:
        return _PARSERS[name](cur)
    except _Refusal as refusal:
        message = str(refusal)
        return CommandError(message[:1].upper() + message[1:], COMMANDS[name].usage)


def help_text(audiences: Collection[Audience]) -> str:
    """The commands someone with these audiences may use, one `usage — summary` per line."""
    return "\n".join(
        f"{spec.usage} — {spec.summary}" for spec in COMMANDS.values() if spec.audience in audiences
    )


__all__ = [
    "COMMANDS",
    "MAX_DESCRIPTION_LEN",
    "MAX_NAME_LEN",
    "MAX_OPTION_LEN",
    "MAX_POLL_OPTIONS",
    "MAX_QUERY_LEN",
    "MAX_QUESTION_LEN",
    "MIN_POLL_OPTIONS",
    "Audience",
    "Command",
    "CommandError",
    "CommandSpec",
    "canonical_name",
    "help_text",
    "parse_command",
]
