"""Token buckets per platform and per chat, and pauses that honour a platform's retry-after.

`RateLimiter` is a reservation scheduler: `acquire` computes the earliest instant that every
constraint allows (the platform's global bucket, the chat's own bucket, any pause), reserves it
at once, then sleeps until then. Each bucket holds one token (no burst), so sends on one bucket
are always at least `1 / rate` apart: a server counting "at most N in any 1-second window" never
sees N + 1. Global slots are kept as a sorted list of reserved instants, so a chat whose own
bucket (or pause) pushes its send into the future leaves the earlier global slots free for
other chats: a slow or paused chat never delays another one. Only a platform-wide pause does.

The limiter is in-process and meant for one event loop (reservations are made without awaiting,
so concurrent tasks cannot interleave inside one).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridge.ports import RateLimits

__all__ = ["RateLimiter"]

#: added to every interval and pause so float rounding (in our sums or in a sleep that wakes a
#: hair early) can never squeeze N + 1 sends into one window or a send into a pause
_MARGIN_S = 1e-6
#: a wake-up this much later than planned means the event loop was held up: sends let through
#: just before may have left only after it, and are counted from then on (see `_held_up`)
STALL_S = 0.005
#: while sends go out, the loop is watched this often for hold-ups no acquire's wake-up sees (a
#: send let through, then a 10 ms database commit on the loop before its request leaves)
WATCH_TICK_S = 0.004
#: the watch ends this long after the last send
_WATCH_IDLE_S = 1.0
#: kept free in each second of the free budget for the jitter between a send being let through
#: and its request reaching the server (0.2 % of the rate)
WINDOW_MARGIN_S = 0.002
#: an urgent send found not yet allowed at its wake-up by more than this plans a new place
_REPLAN_S = 0.001
#: below this many tracked chats per platform, idle chat state is not swept
_PRUNE_MIN = 1024
#: the paid-broadcast budget's burst, as a share of its rate (the rest is its refill rate)
PAID_BURST = 0.05
#: and the share of it left unused, so requests arriving a little early still fit the server's second
PAID_MARGIN = 0.03


@dataclass
class _Chat:
    """One chat's bucket (the instant it next allows a send) and its pause."""

    next_at: float = -math.inf
    paused_until: float = -math.inf
    #: when the chat's bucket next allows a send, judged by actual sends only
    allowed_at: float = -math.inf


@dataclass
class _Platform:
    """One platform token's limits, reserved global slots, pause and chats."""

    limits: RateLimits | None = None
    #: reserved global send instants, sorted; pairwise at least one global interval apart
    reserved: list[float] = field(default_factory=list)
    #: the same for paid-broadcast sends, on their own budget (`RateLimits.paid_per_s`)
    paid_reserved: list[float] = field(default_factory=list)
    #: the paid budget as a bucket (see `_acquire_paid`): tokens left, and when they were counted
    paid_tokens: float = 0.0
    paid_at: float = -math.inf
    paused_until: float = -math.inf
    chats: dict[str, _Chat] = field(default_factory=dict)
    #: the last second's free-budget sends, at the instant each may have reached the server
    sent: collections.deque[float] = field(default_factory=collections.deque)
    #: urgent sends' reserved instants (also in `reserved`), sorted
    urgent: list[float] = field(default_factory=list)
    prune_at: int = _PRUNE_MIN


@dataclass(frozen=True)
class _Reservation:
    """What `acquire` took, so it can be given back if the send must not happen then."""

    at: float
    chat_next: float  #: the chat's `next_at` this reservation set
    chat_previous: float  #: the chat's `next_at` before it


class RateLimiter:
    """Paces sends per platform (global rate) and per chat (chat or group rate), with pauses.

    The delivery worker calls `acquire` before each send and `pause` when a platform answers
    with retry-after; the app calls `configure` once per platform with its limits.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        *,
        watch: bool | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._platforms: dict[str, _Platform] = {}
        #: whether the loop is watched for hold-ups (`_watch_loop`); by default only on real
        #: time (a test's virtual clock does not stall unless the test says so)
        self._watching = watch if watch is not None else clock is time.monotonic and sleep is asyncio.sleep
        self._watch: asyncio.Task[None] | None = None
        self._last_commit = -math.inf

    async def close(self) -> None:
        """Stop watching the loop (at shutdown; the watch also ends on its own when sends stop)."""
        watch, self._watch = self._watch, None
        if watch is not None and not watch.done():
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    def configure(self, platform: str, limits: RateLimits) -> None:
        """Set (or replace) a platform's limits; every rate must be > 0."""
        rates = (limits.global_per_s, limits.per_chat_per_s, limits.group_per_min)
        if not all(rate > 0 for rate in rates):
            raise ValueError(f"rate limits for {platform} must all be > 0, got {limits}")
        self._platforms.setdefault(platform, _Platform()).limits = limits

    async def acquire(
        self, platform: str, chat: str, *, group: bool = False, paid: bool = False, urgent: bool = False
    ) -> None:
        """Wait until one send to `chat` is allowed, and reserve it.

        An `urgent` send (a reply someone is waiting for) is planned ahead of the others: only
        sends already made and other urgent ones hold it back, and a planned send it lands
        next to plans again after it. It stays inside every budget.

        The chat's bucket runs at `per_chat_per_s`, or `group_per_min` when `group` is true.
        A `paid` send (a paid broadcast) draws from the `paid_per_s` budget instead of the
        global one, when the platform has one; the chat's bucket and pauses apply alike.
        A platform never configured has no rate limit (pauses set on it are still honoured).
        If a pause covering the reserved instant arrives while waiting, the slot is given back
        and a new one is reserved after the pause.
        """
        state = self._platforms.get(platform)
        if state is None:
            return
        now = self._clock()
        if paid and state.limits is not None and state.limits.paid_per_s is not None:
            await self._acquire_paid(state, state.limits.paid_per_s, chat, group)
            return
        paid = False
        first = self._reserve(state, chat, group, now, paid, urgent=urgent)
        reservation: _Reservation | None = first
        wake_at = first.at
        while True:
            if wake_at > now:
                try:
                    await self._sleep(wake_at - now)
                except BaseException:
                    if reservation is not None:
                        self._release(state, chat, reservation, paid, urgent)
                    raise
            # Validate against the actual clock. Wake-ups run late (timer slack, a busy loop),
            # so planned instants alone could put two real sends closer than one interval; a
            # pause may also have arrived meanwhile. Only sends that already happened (or are
            # due now) constrain this one; later plans re-validate themselves the same way.
            if reservation is not None:
                self._release(state, chat, reservation, paid, urgent)
                reservation = None
            planned, now = wake_at, self._clock()
            if now - planned > STALL_S:
                self._held_up(state, planned, now)
            wake_at = self._actual_slot(state, chat, now, paid, urgent)
            if wake_at <= now:
                self._commit(state, chat, group, now, paid)
                return
            # Not yet. After a pause, take a planned place again so others plan around it. An
            # urgent send always does (unless a rounding error early): waiting without one, it
            # would lose every race to the senders holding planned places, whose timers are
            # older, and a reply could wait behind a whole fan-out. Other sends just wait: their
            # place was only taken by a wake-up that ran a little late, and planning again would
            # put them behind every planned send, leaving their place empty.
            wait = wake_at - now
            if wait > 1.0 or (urgent and wait > _REPLAN_S):
                reservation = self._reserve(state, chat, group, now, paid, not_before=wake_at, urgent=urgent)
                wake_at = reservation.at

    async def _acquire_paid(self, state: _Platform, rate: float, chat: str, group: bool) -> None:
        """A paid-broadcast send: the global paid budget is a bucket of `PAID_BURST` of the
        rate, refilled at the rest of it, so no sliding second holds more than `rate` sends
        while many senders go out together (at 1,000/s the strict one-slot spacing of the free
        budget leaves senders slipping behind one another's late wake-ups). The chat's own
        bucket and any pause apply as for every send."""
        capacity = max(1.0, PAID_BURST * rate)
        # a share of the second is kept back for the jitter between our clock and the server's
        refill = max(rate * (1.0 - PAID_MARGIN) - capacity, rate * PAID_MARGIN)
        limits = state.limits
        assert limits is not None
        interval = 60.0 / limits.group_per_min if group else 1.0 / limits.per_chat_per_s
        while True:
            now = self._clock()
            if state.paid_at == -math.inf:
                state.paid_tokens, state.paid_at = capacity, now
            state.paid_tokens = min(capacity, state.paid_tokens + (now - state.paid_at) * refill)
            state.paid_at = now
            wait = self._pause_end(state, chat) - now
            chat_state = state.chats.get(chat)
            if chat_state is not None:
                wait = max(wait, chat_state.next_at - now)
            if state.paid_tokens < 1.0:
                wait = max(wait, (1.0 - state.paid_tokens) / refill)
            if wait <= 0:
                state.paid_tokens -= 1.0
                chat_state = state.chats.setdefault(chat, _Chat())
                chat_state.allowed_at = now + interval + _MARGIN_S
                chat_state.next_at = max(chat_state.next_at, chat_state.allowed_at)
                return
            await self._sleep(wait + _MARGIN_S)

    def pause(self, platform: str, chat: str | None, seconds: float) -> None:
        """Stop sends to `chat` (or, with None, the whole platform token) for `seconds`.

        Pauses only ever extend: a shorter pause never cuts a longer one short.
        """
        if seconds <= 0:
            return
        state = self._platforms.setdefault(platform, _Platform())
        now = self._clock()
        until = now + seconds + _MARGIN_S  # waking a rounding error early is still after it
        if chat is None:
            state.paused_until = max(state.paused_until, until)
            return
        chat_state = state.chats.setdefault(chat, _Chat())
        chat_state.paused_until = max(chat_state.paused_until, until)
        self._maybe_prune(state, now)

    def paused_for(self, platform: str, chat: str | None) -> float:
        """Seconds left before sends may resume (0 if not paused).

        With `chat` None: the platform-wide pause. With a chat: the longer of that chat's pause
        and the platform-wide pause, since either stops sends to it.
        """
        state = self._platforms.get(platform)
        if state is None:
            return 0.0
        return max(0.0, self._pause_end(state, chat) - self._clock())

    def chat_wait(self, platform: str, chat: str) -> float:
        """Seconds before the chat's own bucket (or a pause) lets a send to it start, ignoring
        the global budget: a sender can put a message back for that long instead of holding a
        slot while it waits."""
        state = self._platforms.get(platform)
        if state is None:
            return 0.0
        until = self._pause_end(state, chat)
        chat_state = state.chats.get(chat)
        if chat_state is not None and state.limits is not None:
            until = max(until, chat_state.next_at)
        return max(0.0, until - self._clock())

    def rate(self, platform: str) -> float | None:
        """A platform's global sends per second (None: not limited)."""
        state = self._platforms.get(platform)
        return None if state is None or state.limits is None else state.limits.global_per_s

    def throughput(self, platform: str) -> float | None:
        """The most sends per second a platform's budgets allow (paid broadcasts included)."""
        state = self._platforms.get(platform)
        if state is None or state.limits is None:
            return None
        return max(state.limits.global_per_s, state.limits.paid_per_s or 0.0)

    def limits(self, platform: str) -> RateLimits | None:
        """The limits a platform is paced at now."""
        state = self._platforms.get(platform)
        return None if state is None else state.limits

    def tracked_chats(self, platform: str) -> int:
        """How many chats of `platform` currently hold state (for metrics and tests)."""
        state = self._platforms.get(platform)
        return 0 if state is None else len(state.chats)

    # ------------------------------------------------------------------ internals

    def _reserve(
        self,
        state: _Platform,
        chat: str,
        group: bool,
        now: float,
        paid: bool,
        not_before: float = -math.inf,
        urgent: bool = False,
    ) -> _Reservation:
        """Find the earliest instant (>= `not_before`) every constraint allows and take it (no
        await inside)."""
        earliest = max(now, not_before, self._pause_end(state, chat))
        limits = state.limits
        if limits is None:
            return _Reservation(earliest, -math.inf, -math.inf)
        chat_state = state.chats.get(chat)
        if chat_state is None:
            self._maybe_prune(state, now)
            chat_state = state.chats.setdefault(chat, _Chat())
        earliest = max(earliest, chat_state.next_at)
        reserved, rate = _budget(state, limits, paid)
        gap = 1.0 / rate + _MARGIN_S
        del reserved[: bisect_left(reserved, now - gap)]  # past, can't conflict
        if urgent:  # ahead of planned sends: after the last send made, apart from other urgent ones
            if state.sent:
                earliest = max(earliest, state.sent[-1] + gap)
            del state.urgent[: bisect_left(state.urgent, now - gap)]
            at = _free_slot(state.urgent, earliest, gap)
            insort(state.urgent, at)
        else:
            at = _free_slot(reserved, earliest, gap)
        insort(reserved, at)
        interval = 60.0 / limits.group_per_min if group else 1.0 / limits.per_chat_per_s
        previous = chat_state.next_at
        chat_state.next_at = at + interval + _MARGIN_S
        return _Reservation(at, chat_state.next_at, previous)

    def _actual_slot(
        self, state: _Platform, chat: str, now: float, paid: bool, urgent: bool = False
    ) -> float:
        """The earliest instant >= now that pauses, the chat's bucket and the latest send (or
        due reservation; for an urgent send, the latest send made) on the global bucket allow."""
        earliest = max(now, self._pause_end(state, chat))
        limits = state.limits
        if limits is None:
            return earliest
        chat_state = state.chats.get(chat)
        if chat_state is not None:
            earliest = max(earliest, chat_state.allowed_at)
        reserved, rate = _budget(state, limits, paid)
        index = bisect_right(reserved, now)
        if urgent and state.sent:
            earliest = max(earliest, state.sent[-1] + 1.0 / rate + _MARGIN_S)
        elif index:
            earliest = max(earliest, reserved[index - 1] + 1.0 / rate + _MARGIN_S)
        if not paid:  # no more than the rate in any second, counting held-up sends late
            sent = state.sent
            while sent and sent[0] <= now - 1.0:
                sent.popleft()
            most = max(1, math.floor(rate + 1e-9))
            if len(sent) >= most:
                earliest = max(earliest, sent[-most] + 1.0 + WINDOW_MARGIN_S)
        return earliest

    async def _watch_loop(self, since: float) -> None:
        """While sends go out, wake every `WATCH_TICK_S`; a wake-up later than `STALL_S` means
        the loop was held up, and sends let through just before count from now on, on every
        platform. Without it, a hold-up shorter than the send interval goes unseen: the send let
        through before it reaches the server late, within one second of the send a full budget
        later (two 429s at exactly the enforced rate, seen in the tests)."""
        planned = since  # from the send that started the watch: a hold-up right after it counts
        while self._clock() - self._last_commit < _WATCH_IDLE_S:
            planned += WATCH_TICK_S
            await self._sleep(max(0.0, planned - self._clock()))
            now = self._clock()
            if now - planned > STALL_S:
                for state in self._platforms.values():
                    self._held_up(state, planned, now)
            planned = max(planned, now)

    def _held_up(self, state: _Platform, planned: float, now: float) -> None:
        """The loop ran a wake-up planned for `planned` only at `now`: it was busy meanwhile.

        A send let through just before it began (at most about one interval before
        `planned`) may have sat behind it before its request left, and so reach the server
        at `now` rather than when it was let through. Spacing by the instants sends were let
        through would then put more than the rate into one of the server's seconds, so those
        sends count from `now` on.
        """
        limits = state.limits
        if limits is None:
            return
        since = planned - 2.0 / limits.global_per_s
        sent = state.sent
        index = len(sent) - 1
        while index >= 0 and sent[index] > since:
            sent[index] = max(sent[index], now)
            index -= 1

    def _commit(self, state: _Platform, chat: str, group: bool, now: float, paid: bool) -> None:
        """Record a send happening now on the global and the chat bucket."""
        limits = state.limits
        if limits is None:
            return
        insort(_budget(state, limits, paid)[0], now)
        if not paid:
            state.sent.append(now)
            self._last_commit = now
            if self._watching and (self._watch is None or self._watch.done()):
                self._watch = asyncio.get_running_loop().create_task(
                    self._watch_loop(now), name="limiter-watch"
                )
        chat_state = state.chats.setdefault(chat, _Chat())
        interval = 60.0 / limits.group_per_min if group else 1.0 / limits.per_chat_per_s
        chat_state.allowed_at = now + interval + _MARGIN_S
        chat_state.next_at = max(chat_state.next_at, chat_state.allowed_at)

    def _release(
        self, state: _Platform, chat: str, reservation: _Reservation, paid: bool, urgent: bool = False
    ) -> None:
        """Give a reservation back (the send will not happen at that instant)."""
        reserved = state.paid_reserved if paid else state.reserved
        for planned in (reserved, state.urgent) if urgent else (reserved,):
            index = bisect_left(planned, reservation.at)
            if index < len(planned) and planned[index] == reservation.at:
                del planned[index]
        chat_state = state.chats.get(chat)
        if chat_state is not None and chat_state.next_at == reservation.chat_next:
            chat_state.next_at = reservation.chat_previous

    def _pause_end(self, state: _Platform, chat: str | None) -> float:
        until = state.paused_until
        if chat is not None:
            chat_state = state.chats.get(chat)
            if chat_state is not None:
                until = max(until, chat_state.paused_until)
        return until

    def _maybe_prune(self, state: _Platform, now: float) -> None:
        """Drop chats whose bucket is full and that are not paused: they carry no information.

        Swept only when the table has doubled since the last sweep, so the cost is amortised.
        """
        if len(state.chats) < state.prune_at:
            return
        state.chats = {
            key: value
            for key, value in state.chats.items()
            if value.next_at > now or value.paused_until > now
        }
        state.prune_at = max(_PRUNE_MIN, 2 * len(state.chats))


def _budget(state: _Platform, limits: RateLimits, paid: bool) -> tuple[list[float], float]:
    """The reserved instants and the rate of the global budget a send draws from."""
    if paid and limits.paid_per_s is not None:
        return state.paid_reserved, limits.paid_per_s
    return state.reserved, limits.global_per_s


def _free_slot(reserved: list[float], earliest: float, gap: float) -> float:
    """The first instant >= `earliest` at least `gap` away from every reserved instant.

    `reserved` is sorted and pairwise at least `gap` apart, so one forward scan finds the
    first hole wide enough.
    """
    at = earliest
    for index in range(bisect_right(reserved, earliest - gap), len(reserved)):
        slot = reserved[index]
        if slot - at >= gap:
            break
        at = max(at, slot + gap)
    return at
