"""Fan-out benchmark: prints its figures (it is not a test).

(a) engine throughput: deliveries/s through claim -> send -> record against a null adapter that
    returns at once, for 10,000 and 100,000 followers, on SQLite (and PostgreSQL with --pg URL,
    with 1, 2 and 4 worker processes), with each run's peak RSS;
(b) rate fidelity: against a simulated platform that enforces 30 msg/s overall and 1 msg/s per
    chat and answers 429 with retry_after when exceeded: achieved msg/s and 429s received;
(c) publish -> first delivery latency.

    python bench/fanout.py                 # SQLite, all three parts
    python bench/fanout.py --pg postgresql+psycopg://postgres@127.0.0.1/bench --sizes 10000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from bridge.delivery import DeliveryPolicy, DeliveryWorker
from bridge.engine import ChannelEngine
from bridge.ports import Address, Capabilities, Content, Message, MessageRef, RateLimits, Reply, RetryLater
from bridge.privacy import Sealer
from bridge.ratelimit import RateLimiter
from bridge.store import Store

KEY = b"b" * 32
OPERATOR = Address("bench", "operator")


class NullAdapter:
    """Returns at once: measures the engine, not a platform."""

    platform = "bench"
    capabilities = Capabilities()
    default_limits = RateLimits(1e9, 1e9, 1e9)

    def __init__(self) -> None:
        self.sent = 0
        self.first_at: float | None = None
        self.first_wall: float | None = None

    async def start(self, handler: object) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Count and return."""
        self.sent += 1
        if self.first_at is None:
            self.first_at = time.perf_counter()
            self.first_wall = time.time()
        return MessageRef(f"{address.target}:{content.post_id}")

    async def edit(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Nothing."""

    async def delete(self, address: Address, ref: MessageRef) -> None:
        """Nothing."""

    async def close_poll(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Nothing."""

    async def reply(self, address: Address, reply: Reply) -> None:
        """Nothing."""


class SimulatedPlatform(NullAdapter):
    """Enforces Telegram's published limits like the server would: at most `global_per_s`
    sends in any 1 s window, at most one per chat per `1/per_chat` s; else 429 + retry_after."""

    def __init__(self, global_per_s: float = 30.0, per_chat_per_s: float = 1.0) -> None:
        super().__init__()
        self.window: deque[float] = deque()
        self.last_in_chat: dict[str, float] = {}
        self.global_per_s = global_per_s
        self.chat_gap = 1.0 / per_chat_per_s
        self.rejected = 0
        self.accepted_at: list[float] = []

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Accept, or answer 429 with retry_after like the Bot API."""
        now = time.monotonic()
        while self.window and now - self.window[0] >= 1.0:
            self.window.popleft()
        last = self.last_in_chat.get(address.target)
        if len(self.window) >= self.global_per_s:
            self.rejected += 1
            raise RetryLater(1.0, scope="global", reason="429 Too Many Requests")
        if last is not None and now - last < self.chat_gap:
            self.rejected += 1
            raise RetryLater(1.0, scope="chat", reason="429 Too Many Requests")
        self.window.append(now)
        self.last_in_chat[address.target] = now
        self.accepted_at.append(now)
        return await super().send(address, content)


def populate(url: str, followers: int) -> None:
    """A channel `bench` with `followers` followers, imported in bulk."""
    store = Store(url)
    store.create_schema()
    _engine(store).ensure_channel("bench", "Bench", "", True, [])
    with store.unit_of_work() as s:
        channel = store.channels.by_handle(s, "bench")
    assert channel is not None and channel.id is not None
    addresses = (Address("bench", str(100_000_000 + n)) for n in range(followers))
    store.import_followers(channel.id, addresses, Sealer(KEY), time.time())
    store.dispose()


def _engine(store: Store) -> ChannelEngine:
    return ChannelEngine(store, Sealer(KEY), operators=[OPERATOR])


async def _publish(engine: ChannelEngine, text_: str = "benchmark post") -> float:
    start = time.perf_counter()
    await engine.handle(Message(OPERATOR, f"/post bench {text_}"))
    return start


def _pending(store: Store) -> bool:
    """Whether any row is still open (an index probe: counting 100,000 rows would compete)."""
    with store.connection() as conn:
        row = conn.execute(
            text("SELECT 1 FROM delivery WHERE status IN ('pending', 'leased') LIMIT 1")
        ).first()
        return row is not None


async def _work(
    url: str,
    adapter: NullAdapter,
    policy: DeliveryPolicy,
    until_sent: int,
    limits: RateLimits | None = None,
    timeout: float = 600,
) -> float:
    store = Store(url)
    limiter = RateLimiter()
    if limits is not None:
        limiter.configure(adapter.platform, limits)
    worker = DeliveryWorker(store, Sealer(KEY), {adapter.platform: adapter}, limiter, policy=policy)
    await worker.start()
    start = time.perf_counter()
    deadline = start + timeout
    while adapter.sent < until_sent and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    while _pending(store) and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)  # counting open rows is not free: do not compete with the worker
    elapsed = time.perf_counter() - start
    await worker.stop()
    store.dispose()
    return elapsed


def _throughput_child(url: str, followers: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def run() -> dict[str, float]:
        store = Store(url)
        engine = _engine(store)
        adapter = NullAdapter()
        limiter = RateLimiter()
        worker = DeliveryWorker(
            store,
            Sealer(KEY),
            {"bench": adapter},
            limiter,
            policy=DeliveryPolicy(concurrency=64, batch_size=2000),
        )
        engine.set_on_work(worker.wake)
        await worker.start()
        t0 = await _publish(engine)
        await engine.drain_planning()
        planned_at = time.perf_counter()
        while adapter.sent < followers:
            await asyncio.sleep(0.005)
        while _pending(store):
            await asyncio.sleep(0.005)
        done = time.perf_counter()
        await worker.stop()
        return {
            "elapsed": done - t0,
            "planning": planned_at - t0,
            "first": (adapter.first_at or done) - t0,
            "sent": adapter.sent,
        }

    result = asyncio.run(run())
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(result)


def _worker_child(url: str, concurrency: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    adapter = NullAdapter()
    asyncio.run(_work(url, adapter, DeliveryPolicy(concurrency=concurrency, batch_size=2000), 0))
    queue.put(
        {
            "sent": adapter.sent,
            "first": adapter.first_wall or time.time(),
            "done": time.time(),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def throughput(url: str, followers: int) -> dict[str, float]:
    """(a) and (c): one process publishes and delivers to `followers` followers."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_throughput_child, args=(url, followers, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def multi_process(url: str, followers: int, processes: int) -> dict[str, float]:
    """(a) on PostgreSQL: the plan is made first, then N worker processes share it; timed from
    the first send in any process to the moment the last one finds nothing left."""
    store = Store(url)
    engine = _engine(store)

    async def publish_and_plan() -> None:
        await _publish(engine)
        await engine.drain_planning()

    asyncio.run(publish_and_plan())
    store.dispose()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker_child, args=(url, 64, queue)) for _ in range(processes)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    # from the first send anywhere to the last process seeing nothing left (spawn time excluded)
    elapsed = max(r["done"] for r in results) - min(r["first"] for r in results)
    sent = sum(r["sent"] for r in results)
    store = Store(url)
    with store.connection() as conn:
        delivered = conn.execute(text("SELECT count(*) FROM delivery WHERE status = 'delivered'")).scalar()
    store.dispose()
    return {
        "elapsed": elapsed,
        "sent": sent,
        "delivered": float(delivered or 0),
        "rss_mb": max(r["rss_mb"] for r in results),
    }


async def rate_fidelity(url: str, followers: int, limited_chat_storm: bool = False) -> dict[str, float]:
    """(b): send to `followers` chats through the limiter configured at 30/s, 1/s per chat."""
    store = Store(url)
    engine = _engine(store)
    await _publish(engine)
    await engine.drain_planning()
    store.dispose()
    platform = SimulatedPlatform()
    elapsed = await _work(
        url, platform, DeliveryPolicy(concurrency=16, batch_size=200), followers, limits=RateLimits(30, 1, 20)
    )
    times = platform.accepted_at
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {"sent": platform.sent, "elapsed": elapsed, "rate": steady, "rejected_429": platform.rejected}


def _fresh(url_or_none: str | None, tmp: Path, name: str) -> str:
    if url_or_none is None:
        return f"sqlite:///{tmp / (name + '.db')}"
    from sqlalchemy import create_engine

    base, _, _db = url_or_none.rpartition("/")
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{base}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="follower counts for (a)")
    parser.add_argument("--pg", help="a PostgreSQL URL (its server is used; databases bench_* are created)")
    parser.add_argument("--skip-rate", action="store_true", help="skip (b), which takes about 20 s")
    parser.add_argument("--only-multi", action="store_true", help="with --pg: only the 1/2/4-process runs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"channelbridge fan-out benchmark — {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stores = ([] if args.only_multi else [("sqlite", None)]) + (
            [("postgresql", args.pg)] if args.pg else []
        )
        for kind, base in stores:
            for n in [] if args.only_multi else sizes:
                url = _fresh(base, tmp, f"bench_{kind}_{n}")
                populate(url, n)
                r = throughput(url, n)
                print(
                    f"(a) {kind:10} {n:>7} followers: {r['sent'] / r['elapsed']:8.0f} deliveries/s "
                    f"({r['elapsed']:.2f} s, planning {r['planning']:.2f} s), peak RSS {r['rss_mb']:.0f} MB"
                )
                print(f"(c) {kind:10} {n:>7} followers: publish -> first delivery {1000 * r['first']:.1f} ms")
            if kind == "postgresql":
                n = max(sizes)
                for procs in (1, 2, 4):
                    url = _fresh(base, tmp, f"bench_pg_multi_{procs}")
                    populate(url, n)
                    r = multi_process(url, n, procs)
                    print(
                        f"(a) postgresql {n:>7} followers, {procs} worker process(es): "
                        f"{r['delivered'] / r['elapsed']:8.0f} deliveries/s, sent {int(r['sent'])} "
                        f"for {int(r['delivered'])} delivered rows (exactly once: {int(r['sent']) == n}), "
                        f"peak RSS {r['rss_mb']:.0f} MB"
                    )
        if not args.skip_rate and not args.only_multi:
            url = _fresh(None, tmp, "bench_rate")
            populate(url, 600)
            r = asyncio.run(rate_fidelity(url, 600))
            print(
                f"(b) rate fidelity at 30/s, 1/s per chat: {r['rate']:.2f} msg/s "
                f"({100 * r['rate'] / 30:.1f}% of the ceiling), 429s received: {int(r['rejected_429'])}, "
                f"{int(r['sent'])} sent in {r['elapsed']:.1f} s"
            )


if __name__ == "__main__":
    main()
