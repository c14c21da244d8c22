"""History for new followers (issue 15 part 3), through the engine and the delivery worker on
SQLite and PostgreSQL: the last n posts of 30 days in order and marked earlier, after the
welcome; a re-follow gets nothing twice; 0 sends nothing; deleted posts never; paid posts only
with access; open polls votable, closed ones as their results; `/history` and its grammar."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from bridge.commands import Command, CommandError, parse_command
from bridge.engine import EngineOptions
from bridge.models import Delivery
from bridge.ports import Address, PollVote
from tests.support import OPERATOR, Harness, build, person

START = 1_800_000_000.0
DAY = 24 * 3600.0


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """The harness's clock."""
    return Clock()


@pytest.fixture
async def h(store_url: str, clock: Clock) -> AsyncIterator[Harness]:
    """A harness with a channel `news` (history default 3) and payments on."""
    harness = build(
        store_url,
        clock=clock,
        options=EngineOptions(payments_enabled=True, payments_support="@x", history_default=3),
    )
    await harness.worker.start()
    try:
        await harness.say(OPERATOR, "/newchannel news Daily News")
        yield harness
    finally:
        await harness.worker.stop()
        harness.store.dispose()


async def _posts(h: Harness, clock: Clock, *texts: str) -> None:
    for text in texts:
        await h.say(OPERATOR, f"/post news {text}")
        clock.now += 60
    await h.settle()


async def _follow(h: Harness, clock: Clock, who: Address, command: str = "/follow news") -> str:
    answer = await h.say(who, command)
    clock.now += 2  # the earlier posts wait a second for the welcome
    await h.settle()
    return answer


def _earlier(h: Harness, who: Address) -> list[tuple[int, str]]:
    return [(c.post_id, c.text) for c in h.adapter.sends_to(who.id) if c.earlier]


async def test_a_new_follower_gets_the_last_three_posts_in_order_marked_earlier(
    h: Harness, clock: Clock
) -> None:
    await _posts(h, clock, "one", "two", "three", "four")
    alice = person(1)
    assert "You now follow" in await _follow(h, clock, alice)
    assert _earlier(h, alice) == [(2, "two"), (3, "three"), (4, "four")]
    await h.say(OPERATOR, "/post news five")
    await h.settle()
    fresh = [c for c in h.adapter.sends_to(alice.id) if c.post_id == 5]
    assert len(fresh) == 1 and not fresh[0].earlier


async def test_a_refollow_gets_nothing_twice_and_zero_sends_nothing(h: Harness, clock: Clock) -> None:
    await _posts(h, clock, "one", "two", "three")
    alice, bob = person(1), person(2)
    await _follow(h, clock, alice)
    assert len(_earlier(h, alice)) == 3
    await h.say(alice, "/unfollow news")
    await _follow(h, clock, alice)
    assert len(_earlier(h, alice)) == 3  # no second copy of any
    assert "You already follow" in await _follow(h, clock, alice)
    assert "no earlier posts" in await h.say(OPERATOR, "/history news 0")
    await _follow(h, clock, bob)
    assert _earlier(h, bob) == []
    assert "last post of" in await h.say(OPERATOR, "/history news 1")
    await _follow(h, clock, person(3))
    assert _earlier(h, person(3)) == [(3, "three")]


async def test_old_and_deleted_posts_never_and_the_window_counts_what_may_be_received(
    h: Harness, clock: Clock
) -> None:
    await _posts(h, clock, "ancient")
    clock.now += 31 * DAY
    await _posts(h, clock, "kept", "gone", "paid one")
    await h.say(OPERATOR, "/delete 3")
    await h.say(OPERATOR, "/price news 50")
    await h.say(OPERATOR, "/post news --paid members")
    clock.now += 60
    await h.settle()
    free = person(1)
    await _follow(h, clock, free)
    assert _earlier(h, free) == [(2, "kept"), (4, "paid one")]  # no teaser, no deleted, no 31-day-old
    paying = person(2)
    await h.say(paying, "/follow news")
    await h.say(paying, "/unfollow news")
    with h.store.unit_of_work() as s:
        follower = h.store.followers.by_index(s, h.sealer.address_index(paying))
        assert follower is not None and follower.id is not None
        h.store.payments.grant(s, follower.id, 1, clock.now + 30 * DAY)
    clock.now += 2
    await h.settle()
    before = len(_earlier(h, paying))
    await _follow(h, clock, paying)
    got = _earlier(h, paying)[before:]
    assert (5, "members") in got  # with access, the paid post is part of the history


async def test_open_polls_arrive_votable_and_closed_ones_with_their_results(h: Harness, clock: Clock) -> None:
    await h.say(OPERATOR, '/poll news "Lunch?" "Pizza" "Soup"')
    await h.say(OPERATOR, '/poll news "Dinner?" "Rice" "Pasta"')
    await h.settle()
    voter = person(9)
    await _follow(h, clock, voter)
    await h.say(voter, "/vote 1 2")
    with h.store.unit_of_work() as s:
        post = h.store.posts.get(s, 1)
        assert post is not None
        post.poll_closed_at = clock.now
        s.add(post)
    alice = person(1)
    await _follow(h, clock, alice)
    calls = [c for c in h.adapter.sends_to(alice.id) if c.earlier]
    assert [(c.post_id, c.kind) for c in calls] == [(1, "text"), (2, "poll")]
    assert "Lunch? (closed, 1 voter)" in calls[0].text and "2. Soup — 1 (100%)" in calls[0].text
    # the open poll's copy takes votes like any copy
    copy = h.adapter.calls.index(calls[1])
    ref_n = sum(1 for c in h.adapter.calls[: copy + 1] if c.action == "send")
    replies = await h.engine.handle(PollVote(alice, f"poll-{ref_n}", (0,)))
    assert not any("no open poll" in r.text for r in replies)
    with h.store.unit_of_work() as s:
        assert h.store.posts.tally(s, 2).voters == 1


async def test_a_follow_through_the_link_is_counted_and_the_copy_rows_say_earlier(
    h: Harness, clock: Clock
) -> None:
    await _posts(h, clock, "one")
    await _follow(h, clock, person(1), "/start news")
    await _follow(h, clock, person(2), "/follow news")
    await _follow(h, clock, person(3), "/start news")
    assert "Follows through the channel's link: 2" in await h.say(OPERATOR, "/stats news")
    with h.store.unit_of_work() as s:
        rows = s.exec(select(Delivery).where(Delivery.earlier)).all()
        assert len(rows) == 3


def test_history_grammar() -> None:
    assert parse_command("/history news 3") == Command("history", handle="news", n=3)
    assert parse_command("/history news 0") == Command("history", handle="news", n=0)
    assert parse_command("/stats news chart") == Command("stats", handle="news", chart=True)
    assert parse_command("/stats news") == Command("stats", handle="news")
    for bad in ("/history news 11", "/history news", "/history news -1", "/stats news pie"):
        assert isinstance(parse_command(bad), CommandError), bad


async def test_only_admins_set_the_history(h: Harness) -> None:
    assert "Only admins" in await h.say(person(1), "/history news 2")
