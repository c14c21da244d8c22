"""One parser per command: a `Cursor` over the tokens after the command's name -> its typed
arguments, or `Malformed` with a one-line message. Pure syntax, no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable

from bridge.commands.args import (
    AcceptArgs,
    CancelArgs,
    ChannelsArgs,
    CodesArgs,
    Command,
    DescribeArgs,
    EditArgs,
    EveryArgs,
    HelpArgs,
    HistoryArgs,
    LangArgs,
    MirrorArgs,
    NewChannelArgs,
    PollArgs,
    PostArgs,
    PriceArgs,
    QuizArgs,
    RedeemArgs,
    RefundArgs,
    RemoveAdminArgs,
    ScheduleArgs,
    StartArgs,
    StatsArgs,
    TeaserArgs,
    VoteArgs,
)
from bridge.commands.tokens import (
    COMMAND_PREFIXES,
    Cursor,
    Malformed,
    flag_name,
    is_flag,
    show,
    take_recurrence,
    take_when,
)
from bridge.i18n import _, languages

MIN_POLL_OPTIONS = 2
MAX_POLL_OPTIONS = 12
MAX_OPTION_LEN = 100
MAX_QUESTION_LEN = 300
MAX_EXPLANATION_LEN = 200  #: Telegram's limit for a quiz's explanation
MAX_QUERY_LEN = 64
MAX_NAME_LEN = 128
MAX_DESCRIPTION_LEN = 1000
MIN_STARS = 1
MAX_STARS = 10000  #: Telegram's ceiling for a subscription's price

_RECURRING_RE = re.compile(r"[rR][0-9]{1,18}")
_NUMBER_RE = re.compile(r"#?([0-9]{1,9})")
_PLATFORM_RE = re.compile(r"[a-z][a-z0-9_]{1,31}")
_OPTION_RE = re.compile(r"(?:--|—)[A-Za-z][A-Za-z-]*")
_CHARGE_ID_RE = re.compile(r"[A-Za-z0-9_:.\-]{1,128}")
MAX_CODES = 100
MAX_HISTORY = 10  #: the most earlier posts a new follower may get
MAX_CODE_DAYS = 366


def _number(value: str, least: int, most: int, digits: int | None = None) -> int | None:
    """`value` as a whole number from `least` to `most`, or None: ASCII digits only, at most
    `digits` of them (default: as many as `most` has), so `int()` never reads thousands."""
    limit = len(str(most)) if digits is None else digits
    if value.isascii() and value.isdigit() and len(value) <= limit and least <= int(value) <= most:
        return int(value)
    return None


def _take_stars(cur: Cursor, what: str) -> int:
    tok = cur.take()
    if tok is None:
        raise Malformed(_("missing {what}").format(what=what))
    stars = _number(tok.value, MIN_STARS, MAX_STARS)
    if stars is None:
        raise Malformed(_(
            "{value!r} is not a price: {MIN_STARS} to {MAX_STARS} Stars"
        ).format(value=show(tok.value), MIN_STARS=MIN_STARS, MAX_STARS=MAX_STARS))
    return stars


def _leading_options(cur: Cursor, allowed: tuple[str, ...]) -> tuple[bool, int | None]:
    """Consume the options before a post's text: `--paid`, and `--stars <n>` where allowed.
    An unquoted leading word that looks like an option but is none is refused, so a typo
    never sends a paid post to everyone. Returns (paid, stars)."""
    paid, stars = False, None
    while True:
        tok = cur.peek()
        if tok is None or tok.quoted or _OPTION_RE.fullmatch(tok.value) is None:
            return paid, stars
        flag = flag_name(tok.value)
        if flag not in allowed:
            raise Malformed(
                _(
                    "unknown option {value!r} (use {join})"
                ).format(value=show(tok.value), join=' or '.join('--' + a for a in allowed))
            )
        cur.take()
        if flag == "paid":
            paid = True
        else:
            if stars is not None:
                raise Malformed(_("--stars given twice"))
            stars = _take_stars(cur, _("the price in Stars after --stars"))
        if paid and stars is not None:
            raise Malformed(_(
                "a post is either --paid (subscribers) or --stars <n> (pay per post), not "
                "both"
            ))


def _poll_body(cur: Cursor, handle: str, *, quiz: bool = False) -> PollArgs:
    """Parse `"question" "a" "b" ... [--multi] [--closes <when>] [--paid]` up to the end; for a
    quiz, `--answer <n>` and `--explain <text>` instead of `--multi`."""
    positional: list[str] = []
    multi = paid = False
    closes: str | None = None
    answer: int | None = None
    explanation: str | None = None
    while not cur.at_end():
        tok = cur.take()
        assert tok is not None
        if is_flag(tok):
            flag = flag_name(tok.value)
            if flag == "multi" and quiz:
                raise Malformed(_("a quiz has one correct answer: --multi is for /poll"))
            if flag == "multi":
                multi = True
            elif flag == "paid":
                paid = True
            elif flag == "closes":
                if closes is not None:
                    raise Malformed(_("--closes given twice"))
                closes = take_when(cur, _("the time after --closes"))
            elif flag == "answer" and quiz:
                if answer is not None:
                    raise Malformed(_("--answer given twice"))
                answer = _take_answer(cur)
            elif flag == "explain" and quiz:
                if explanation is not None:
                    raise Malformed(_("--explain given twice"))
                explanation = _take_explanation(cur)
            elif quiz:
                raise Malformed(
                    _(
                        "unknown option {value!r} (use --answer, --explain, --closes or "
                        "--paid)"
                    ).format(value=show(tok.value))
                )
            else:
                raise Malformed(_(
                    "unknown option {value!r} (use --multi, --closes or --paid)"
                ).format(value=show(tok.value)))
        else:
            positional.append(tok.value.strip())
    question, options = _poll_parts(positional)
    if not quiz:
        return PollArgs(handle=handle, text=question, options=options, multi=multi, when=closes, paid=paid)
    if answer is None:
        raise Malformed(_("missing --answer <n>: the number of the correct option"))
    if answer > len(options):
        raise Malformed(_(
            "--answer {answer} names no option: this quiz has options 1 to {n_options}"
        ).format(answer=answer, n_options=len(options)))
    return QuizArgs(
        handle=handle,
        text=question,
        options=options,
        when=closes,
        paid=paid,
        correct=answer - 1,
        explanation=explanation or "",
    )


def _poll_parts(positional: list[str]) -> tuple[str, tuple[str, ...]]:
    """The question and the options of a poll, checked."""
    if not positional:
        raise Malformed(_("missing the question"))
    question, options = positional[0], positional[1:]
    if not question:
        raise Malformed(_("the question is empty"))
    if len(question) > MAX_QUESTION_LEN:
        raise Malformed(_(
            "the question is longer than {MAX_QUESTION_LEN} characters"
        ).format(MAX_QUESTION_LEN=MAX_QUESTION_LEN))
    if len(options) < MIN_POLL_OPTIONS:
        raise Malformed(_(
            "a poll needs at least {MIN_POLL_OPTIONS} options"
        ).format(MIN_POLL_OPTIONS=MIN_POLL_OPTIONS))
    if len(options) > MAX_POLL_OPTIONS:
        raise Malformed(_(
            "a poll has at most {MAX_POLL_OPTIONS} options, got {n_options}"
        ).format(MAX_POLL_OPTIONS=MAX_POLL_OPTIONS, n_options=len(options)))
    seen: set[str] = set()
    for number, option in enumerate(options, start=1):
        if not option:
            raise Malformed(_("option {number} is empty").format(number=number))
        if len(option) > MAX_OPTION_LEN:
            raise Malformed(_(
                "option {number} is longer than {MAX_OPTION_LEN} characters"
            ).format(number=number, MAX_OPTION_LEN=MAX_OPTION_LEN))
        key = option.casefold()
        if key in seen:
            raise Malformed(_("option {option!r} appears twice").format(option=show(option)))
        seen.add(key)
    return question, tuple(options)


def _take_answer(cur: Cursor) -> int:
    """The 1-based option number after `--answer`."""
    tok = cur.take()
    if tok is None:
        raise Malformed(_("missing the number of the correct option after --answer"))
    m = _NUMBER_RE.fullmatch(tok.value)
    if m is None or not 1 <= int(m.group(1)) <= MAX_POLL_OPTIONS:
        raise Malformed(_(
            "{value!r} is not an option number (1 to {MAX_POLL_OPTIONS}) for --answer"
        ).format(value=show(tok.value), MAX_POLL_OPTIONS=MAX_POLL_OPTIONS))
    return int(m.group(1))


def _take_explanation(cur: Cursor) -> str:
    """The one token after `--explain` (quoted when it has spaces), stripped, 1-200 characters."""
    tok = cur.take()
    if tok is None or (not tok.quoted and is_flag(tok)):
        raise Malformed(_("missing the explanation after --explain (quote it: --explain \"...\")"))
    if tok.broken:
        raise Malformed(_("the explanation's closing quote is missing"))
    text = tok.value.strip()
    if not text:
        raise Malformed(_("the explanation is empty"))
    units = len(text.encode("utf-16-le")) // 2  # Telegram counts UTF-16 code units (an emoji is 2)
    if units > MAX_EXPLANATION_LEN:
        raise Malformed(_(
            "the explanation is longer than {MAX_EXPLANATION_LEN} characters ({units})"
        ).format(MAX_EXPLANATION_LEN=MAX_EXPLANATION_LEN, units=units))
    return text


# --- one parser per command shape -------------------------------------------------------


def no_arguments(args: type[Command]) -> Callable[[Cursor], Command]:
    """The parser of a command that takes nothing (`/following`, `/forgetme`)."""

    def parse(cur: Cursor) -> Command:
        cur.no_more(f"/{args.name}")
        return args()

    return parse


def handle_only(args: Callable[[str], Command]) -> Callable[[Cursor], Command]:
    """The parser of a command that takes one channel handle (`/follow <handle>`)."""

    def parse(cur: Cursor) -> Command:
        handle = cur.handle()
        cur.no_more(_("the handle"))
        return args(handle)

    return parse


def post_id_only(args: Callable[[int], Command]) -> Callable[[Cursor], Command]:
    """The parser of a command that takes one post id (`/delete <post-id>`)."""

    def parse(cur: Cursor) -> Command:
        post_id = cur.post_id()
        cur.no_more(_("the post id"))
        return args(post_id)

    return parse


def parse_help(cur: Cursor) -> Command:
    return HelpArgs()


def parse_start(cur: Cursor) -> Command:
    if cur.at_end():
        return StartArgs()
    handle = cur.handle()
    cur.no_more(_("the handle"))
    return StartArgs(handle=handle)


def parse_channels(cur: Cursor) -> Command:
    query = cur.rest().strip()
    if len(query) > MAX_QUERY_LEN:
        raise Malformed(_(
            "the search is longer than {MAX_QUERY_LEN} characters"
        ).format(MAX_QUERY_LEN=MAX_QUERY_LEN))
    return ChannelsArgs(query=query)


def parse_vote(cur: Cursor) -> Command:
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
                raise Malformed(_("{part!r} is not an option number").format(part=show(part)))
            number = int(m.group(1))
            if not 1 <= number <= MAX_POLL_OPTIONS:
                raise Malformed(_(
                    "option numbers go from 1 to {MAX_POLL_OPTIONS}, not {number}"
                ).format(MAX_POLL_OPTIONS=MAX_POLL_OPTIONS, number=number))
            if number not in numbers:
                numbers.append(number)
    if not numbers:
        raise Malformed(_("missing the option number(s) to vote for"))
    return VoteArgs(post_id=post_id, numbers=tuple(numbers))


def parse_accept(cur: Cursor) -> Command:
    tok = cur.take()
    if tok is None or not tok.value.strip():
        raise Malformed(_("missing the invitation code"))
    cur.no_more(_("the code"))
    return AcceptArgs(code=tok.value.strip())


def parse_newchannel(cur: Cursor) -> Command:
    handle = cur.handle()
    name = cur.rest()
    only = cur.peek()
    if only is not None and only.quoted and not only.broken and cur.peek(1) is None:
        name = only.value
    name = name.strip()
    if not name:
        raise Malformed(_("missing the channel's name"))
    if len(name) > MAX_NAME_LEN:
        raise Malformed(_(
            "the name is longer than {MAX_NAME_LEN} characters"
        ).format(MAX_NAME_LEN=MAX_NAME_LEN))
    return NewChannelArgs(handle=handle, text=name)


def parse_mirror(cur: Cursor) -> Command:
    handle = cur.handle()
    if cur.at_end():
        return MirrorArgs(handle=handle)
    first = cur.take()
    assert first is not None
    if first.value.lower() == "create":
        target = cur.take()
        if target is None:
            raise Malformed(_("missing the platform whose room the bot creates: create <platform>"))
        if _PLATFORM_RE.fullmatch(target.value.lower()) is None:
            raise Malformed(_("'{value}' is not a platform name").format(value=show(target.value)))
        cur.no_more(_("the platform"))
        return MirrorArgs(handle=handle, platform=target.value.lower(), create=True)
    kind, _sep, chat = first.value.partition(":")
    if _PLATFORM_RE.fullmatch(kind.lower()) is None or not chat:
        raise Malformed(_(
            "expected <platform>:<address> or create <platform>, not '{value}'"
        ).format(value=show(first.value)))
    cur.no_more(_("the mirror room"))
    return MirrorArgs(handle=handle, platform=kind.lower(), address=chat)


def parse_describe(cur: Cursor) -> Command:
    handle = cur.handle()
    text = cur.rest()
    if not text.strip():
        raise Malformed(_("missing the description"))
    if len(text.strip()) > MAX_DESCRIPTION_LEN:
        raise Malformed(_(
            "the description is longer than {MAX_DESCRIPTION_LEN} characters"
        ).format(MAX_DESCRIPTION_LEN=MAX_DESCRIPTION_LEN))
    return DescribeArgs(handle=handle, text=text)


def parse_post(cur: Cursor) -> Command:
    handle = cur.handle()
    paid, stars = _leading_options(cur, ("paid", "stars"))
    return PostArgs(handle=handle, text=cur.rest(), paid=paid, stars=stars)


def parse_poll(cur: Cursor) -> Command:
    handle = cur.handle()
    return _poll_body(cur, handle)


def parse_quiz(cur: Cursor) -> Command:
    handle = cur.handle()
    return _poll_body(cur, handle, quiz=True)


def parse_schedule(cur: Cursor) -> Command:
    handle = cur.handle()
    when = take_when(cur, _("the time"))
    nxt = cur.peek()
    sub = _poll_word(nxt.value) if nxt is not None and not nxt.quoted else None
    if sub is not None:
        cur.take()
        again = cur.peek()
        if again is not None and not again.quoted and again.value.lower() == handle:
            cur.take()
        return ScheduleArgs(handle=handle, when=when, sub=_poll_body(cur, handle, quiz=sub == "quiz"))
    paid, _unused = _leading_options(cur, ("paid",))
    return ScheduleArgs(handle=handle, when=when, text=cur.rest(), paid=paid)


def _poll_word(value: str) -> str | None:
    """ "poll" or "quiz" when `value` is that command word (`/poll`, `!quiz@bot`), else None."""
    if not value.startswith(COMMAND_PREFIXES):
        return None
    word = value[1:].split("@", 1)[0].lower()
    return word if word in ("poll", "quiz") else None


def parse_every(cur: Cursor) -> Command:
    handle = cur.handle()
    spec = take_recurrence(cur)
    paid, _unused = _leading_options(cur, ("paid",))
    text = cur.rest()
    if not text.strip():
        raise Malformed(_("missing the text to post"))
    return EveryArgs(handle=handle, spec=spec, text=text, paid=paid)


def parse_edit(cur: Cursor) -> Command:
    post_id = cur.post_id()
    text = cur.rest()
    if not text.strip():
        raise Malformed(_("missing the new text"))
    return EditArgs(post_id=post_id, text=text)


def parse_cancel(cur: Cursor) -> Command:
    tok = cur.peek()
    if tok is not None and not tok.quoted and _RECURRING_RE.fullmatch(tok.value):
        cur.take()
        cur.no_more(_("the recurring post id"))
        return CancelArgs(code=tok.value.lower())
    post_id = cur.post_id()
    cur.no_more(_("the post id"))
    return CancelArgs(post_id=post_id)


def parse_removeadmin(cur: Cursor) -> Command:
    handle = cur.handle()
    tok = cur.take()
    if tok is None:
        raise Malformed(_("missing the admin number (see /admins)"))
    m = _NUMBER_RE.fullmatch(tok.value)
    if m is None or int(m.group(1)) < 1:
        raise Malformed(_("{value!r} is not an admin number (see /admins)").format(value=show(tok.value)))
    cur.no_more(_("the admin number"))
    return RemoveAdminArgs(handle=handle, numbers=(int(m.group(1)),))


def parse_price(cur: Cursor) -> Command:
    handle = cur.handle()
    tok = cur.take()
    if tok is None:
        raise Malformed(_("missing the price in Stars (or off)"))
    if tok.value.lower() == "off":
        cur.no_more("off")
        return PriceArgs(handle=handle, stars=None)
    stars = _number(tok.value, MIN_STARS, MAX_STARS)
    if stars is None:
        raise Malformed(_(
            "{value!r} is not a price: {MIN_STARS} to {MAX_STARS} Stars, or off"
        ).format(value=show(tok.value), MIN_STARS=MIN_STARS, MAX_STARS=MAX_STARS))
    cur.no_more(_("the price"))
    return PriceArgs(handle=handle, stars=stars)


def parse_teaser(cur: Cursor) -> Command:
    handle = cur.handle()
    tok = cur.take()
    if tok is None or tok.value.lower() not in ("on", "off"):
        raise Malformed(_("say on or off") if tok is None else _(
            "{value!r} is neither on nor off"
        ).format(value=show(tok.value)))
    cur.no_more(tok.value.lower())
    return TeaserArgs(handle=handle, on=tok.value.lower() == "on")


def parse_refund(cur: Cursor) -> Command:
    handle = cur.handle()
    tok = cur.take()
    if tok is None:
        raise Malformed(_("missing the charge id (as /revenue or Telegram's receipt shows it)"))
    if _CHARGE_ID_RE.fullmatch(tok.value) is None:
        raise Malformed(_("{value!r} is not a charge id").format(value=show(tok.value)))
    cur.no_more(_("the charge id"))
    return RefundArgs(handle=handle, charge_id=tok.value)


def _small_number(cur: Cursor, what: str, most: int) -> int:
    tok = cur.take()
    if tok is None:
        raise Malformed(_("missing {what}").format(what=what))
    number = _number(tok.value, 1, most, digits=4)
    if number is None:
        raise Malformed(_(
            "{value!r} is not {what} (1 to {most})"
        ).format(value=show(tok.value), what=what, most=most))
    return number


def parse_codes(cur: Cursor) -> Command:
    handle = cur.handle()
    count = _small_number(cur, _("the number of codes"), MAX_CODES)
    days = _small_number(cur, _("the number of days"), MAX_CODE_DAYS)
    cur.no_more(_("the number of days"))
    return CodesArgs(handle=handle, count=count, days=days)


def parse_redeem(cur: Cursor) -> Command:
    tok = cur.take()
    if tok is None or not tok.value.strip():
        raise Malformed(_("missing the access code"))
    cur.no_more(_("the code"))
    return RedeemArgs(code=tok.value.strip())


def parse_stats(cur: Cursor) -> Command:
    handle = cur.handle()
    tok = cur.take()
    if tok is not None and tok.value.lower() != "chart":
        raise Malformed(_("{value!r} is not chart").format(value=show(tok.value)))
    cur.no_more("chart" if tok is not None else _("the handle"))
    return StatsArgs(handle=handle, chart=tok is not None)


def parse_history(cur: Cursor) -> Command:
    handle = cur.handle()
    tok = cur.take()
    if tok is None:
        raise Malformed(_(
            "missing the number of earlier posts (0 to {MAX_HISTORY})"
        ).format(MAX_HISTORY=MAX_HISTORY))
    n = _number(tok.value, 0, MAX_HISTORY)
    if n is None:
        raise Malformed(_(
            "{value!r} is not a number from 0 to {MAX_HISTORY}"
        ).format(value=show(tok.value), MAX_HISTORY=MAX_HISTORY))
    cur.no_more(_("the number"))
    return HistoryArgs(handle=handle, n=n)


def parse_lang(cur: Cursor) -> Command:
    if cur.at_end():
        return LangArgs()
    tok = cur.take()
    assert tok is not None
    language = tok.value.lower()
    if language not in languages():
        raise Malformed(
            _("{value!r} is not a language this bot speaks (choose {choices})").format(
                value=show(tok.value), choices=", ".join(languages())
            )
        )
    cur.no_more(_("the language"))
    return LangArgs(language=language)
