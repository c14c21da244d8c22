"""Tokens, the cursor that reads them, and the shapes shared by several commands.

Pure syntax, no I/O; the rules are in the docstring of `bridge.commands`. A parser raises
`Malformed` with a one-line message; `parse_command` turns it into a `CommandError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.i18n import _
from bridge.when import UNIT_MINUTES, WEEKDAY_INDEX

_HANDLE_RE = re.compile(r"[a-z0-9_]{3,32}")
_POST_ID_RE = re.compile(r"#?([0-9]{1,18})")
HHMM_RE = re.compile(r"[0-9]{1,2}:[0-9]{2}")
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
_DURATION_UNITS = frozenset(UNIT_MINUTES)
_WEEKDAYS = frozenset(WEEKDAY_INDEX)
_DAY_WORDS = (
    _WEEKDAYS
    | {d + "s" for d in _WEEKDAYS}
    | frozenset(["daily", "everyday", "every", "day", "weekday", "weekdays", "weekend", "weekends"])
)
_DAY_SPLIT_RE = re.compile(r"[,\-–—]")
_OPEN_QUOTES = frozenset('"“”„')
_CLOSE_QUOTES = frozenset('"“”')
#: what starts a command, on every platform
COMMAND_PREFIXES = ("/", "!")
_FLAG_PREFIXES = ("--", "—")


@dataclass(frozen=True)
class Token:
    """One token: its value (quotes removed) and its span in the original text."""

    value: str
    start: int
    end: int
    quoted: bool = False
    broken: bool = False  #: an opening quote without its closing quote


class Malformed(Exception):
    """Internal: a command is malformed; carries the one-line message."""


def tokenize(text: str, pos: int) -> list[Token]:
    """Split `text[pos:]` into tokens (see the module docstring); never raises."""
    tokens: list[Token] = []
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
                tokens.append(Token(text[i + 1 :], i, n, quoted=True, broken=True))
                return tokens
            tokens.append(Token(text[i + 1 : j], i, j + 1, quoted=True))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            tokens.append(Token(text[i:j], i, j))
            i = j


def show(value: str, limit: int = 40) -> str:
    """A user-typed value made safe for a one-line message."""
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Cursor:
    """Reads tokens of one command left to right and remembers where the last one ended."""

    def __init__(self, text: str, tokens: list[Token], pos: int) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.end = pos  #: end of the last consumed token (or of the command name)

    def peek(self, k: int = 0) -> Token | None:
        """The k-th token not yet consumed, or None."""
        j = self.i + k
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> Token | None:
        """Consume one token; an unbalanced quote is refused here."""
        tok = self.peek()
        if tok is None:
            return None
        if tok.broken:
            raise Malformed(_("unbalanced quote in {text}").format(text=show(self.text[tok.start:])))
        self.i += 1
        self.end = tok.end
        return tok

    def skip(self, count: int) -> None:
        """Consume `count` tokens already checked with `peek`."""
        for _step in range(count):
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
            raise Malformed(_("unexpected {value!r} after {what}").format(value=show(tok.value), what=what))

    def handle(self) -> str:
        """Consume a required channel handle."""
        tok = self.take()
        if tok is None:
            raise Malformed(_("missing the channel handle"))
        return valid_handle(tok.value)

    def post_id(self) -> int:
        """Consume a required post id (`12` or `#12`)."""
        tok = self.take()
        if tok is None:
            raise Malformed(_("missing the post id"))
        m = _POST_ID_RE.fullmatch(tok.value)
        if m is None or int(m.group(1)) < 1:
            raise Malformed(_("{value!r} is not a post id (like 12 or #12)").format(value=show(tok.value)))
        return int(m.group(1))


def valid_handle(value: str) -> str:
    handle = value.lower()
    if _HANDLE_RE.fullmatch(handle) is None:
        raise Malformed(_(
            "{value!r} is not a valid handle (3-32 characters of a-z, 0-9 and _)"
        ).format(value=show(value)))
    return handle


def split_when(tokens: Sequence[Token]) -> int:
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
        return v is not None and HHMM_RE.fullmatch(v) is not None

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


def take_when(cur: Cursor, what: str) -> str:
    """Consume a `<when>` and return its raw text (tokens joined by one space)."""
    count = split_when(cur.tokens[cur.i :])
    if count == 0:
        raise Malformed(_(
            "missing {what} (like: in 90m, tomorrow 09:00, 2026-12-01 09:00)"
        ).format(what=what))
    first = cur.peek()
    if first is not None and first.broken:
        cur.take()  # refuses the unbalanced quote
    parts = [cur.tokens[cur.i + k].value for k in range(count)]
    cur.skip(count)
    when = " ".join(p.strip() for p in parts).strip()
    if not when:
        raise Malformed(_("{what} is empty").format(what=what))
    return when


def _is_day_words(value: str) -> bool:
    words = [w for w in _DAY_SPLIT_RE.split(value.lower()) if w]
    return bool(words) and all(w in _DAY_WORDS for w in words)


def take_recurrence(cur: Cursor) -> str:
    """Consume a recurrence spec: one quoted token, `HH:MM`, or day words then `HH:MM`."""
    first = cur.peek()
    if first is None:
        raise Malformed(_("missing the schedule, like \"mon-fri 08:00\""))
    if first.quoted or HHMM_RE.fullmatch(first.value):
        tok = cur.take()
        assert tok is not None
        spec = tok.value.strip()
        if not spec:
            raise Malformed(_("the schedule is empty"))
        return spec
    k = 0
    while k < 4:
        tok = cur.peek(k)
        if tok is None or tok.quoted or not _is_day_words(tok.value):
            break
        k += 1
    time_tok = cur.peek(k)
    if k > 0 and time_tok is not None and not time_tok.quoted and HHMM_RE.fullmatch(time_tok.value):
        parts = [t.value for t in cur.tokens[cur.i : cur.i + k + 1]]
        cur.skip(k + 1)
        return " ".join(parts)
    tok = cur.take()
    assert tok is not None
    return tok.value


def is_flag(tok: Token) -> bool:
    return not tok.quoted and tok.value.startswith(_FLAG_PREFIXES)


def flag_name(value: str) -> str:
    for prefix in _FLAG_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix) :].lower()
    return value.lower()
