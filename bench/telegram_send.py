"""Telegram send benchmark: prints its figures (it is not a test).

The real TelegramAdapter driven by the real DeliveryWorker (claim -> send -> record, SQLite)
against the local Bot API server (tests/telegram_api) running in a separate process, so that
only the bridge's own CPU is counted:

(a) limits off: deliveries/s and CPU seconds of the bridge process per 1,000 deliveries, for
    ~2,000 followers (target: <= 3 ms CPU per delivery); also the adapter alone (no worker);
(b) Telegram's limits enforced by the server (30/s overall, 1/s per chat, 429 + retry_after
    beyond them) and the bridge configured at 30/s, 1/s per chat: achieved rate over ~600
    followers and the 429s received (target: >= 97% of 30/s, zero 429s);
(c) as (b), with one follower's chat answering 429 (retry_after 5 s) to its first attempts:
    the rate achieved for everyone else (target: >= 95% of the ceiling; only that chat waits);
(d) the server enforces 15/s while the bridge is configured for 30/s (Telegram enforcing less
    than configured): 300 followers, each copy once, the 429s drawn and the time taken against
    300 / 15 s (target: <= 1.2x, <= 30 429s) — flood control infers the scope and adapts;
(e) paid broadcasts: the server's paid ceiling at 1,000/s, the bridge with paid_broadcast on:
    msgs/s and CPU per delivery from one process, against a raw aiohttp send loop on the same
    server (the machine's ceiling here; goal >= 0.9 of it).

    python bench/telegram_send.py
    python bench/telegram_send.py --followers 2000 --rate-followers 600 --skip-rate
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from adapters.telegram.adapter import TelegramAdapter
from bridge.delivery import DeliveryPolicy, DeliveryWorker
from bridge.engine import ChannelEngine
from bridge.flood import FloodControl
from bridge.ports import Address, Content, Inbound, Message, PostKind, RateLimits, Reply
from bridge.privacy import Sealer
from bridge.ratelimit import RateLimiter
from bridge.store import Store

KEY = b"t" * 32
OPERATOR = Address("bench", "operator")
SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendVideo", "sendSticker", "sendPoll"})
#: effectively no limit (the limiter needs every rate > 0)
UNLIMITED = RateLimits(1e9, 1e9, 1e9)
TELEGRAM = RateLimits(30, 1, 20)


# -- the Bot API server, in its own process ---------------------------------------------------------


def _server_main(conn: Connection) -> None:
    """Run FakeBotApi and answer control requests sent over `conn` until told to stop."""
    from tests.telegram_api import FakeBotApi

    async def serve() -> None:
        async with FakeBotApi() as api:
            conn.send((api.token, api.base_url, api.file_base_url))
            loop = asyncio.get_running_loop()
            while True:
                command, arg = await loop.run_in_executor(None, conn.recv)
                if command == "stop":
                    conn.send(None)
                    return
                if command == "users":
                    conn.send([api.add_user(f"U{n}").id for n in range(int(arg))])
                elif command == "limits":
                    if arg is None:
                        api.disable_limits()
                    elif isinstance(arg, dict):
                        api.enforce_limits(**arg)
                    else:
                        api.enforce_limits(*arg)
                    conn.send(None)
                elif command == "fail":
                    api.fail(**arg)
                    conn.send(None)
                elif command == "reset":
                    api.calls.clear()
                    api.clear_failures()
                    api.rate_limited = 0
                    conn.send(None)
                elif command == "sends":
                    conn.send(
                        (
                            [(c.at, c.status, c.chat_id) for c in api.calls if c.method in SEND_METHODS],
                            api.rate_limited,
                        )
                    )
                elif command == "paid_sent":
                    conn.send(api.paid_sent)

    asyncio.run(serve())


class ServerProcess:
    """The local Bot API server in a child process, with a blocking control API."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_server_main, args=(child,), daemon=True)
        self._proc.start()
        self.token, self.base_url, self.file_base_url = self._conn.recv()

    def request(self, command: str, arg: Any = None) -> Any:
        """Send one control request and return the answer."""
        self._conn.send((command, arg))
        return self._conn.recv()

    def stop(self) -> None:
        """Stop the server and wait for its process."""
        self.request("stop")
        self._proc.join(timeout=10)


# -- the bridge side ------------------------------------------------------------------------------


def populate(url: str, user_ids: Sequence[int]) -> None:
    """A channel `bench` whose followers are these Telegram users, imported in bulk."""
    store = Store(url)
    store.create_schema()
    ChannelEngine(store, Sealer(KEY)).ensure_channel("bench", "Bench", "", True, [])
    with store.unit_of_work() as s:
        channel = store.channels.by_handle(s, "bench")
    assert channel is not None and channel.id is not None
    addresses = (Address("telegram", str(u), chat=str(u)) for u in user_ids)
    store.import_followers(channel.id, addresses, Sealer(KEY), time.time())
    store.dispose()


async def _ignore(event: Inbound) -> list[Reply]:
    return []


def _adapter(server: ServerProcess, *, paid: bool = False) -> TelegramAdapter:
    return TelegramAdapter(
        server.token,
        api_base_url=server.base_url,
        file_base_url=server.file_base_url,
        poll_timeout=30,
        paid_broadcast=paid,
    )


def _delivered(store: Store) -> tuple[int, int]:
    with store.connection() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM delivery GROUP BY status")).all()
    counts = {str(status): int(n) for status, n in rows}
    return counts.get("delivered", 0), counts.get("pending", 0) + counts.get("leased", 0)


@dataclass
class RunResult:
    """What one worker run measured in the bridge process."""

    delivered: int
    elapsed_s: float
    cpu_s: float
    retried: int


async def deliver_post(
    url: str, server: ServerProcess, limits: RateLimits, policy: DeliveryPolicy, *, paid: bool = False
) -> RunResult:
    """Publish one text post to every follower, then run the worker (with flood control, as
    the app wires it) until nothing is due; returns the worker phase's wall time and the
    bridge process's CPU time."""
    store = Store(url)
    engine = ChannelEngine(store, Sealer(KEY), operators=[OPERATOR])
    await engine.handle(Message(OPERATOR, "/post bench Benchmark post: hello, followers!"))
    await engine.drain_planning()
    adapter = _adapter(server, paid=paid)
    await adapter.start(_ignore)
    limiter = RateLimiter()
    flood = FloodControl(limiter)
    flood.configure("telegram", limits)
    worker = DeliveryWorker(store, Sealer(KEY), {"telegram": adapter}, limiter, policy=policy, flood=flood)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await worker.start()
    while True:
        await asyncio.sleep(0.05)
        delivered, due = _delivered(store)
        if not due:
            break
    elapsed, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await worker.stop()
    await adapter.stop()
    store.dispose()
    return RunResult(delivered, elapsed, cpu, worker.stats.retried)


async def adapter_alone(
    server: ServerProcess, user_ids: Sequence[int], concurrency: int
) -> tuple[float, float]:
    """The adapter without the worker: `send` to every user, `concurrency` at a time.
    Returns (sends/s, CPU ms per send)."""
    adapter = _adapter(server)
    await adapter.start(_ignore)
    content = Content(1, PostKind.TEXT, "bench", "Bench", text="Benchmark post: hello, followers!")
    queue = list(user_ids)

    async def sender() -> None:
        while queue:
            user_id = queue.pop()
            await adapter.send(Address("telegram", str(user_id), chat=str(user_id)), content)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await adapter.stop()
    return len(user_ids) / elapsed, 1000 * cpu / len(user_ids)


def _rate(times: Sequence[float]) -> float:
    """Sends per second over the span of these instants."""
    if len(times) < 2:
        return 0.0
    ordered = sorted(times)
    return (len(ordered) - 1) / (ordered[-1] - ordered[0])


def main() -> None:
    """Run (a), (b) and (c) and print their figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--followers", type=int, default=2000, help="followers for (a)")
    parser.add_argument("--rate-followers", type=int, default=600, help="followers for (b) and (c)")
    parser.add_argument("--concurrency", type=int, default=32, help="delivery worker senders")
    parser.add_argument("--skip-rate", action="store_true", help="skip (b), (c) and (d), about 70 s")
    parser.add_argument("--paid-followers", type=int, default=10000, help="users for (e), half raw")
    parser.add_argument("--skip-paid", action="store_true", help="skip (e)")
    args = parser.parse_args()
    print(f"channelbridge Telegram send benchmark — {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    server = ServerProcess()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            users = server.request("users", args.followers)
            url = f"sqlite:///{tmp / 'a.db'}"
            populate(url, users)
            policy = DeliveryPolicy(concurrency=args.concurrency, batch_size=500)
            r = asyncio.run(deliver_post(url, server, UNLIMITED, policy))
            print(
                f"(a) limits off, {r.delivered} followers, worker + adapter: "
                f"{r.delivered / r.elapsed_s:6.0f} deliveries/s, "
                f"{r.cpu_s / r.delivered * 1000:.2f} s CPU per 1,000 deliveries "
                f"({1000 * r.cpu_s / r.delivered:.2f} ms each; target <= 3 ms)"
            )
            rate, cpu_ms = asyncio.run(adapter_alone(server, users[:1000], args.concurrency))
            print(
                f"(a) limits off, adapter alone (1,000 sends): {rate:6.0f} sends/s, "
                f"{cpu_ms:.2f} ms CPU per send"
            )
            if not args.skip_rate:
                _rate_runs(server, tmp, args.rate_followers)
                _adaptive_run(server, tmp)
            if not args.skip_paid:
                _paid_run(server, tmp, args.paid_followers, args.concurrency)
    finally:
        server.stop()
    print(
        f"peak RSS of the bridge process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


def _rate_runs(server: ServerProcess, tmp: Path, followers: int) -> None:
    policy = DeliveryPolicy(concurrency=16, batch_size=200)
    # (b) the server enforces Telegram's limits; the bridge is configured with the same
    users = server.request("users", followers)
    url = f"sqlite:///{tmp / 'b.db'}"
    populate(url, users)
    server.request("reset")
    server.request("limits", (30, 1))
    r = asyncio.run(deliver_post(url, server, TELEGRAM, policy))
    sends, limited = server.request("sends")
    accepted = [at for at, status, _ in sends if status == 200]
    rate = _rate(accepted)
    print(
        f"(b) limits on (server 30/s + 1/s per chat, bridge 30/s + 1/s), {r.delivered} followers: "
        f"{rate:.2f} msg/s ({100 * rate / 30:.1f}% of 30/s), 429s received: {limited}, "
        f"{r.delivered} delivered in {r.elapsed_s:.1f} s"
    )
    # (c) as (b), one chat answers 429 (retry after 5 s) to its first three attempts
    users = server.request("users", followers)
    url = f"sqlite:///{tmp / 'c.db'}"
    populate(url, users)
    slow = users[len(users) // 10]
    server.request("reset")
    server.request("fail", {"chat_id": slow, "status": 429, "retry_after": 5, "times": 3})
    r = asyncio.run(deliver_post(url, server, TELEGRAM, policy))
    sends, limited = server.request("sends")
    others = [at for at, status, chat in sends if status == 200 and chat != slow]
    slow_calls = [(at, status) for at, status, chat in sends if chat == slow]
    rate = _rate(others)
    waited = slow_calls[-1][0] - slow_calls[0][0] if slow_calls else 0.0
    print(
        f"(c) one chat answers 429 (retry_after 5 s) 3 times, {r.delivered} followers: others "
        f"{rate:.2f} msg/s ({100 * rate / 30:.1f}% of 30/s); that chat: {len(slow_calls)} attempts, "
        f"delivered after {waited:.1f} s; 429s from the limits: {limited}; "
        f"{r.delivered} delivered in {r.elapsed_s:.1f} s"
    )
    server.request("limits", None)


def _adaptive_run(server: ServerProcess, tmp: Path, followers: int = 300) -> None:
    """(d) Telegram enforcing half the configured rate, without telling the bot."""
    users = server.request("users", followers)
    url = f"sqlite:///{tmp / 'd.db'}"
    populate(url, users)
    server.request("reset")
    server.request("limits", {"global_per_s": 15, "per_chat_per_s": 1, "per_chat_burst": 3})
    policy = DeliveryPolicy(concurrency=16, batch_size=200)
    r = asyncio.run(deliver_post(url, server, TELEGRAM, policy))
    sends, _ = server.request("sends")
    accepted = collections.Counter(chat for _, status, chat in sends if status == 200)
    refused = sum(1 for _, status, _ in sends if status == 429)
    once = sum(1 for u in users if accepted[u] == 1)
    ideal = followers / 15
    print(
        f"(d) server enforces 15/s, bridge configured 30/s, {followers} followers: all delivered in "
        f"{r.elapsed_s:.1f} s ({r.elapsed_s / ideal:.2f}x of {ideal:.0f} s; target <= 1.2x), "
        f"429s: {refused} (target <= 30), exactly one copy: {once}/{followers}"
    )
    server.request("limits", None)


def _paid_run(server: ServerProcess, tmp: Path, followers: int, concurrency: int) -> None:
    """(e) paid broadcasts at the server's paid ceiling, against a raw aiohttp loop."""
    users = server.request("users", followers)
    limits = {"global_per_s": 30, "per_chat_per_s": 1, "per_chat_burst": 3, "paid_per_s": 1000}
    server.request("limits", None)  # the machine's ceiling: nothing refused, no penalty left behind
    raw_rate = asyncio.run(_raw_paid_loop(server, users[: followers // 2], concurrency))
    server.request("reset")
    server.request("limits", limits)
    url = f"sqlite:///{tmp / 'e.db'}"
    populate(url, users[followers // 2 :])
    paid_limits = RateLimits(30, 1, 20, paid_per_s=1000)
    policy = DeliveryPolicy(concurrency=concurrency, batch_size=1000)
    r = asyncio.run(deliver_post(url, server, paid_limits, policy, paid=True))
    sends, _ = server.request("sends")
    ok = [at for at, status, _ in sends if status == 200]
    refused = sum(1 for _, status, _ in sends if status == 429)
    rate = _rate(ok)
    ceiling = min(raw_rate, 1000.0)  # the server's paid ceiling, unless the machine is slower
    print(
        f"(e) paid broadcast (server paid ceiling 1,000/s), {r.delivered} followers: "
        f"{rate:.0f} msg/s, {1000 * r.cpu_s / max(1, r.delivered):.2f} ms CPU per delivery, 429s: {refused}; "
        f"raw aiohttp loop without limits: {raw_rate:.0f} msg/s, so the ceiling here is {ceiling:.0f} msg/s; "
        f"ratio {rate / ceiling:.2f} (goal >= 0.9)"
    )
    server.request("limits", None)


async def _raw_paid_loop(server: ServerProcess, user_ids: Sequence[int], concurrency: int) -> float:
    """The machine's ceiling: bare aiohttp POSTs of sendMessage with allow_paid_broadcast."""
    import aiohttp

    url = f"{server.base_url}{server.token}/sendMessage"
    queue = list(user_ids)
    done: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def sender() -> None:
            while queue:
                chat = queue.pop()
                body = {
                    "chat_id": chat,
                    "text": "Benchmark post: hello, followers!",
                    "allow_paid_broadcast": True,
                }
                async with session.post(url, json=body) as resp:
                    await resp.read()
                    if resp.status == 200:
                        done.append(time.perf_counter())

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return _rate(done)


if __name__ == "__main__":
    main()
