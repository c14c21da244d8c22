"""The scheduler over a controllable clock: due posts publish once, cancelled ones never, a
restart catches up per the late policy and tells the admin, polls close at their deadline,
recurring posts fire once per occurrence (DST included), and two processes never double up."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bridge.engine import EngineOptions
from bridge.models import Post, RecurringPost
from bridge.ports import Address
from scheduler.service import SchedulerService, Wakeup, WakeupKind
from tests.support import OPERATOR, Harness, build, person, sqlite_url

PARIS = ZoneInfo("Europe/Paris")


class Clock:
    """A clock the test moves by hand (epoch seconds)."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        """Jump to an aware instant."""
        self.now = moment.timestamp()

    def advance(self, seconds: float) -> None:
        """Move forward."""
        self.now += seconds


@dataclass
class Notices:
    """The engine's notify hook, recording (who, text)."""

    sent: list[tuple[Address, str]] = field(default_factory=list)

    async def __call__(self, address: Address, text: str) -> None:
        self.sent.append((address, text))

    def texts(self) -> list[str]:
        """Notice texts only."""
        return [t for _, t in self.sent]


@dataclass
class Node:
    """One process: engine + worker + fake adapter + scheduler, with its notices."""

    h: Harness
    service: SchedulerService
    notices: Notices


def _node(url: str, clock: Clock, *, tz: ZoneInfo = PARIS, late_policy: str = "publish") -> Node:
    h = build(url, clock=clock, options=EngineOptions(tz=tz))
    notices = Notices()
    h.engine.set_notify(notices)
    service = SchedulerService(
        h.engine,
        sweep_interval_s=3600,
        misfire_grace_s=300,
        late_policy=late_policy,  # type: ignore[arg-type]
    )
    return Node(h, service, notices)


@pytest.fixture
def clock() -> Clock:
    """Wednesday 2026-03-25 12:00 UTC: a few days before Europe's spring-forward."""
    return Clock(datetime(2026, 3, 25, 12, 0, tzinfo=UTC))


@pytest.fixture
async def node(tmp_path: Path, clock: Clock) -> AsyncIterator[Node]:
    """A started worker and an unstarted scheduler (tests drive passes by hand)."""
    n = _node(sqlite_url(tmp_path), clock)
    await n.h.worker.start()
    try:
        yield n
    finally:
        await n.service.stop()
        await n.h.worker.stop()
        n.h.store.dispose()


async def _channel(h: Harness, followers: int = 2) -> list[Address]:
    await h.say(OPERATOR, "/newchannel news Daily News")
    people = [person(i) for i in range(followers)]
    for p in people:
        await h.say(p, "/follow news")
    return people


def _post_status(h: Harness, post_id: int) -> str:
    with h.store.session() as s:
        post = s.get(Post, post_id)
        assert post is not None
        return post.status


def _posts(h: Harness) -> list[Post]:
    with h.store.session() as s:
        return list(s.exec(select(Post).order_by(Post.id)))  # type: ignore[arg-type]


def _recurring(h: Harness, rid: int) -> RecurringPost:
    with h.store.session() as s:
        row = s.get(RecurringPost, rid)
        assert row is not None
        return row


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ---- scheduled posts ----------------------------------------------------------------------------


async def test_due_post_is_published_once_even_when_woken_twice(node: Node, clock: Clock) -> None:
    people = await _channel(node.h)
    reply = await node.h.say(OPERATOR, "/schedule news in 10m hello later")
    assert "Post #1 is scheduled" in reply
    assert (await node.service.sweep()).handled == 0
    assert [w.kind for w in node.service.pending()] == []  # not started: nothing registered yet

    await node.service.start()
    (wakeup,) = node.service.pending()
    assert wakeup == Wakeup(WakeupKind.POST, 1, clock() + 600)
    assert await node.service.run_wakeup(wakeup) == "not due"
    clock.advance(600)
    outcomes = [await node.service.run_wakeup(wakeup), (await node.service.sweep()).handled]
    assert outcomes == ["published", 0]
    assert await node.service.run_wakeup(wakeup) == "already handled"
    await node.h.settle()
    for p in people:
        assert [c.text for c in node.h.adapter.sends_to(p.target)] == ["hello later"]
    assert node.notices.texts() == ["Scheduled post #1 is going out now."]
    assert node.service.pending() == []


async def test_the_schedule_notice_is_in_the_language_the_author_chose(node: Node, clock: Clock) -> None:
    await _channel(node.h)
    assert "français" in await node.h.say(OPERATOR, "/lang fr")
    await node.h.say(OPERATOR, "/schedule news in 10m bonjour plus tard")
    await node.service.start()
    (wakeup,) = node.service.pending()
    clock.advance(600)
    assert await node.service.run_wakeup(wakeup) == "published"
    assert node.notices.texts() == ["La publication programmée n°1 part maintenant."]


async def test_cancelled_post_is_never_published(node: Node, clock: Clock) -> None:
    people = await _channel(node.h)
    await node.service.start()
    await node.h.say(OPERATOR, "/schedule news in 5m never")
    await node.service.sweep()
    (wakeup,) = node.service.pending()
    assert "is cancelled" in await node.h.say(OPERATOR, "/cancel 1")
    await node.service.sweep()
    assert node.service.pending() == []  # the job follows the database
    clock.advance(3600)
    assert await node.service.run_wakeup(wakeup) == "already handled"  # a stale alarm is harmless
    assert (await node.service.sweep()).handled == 0
    await node.h.settle()
    assert all(node.h.adapter.sends_to(p.target) == [] for p in people)
    assert _post_status(node.h, 1) == "cancelled"


async def test_schedule_change_resyncs_jobs_soon_without_a_sweep(node: Node) -> None:
    await _channel(node.h, 0)
    await node.service.start()
    await node.h.say(OPERATOR, "/schedule news in 1h one")
    await node.h.say(OPERATOR, '/poll news "Lunch?" "yes" "no" --closes in 2h')
    await node.h.say(OPERATOR, "/every news daily 09:00 morning")
    for _ in range(50):
        if len(node.service.pending()) == 3:
            break
        await asyncio.sleep(0.02)
    kinds = [(w.kind, w.target_id) for w in node.service.pending()]
    assert kinds == [(WakeupKind.POST, 1), (WakeupKind.POLL_CLOSE, 2), (WakeupKind.RECURRING, 1)]


async def test_lost_jobs_are_registered_again_by_the_sweep(node: Node) -> None:
    await _channel(node.h, 0)
    await node.service.start()
    await node.h.say(OPERATOR, "/schedule news in 1h one")
    await node.service.sweep()
    (wakeup,) = node.service.pending()
    assert node.service._scheduler is not None
    node.service._scheduler.remove_all_jobs()
    report = await node.service.sweep()
    assert report.jobs_added == 1
    assert node.service.pending() == [wakeup]


@pytest.mark.parametrize(
    ("late_policy", "notice_words", "sent"),
    [
        ("publish", ["went out", "late", "late_policy = publish"], True),
        ("skip", ["skipped", "late_policy = skip"], False),
    ],
)
async def test_restart_after_the_due_time_applies_the_late_policy_and_tells_the_admin(
    tmp_path: Path, clock: Clock, late_policy: str, notice_words: list[str], sent: bool
) -> None:
    url = sqlite_url(tmp_path)
    first = _node(url, clock)
    people = await _channel(first.h)
    await first.service.start()
    await first.h.say(OPERATOR, "/schedule news in 10m while you were away")
    await first.service.stop()  # the process goes down before the post is due
    first.h.store.dispose()

    clock.advance(600 + 3 * 3600)  # back three hours after the due time (grace is 5 min)
    second = _node(url, clock, late_policy=late_policy)
    await second.h.worker.start()
    try:
        await second.service.start()  # the catch-up pass runs inside start()
        await second.h.settle()
        assert _post_status(second.h, 1) == ("published" if sent else "skipped")
        for p in people:
            got = [c.text for c in second.h.adapter.sends_to(p.target)]
            assert got == (["while you were away"] if sent else [])
        ((who, text),) = second.notices.sent
        assert who == OPERATOR  # the author, and only the author, is told
        assert all(word in text for word in notice_words), text
        assert "3 h 0 min" in text
        assert second.service.pending() == []
        assert (await second.service.sweep()).handled == 0
    finally:
        await second.service.stop()
        await second.h.worker.stop()
        second.h.store.dispose()


async def test_restart_within_the_grace_publishes_normally(tmp_path: Path, clock: Clock) -> None:
    url = sqlite_url(tmp_path)
    first = _node(url, clock, late_policy="skip")
    await _channel(first.h, 1)
    await first.h.say(OPERATOR, "/schedule news in 10m on time enough")
    clock.advance(600 + 120)  # two minutes late, grace is five
    second = _node(url, clock, late_policy="skip")
    await second.service.start()
    try:
        assert _post_status(second.h, 1) in ("publishing", "published")
        assert second.notices.texts() == ["Scheduled post #1 is going out now."]
    finally:
        await second.service.stop()
        second.h.store.dispose()


# ---- two processes --------------------------------------------------------------------------------


def _race(nodes: list[Node], wakeup: Wakeup | None = None) -> list[object]:
    """Run the same sweep (or the same wake-up) in every node at once, each in its own thread
    and event loop (as separate processes would), and return each result."""
    barrier = threading.Barrier(len(nodes))
    results: list[object] = [None] * len(nodes)

    def work(i: int, n: Node) -> None:
        async def go() -> object:
            barrier.wait()
            result: object
            if wakeup is None:
                result = await n.service.sweep()
            else:
                result = await n.service.run_wakeup(wakeup)
            await n.h.engine.drain_planning()
            return result

        results[i] = asyncio.run(go())

    threads = [threading.Thread(target=work, args=(i, n)) for i, n in enumerate(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.fixture
def pair(store_url: str, clock: Clock) -> Iterator[list[Node]]:
    """Two engine + scheduler instances sharing one database (SQLite, and PostgreSQL)."""
    nodes = [_node(store_url, clock), _node(store_url, clock)]
    yield nodes
    for n in nodes:
        n.h.store.dispose()


async def test_two_instances_publish_a_due_post_exactly_once(pair: list[Node], clock: Clock) -> None:
    a, b = pair
    people = await _channel(a.h, 3)
    await a.h.say(OPERATOR, "/schedule news in 10m only once")
    clock.advance(600)
    reports = _race(pair)
    assert sorted(r.published for r in reports) == [0, 1]  # type: ignore[attr-defined]
    wakeup = Wakeup(WakeupKind.POST, 1, clock())
    assert _race(pair, wakeup) == ["already handled", "already handled"]
    await a.h.worker.start()
    await b.h.worker.start()
    try:
        await a.h.settle()
        await b.h.settle()
    finally:
        await a.h.worker.stop()
        await b.h.worker.stop()
    for p in people:
        sends = a.h.adapter.sends_to(p.target) + b.h.adapter.sends_to(p.target)
        assert [c.text for c in sends] == ["only once"]
    assert len(a.notices.sent) + len(b.notices.sent) == 1


async def test_two_instances_fire_a_recurring_occurrence_exactly_once(pair: list[Node], clock: Clock) -> None:
    a, _ = pair
    await _channel(a.h, 1)
    await a.h.say(OPERATOR, "/every news daily 13:30 standup")  # 12:30 UTC today
    due = _recurring(a.h, 1).next_at
    assert due == _utc(2026, 3, 25, 12, 30).timestamp()
    clock.set(_utc(2026, 3, 25, 12, 30))
    wakeup = Wakeup(WakeupKind.RECURRING, 1, due)
    outcomes = _race(pair, wakeup)
    assert sorted(outcomes) == ["already handled", "fired"]  # type: ignore[type-var]
    assert [p.text for p in _posts(a.h)] == ["standup"]
    assert _recurring(a.h, 1).next_at == _utc(2026, 3, 26, 12, 30).timestamp()


# ---- polls --------------------------------------------------------------------------------------


async def test_poll_closes_at_its_deadline_on_every_copy_and_refuses_later_votes(
    node: Node, clock: Clock
) -> None:
    people = await _channel(node.h, 3)
    await node.service.start()
    reply = await node.h.say(OPERATOR, '/poll news "Lunch?" "pizza" "salad" --closes in 30m')
    assert "closes 2026-03-25 13:30 Europe/Paris (12:30 UTC)" in reply
    await node.h.settle()
    assert "recorded" in await node.h.say(people[0], "/vote 1 1")
    await node.service.sweep()
    (wakeup,) = node.service.pending()
    assert wakeup == Wakeup(WakeupKind.POLL_CLOSE, 1, _utc(2026, 3, 25, 12, 30).timestamp())

    clock.advance(1800)
    assert await node.service.run_wakeup(wakeup) == "closed"
    assert await node.service.run_wakeup(wakeup) == "already closed"
    await node.h.settle()
    assert sorted(c.target for c in node.h.adapter.of("close_poll")) == sorted(p.target for p in people)
    assert "closed" in await node.h.say(people[1], "/vote 1 2")
    assert "closed" in await node.h.say(people[0], "/vote 1 2")
    results = await node.h.say(people[2], "/results 1")
    assert "pizza" in results
    await node.service.sweep()
    assert node.service.pending() == []


async def test_scheduled_poll_missed_entirely_is_published_then_closed(node: Node, clock: Clock) -> None:
    await _channel(node.h, 2)
    await node.h.say(OPERATOR, '/schedule news in 10m /poll "Q?" "a" "b" --closes in 20m')
    clock.advance(3600)
    await node.service.start()
    await node.h.settle()
    assert _post_status(node.h, 1) == "published"
    with node.h.store.session() as s:
        post = s.get(Post, 1)
        assert post is not None and post.poll_closed_at is not None


# ---- recurring posts ------------------------------------------------------------------------------


async def test_recurring_post_fires_on_consecutive_occurrences(node: Node, clock: Clock) -> None:
    people = await _channel(node.h, 2)
    await node.service.start()
    await node.h.say(OPERATOR, "/every news mon-fri 08:00 good morning")  # 07:00 UTC in winter
    await node.service.sweep()
    fired_at = []
    for _ in range(3):  # Thursday, Friday, then Monday (the weekend is skipped)
        (wakeup,) = node.service.pending()
        clock.set(datetime.fromtimestamp(wakeup.at, UTC))
        assert await node.service.run_wakeup(wakeup) == "fired"
        assert await node.service.run_wakeup(wakeup) == "already handled"
        fired_at.append(datetime.fromtimestamp(wakeup.at, PARIS).strftime("%a %d %H:%M"))
        await node.service.sweep()
    assert fired_at == ["Thu 26 08:00", "Fri 27 08:00", "Mon 30 08:00"]
    await node.h.settle()
    for p in people:
        assert [c.text for c in node.h.adapter.sends_to(p.target)] == ["good morning"] * 3
    # Monday 30 March is after the spring-forward: 08:00 CEST is 06:00 UTC
    assert node.service.pending()[0].at == _utc(2026, 3, 31, 6, 0).timestamp()


async def test_missed_recurring_occurrences_fire_once_after_a_restart(node: Node, clock: Clock) -> None:
    await _channel(node.h, 1)
    await node.h.say(OPERATOR, "/every news daily 14:00 daily digest")
    clock.set(_utc(2026, 3, 28, 20, 0))  # down for four occurrences (25th to 28th)
    await node.service.start()
    assert [p.text for p in _posts(node.h)] == ["daily digest"]
    (wakeup,) = node.service.pending()
    assert wakeup.at == _utc(2026, 3, 29, 12, 0).timestamp()  # 14:00 CEST


async def test_stopped_recurring_post_does_not_fire(node: Node, clock: Clock) -> None:
    await _channel(node.h, 1)
    await node.service.start()
    await node.h.say(OPERATOR, "/every news daily 14:00 digest")
    await node.service.sweep()
    (wakeup,) = node.service.pending()
    assert "stopped" in await node.h.say(OPERATOR, "/cancel r1")
    await node.service.sweep()
    assert node.service.pending() == []
    clock.set(datetime.fromtimestamp(wakeup.at, UTC))
    assert await node.service.run_wakeup(wakeup) == "already handled"
    assert _posts(node.h) == []


# ---- DST in Europe/Paris ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "utc", "shown"),
    [
        # spring-forward: 02:30 does not exist on 29 March; it moves forward by the gap
        ("2026-03-29 02:30", _utc(2026, 3, 29, 1, 30), "2026-03-29 03:30 Europe/Paris (01:30 UTC)"),
        ("2026-03-29 01:30", _utc(2026, 3, 29, 0, 30), "2026-03-29 01:30 Europe/Paris (00:30 UTC)"),
        ("2026-03-29 03:30", _utc(2026, 3, 29, 1, 30), "2026-03-29 03:30 Europe/Paris (01:30 UTC)"),
        # fall-back: 02:30 happens twice on 25 October; the first one (CEST) is meant
        ("2026-10-25 02:30", _utc(2026, 10, 25, 0, 30), "2026-10-25 02:30 Europe/Paris (00:30 UTC)"),
        ("2026-10-25 03:30", _utc(2026, 10, 25, 2, 30), "2026-10-25 03:30 Europe/Paris (02:30 UTC)"),
        ("2026-10-25 02:30 +01:00", _utc(2026, 10, 25, 1, 30), "2026-10-25 02:30 Europe/Paris (01:30 UTC)"),
    ],
)
async def test_schedule_across_dst_lands_at_the_right_instant(
    node: Node, clock: Clock, typed: str, utc: datetime, shown: str
) -> None:
    people = await _channel(node.h, 1)
    reply = await node.h.say(OPERATOR, f"/schedule news {typed} dst post")
    assert f"Post #1 is scheduled for {shown}" in reply  # the confirmation shows local and UTC
    await node.service.start()
    (wakeup,) = node.service.pending()
    assert wakeup.at == utc.timestamp()
    clock.set(utc)
    clock.advance(-1)
    assert await node.service.run_wakeup(wakeup) == "not due"
    clock.advance(1)
    assert await node.service.run_wakeup(wakeup) == "published"
    await node.h.settle()
    assert len(node.h.adapter.sends_to(people[0].target)) == 1


async def _fire_days(node: Node, clock: Clock, days: int) -> list[datetime]:
    """Fire the recurring post's next `days` occurrences by jumping to each one."""
    fired = []
    for _ in range(days):
        await node.service.sweep()
        (wakeup,) = node.service.pending()
        clock.set(datetime.fromtimestamp(wakeup.at, UTC))
        assert await node.service.run_wakeup(wakeup) == "fired"
        fired.append(datetime.fromtimestamp(wakeup.at, UTC))
    return fired


async def test_every_fires_at_each_local_time_across_spring_forward(node: Node, clock: Clock) -> None:
    await _channel(node.h, 0)
    await node.service.start()
    clock.set(_utc(2026, 3, 27, 12, 0))
    # 00:30 daily: APScheduler's CronTrigger skips the 00:30 on 30 March; we must not
    await node.h.say(OPERATOR, "/every news daily 00:30 midnight-ish")
    # 02:30 daily: on 29 March 02:30 does not exist and runs at 03:30 CEST
    await node.h.say(OPERATOR, "/every news daily 02:30 night")
    await node.service.sweep()
    fired: dict[int, list[datetime]] = {1: [], 2: []}
    for _ in range(8):
        await node.service.sweep()
        wakeup = node.service.pending()[0]
        clock.set(datetime.fromtimestamp(wakeup.at, UTC))
        assert await node.service.run_wakeup(wakeup) == "fired"
        fired[wakeup.target_id].append(datetime.fromtimestamp(wakeup.at, UTC))
    assert fired[1] == [
        _utc(2026, 3, 27, 23, 30),  # 28 March 00:30 CET
        _utc(2026, 3, 28, 23, 30),  # 29 March 00:30 CET (before the change at 02:00)
        _utc(2026, 3, 29, 22, 30),  # 30 March 00:30 CEST
        _utc(2026, 3, 30, 22, 30),  # 31 March 00:30 CEST
    ]
    assert fired[2] == [
        _utc(2026, 3, 28, 1, 30),  # 28 March 02:30 CET
        _utc(2026, 3, 29, 1, 30),  # 29 March: 02:30 is skipped, runs at 03:30 CEST
        _utc(2026, 3, 30, 0, 30),  # 30 March 02:30 CEST
        _utc(2026, 3, 31, 0, 30),
    ]


async def test_every_fires_once_in_the_fall_back_hour(node: Node, clock: Clock) -> None:
    await _channel(node.h, 0)
    await node.service.start()
    clock.set(_utc(2026, 10, 23, 12, 0))
    await node.h.say(OPERATOR, "/every news daily 02:30 night")
    fired = await _fire_days(node, clock, 4)
    assert fired == [
        _utc(2026, 10, 24, 0, 30),  # 24 October 02:30 CEST
        _utc(2026, 10, 25, 0, 30),  # 25 October: the first 02:30 (CEST) only, not 01:30 UTC too
        _utc(2026, 10, 26, 1, 30),  # 26 October 02:30 CET
        _utc(2026, 10, 27, 1, 30),
    ]
    assert len(_posts(node.h)) == 4


# ---- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "why"),
    [
        ("garbage", "could not understand the time 'garbage'"),
        ("2020-01-01 09:00", "is in the past"),
        ("2026-03-25 12:59", "is in the past"),  # 11:59 UTC: one minute ago
        ("in 400d", "more than a year ahead"),
        ("2027-06-01 09:00", "more than a year ahead"),
        ("2026-02-30 09:00", "not a valid date"),
        ("25:00", "not a valid date"),
        ("in 5x", "unknown unit 'x'"),
        ("in 5 fortnights", "could not understand the time 'in'"),
        ("2026-04-01 09:00 Mars/Olympus", "unknown time zone"),
    ],
)
async def test_malformed_when_is_refused_clearly_and_nothing_is_stored(
    node: Node, when: str, why: str
) -> None:
    await _channel(node.h, 0)
    reply = await node.h.say(OPERATOR, f"/schedule news {when} some text")
    assert why in reply, reply
    assert "scheduled for" not in reply
    assert _posts(node.h) == []
    assert node.h.engine.schedule_snapshot() == ([], [], [])


@pytest.mark.parametrize("when", ["garbage", "in 400d", "2020-01-01 09:00"])
async def test_malformed_poll_deadline_is_refused(node: Node, when: str) -> None:
    await _channel(node.h, 0)
    reply = await node.h.say(OPERATOR, f'/poll news "Q?" "a" "b" --closes {when}')
    assert "on its way" not in reply
    assert _posts(node.h) == []


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("daily 25:00", "'25:00' is not a time of day"),
        ('"blursday 09:00"', "'blursday' is not a day"),
        ('"mon-fri"', "no time (HH:MM)"),
    ],
)
async def test_malformed_recurrence_is_refused(node: Node, spec: str, why: str) -> None:
    await _channel(node.h, 0)
    reply = await node.h.say(OPERATOR, f"/every news {spec} text")
    assert why in reply, reply
    assert "Recurring post" not in reply
    assert node.h.engine.schedule_snapshot()[2] == []


# ---- failures -------------------------------------------------------------------------------------


async def test_a_failing_wakeup_is_logged_without_identity_and_retried_by_the_sweep(
    node: Node, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    people = await _channel(node.h, 1)
    await node.h.say(OPERATOR, "/schedule news in 1m retry me")
    clock.advance(60)
    real = node.h.engine.publish_scheduled

    async def broken(post_id: int, *, grace_s: float, late_policy: str) -> str:
        raise RuntimeError(f"database said no for {OPERATOR.id}")

    monkeypatch.setattr(node.h.engine, "publish_scheduled", broken)
    with caplog.at_level(logging.INFO, logger="scheduler"):
        await node.service.start()  # the catch-up fails for this post but start() succeeds
    assert node.service.running
    assert any("failed (RuntimeError)" in r.getMessage() for r in caplog.records)
    assert all(OPERATOR.id not in r.getMessage() for r in caplog.records)
    assert _post_status(node.h, 1) == "scheduled"

    monkeypatch.setattr(node.h.engine, "publish_scheduled", real)
    assert (await node.service.sweep()).published == 1
    await node.h.settle()
    assert len(node.h.adapter.sends_to(people[0].target)) == 1


async def test_stop_is_clean_and_idempotent(node: Node) -> None:
    await _channel(node.h, 0)
    await node.service.start()
    await node.h.say(OPERATOR, "/schedule news in 1h one")
    await node.service.sweep()
    assert node.service.pending()
    await node.service.stop()
    await node.service.stop()
    assert not node.service.running
    assert node.service.pending() == []
    await node.h.say(OPERATOR, "/schedule news in 2h two")  # no resync after stop: no error
    await asyncio.sleep(0.3)
    assert node.service.pending() == []
