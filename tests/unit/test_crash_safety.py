"""Crash safety: a worker killed with SIGKILL mid fan-out loses nothing, and repeats at most
the sends that were in flight (bounded by the configured concurrency)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import OPERATOR, build, person

FOLLOWERS = 2000
CONCURRENCY = 8


def _spawn(url: str, record: Path, lease_s: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_worker", url, str(record), str(CONCURRENCY), str(lease_s)],
        cwd=Path(__file__).resolve().parents[2],
    )


def _lines(record: Path) -> list[str]:
    return record.read_text().splitlines() if record.exists() else []


async def test_sigkill_mid_fanout_then_restart_delivers_each_post_once(
    store_url: str, tmp_path: Path
) -> None:
    h = build(store_url)
    await h.say(OPERATOR, "/newchannel news Daily News")
    people = [person(i) for i in range(FOLLOWERS)]
    for p in people:
        await h.say(p, "/follow news")
    await h.say(OPERATOR, "/post news survive this")
    await h.engine.drain_planning()
    h.store.dispose()

    record = tmp_path / "sent.txt"
    first = _spawn(store_url, record, lease_s=2.0)
    deadline = time.monotonic() + 60
    while len(_lines(record)) < FOLLOWERS // 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    sent_before_kill = len(_lines(record))
    assert FOLLOWERS // 4 <= sent_before_kill < FOLLOWERS, "the kill must land mid fan-out"

    second = _spawn(store_url, record, lease_s=2.0)
    assert second.wait(timeout=120) == 0

    counts = collections.Counter(line.split()[0] for line in _lines(record))
    assert set(counts) == {p.target for p in people}, "every follower got the post"
    repeated = sum(n - 1 for n in counts.values())
    assert repeated <= CONCURRENCY, f"{repeated} repeated sends; at most {CONCURRENCY} were in flight"
    with h.store.session() as s:
        from sqlmodel import func, select

        from bridge.models import Delivery

        statuses = dict(s.exec(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
    assert statuses == {"delivered": FOLLOWERS}
