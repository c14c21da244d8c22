"""Authorization and input holes of the hostile review (issue 11, findings 2, 5, 7, 8, 11, 12, 13):
removed admins lose every power, private polls stay private, reactions are one emoji, nothing
echoed to admins carries control or bidi characters, counting followers scans nothing, channel
search is literal and bounded, invite codes are strong and redeemed once, operator input is
validated."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlmodel import func, select

from bridge.commands import CommandError, parse_command
from bridge.models import (
    AdminInvite,
    Channel,
    ChannelAdmin,
    Delivery,
    MirrorRoom,
    Post,
    PostStatus,
    RecurringPost,
)
from bridge.ports import Address, Message, Reaction
from bridge.safetext import clean, is_single_emoji
from bridge.store import Store
from tests.support import OPERATOR, Harness, build, person

START = 1_800_000_000.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Notices:
    """The engine's notify hook, recording (who, text)."""

    sent: list[tuple[Address, str]] = field(default_factory=list)

    async def __call__(self, address: Address, text: str) -> None:
        self.sent.append((address, text))


def _count(h: Harness, model: type) -> int:
    with h.store.session() as s:
        return int(s.exec(select(func.count()).select_from(model)).one())


def _code(reply: str) -> str:
    assert "One-time admin code" in reply, reply
    return reply.split(": ", 1)[1].split()[0]


async def _admin(h: Harness, who: Address) -> str:
    """Make `who` an admin of `news`; returns the accept reply."""
    return await h.say(who, f"/accept {_code(await h.say(OPERATOR, '/invite-admin news'))}")


# ---- 2. a removed admin keeps or regains power ---------------------------------------------------


async def test_a_removed_admin_cannot_come_back_with_a_code_they_made(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    helper = person(2)
    assert "admin #2" in await _admin(harness, helper)
    own_code = _code(await harness.say(helper, "/invite-admin news"))
    removed = await harness.say(OPERATOR, "/removeadmin news 2")
    assert "removed" in removed and "1 unused admin code(s) they made no longer work" in removed
    assert "not valid" in await harness.say(helper, f"/accept {own_code}")
    assert "Only admins" in await harness.say(helper, "/post news I am back")
    assert _count(harness, AdminInvite) == 1  # only the owner's, used, code is left


async def test_admin_numbers_are_never_reused(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    assert "admin #2" in await _admin(harness, person(2))
    await harness.say(OPERATOR, "/removeadmin news 2")
    assert "admin #3" in await _admin(harness, person(3))
    admins = await harness.say(OPERATOR, "/admins news")
    assert "#3 admin" in admins and "#2" not in admins


async def test_open_invite_codes_are_capped_per_channel(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    for _ in range(5):
        _code(await harness.say(OPERATOR, "/invite-admin news"))
    before = _count(harness, AdminInvite)
    refused = await harness.say(OPERATOR, "/invite-admin news")
    assert "already has 5 unused admin codes" in refused
    assert _count(harness, AdminInvite) == before


@contextmanager
def _clocked(url: str) -> Iterator[tuple[Harness, Clock, Notices]]:
    clock = Clock()
    h = build(url, clock=clock)
    notices = Notices()
    h.engine.set_notify(notices)
    try:
        yield h, clock, notices
    finally:
        h.store.dispose()


async def test_a_removed_admins_scheduled_post_is_skipped_and_the_owner_told(store_url: str) -> None:
    with _clocked(store_url) as (h, clock, notices):
        helper, reader = person(2), person(3)
        await h.say(OPERATOR, "/newchannel news Daily News")  # the operator is its owner
        await h.say(reader, "/follow news")
        await _admin(h, helper)
        assert "Post #1 is scheduled" in await h.say(helper, "/schedule news in 10m after my removal")
        assert "Post #2 is scheduled" in await h.say(OPERATOR, "/schedule news in 10m from the operator")
        await h.say(OPERATOR, "/removeadmin news 2")
        clock.now += 601
        assert await h.engine.publish_scheduled(1, grace_s=300, late_policy="publish") == "skipped"
        assert await h.engine.publish_scheduled(2, grace_s=300, late_policy="publish") == "published"
        with h.store.session() as s:
            post = s.get(Post, 1)
            assert post is not None and post.status == PostStatus.SKIPPED.value
        told = [(who, t) for who, t in notices.sent if "#1" in t]
        assert len(told) == 1 and told[0][0].id == OPERATOR.id
        assert "no longer an admin" in told[0][1]
        assert all(who.id != helper.id for who, _ in notices.sent)


async def test_a_removed_admins_recurring_post_stops_and_the_owner_is_told(store_url: str) -> None:
    with _clocked(store_url) as (h, clock, notices):
        helper = person(2)
        await h.say(OPERATOR, "/newchannel news Daily News")
        await _admin(h, helper)
        assert "Recurring post r1" in await h.say(helper, '/every news "daily 09:00" good morning')
        await h.say(OPERATOR, "/removeadmin news 2")
        with h.store.session() as s:
            row = s.get(RecurringPost, 1)
            assert row is not None and row.next_at is not None
            due = row.next_at
        clock.now = due
        assert await h.engine.fire_recurring(1, due) is None
        assert _count(h, Post) == 0
        with h.store.session() as s:
            row = s.get(RecurringPost, 1)
            assert row is not None and not row.active
        assert [t for _, t in notices.sent if "r1" in t] and all(w.id == OPERATOR.id for w, _ in notices.sent)


# ---- 5. polls of private channels ----------------------------------------------------------------


async def test_polls_of_a_private_channel_answer_only_followers(store_url: str) -> None:
    h = build(store_url)
    await h.worker.start()
    try:
        h.engine.ensure_channel("club", "The Club", "", False, [])
        member, stranger = person(1), person(2)
        await h.say(member, "/follow club")
        assert "on its way" in await h.say(OPERATOR, '/poll club "Q?" "yes" "no"')
        await h.settle()

        missing_vote, missing_results = (
            await h.say(stranger, "/vote 99 1"),
            await h.say(stranger, "/results 99"),
        )
        assert await h.say(stranger, "/vote 1 1") == missing_vote.replace("99", "1")
        assert await h.say(stranger, "/results 1") == missing_results.replace("99", "1")
        assert "recorded" in await h.say(member, "/vote 1 1")
        assert "yes — 1" in await h.say(member, "/results 1")

        await h.say(member, "/unfollow club")  # still holds the delivered copy
        assert "yes — 1" in await h.say(member, "/results 1")

        await h.say(OPERATOR, "/delete 1")
        assert await h.say(member, "/results 1") == missing_results.replace("99", "1")
        assert await h.say(OPERATOR, "/results 1") == missing_results.replace("99", "1")
    finally:
        await h.worker.stop()
        h.store.dispose()


async def test_polls_of_a_deleted_channel_are_refused(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    await harness.say(person(1), "/follow news")
    await harness.say(OPERATOR, '/poll news "Q?" "yes" "no"')
    await harness.settle()
    await harness.say(OPERATOR, "/deletechannel news")
    assert "There is no open poll #1" in await harness.say(person(1), "/vote 1 1")
    assert "There is no poll #1" in await harness.say(person(1), "/results 1")


# ---- 7. reaction keys and echoed text ------------------------------------------------------------


def test_one_emoji_is_a_reaction_and_nothing_else_is() -> None:
    for key in ["👍", "❤", "❤️", "❤‍🔥", "👨‍💻", "🤷‍♂️", "👍🏽", "🇫🇷", "1️⃣", "🏳️‍🌈", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🫡"]:
        assert is_single_emoji(key), key
    forged = "\u202e" + "x" * 60_000 + "\n#1 text: delivered 9999"
    for key in ["", "+1", "ok", "12", "1", "👍👍", "🇫", "ok👍", "👍\u202e", "\u200d", "👍 ", "é", forged]:
        assert not is_single_emoji(key), key
    assert not is_single_emoji("👨‍👩‍👧‍👦" * 2)  # two clusters (and more than 32 bytes)


def test_clean_strips_control_and_bidi_but_keeps_emoji_joins() -> None:
    assert clean("a\u202eb\u2066c\u200ed\x00e\x1bf") == "abcdef"
    assert clean("line\nnext\ttab") == "line\nnext tab"
    assert clean("❤\u200d🔥 x\u200dy") == "❤\u200d🔥 xy"


async def test_only_single_emoji_reactions_count_and_stats_stay_clean(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    readers = [person(n) for n in range(4)]
    for reader in readers:
        await harness.say(reader, "/follow news")
    await harness.say(OPERATOR, "/post news hello")
    await harness.settle()
    with harness.store.session() as s:
        rows = list(s.exec(select(Delivery)))
    keys = [
        harness.sealer.unseal_ref(r.ref_sealed or b"", row_id=r.id or 0, platform=r.platform)[0] for r in rows
    ]
    ref_of = {key.split(":")[0]: key for key in keys}
    forged = "\u202e" + "x" * 60_000 + "\n#1 text: delivered 9999"
    for reader, key in zip(readers, ["👍", forged, "+1", "👍👍"], strict=True):
        await harness.engine.handle(Reaction(reader, ref_of[reader.id], key))
    stats = await harness.say(OPERATOR, "/stats news")
    assert "reactions 👍 1" in stats
    assert "9999" not in stats and "\u202e" not in stats and "+1" not in stats
    assert len(stats) < 500


async def test_names_descriptions_and_options_are_echoed_without_bidi_or_control(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily\u202e News\u2066")
    await harness.say(OPERATOR, "/describe news About\u202e us\x07")
    await harness.say(OPERATOR, '/poll news "Q\u202e?" "a\u202eb" "c"')
    await harness.settle()
    for command in ["/info news", "/channels", "/stats news", "/results 1", "/following", "/admins news"]:
        reply = await harness.say(OPERATOR, command)
        assert not re.search("[\u202a-\u202e\u2066-\u2069\u200e\u200f\x00-\x09\x0b-\x1f]", reply), command
    assert "Daily News" in await harness.say(OPERATOR, "/info news")


# ---- 8. counting followers never scans the subscriptions -----------------------------------------


@contextmanager
def _statements(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.lower())

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


async def test_channels_info_and_stats_do_not_count_subscriptions(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    for n in range(3):
        await harness.say(person(n), "/follow news")
    for command in ["/channels", "/info news", "/stats news"]:
        with _statements(harness.store) as seen:
            reply = await harness.say(OPERATOR, command)
        assert "3" in reply, (command, reply)
        assert not [q for q in seen if "from subscription" in q or "join subscription" in q], command


def _true_counts(h: Harness, channel_id: int) -> tuple[int, dict[str, tuple[int, int]], int]:
    with h.store.connection() as conn:
        rows = conn.execute(
            text(
                "SELECT f.platform, s.muted, s.paused FROM subscription s"
                " JOIN follower f ON f.id = s.follower_id WHERE s.channel_id = :c"
            ),
            {"c": channel_id},
        ).all()
    per: dict[str, tuple[int, int]] = {}
    for platform, muted, paused in rows:
        if not paused:
            n, m = per.get(platform, (0, 0))
            per[platform] = (n + 1, m + int(bool(muted)))
    return sum(n for n, _ in per.values()), per, sum(1 for r in rows if r.paused)


async def test_follower_counters_follow_every_change(harness: Harness) -> None:
    h = harness
    await h.say(OPERATOR, "/newchannel news Daily News")
    cid = 1
    tg = [person(n, "telegram") for n in range(4)]
    mx = [Address("matrix", f"@reader{n}:example.org") for n in range(3)]

    def check() -> None:
        with h.store.session() as s:
            got = (
                h.store.follower_count(s, cid),
                h.store.follower_counts_by_platform(s, cid),
                h.store.paused_count(s, cid),
            )
        assert got == _true_counts(h, cid)

    for who in tg + mx:
        await h.say(who, "/follow news")
    check()
    await h.say(tg[0], "/mute news")
    await h.say(tg[0], "/mute news")
    await h.say(mx[0], "/mute news")
    check()
    await h.say(tg[0], "/unmute news")
    await h.say(mx[1], "/unfollow news")
    check()
    with h.store.session() as s:
        follower = h.store.follower_by_index(s, h.sealer.address_index(mx[0]))
        assert follower is not None and follower.id is not None
        h.store.pause_follower(s, follower.id)
        h.store.pause_follower(s, follower.id)
    check()
    await h.say(mx[0], "/follow news")  # back: the paused subscription resumes
    check()
    await h.say(tg[1], "/forgetme")
    check()
    h.store.import_followers(
        cid, [person(50, "telegram"), tg[2], mx[2], Address("matrix", "@new:x.org")], h.sealer, 1.0
    )
    check()
    assert _true_counts(h, cid)[0] == 7


# ---- 11. /channels <query> -----------------------------------------------------------------------


async def test_channel_search_takes_percent_and_underscore_literally(harness: Harness) -> None:
    harness.engine.ensure_channel("ab_cd", "Plain", "", True, [])
    harness.engine.ensure_channel("abxcd", "Hundred Percent", "", True, [])
    found = await harness.say(person(1), "/channels b_c")
    assert "ab_cd" in found and "abxcd" not in found
    assert "No channels found" in await harness.say(person(1), "/channels %")
    assert "No channels found" in await harness.say(person(1), "/channels 100%")


async def test_a_huge_channel_search_gets_the_usage_line(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await harness.say(person(1), "/channels " + "%_x" * 17_000)
    assert "Usage: /channels [query]" in reply and len(reply) < 200
    assert "select" not in caplog.text.lower()
    assert isinstance(parse_command("/channels " + "x" * 65), CommandError)
    assert not isinstance(parse_command("/channels " + "x" * 64), CommandError)


# ---- 12. invite codes ---------------------------------------------------------------------------


async def test_invite_codes_carry_128_bits_and_paste_forgivingly(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    code = _code(await harness.say(OPERATOR, "/invite-admin news"))
    assert re.fullmatch(r"[0-9a-f]{32}", code), code  # 128 bits in one word
    grouped = "-".join(code[i : i + 4] for i in range(0, 32, 4)).upper()
    assert "admin #2" in await harness.say(person(2), f"/accept {grouped}")


async def test_wrong_accept_codes_are_throttled_per_sender(store_url: str) -> None:
    with _clocked(store_url) as (h, clock, _):
        await h.say(OPERATOR, "/newchannel news Daily News")
        good = _code(await h.say(OPERATOR, "/invite-admin news"))
        guesser = person(7)
        for n in range(5):
            assert "not valid" in await h.say(guesser, f"/accept wrong{n}")
        assert "Too many wrong codes" in await h.say(guesser, f"/accept {good}")
        assert _count(h, ChannelAdmin) == 1
        clock.now += 601
        assert "admin #2" in await h.say(guesser, f"/accept {good}")


async def test_a_code_accepted_by_someone_else_meanwhile_is_refused(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    _code(await harness.say(OPERATOR, "/invite-admin news"))
    with harness.store.session() as s:
        invite = s.exec(select(AdminInvite)).one()
        assert harness.store.redeem_invite(s, invite.id or 0, 1.0)
        assert not harness.store.redeem_invite(s, invite.id or 0, 2.0)


@pytest.mark.postgres
async def test_two_processes_racing_for_one_code_admit_exactly_one(store_url: str) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite is a single process; the race needs two PostgreSQL connections")
    first, second = build(store_url), build(store_url)
    try:
        await first.say(OPERATOR, "/newchannel news Daily News")
        code = _code(await first.say(OPERATOR, "/invite-admin news"))
        barrier = threading.Barrier(2, timeout=10)
        for h in (first, second):
            real = h.store.invite_by_digest

            def both_read_it(s: Any, digest: str, real: Any = real) -> Any:
                found = real(s, digest)
                barrier.wait()  # both have seen the code unused before either writes
                return found

            h.store.invite_by_digest = both_read_it  # type: ignore[method-assign]
        replies: list[str] = []

        def accept(h: Harness, who: Address) -> None:
            answers = asyncio.run(h.engine.handle(Message(who, f"/accept {code}")))
            replies.append(answers[0].text)

        threads = [
            threading.Thread(target=accept, args=(first, person(2))),
            threading.Thread(target=accept, args=(second, person(3))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted("You are now admin #2" in r for r in replies) == [False, True], replies
        assert _count(first, ChannelAdmin) == 2
    finally:
        first.store.dispose()
        second.store.dispose()


# ---- 13. operator input --------------------------------------------------------------------------


async def test_malformed_mirror_rooms_and_long_names_are_refused(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    before = (_count(harness, MirrorRoom), _count(harness, Channel))
    for command in [
        "/mirror news telegram:abc",
        "/mirror news telegram:12x",
        "/mirror news matrix:x|y",
        "/mirror news matrix:!room|event:example.org",
        "/mirror news matrix:room:example.org",
        "/newchannel long " + "n" * 129,
        "/describe news " + "d" * 1001,
    ]:
        reply = await harness.say(OPERATOR, command)
        assert "Usage:" in reply, (command, reply)
    assert (_count(harness, MirrorRoom), _count(harness, Channel)) == before
    assert "now mirrors" in await harness.say(OPERATOR, "/mirror news telegram:-1001234567890")
    assert "now mirrors" in await harness.say(OPERATOR, "/mirror news matrix:!abcDEF:example.org")
    assert "created" in await harness.say(OPERATOR, "/newchannel long " + "n" * 128)
    assert "updated" in await harness.say(OPERATOR, "/describe news " + "d" * 1000)


def test_the_migration_fills_the_counters_and_the_admin_numbers(store_url: str) -> None:
    from bridge import migrate

    store = Store(store_url)
    try:
        migrate.upgrade(store.engine, "0004_notices")  # the revision before this one
        with store.connection() as conn:
            conn.execute(
                text(
                    "INSERT INTO channel (id, handle, name, description, public, created_at)"
                    " VALUES (1, 'news', 'News', '', :t, 0)"
                ),
                {"t": True},
            )
            for number in (1, 3):
                conn.execute(
                    text(
                        "INSERT INTO channeladmin (channel_id, number, role, account_index, platform,"
                        " sealed, added_at) VALUES (1, :n, 'admin', :i, 'fake', :s, 0)"
                    ),
                    {"n": number, "i": f"index{number}", "s": b"x"},
                )
            states = [
                ("fake", False, False),
                ("fake", True, False),
                ("fake", True, True),
                ("other", False, False),
            ]
            for n, (platform, muted, paused) in enumerate(states, start=1):
                conn.execute(
                    text(
                        "INSERT INTO follower (id, platform, account_index, sealed, created_at)"
                        " VALUES (:n, :p, :i, :s, 0)"
                    ),
                    {"n": n, "p": platform, "i": f"f{n}", "s": b"x"},
                )
                conn.execute(
                    text(
                        "INSERT INTO subscription (follower_id, channel_id, muted, paused, created_at)"
                        " VALUES (:n, 1, :m, :p, 0)"
                    ),
                    {"n": n, "m": muted, "p": paused},
                )
        migrate.upgrade(store.engine)
        with store.session() as s:
            assert store.follower_count(s, 1) == 3
            assert store.follower_counts_by_platform(s, 1) == {"fake": (2, 1), "other": (1, 0)}
            assert store.paused_count(s, 1) == 1
            assert store.next_admin_number(s, 1) == 4
    finally:
        store.dispose()


async def test_a_mirror_added_at_run_time_reaches_its_adapter_at_once(harness: Harness) -> None:
    added: list[tuple[str, str]] = []

    async def no_rooms(platform: str, name: str, topic: str) -> str:
        raise AssertionError("no room is created for an existing one")

    harness.engine.set_mirror_factory(no_rooms, lambda platform, chat: added.append((platform, chat)))
    await harness.say(OPERATOR, "/newchannel news Daily News")
    answer = await harness.say(OPERATOR, "/mirror news matrix:!mirror:example.org")
    assert "now mirrors" in answer
    assert added == [("matrix", "!mirror:example.org")]
    assert "already mirrors" in await harness.say(OPERATOR, "/mirror news matrix:!mirror:example.org")
    assert added == [("matrix", "!mirror:example.org")]  # a refused command changes nothing


async def test_stats_of_a_finished_post_do_not_count_its_copies_again(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    people = [person(n) for n in range(3)]
    for p in people:
        await harness.say(p, "/follow news")
    await harness.say(OPERATOR, "/post news hello")
    await harness.settle()
    assert "#1 text: delivered 3, pending 0, failed 0" in await harness.say(OPERATOR, "/stats news")
    with _statements(harness.store) as seen:
        stats = await harness.say(OPERATOR, "/stats news")
    assert "#1 text: delivered 3, pending 0, failed 0" in stats
    assert not [q for q in seen if "count(" in q and "from delivery" in q], seen
    await harness.say(people[0], "/forgetme")  # its receipt goes: the kept figures go with it
    assert "#1 text: delivered 2, pending 0, failed 0" in await harness.say(OPERATOR, "/stats news")
