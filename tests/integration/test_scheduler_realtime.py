"""The scheduler in the real App with real waiting: APScheduler wakes the process at the due
second, the post goes out once (while the sweep runs every half second too), the admin hears
about it, and a recurring occurrence fires once and re-arms for the next one."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bridge.app import App
from bridge.config import load_settings
from bridge.models import Post, RecurringPost
from bridge.ports import Address, Message
from scheduler.service import SchedulerService, WakeupKind
from tests.support import OPERATOR, FakeAdapter, person

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    """The App on SQLite with a fake adapter, no console, a half-second sweep."""
    settings = load_settings(
        None,
        env={
            "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path),
            "CHANNELBRIDGE_GENERAL__TIMEZONE": "Europe/Paris",
            "CHANNELBRIDGE_PRIVACY__KEY": KEY,
            "CHANNELBRIDGE_SCHEDULER__SWEEP_INTERVAL_S": "0.5",
            "CHANNELBRIDGE_SCHEDULER__MISFIRE_GRACE_S": "60",
        },
    )
    application = App(settings, adapters=[FakeAdapter()], scheduler_factory=SchedulerService.for_app)
    application.engine.add_operator(OPERATOR)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


async def _say(app: App, text: str, who: Address = OPERATOR) -> str:
    replies = await app.engine.handle(Message(who, text))  # the answers, as the engine gives them
    return "\n".join(r.text for r in replies)


def _fake(app: App) -> FakeAdapter:
    adapter = app.adapters["fake"]
    assert isinstance(adapter, FakeAdapter)
    return adapter


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_post_scheduled_two_seconds_ahead_is_published_once_on_time(app: App) -> None:
    await _say(app, "/newchannel news Daily News")
    people = [person(i) for i in range(3)]
    for p in people:
        await _say(app, "/follow news", p)
    due = math.ceil(time.time()) + 2
    typed = datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reply = await _say(app, f"/schedule news {typed} right on time")
    assert "Post #1 is scheduled for" in reply and "UTC)" in reply
    assert _fake(app).calls == []

    await _until(lambda: len(_fake(app).of("send")) == len(people), timeout=5)
    first_send = time.time()
    assert due <= first_send < due + 1.0, first_send - due
    await asyncio.sleep(1.2)  # two more sweeps and the job's own wake-up: still one copy each
    for p in people:
        assert [c.text for c in _fake(app).sends_to(p.target)] == ["right on time"]
    assert (OPERATOR.target, "Scheduled post #1 is going out now.") in _fake(app).replies
    assert app.scheduler is not None and isinstance(app.scheduler, SchedulerService)
    assert app.scheduler.pending() == []


async def test_recurring_occurrence_fires_once_in_real_time_and_rearms(app: App) -> None:
    await _say(app, "/newchannel news Daily News")
    follower = person(1)
    await _say(app, "/follow news", follower)
    assert "Recurring post r1" in await _say(app, "/every news daily 09:00 morning digest")
    service = app.scheduler
    assert isinstance(service, SchedulerService)
    due = math.ceil(time.time()) + 1.0
    # bring the next occurrence forward to a second from now, behind the scheduler's back (as
    # another process would): the half-second sweep must notice it and arm a job in time
    with app.store.session() as s:
        row = s.get(RecurringPost, 1)
        assert row is not None
        row.next_at = due
        s.add(row)

    await _until(lambda: len(_fake(app).sends_to(follower.target)) == 1, timeout=4)
    assert time.time() - due < 1.5
    await asyncio.sleep(0.7)
    assert [c.text for c in _fake(app).sends_to(follower.target)] == ["morning digest"]
    with app.store.session() as s:
        row = s.get(RecurringPost, 1)
        assert row is not None and row.next_at is not None
        posts = list(s.exec(select(Post)))
    assert len(posts) == 1
    local = datetime.fromtimestamp(row.next_at, app.engine.options.tz)
    assert (local.hour, local.minute) == (9, 0) and row.next_at > due
    (wakeup,) = service.pending()
    assert (wakeup.kind, wakeup.at) == (WakeupKind.RECURRING, row.next_at)
