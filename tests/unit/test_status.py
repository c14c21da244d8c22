"""`channelbridge status` on a populated database: queue depth per platform and lane, the
oldest waiting row, leases and their holders, the next scheduled posts, each process's send
rates with their age, and which processes are alive. Counts only: no identity is printed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bridge import migrate
from bridge.cli import main
from bridge.flood import FloodControl
from bridge.models import NoticeLane
from bridge.notices import NoticeQueue
from bridge.ports import RateLimits, Reply
from bridge.ratelimit import RateLimiter
from bridge.status import Snapshots, database_gauges, gather, render
from bridge.store import Store
from tests.support import OPERATOR, build, person


async def test_status_reports_a_populated_database(store_url: str, tmp_path: Path) -> None:
    h = build(store_url)  # no worker running: what is planned stays queued
    now = time.time()
    await h.say(OPERATOR, "/newchannel news Daily News")
    for i in range(12):
        await h.say(person(i), "/follow news")
    await h.say(OPERATOR, "/post news Hello")
    await h.say(OPERATOR, "/schedule news in 2h Later")
    await h.say(OPERATOR, "/schedule news in 3h Even later")
    await h.engine.drain_planning()
    NoticeQueue(h.store, h.sealer).enqueue(person(1), [Reply("an answer")], NoticeLane.REPLY, now - 30)
    h.store.atomically(h.store.leases.hold, "inbound:fake", "w-abc", now, 4.0)
    h.store.atomically(h.store.leases.heartbeat, "w-abc", now, 4.0)
    flood = FloodControl(RateLimiter())
    flood.configure("fake", RateLimits(30, 1, 20))
    Snapshots(h.store, "w-abc", flood).write()

    report = gather(h.store)
    assert report.queue_depth[("fake", "copy")] == 12
    assert report.queue_depth[("fake", "reply")] == 1
    assert report.oldest_open_age_s is not None and report.oldest_open_age_s >= 29
    assert report.followers == {"fake": 12}
    assert [pid for pid, _ in report.next_posts] == [2, 3]
    assert report.leases["inbound:fake"][0] == "w-abc"
    (proc,) = report.processes
    assert proc.name == "w-abc" and proc.alive and proc.rates == {"fake": (30.0, 30.0)}

    lines = "\n".join(render(report))
    assert "fake       copy    12" in lines
    assert "fake       reply   1" in lines
    assert "#2 at" in lines and "#3 at" in lines
    assert "inbound:fake       held by w-abc" in lines
    assert "send rate fake: 30.0/s of 30/s" in lines
    assert "w-abc pid" in lines and "alive" in lines
    assert "700000" not in lines and OPERATOR.id not in lines and "Hello" not in lines

    gauges = database_gauges(h.store, flood)
    assert gauges.queue_depth == report.queue_depth and gauges.followers == {"fake": 12}
    h.store.dispose()


def test_the_status_command_prints_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(f"sqlite:///{tmp_path / 'channelbridge.db'}")
    migrate.upgrade(store.engine)
    store.dispose()
    config = tmp_path / "c.toml"
    config.write_text(f'[general]\ndata_dir = "{tmp_path}"\n')
    assert main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "queue (rows waiting to be sent):" in out and "processes:" in out and "none running" in out
