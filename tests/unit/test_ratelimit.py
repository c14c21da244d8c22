"""The rate limiter paces sends exactly, keeps chats independent and honours pauses.

Time is virtual: `VirtualTime` supplies the limiter's clock and sleep, and wakes sleepers in
order of their deadlines, so hundreds of sends take milliseconds and every instant is exact.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Awaitable, Iterable
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.ports import RateLimits
from bridge.ratelimit import RateLimiter

TELEGRAM = RateLimits(global_per_s=30, per_chat_per_s=1, group_per_min=20)


class VirtualTime:
    """A clock and a sleep for the limiter; `run` drives the tasks through virtual time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), self._seq, future))
        self._seq += 1
        await future

    async def run(self, *coros: Awaitable[Any]) -> list[Any]:
        """Run `coros` concurrently, advancing time to the next deadline whenever all wait."""
        task = asyncio.ensure_future(asyncio.gather(*coros))
        for _ in range(1_000_000):
            for _ in range(10):  # let every runnable task reach its next await
                await asyncio.sleep(0)
            if task.done():
                return task.result()
            while self._sleepers:
                when, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    self.now = max(self.now, when)
                    future.set_result(None)
                    break
        raise AssertionError("virtual time did not finish")


def make_limiter(vt: VirtualTime, limits: RateLimits = TELEGRAM) -> RateLimiter:
    limiter = RateLimiter(clock=vt.clock, sleep=vt.sleep)
    limiter.configure("telegram", limits)
    return limiter


def max_in_window(times: Iterable[float], window: float) -> int:
    """The largest number of instants inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        best = max(best, sum(1 for t in ordered[i:] if t < start + window))
    return best


async def test_global_rate_never_exceeds_30_in_any_one_second_window() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt)
    sent: list[tuple[float, str]] = []

    async def send(chat: str) -> None:
        await limiter.acquire("telegram", chat)
        sent.append((vt.now, chat))

    await vt.run(*(send(f"chat{i % 100}") for i in range(300)))

    times = sorted(t for t, _ in sent)
    assert len(times) == 300
    assert max_in_window(times, 1.0) <= 30
    assert min(b - a for a, b in pairwise(times)) >= 1 / 30
    assert times[-1] < 300 / 30 + 0.01  # paced, not throttled below the allowed rate


async def test_a_reply_goes_out_ahead_of_the_sends_a_fanout_has_planned() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt)
    sent: list[tuple[float, str]] = []

    async def send(chat: str, *, urgent: bool = False, after: float = 0.0) -> None:
        await vt.sleep(after)
        await limiter.acquire("telegram", chat, urgent=urgent)
        sent.append((vt.now, chat))

    # 60 fan-out senders have planned their places (two seconds of budget) when a reply comes
    await vt.run(*(send(f"f{i}") for i in range(60)), send("newcomer", urgent=True, after=0.2))

    [(at, _)] = [item for item in sent if item[1] == "newcomer"]
    assert at < 0.2 + 2 / 30 + 1e-3, at  # the next slot or the one after, not behind the 60
    times = sorted(t for t, _ in sent)
    assert min(b - a for a, b in pairwise(times)) >= 1 / 30  # still inside the global budget


async def test_sends_held_up_by_a_busy_loop_are_counted_from_when_they_left() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt)
    committed: list[float] = []
    stall_from, stall_to = 0.5 + 1e-4, 0.8

    async def send(chat: str) -> None:
        await limiter.acquire("telegram", chat)
        committed.append(vt.now)

    async def busy_loop() -> None:  # the loop is held up: the sleepers due meanwhile wake late
        await vt.sleep(stall_from)
        vt.now = stall_to

    await vt.run(*(send(f"chat{i}") for i in range(90)), busy_loop())

    # the request of a send let through just before the hold-up (the loop was free one
    # interval earlier: that one's left) goes out only after it
    gap = 1 / 30
    arrivals = [stall_to if stall_from - gap <= t <= stall_from else t for t in committed]
    assert len(arrivals) == 90
    assert max_in_window(arrivals, 1.0) <= 30


async def test_concurrent_acquires_never_share_a_slot() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt, RateLimits(global_per_s=10, per_chat_per_s=5, group_per_min=60))
    sent: list[tuple[float, str]] = []

    async def send(chat: str) -> None:
        await limiter.acquire("telegram", chat)
        sent.append((vt.now, chat))

    await vt.run(*(send(chat) for chat in ["a", "b", "c"] * 20))

    times = sorted(t for t, _ in sent)
    assert len(set(times)) == 60
    assert max_in_window(times, 1.0) <= 10
    for chat in "abc":
        per_chat = [t for t, c in sent if c == chat]
        assert max_in_window(per_chat, 1.0) <= 5


async def test_one_chat_gets_at_most_one_send_per_second() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt)
    sent: list[float] = []

    async def send() -> None:
        await limiter.acquire("telegram", "alice-chat")
        sent.append(vt.now)

    await vt.run(*(send() for _ in range(5)))

    assert sent == sorted(sent)
    assert min(b - a for a, b in pairwise(sent)) >= 1.0
    assert sent[-1] == pytest.approx(4.0, abs=0.001)


async def test_group_chat_gets_at_most_twenty_sends_per_minute() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt)
    sent: list[float] = []

    async def send() -> None:
        await limiter.acquire("telegram", "-100123", group=True)
        sent.append(vt.now)

    await vt.run(*(send() for _ in range(25)))

    assert max_in_window(sent, 60.0) <= 20
    assert min(b - a for a, b in pairwise(sent)) >= 3.0
    assert sent[-1] == pytest.approx(24 * 3.0, abs=0.001)


async def test_paused_chat_does_not_delay_other_chats() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt)
    limiter.pause("telegram", "a", 10.0)
    sent: dict[str, float] = {}

    async def send(chat: str) -> None:
        await limiter.acquire("telegram", chat)
        sent[chat] = vt.now

    await vt.run(send("a"), send("b"))

    assert sent["b"] == 0.0
    assert sent["a"] >= 10.0
    assert limiter.paused_for("telegram", "a") == 0.0


async def test_pause_is_reported_per_chat_and_for_the_platform() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt)
    limiter.pause("telegram", "a", 10.0)
    vt.now = 4.0

    assert limiter.paused_for("telegram", "a") == pytest.approx(6.0)
    assert limiter.paused_for("telegram", "b") == 0.0
    assert limiter.paused_for("telegram", None) == 0.0
    limiter.pause("telegram", "a", 1.0)  # a shorter pause never shortens a longer one
    assert limiter.paused_for("telegram", "a") == pytest.approx(6.0)
    limiter.pause("telegram", None, 20.0)
    assert limiter.paused_for("telegram", "b") == pytest.approx(20.0)


async def test_slow_chat_backlog_does_not_delay_other_chats() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt)
    sent: list[tuple[float, str]] = []

    async def send(chat: str) -> None:
        await limiter.acquire("telegram", chat)
        sent.append((vt.now, chat))

    # five sends to "a" reserve the global slots at 0, 1, 2, 3, 4 s; "b" must not wait for them
    await vt.run(*(send("a") for _ in range(5)), send("b"))

    b_time = next(t for t, chat in sent if chat == "b")
    assert b_time == pytest.approx(1 / 30, abs=0.001)
    assert max_in_window([t for t, _ in sent], 1.0) <= 30


async def test_global_pause_delays_every_chat() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt)
    limiter.pause("telegram", None, 5.0)
    sent: dict[str, float] = {}

    async def send(chat: str) -> None:
        await limiter.acquire("telegram", chat)
        sent[chat] = vt.now

    await vt.run(send("a"), send("b"), send("c"))

    assert all(t >= 5.0 for t in sent.values())
    assert max(sent.values()) < 5.0 + 3 / 30 + 0.001


async def test_pause_arriving_while_waiting_moves_the_send_after_it() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt)
    sent: list[float] = []

    async def two_sends() -> None:
        for _ in range(2):
            await limiter.acquire("telegram", "a")
            sent.append(vt.now)

    async def retry_after_arrives() -> None:
        await vt.sleep(0.5)
        limiter.pause("telegram", "a", 3.0)  # the second send was reserved for t = 1

    await vt.run(two_sends(), retry_after_arrives())

    assert sent[0] == 0.0
    assert sent[1] >= 3.5


async def test_cancelled_wait_gives_its_slot_back() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt)
    await limiter.acquire("telegram", "a")  # t = 0, the chat's next slot is t = 1

    async def cancelled_send() -> None:
        task = asyncio.ensure_future(limiter.acquire("telegram", "a"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def later_send() -> float:
        await vt.sleep(0.25)
        await limiter.acquire("telegram", "a")
        return vt.now

    _, later = await vt.run(cancelled_send(), later_send())

    assert later == pytest.approx(1.0, abs=0.001)  # not 2.0: the cancelled slot was freed


async def test_unconfigured_platform_is_not_limited() -> None:
    vt = VirtualTime()
    limiter = RateLimiter(clock=vt.clock, sleep=vt.sleep)

    for _ in range(100):
        await limiter.acquire("console", "local")

    assert vt.now == 0.0
    assert limiter.tracked_chats("console") == 0


async def test_pause_on_unconfigured_platform_is_still_honoured() -> None:
    vt = VirtualTime()
    limiter = RateLimiter(clock=vt.clock, sleep=vt.sleep)
    limiter.pause("matrix", "!room", 2.0)
    sent: list[float] = []

    async def send() -> None:
        await limiter.acquire("matrix", "!room")
        sent.append(vt.now)

    await vt.run(send())

    assert sent == [pytest.approx(2.0, abs=0.001)]
    assert sent[0] >= 2.0


async def test_idle_chat_state_is_dropped() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt, RateLimits(global_per_s=1000, per_chat_per_s=1, group_per_min=20))

    for i in range(20_000):
        vt.now += 0.01  # chats go idle one second after their send
        await limiter.acquire("telegram", f"chat{i}")

    assert limiter.tracked_chats("telegram") <= 2048


def test_configure_refuses_non_positive_rates() -> None:
    limiter = RateLimiter()

    with pytest.raises(ValueError, match="> 0"):
        limiter.configure("telegram", RateLimits(global_per_s=0))
    with pytest.raises(ValueError, match="> 0"):
        limiter.configure("telegram", RateLimits(per_chat_per_s=-1))


async def test_real_clock_paces_sends() -> None:
    limiter = RateLimiter()
    limiter.configure("telegram", RateLimits(global_per_s=200, per_chat_per_s=200))

    started = time.monotonic()
    for _ in range(6):
        await limiter.acquire("telegram", "a")
    elapsed = time.monotonic() - started

    assert 5 / 200 <= elapsed < 0.5


@pytest.mark.parametrize("watched", [True, False])
async def test_a_hold_up_shorter_than_one_interval_right_after_a_send_is_seen(watched: bool) -> None:
    """A send is let through, then the loop is held up (a 20 ms database commit on it) before
    its request leaves. The hold-up ends before the next send's turn, so no acquire wakes late:
    only the watch sees it, and a full budget later no second holds 31 arrivals."""
    vt = VirtualTime()
    limiter = RateLimiter(clock=vt.clock, sleep=vt.sleep, watch=watched)
    limiter.configure("telegram", TELEGRAM)
    committed: list[float] = []
    hold_up = 0.02

    async def sends() -> None:
        await limiter.acquire("telegram", "chat0")
        committed.append(vt.now)
        vt.now += hold_up  # held up: the first request leaves only now
        for n in range(1, 31):
            await limiter.acquire("telegram", f"chat{n}")
            committed.append(vt.now)

    await vt.run(sends())
    await limiter.close()
    arrivals = [hold_up, *committed[1:]]
    if watched:
        assert max_in_window(arrivals, 1.0) <= 30
    else:  # what the watch is for: without it the 31st send shares the first one's second
        assert max_in_window(arrivals, 1.0) == 31


_arrivals = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=5, allow_nan=False),  # when the send is requested
        st.sampled_from(["a", "b", "c", "g1", "g2"]),  # g* are groups
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=40, deadline=None)
@given(arrivals=_arrivals, pauses=st.lists(st.tuples(st.floats(0, 5), st.floats(0.1, 3)), max_size=3))
def test_every_bucket_holds_under_random_arrivals_and_pauses(
    arrivals: list[tuple[float, str]], pauses: list[tuple[float, float]]
) -> None:
    limits = RateLimits(global_per_s=7, per_chat_per_s=2, group_per_min=30)

    async def scenario() -> list[tuple[float, str]]:
        vt = VirtualTime()
        limiter = make_limiter(vt, limits)
        sent: list[tuple[float, str]] = []
        paused_until = 0.0  # end of the longest pause of "a" set so far

        async def send(at: float, chat: str) -> None:
            await vt.sleep(at)
            await limiter.acquire("telegram", chat, group=chat.startswith("g"))
            if chat == "a":
                assert vt.now >= paused_until  # never inside a pause already announced
            sent.append((vt.now, chat))

        async def pause_a(at: float, seconds: float) -> None:
            nonlocal paused_until
            await vt.sleep(at)
            limiter.pause("telegram", "a", seconds)
            paused_until = max(paused_until, vt.now + seconds)

        await vt.run(*(send(at, chat) for at, chat in arrivals), *(pause_a(*p) for p in pauses))
        return sent

    sent = asyncio.run(scenario())

    assert len(sent) == len(arrivals)
    assert max_in_window([t for t, _ in sent], 1.0) <= 7
    for chat in {c for _, c in arrivals}:
        times = [t for t, c in sent if c == chat]
        if chat.startswith("g"):
            assert max_in_window(times, 60.0) <= 30
            assert all(b - a >= 2.0 for a, b in pairwise(times))
        else:
            assert max_in_window(times, 1.0) <= 2


async def test_paid_broadcasts_fill_their_own_budget_without_exceeding_it_in_any_second() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt, RateLimits(30, 1, 20, paid_per_s=1000))
    sent: list[float] = []
    chats = iter(range(100_000))

    async def sender() -> None:
        for _ in range(100):
            await limiter.acquire("telegram", f"c{next(chats)}", paid=True)
            sent.append(vt.now)

    await vt.run(*(sender() for _ in range(32)))
    assert len(sent) == 3200
    assert max_in_window(sent, 1.0) <= 1000  # never above the paid ceiling in any second ...
    assert sent[-1] - sent[0] < 3200 / 1000 * 1.1  # ... and close to it overall


async def test_a_paid_copy_still_waits_for_its_chat_and_for_a_pause() -> None:
    vt = VirtualTime()
    limiter = make_limiter(vt, RateLimits(30, 1, 20, paid_per_s=1000))
    limiter.pause("telegram", None, 2.0)
    sent: list[float] = []

    async def send() -> None:
        await limiter.acquire("telegram", "one-chat", paid=True)
        sent.append(vt.now)

    await vt.run(send(), send(), send())
    assert sent[0] >= 2.0
    assert sent[1] - sent[0] >= 1.0 and sent[2] - sent[1] >= 1.0  # one per second in a chat
