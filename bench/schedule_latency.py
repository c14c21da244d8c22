"""Scheduler latency benchmark: prints its figures (it is not a test).

Schedules `--posts` posts (default 200) a few seconds ahead through the engine (`/schedule` with
a to-the-second UTC time), with the real `SchedulerService` (APScheduler date jobs), the
delivery worker and a null adapter, on SQLite. For each post it measures

- wake:  scheduled_at -> the post claimed for publishing (`published_at`), and
- send:  scheduled_at -> the first delivery of that post handed to the adapter,

and prints p50 / p95 / p99 / max of each. Target: send p99 < 1 s.

    python bench/schedule_latency.py                      # 200 posts over 4 s, 5 followers each
    python bench/schedule_latency.py --spread 1            # all 200 due in the same second
    python bench/schedule_latency.py --posts 1000 --followers 20
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fanout import NullAdapter
from sqlmodel import select

from bridge.delivery import DeliveryPolicy, DeliveryWorker
from bridge.engine import ChannelEngine
from bridge.models import Post
from bridge.ports import Address, Content, Message, MessageRef
from bridge.privacy import Sealer
from bridge.ratelimit import RateLimiter
from bridge.store import Store
from bridge.when import parse_recurrence, parse_when
from scheduler.service import SchedulerService

OPERATOR = Address("bench", "operator")


class FirstSendAdapter(NullAdapter):
    """The fan-out benchmark's null adapter, noting when each post's first copy was handed over."""

    def __init__(self) -> None:
        super().__init__()
        self.first_send: dict[int, float] = {}

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Record the first send per post."""
        self.first_send.setdefault(content.post_id, time.time())
        return await super().send(address, content)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, math.ceil(p / 100 * len(ordered)) - 1)
    return ordered[k]


def _line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"  {name:<28} p50 {_pct(ms, 50):7.1f} ms   p95 {_pct(ms, 95):7.1f} ms   "
        f"p99 {_pct(ms, 99):7.1f} ms   max {max(ms):7.1f} ms   mean {statistics.fmean(ms):7.1f} ms"
    )


async def run(posts: int, followers: int, ahead: int, spread: int, concurrency: int) -> bool:
    """One run; prints the figures and returns whether send p99 < 1 s."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        store.create_schema()
        sealer = Sealer(b"s" * 32)
        engine = ChannelEngine(
            store, sealer, operators=[OPERATOR], parse_when=parse_when, parse_recurrence=parse_recurrence
        )
        adapter = FirstSendAdapter()
        limiter = RateLimiter()
        limiter.configure(adapter.platform, adapter.default_limits)
        worker = DeliveryWorker(
            store,
            sealer,
            {adapter.platform: adapter},
            limiter,
            policy=DeliveryPolicy(concurrency=concurrency),
        )
        engine.set_on_work(worker.wake)
        service = SchedulerService(engine, sweep_interval_s=30.0, misfire_grace_s=300.0)
        await worker.start()
        await service.start()
        try:
            await engine.handle(Message(OPERATOR, "/newchannel news Bench News"))
            for i in range(followers):
                await engine.handle(Message(Address("bench", f"follower-{i}"), "/follow news"))
            base = math.ceil(time.time()) + ahead
            started = time.perf_counter()
            for i in range(posts):
                at = base + i % max(1, spread)
                typed = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                replies = await engine.handle(Message(OPERATOR, f"/schedule news {typed} bench post {i}"))
                if "is scheduled" not in replies[0].text:
                    raise SystemExit(f"scheduling failed: {replies[0].text}")
            scheduling_s = time.perf_counter() - started
            if time.time() >= base:
                raise SystemExit(f"scheduling took {scheduling_s:.1f} s; raise --ahead above {ahead} s")
            await asyncio.sleep(0.5)
            registered = len(service.pending())
            deadline = time.time() + spread + ahead + 30
            while len(adapter.first_send) < posts and time.time() < deadline:
                await asyncio.sleep(0.05)
            await engine.drain_planning()
            await worker.drain(timeout=60)
        finally:
            await service.stop()
            await worker.stop()
        with store.unit_of_work() as s:
            rows = list(s.exec(select(Post)))
        store.dispose()
    wake = [(p.published_at or math.inf) - (p.scheduled_at or 0) for p in rows]
    send = [adapter.first_send.get(p.id or 0, math.inf) - (p.scheduled_at or 0) for p in rows]
    print(
        f"{posts} posts x {followers} followers, due over {max(1, spread)} s starting {ahead} s ahead "
        f"(scheduling took {scheduling_s:.2f} s; {registered} date jobs registered), "
        f"worker concurrency {concurrency}, SQLite:"
    )
    print(_line("scheduled_at -> claimed", wake))
    print(_line("scheduled_at -> first send", send))
    print(f"  copies sent: {adapter.sent} (expected {posts * followers})")
    ok = _pct(send, 99) < 1.0 and adapter.sent == posts * followers
    print(f"  target p99 < 1 s: {'met' if ok else 'NOT met'}")
    return ok


def main() -> int:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--followers", type=int, default=5)
    parser.add_argument("--ahead", type=int, default=4, help="seconds between now and the first due time")
    parser.add_argument("--spread", type=int, default=4, help="due times are spread over this many seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="delivery worker senders")
    args = parser.parse_args()
    ok = asyncio.run(run(args.posts, args.followers, args.ahead, args.spread, args.concurrency))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
