"""The command grammar: every command's good and malformed forms, tokenizing, properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bridge.commands import (
    COMMANDS,
    MAX_POLL_OPTIONS,
    Audience,
    Command,
    CommandError,
    canonical_name,
    help_text,
    parse_command,
)

# --- every command with good input -------------------------------------------------------

GOOD: list[tuple[str, Command]] = [
    ("/start", Command("start")),
    ("/start news", Command("start", handle="news")),
    ("/help", Command("help")),
    ("/help me please", Command("help")),
    ("/channels", Command("channels")),
    ("/channels  local  news ", Command("channels", query="local  news")),
    ("/info News", Command("info", handle="news")),
    ("/follow news", Command("follow", handle="news")),
    ("/unfollow news", Command("unfollow", handle="news")),
    ("/mute news", Command("mute", handle="news")),
    ("/unmute news", Command("unmute", handle="news")),
    ("/following", Command("following")),
    ("/vote 12 2", Command("vote", post_id=12, numbers=(2,))),
    ("/vote #12 1 3", Command("vote", post_id=12, numbers=(1, 3))),
    ("/vote 12 1,3 3", Command("vote", post_id=12, numbers=(1, 3))),
    ("/results #7", Command("results", post_id=7)),
    ("/forgetme", Command("forgetme")),
    ("/accept Ab3-xyz", Command("accept", code="Ab3-xyz")),
    ("/newchannel news Daily  News", Command("newchannel", handle="news", text="Daily  News")),
    ('/newchannel news "Daily News"', Command("newchannel", handle="news", text="Daily News")),
    (
        "/describe news What we do.\nEvery day.",
        Command("describe", handle="news", text="What we do.\nEvery day."),
    ),
    ("/post news", Command("post", handle="news")),
    ("/post news Hello", Command("post", handle="news", text="Hello")),
    (
        '/poll news "Lunch?" "pizza" "sushi bar"',
        Command("poll", handle="news", text="Lunch?", options=("pizza", "sushi bar")),
    ),
    (
        "/poll news “Where?” “here” “there” --multi --closes in 2h",
        Command(
            "poll",
            handle="news",
            text="Where?",
            options=("here", "there"),
            multi=True,
            when="in 2h",
        ),
    ),
    (
        '/poll news --closes "2026-12-01 09:00" Q a b',
        Command("poll", handle="news", text="Q", options=("a", "b"), when="2026-12-01 09:00"),
    ),
    (
        "/schedule news tomorrow 09:00 Good   morning\nall",
        Command("schedule", handle="news", when="tomorrow 09:00", text="Good   morning\nall"),
    ),
    (
        "/schedule news in 90m",
        Command("schedule", handle="news", when="in 90m"),
    ),
    (
        '/schedule news 2026-12-01 09:00 /poll "Q?" "a" "b" --multi',
        Command(
            "schedule",
            handle="news",
            when="2026-12-01 09:00",
            sub=Command("poll", handle="news", text="Q?", options=("a", "b"), multi=True),
        ),
    ),
    (
        '/schedule news in 1 day /poll news "Q?" "a" "b" --closes in 3d',
        Command(
            "schedule",
            handle="news",
            when="in 1 day",
            sub=Command("poll", handle="news", text="Q?", options=("a", "b"), when="in 3d"),
        ),
    ),
    (
        '/every news "mon-fri 08:00" Good morning',
        Command("every", handle="news", spec="mon-fri 08:00", text="Good morning"),
    ),
    ("/every news daily 09:00 Hi", Command("every", handle="news", spec="daily 09:00", text="Hi")),
    (
        "/every news sat, sun 10:30 Weekend!",
        Command("every", handle="news", spec="sat, sun 10:30", text="Weekend!"),
    ),
    ("/every news 07:15 Wake up", Command("every", handle="news", spec="07:15", text="Wake up")),
    ("/scheduled news", Command("scheduled", handle="news")),
    ("/cancel #3", Command("cancel", post_id=3)),
    ("/cancel R12", Command("cancel", code="r12")),
    ("/edit 3 New  text\n", Command("edit", post_id=3, text="New  text\n")),
    ("/delete 3", Command("delete", post_id=3)),
    ("/stats news", Command("stats", handle="news")),
    ("/admins news", Command("admins", handle="news")),
    ("/invite-admin news", Command("invite-admin", handle="news")),
    ("/removeadmin news 2", Command("removeadmin", handle="news", numbers=(2,))),
    ("/mirror news", Command("mirror", handle="news")),
    ("/deletechannel news", Command("deletechannel", handle="news")),
    ("/price news 250", Command("price", handle="news", stars=250)),
    ("/price News 10000", Command("price", handle="news", stars=10000)),
    ("/price news OFF", Command("price", handle="news", stars=None)),
    ("/revenue news", Command("revenue", handle="news")),
    ("/paysupport", Command("paysupport")),
    ("/post news --paid Members only", Command("post", handle="news", text="Members only", paid=True)),
    ("/post news —stars 25 Look", Command("post", handle="news", text="Look", stars=25)),
    ("/post news --- not an option", Command("post", handle="news", text="--- not an option")),
    ('/post news "--paid" is text', Command("post", handle="news", text='"--paid" is text')),
    (
        '/poll news "Q?" "a" "b" --paid',
        Command("poll", handle="news", text="Q?", options=("a", "b"), paid=True),
    ),
    (
        "/schedule news in 2h --paid Later, for members",
        Command("schedule", handle="news", when="in 2h", text="Later, for members", paid=True),
    ),
    (
        "/every news 09:00 --paid Daily members note",
        Command("every", handle="news", spec="09:00", text="Daily members note", paid=True),
    ),
    ("/subscribe News", Command("subscribe", handle="news")),
    ("/unsubscribe news", Command("unsubscribe", handle="news")),
    ("/teaser news off", Command("teaser", handle="news", on=False)),
    ("/teaser news ON", Command("teaser", handle="news", on=True)),
    ("/refund news stxABC_123-x", Command("refund", handle="news", charge_id="stxABC_123-x")),
    ("/codes news 10 30", Command("codes", handle="news", count=10, days=30)),
    ("/redeem  ABCD-EFGH ", Command("redeem", code="ABCD-EFGH")),
    ("/privacy", Command("privacy")),
    ("/lang", Command("lang")),
    ("/lang fr", Command("lang", language="fr")),
    ("/LANG EN", Command("lang", language="en")),
    (
        '/quiz news "Capital of France?" Lyon Paris "Nice" --answer 2 --explain "Since 508."',
        Command(
            "quiz",
            handle="news",
            text="Capital of France?",
            options=("Lyon", "Paris", "Nice"),
            correct=1,
            explanation="Since 508.",
        ),
    ),
    (
        '/quiz news --answer #1 --paid "Q?" a b --closes in 2h',
        Command("quiz", handle="news", text="Q?", options=("a", "b"), correct=0, when="in 2h", paid=True),
    ),
    (
        '/schedule news in 1h /quiz news "Q?" "a" "b" --answer 2',
        Command(
            "schedule",
            handle="news",
            when="in 1h",
            sub=Command("quiz", handle="news", text="Q?", options=("a", "b"), correct=1),
        ),
    ),
    ("/history news 3", Command("history", handle="news", n=3)),
    ("/history News 0", Command("history", handle="news", n=0)),
    ("/stats news chart", Command("stats", handle="news", chart=True)),
    ("/stats news CHART", Command("stats", handle="news", chart=True)),
]


@pytest.mark.parametrize(("text", "expected"), GOOD, ids=[t for t, _ in GOOD])
def test_well_formed_command_parses_to_its_fields(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


def test_every_command_has_a_good_example() -> None:
    assert {cmd.name for _, cmd in GOOD} == set(COMMANDS)


# --- every command malformed gets its usage ----------------------------------------------

BAD: list[tuple[str, str, str]] = [
    # (text, command, a word the message must contain)
    ("/start ab", "start", "handle"),
    ("/start news extra", "start", "unexpected"),
    ("/info", "info", "handle"),
    ("/info bad-handle", "info", "handle"),
    ("/follow", "follow", "handle"),
    ("/follow x", "follow", "handle"),
    ("/follow news sports", "follow", "unexpected"),
    ("/follow " + "a" * 33, "follow", "handle"),
    ("/unfollow café", "unfollow", "handle"),
    ("/mute", "mute", "handle"),
    ("/unmute", "unmute", "handle"),
    ("/following now", "following", "unexpected"),
    ("/vote", "vote", "post id"),
    ("/vote 12", "vote", "option"),
    ("/vote twelve 1", "vote", "post id"),
    ("/vote 12 one", "vote", "option"),
    ("/vote 12 0", "vote", "option"),
    (f"/vote 12 {MAX_POLL_OPTIONS + 1}", "vote", "option"),
    ("/results", "results", "post id"),
    ("/results 0", "results", "post id"),
    ("/results #", "results", "post id"),
    ("/forgetme please", "forgetme", "unexpected"),
    ("/accept", "accept", "code"),
    ("/accept a b", "accept", "unexpected"),
    ("/newchannel", "newchannel", "handle"),
    ("/newchannel news", "newchannel", "name"),
    ("/newchannel news  \n ", "newchannel", "name"),
    ("/describe news", "describe", "description"),
    ("/describe NO!", "describe", "handle"),
    ("/post", "post", "handle"),
    ("/post n", "post", "handle"),
    ("/poll news", "poll", "question"),
    ('/poll news "Q?" "only one"', "poll", "at least"),
    ('/poll news "Q?" ' + " ".join(f'"o{i}"' for i in range(13)), "poll", "at most"),
    ('/poll news "Q?" "a" ""', "poll", "empty"),
    ('/poll news "Q?" "a" "  "', "poll", "empty"),
    ('/poll news "Q?" "a" "A"', "poll", "twice"),
    ('/poll news "" "a" "b"', "poll", "question"),
    ('/poll news "Q?" "a" "b" --multiple', "poll", "unknown option"),
    ('/poll news "Q?" "a" "b" --closes', "poll", "--closes"),
    ('/poll news "Q?" "a" "b" --closes in 1h --closes in 2h', "poll", "twice"),
    ('/poll news "Q?" "a" "b', "poll", "quote"),
    ('/poll news "' + "q" * 301 + '" a b', "poll", "300"),
    ('/poll news "Q?" a "' + "o" * 101 + '"', "poll", "100"),
    ("/schedule", "schedule", "handle"),
    ("/schedule news", "schedule", "time"),
    ('/schedule news "tomorrow 09:00', "schedule", "quote"),
    ('/schedule news in 1h /poll "Q?" "a"', "schedule", "at least"),
    ("/every news", "every", "schedule"),
    ('/every news "mon-fri 08:00"', "every", "text"),
    ("/every news daily 09:00", "every", "text"),
    ("/scheduled", "scheduled", "handle"),
    ("/cancel", "cancel", "post id"),
    ("/cancel abc", "cancel", "post id"),
    ("/cancel 3 4", "cancel", "unexpected"),
    ("/cancel r", "cancel", "post id"),
    ("/cancel r3 r4", "cancel", "unexpected"),
    ("/edit", "edit", "post id"),
    ("/edit 3", "edit", "text"),
    ("/edit x hello", "edit", "post id"),
    ("/delete", "delete", "post id"),
    ("/delete -3", "delete", "post id"),
    ("/stats", "stats", "handle"),
    ("/admins", "admins", "handle"),
    ("/invite-admin", "invite-admin", "handle"),
    ("/removeadmin news", "removeadmin", "admin number"),
    ("/removeadmin news two", "removeadmin", "admin number"),
    ("/removeadmin news 0", "removeadmin", "admin number"),
    ("/mirror", "mirror", "handle"),
    ("/deletechannel", "deletechannel", "handle"),
    ("/price", "price", "handle"),
    ("/price news", "price", "price"),
    ("/price news 0", "price", "1 to 10000"),
    ("/price news 10001", "price", "1 to 10000"),
    ("/price news -5", "price", "1 to 10000"),
    ("/price news 2.5", "price", "1 to 10000"),
    ("/price news ５", "price", "1 to 10000"),
    ("/price news 5 stars", "price", "unexpected"),
    ("/post news --piad oops", "post", "unknown option"),
    ("/post news --stars", "post", "price"),
    ("/post news --stars 0 x", "post", "1 to 10000"),
    ("/post news --paid --stars 5 x", "post", "not both"),
    ("/every news 09:00 --stars 5 x", "every", "unknown option"),
    ('/poll news "Q?" "a" "b" --free', "poll", "unknown option"),
    ("/subscribe", "subscribe", "handle"),
    ("/unsubscribe", "unsubscribe", "handle"),
    ("/teaser news", "teaser", "on or off"),
    ("/teaser news maybe", "teaser", "neither"),
    ("/refund news", "refund", "charge id"),
    ("/refund news a<b", "refund", "not a charge id"),
    ("/codes news", "codes", "number of codes"),
    ("/codes news 0 30", "codes", "1 to 100"),
    ("/codes news 5 400", "codes", "1 to 366"),
    ("/codes news 5 30 extra", "codes", "unexpected"),
    ("/redeem", "redeem", "access code"),
    ("/redeem a b", "redeem", "unexpected"),
    ("/revenue", "revenue", "handle"),
    ("/paysupport now", "paysupport", "unexpected"),
    ("/privacy please", "privacy", "unexpected"),
    ("/lang de", "lang", "language"),
    ("/lang fr en", "lang", "unexpected"),
    ('/quiz news "Q?" "a" "b"', "quiz", "--answer"),
    ('/quiz news "Q?" "a" "b" --answer', "quiz", "--answer"),
    ('/quiz news "Q?" "a" "b" --answer 3', "quiz", "options 1 to 2"),
    ('/quiz news "Q?" "a" "b" --answer 0', "quiz", "option number"),
    ('/quiz news "Q?" "a" "b" --answer two', "quiz", "option number"),
    ('/quiz news "Q?" "a" "b" --answer 1 --answer 2', "quiz", "twice"),
    ('/quiz news "Q?" "a" "b" --answer 1 --multi', "quiz", "one correct answer"),
    ('/quiz news "Q?" "a" "b" --answer 1 --explain', "quiz", "explanation"),
    ('/quiz news "Q?" "a" "b" --answer 1 --explain --paid', "quiz", "explanation"),
    ('/quiz news "Q?" "a" "b" --answer 1 --explain "  "', "quiz", "empty"),
    ('/quiz news "Q?" "a" "b" --answer 1 --explain "' + "e" * 201 + '"', "quiz", "200"),
    ('/quiz news "Q?" "a" "b" --answer 1 --explain "' + "🎉" * 101 + '"', "quiz", "200"),
    ('/quiz news "Q?" "a" "b" --answer 1 --explain "unclosed', "quiz", "quote"),
    ('/quiz news "Q?" "a" --answer 1', "quiz", "at least"),
    ('/quiz news "Q?" "a" "b" --answer 1 --explain x --explain y', "quiz", "twice"),
    ('/quiz news "Q?" "a" "b" --answr 1', "quiz", "unknown option"),
    ('/poll news "Q?" "a" "b" --answer 1', "poll", "unknown option"),
    ('/schedule news in 1h /quiz "Q?" "a" "b" --answer 5', "schedule", "options 1 to 2"),
    ("/history news", "history", "number of earlier posts"),
    ("/history news 11", "history", "0 to 10"),
    ("/history news 3 more", "history", "unexpected"),
    ("/stats news pie", "stats", "not chart"),
    ("/stats news chart now", "stats", "unexpected"),
]


@pytest.mark.parametrize(
    ("text", "name", "word"),
    BAD,
    ids=[b[0][:40] for b in BAD],
)
def test_malformed_command_gets_its_usage(text: str, name: str, word: str) -> None:
    result = parse_command(text)
    assert isinstance(result, CommandError), result
    assert result.usage == COMMANDS[name].usage
    assert word.lower() in result.message.lower()
    assert "\n" not in str(result)
    assert str(result) == f"{result.message}. Usage: {result.usage}"


def test_every_command_has_a_malformed_example() -> None:
    accept_anything = {"help", "channels"}  # no arguments required, free text ignored/kept
    malformed = {name for _, name, _ in BAD} | accept_anything
    assert malformed == set(COMMANDS)


def test_unbalanced_quote_in_free_text_is_kept_as_typed() -> None:
    assert parse_command('/post news He said "hi') == Command("post", handle="news", text='He said "hi')
    assert parse_command('/channels "unbalanced') == Command("channels", query='"unbalanced')


# --- names, prefixes, aliases ----------------------------------------------------------


def test_unknown_command_points_to_help_without_usage() -> None:
    result = parse_command("/frobnicate news")
    assert result == CommandError("Unknown command /frobnicate — send /help for the list", "")
    assert str(result) == "Unknown command /frobnicate — send /help for the list"


def test_plain_text_is_not_a_command() -> None:
    assert parse_command("hello /follow news") is None
    assert parse_command("") is None
    assert parse_command("   \n ") is None


def test_bang_prefix_and_leading_whitespace_work() -> None:
    assert parse_command("  !follow news") == Command("follow", handle="news")
    assert parse_command("!VOTE #4 2") == Command("vote", post_id=4, numbers=(2,))


def test_bot_suffix_is_stripped() -> None:
    assert parse_command("/start@SomeBot news") == Command("start", handle="news")
    assert parse_command("/help@channel_bridge_bot") == Command("help")


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("invite-admin", "invite-admin"),
        ("inviteadmin", "invite-admin"),
        ("invite_admin", "invite-admin"),
        ("Invite_Admin@Bot", "invite-admin"),
        ("removeadmin", "removeadmin"),
        ("remove-admin", "removeadmin"),
        ("remove_admin", "removeadmin"),
        ("newchannel", "newchannel"),
        ("new-channel", "newchannel"),
        ("new_channel", "newchannel"),
        ("deletechannel", "deletechannel"),
        ("delete-channel", "deletechannel"),
        ("delete_channel", "deletechannel"),
        ("FOLLOW", "follow"),
    ],
)
def test_command_name_aliases_map_to_canonical_name(typed: str, canonical: str) -> None:
    assert canonical_name(typed) == canonical
    result = parse_command(f"/{typed} news")
    assert isinstance(result, Command | CommandError)
    assert not isinstance(result, CommandError) or result.usage == COMMANDS[canonical].usage


def test_handles_are_lower_cased() -> None:
    assert parse_command("/follow My_News_2") == Command("follow", handle="my_news_2")


# --- tokenizing ---------------------------------------------------------------------------


def test_post_text_remainder_is_kept_exactly() -> None:
    result = parse_command("/post news Hello   *world*\nline 2")
    assert result == Command("post", handle="news", text="Hello   *world*\nline 2")


def test_quotes_inside_free_text_are_kept() -> None:
    result = parse_command('/post news "Quoted" start\n\n  and “curly” ones  ')
    assert isinstance(result, Command)
    assert result.text == '"Quoted" start\n\n  and “curly” ones  '


def test_text_may_follow_a_newline_directly() -> None:
    assert parse_command("/post news\nFirst line\nSecond") == Command(
        "post", handle="news", text="First line\nSecond"
    )


def test_quoted_poll_parts_keep_inner_spaces_and_curly_quotes_group() -> None:
    result = parse_command('/poll news “Best day?” "Monday morning" „Friday night“')
    assert result == Command(
        "poll",
        handle="news",
        text="Best day?",
        options=("Monday morning", "Friday night"),
    )


def test_quoted_flag_is_an_option_not_a_flag() -> None:
    result = parse_command('/poll news Q "--multi" b')
    assert result == Command("poll", handle="news", text="Q", options=("--multi", "b"))


def test_em_dash_flag_from_phone_autocorrect_is_accepted() -> None:
    result = parse_command("/poll news Q a b —multi")
    assert isinstance(result, Command)
    assert result.multi


@pytest.mark.parametrize(
    ("text", "when", "rest"),
    [
        ("in 90m Hi", "in 90m", "Hi"),
        ("in 90 min Hi", "in 90 min", "Hi"),
        ("in 2 hours Hi", "in 2 hours", "Hi"),
        ("in 1h30m Hi", "in 1h30m", "Hi"),
        ("in 3d Hi", "in 3d", "Hi"),
        ("tomorrow 09:00 Hi", "tomorrow 09:00", "Hi"),
        ("Friday 18:30 Hi", "Friday 18:30", "Hi"),
        ("sat 8:05 Hi", "sat 8:05", "Hi"),
        ("2026-12-01 09:00 Hi", "2026-12-01 09:00", "Hi"),
        ("2026-12-01 09:00:30 Hi", "2026-12-01 09:00:30", "Hi"),
        ("2026-12-01 09:00 Z Hi", "2026-12-01 09:00 Z", "Hi"),
        ("2026-12-01 09:00 UTC Hi", "2026-12-01 09:00 UTC", "Hi"),
        ("2026-12-01 09:00 +01:00 Hi", "2026-12-01 09:00 +01:00", "Hi"),
        ("2026-12-01 09:00 Europe/Paris Hi", "2026-12-01 09:00 Europe/Paris", "Hi"),
        ("2026-12-01T09:00 Hi", "2026-12-01T09:00", "Hi"),
        ("2026-12-01T09:00:00+02:00 Hi", "2026-12-01T09:00:00+02:00", "Hi"),
        ("2026-12-01T09:00Z Hi", "2026-12-01T09:00Z", "Hi"),
        ("2026-12-01T09:00 America/New_York Hi", "2026-12-01T09:00 America/New_York", "Hi"),
        ("18:00 Hi", "18:00", "Hi"),
        ('"next friday at noon" Hi', "next friday at noon", "Hi"),
        ("soonish Hi there", "soonish", "Hi there"),
        ("tomorrow Hi", "tomorrow", "Hi"),
        ("in 5 Hi", "in", "5 Hi"),
    ],
)
def test_when_is_split_off_by_syntax(text: str, when: str, rest: str) -> None:
    result = parse_command(f"/schedule news {text}")
    assert result == Command("schedule", handle="news", when=when, text=rest)


def test_schedule_with_media_caption_may_have_no_text() -> None:
    assert parse_command("/schedule news tomorrow 08:00") == Command(
        "schedule", handle="news", when="tomorrow 08:00"
    )


def test_scheduled_poll_does_not_swallow_a_different_first_word() -> None:
    result = parse_command("/schedule news in 1h /poll sports a b")
    assert isinstance(result, Command)
    assert result.sub == Command("poll", handle="news", text="sports", options=("a", "b"))


# --- help -----------------------------------------------------------------------------------


def test_follower_help_lists_only_follower_commands() -> None:
    text = help_text([Audience.FOLLOWER])
    lines = text.splitlines()
    assert "/follow <handle> — receive a channel's posts" in lines
    assert "/accept <code> — become an admin with an invitation code" in lines
    assert not any(line.startswith(("/post ", "/newchannel ")) for line in lines)
    assert len(lines) == sum(1 for s in COMMANDS.values() if s.audience is Audience.FOLLOWER)


def test_admin_and_operator_help_add_their_commands_in_order() -> None:
    lines = help_text([Audience.FOLLOWER, Audience.ADMIN, Audience.OPERATOR]).splitlines()
    assert len(lines) == len(COMMANDS)
    assert [line.split(" — ")[0] for line in lines] == [s.usage for s in COMMANDS.values()]
    admin_only = help_text({Audience.ADMIN}).splitlines()
    assert any(line.startswith("/post <handle>") for line in admin_only)
    assert not any(line.startswith("/newchannel") for line in admin_only)


def test_newchannel_is_for_operators_and_accept_for_anyone() -> None:
    assert COMMANDS["newchannel"].audience is Audience.OPERATOR
    assert COMMANDS["accept"].audience is Audience.FOLLOWER
    assert COMMANDS["deletechannel"].audience is Audience.ADMIN


# --- properties -----------------------------------------------------------------------------

_COMMAND_WORDS = st.sampled_from([*COMMANDS, "invite_admin", "remove-admin", "x", "", "poll@bot", "START"])
_NASTY = st.text(alphabet=list(' \n\t"“”„#,-—:/!@0123456789abcZT')) | st.text()


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_parse_command_never_raises_on_any_text(text: str) -> None:
    result = parse_command(text)
    assert result is None or isinstance(result, Command | CommandError)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from("/!"), _COMMAND_WORDS, _NASTY)
def test_parse_command_never_raises_on_command_like_text(prefix: str, word: str, tail: str) -> None:
    result = parse_command(f"{prefix}{word} {tail}")
    assert isinstance(result, Command | CommandError)
    if isinstance(result, CommandError):
        assert "\n" not in str(result)
        assert result.message


_handles = st.from_regex(r"[a-z0-9_]{3,32}", fullmatch=True)
_post_ids = st.integers(min_value=1, max_value=10**12)
_free_text = st.text(min_size=1).filter(lambda t: t.strip() != "" and not t[0].isspace())
_quotable = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters='"“”„'),
    min_size=1,
).filter(lambda t: t.strip() != "")
_WHENS = [
    ("in 90m", "in 90m"),
    ("in 2 h", "in 2 h"),
    ("tomorrow 09:00", "tomorrow 09:00"),
    ("monday 08:30", "monday 08:30"),
    ("18:00", "18:00"),
    ("2026-12-01 09:00", "2026-12-01 09:00"),
    ("2026-12-01 09:00 Europe/Paris", "2026-12-01 09:00 Europe/Paris"),
    ("2026-12-01T09:00+01:00", "2026-12-01T09:00+01:00"),
    ('"next week"', "next week"),
]
_AMBIGUOUS_FIRST_WORD = re.compile(r'(?i)(z|utc|gmt|[+-].*|.*/.*|[0-9].*|[!/]poll.*|["“”„].*)', re.DOTALL)


def _first_word_is_plain(text: str) -> bool:
    words = text.split()
    return bool(words) and _AMBIGUOUS_FIRST_WORD.fullmatch(words[0]) is None


def _pid(post_id: int, hashed: bool) -> str:
    return f"#{post_id}" if hashed else str(post_id)


@settings(max_examples=150, deadline=None)
@given(
    handle=_handles,
    upper=st.booleans(),
    text=_free_text,
    post_id=_post_ids,
    hashed=st.booleans(),
    prefix=st.sampled_from("/!"),
)
def test_simple_commands_round_trip_their_fields(
    handle: str, upper: bool, text: str, post_id: int, hashed: bool, prefix: str
) -> None:
    typed = handle.upper() if upper else handle
    pid = _pid(post_id, hashed)
    cases = {
        f"{prefix}follow {typed}": Command("follow", handle=handle),
        f"{prefix}start {typed}": Command("start", handle=handle),
        f"{prefix}post {typed} {text}": Command("post", handle=handle, text=text),
        f"{prefix}describe {typed} {text}": Command("describe", handle=handle, text=text),
        f"{prefix}edit {pid} {text}": Command("edit", post_id=post_id, text=text),
        f"{prefix}cancel {pid}": Command("cancel", post_id=post_id),
        f"{prefix}channels {text}": Command("channels", query=text.strip()),
    }
    for typed_command, expected in cases.items():
        assert parse_command(typed_command) == expected


@settings(max_examples=150, deadline=None)
@given(
    handle=_handles,
    question=_quotable.filter(lambda q: len(q.strip()) <= 300),
    options=st.lists(
        _quotable.filter(lambda o: len(o.strip()) <= 100),
        min_size=2,
        max_size=MAX_POLL_OPTIONS,
        unique_by=lambda o: o.strip().casefold(),
    ),
    multi=st.booleans(),
    closes=st.none() | st.sampled_from(_WHENS),
    flags_first=st.booleans(),
    scheduled=st.none() | st.sampled_from(_WHENS),
    repeat_handle=st.booleans(),
)
def test_poll_commands_round_trip_their_fields(
    handle: str,
    question: str,
    options: list[str],
    multi: bool,
    closes: tuple[str, str] | None,
    flags_first: bool,
    scheduled: tuple[str, str] | None,
    repeat_handle: bool,
) -> None:
    flags = (["--multi"] if multi else []) + ([f"--closes {closes[0]}"] if closes else [])
    parts = [f'"{question}"', *(f'"{o}"' for o in options)]
    body = " ".join(flags + parts if flags_first else parts + flags)
    poll = Command(
        "poll",
        handle=handle,
        text=question.strip(),
        options=tuple(o.strip() for o in options),
        multi=multi,
        when=closes[1] if closes else None,
    )
    if scheduled is None:
        assert parse_command(f"/poll {handle} {body}") == poll
    else:
        again = f"{handle} " if repeat_handle else ""
        typed = f"/schedule {handle} {scheduled[0]} /poll {again}{body}"
        assert parse_command(typed) == Command("schedule", handle=handle, when=scheduled[1], sub=poll)


@settings(max_examples=150, deadline=None)
@given(
    handle=_handles,
    when=st.sampled_from(_WHENS),
    spec=st.sampled_from(
        [
            ('"mon-fri 08:00"', "mon-fri 08:00"),
            ("daily 09:00", "daily 09:00"),
            ("sat, sun 10:30", "sat, sun 10:30"),
            ("weekdays 7:45", "weekdays 7:45"),
            ("12:00", "12:00"),
        ]
    ),
    text=_free_text.filter(_first_word_is_plain),
    post_id=_post_ids,
    numbers=st.lists(st.integers(1, MAX_POLL_OPTIONS), min_size=1, unique=True),
    comma=st.booleans(),
)
def test_timed_and_numbered_commands_round_trip_their_fields(
    handle: str,
    when: tuple[str, str],
    spec: tuple[str, str],
    text: str,
    post_id: int,
    numbers: list[int],
    comma: bool,
) -> None:
    assume(not text.lstrip().lower().startswith(("/poll", "!poll")))
    assert parse_command(f"/schedule {handle} {when[0]} {text}") == Command(
        "schedule", handle=handle, when=when[1], text=text
    )
    assert parse_command(f"/every {handle} {spec[0]} {text}") == Command(
        "every", handle=handle, spec=spec[1], text=text
    )
    sep = "," if comma else " "
    assert parse_command(f"/vote {post_id} {sep.join(map(str, numbers))}") == Command(
        "vote", post_id=post_id, numbers=tuple(numbers)
    )
    assert parse_command(f"/removeadmin {handle} {numbers[0]}") == Command(
        "removeadmin", handle=handle, numbers=(numbers[0],)
    )


def test_a_price_of_thousands_of_digits_is_a_usage_line_not_a_crash() -> None:
    parsed = parse_command("/price news " + "9" * 60_000)
    assert isinstance(parsed, CommandError) and "1 to 10000" in parsed.message
    assert len(str(parsed)) < 300
