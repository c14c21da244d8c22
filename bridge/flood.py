"""Flood control: what a platform's "too many requests" answers mean, and how fast to send.

A Telegram 429 does not say whether one chat or the whole bot is over its limit, and a client
that keeps sending while a penalty runs makes the penalty longer. `FloodControl` decides:

- **Scope.** A 429 is treated as the chat's own only while other chats keep succeeding. When a
  second chat is refused within `window_s` with no success in between, when the wait asked for
  is long (`long_wait_s`), or when the adapter knows the limit is the account's (Matrix), the
  whole platform token is paused for the wait: nothing is sent while a penalty runs, replies
  included.
- **Rate.** A platform-wide 429 lowers the global rate multiplicatively (and to just under the
  sends that succeeded in the last second, which is the limit the server actually enforces);
  while the bot keeps sending at its rate without another one, the rate climbs back additively,
  one step every `probe_every_s`, up to the configured ceiling. Each change is logged at INFO.

The delivery worker reports every send (`sent`) and every 429 (`rate_limited`); the
coordinator sets the ceilings (`configure`, a process's share of each budget).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bridge.ports import RateLimits
from bridge.ratelimit import RateLimiter

log = logging.getLogger(__name__)

__all__ = ["FloodControl", "FloodPolicy", "Scope"]


class Scope:
    """Where a 429 applies."""

    CHAT = "chat"  #: that chat is over its own limit; the others go on
    GLOBAL = "global"  #: the whole platform token is over its limit: everything waits


@dataclass(frozen=True)
class FloodPolicy:
    """The knobs of flood control, as plain data."""

    window_s: float = 1.0  #: two chats refused within this, with no success between: platform-wide
    long_wait_s: float = 10.0  #: a wait this long is a platform-wide penalty, whatever the chat
    decrease: float = 0.85  #: the rate is multiplied by this on a platform-wide 429
    probe_every_s: float = 5.0  #: how often the rate may climb back while sending goes well
    probe_step_share: float = 0.02  #: one climb, as a share of the ceiling (at least 0.5/s)
    floor_share: float = 0.02  #: the rate never goes below this share of the ceiling
    margin: float = 0.97  #: the new rate is this share of what got through before the 429
    #: the rate a 429 came at is not tried again for this long (the limit may have risen by then)
    relearn_s: float = 60.0


@dataclass
class _State:
    ceiling: RateLimits
    rate: float
    sends: deque[float] = field(default_factory=deque)  #: success instants in the last window
    refused: deque[tuple[float, str]] = field(default_factory=deque)  #: recent 429s (when, chat)
    last_success: float = float("-inf")
    penalty_until: float = float("-inf")
    changed_at: float = float("-inf")
    refused_rate: float = float("inf")  #: the rate the last platform-wide 429 came at
    refused_at: float = float("-inf")
    scopes: dict[str, int] = field(default_factory=lambda: {Scope.CHAT: 0, Scope.GLOBAL: 0})


class FloodControl:
    """Infers the scope of each 429 and adapts each platform's global rate (see the module)."""

    def __init__(
        self,
        limiter: RateLimiter,
        policy: FloodPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = limiter
        self.policy = policy or FloodPolicy()
        self._clock = clock
        self._platforms: dict[str, _State] = {}

    def configure(self, platform: str, limits: RateLimits) -> None:
        """Set a platform's ceiling (its configured budget, or this process's share of it).
        The current rate keeps what flood control learned, capped by the new ceiling."""
        state = self._platforms.get(platform)
        if state is None:
            self._platforms[platform] = _State(limits, limits.global_per_s)
        else:
            state.ceiling = limits
            state.rate = min(state.rate, limits.global_per_s)
        self._apply(platform)

    def sent(self, platform: str) -> None:
        """A send succeeded: evidence that no platform-wide penalty runs; maybe climb."""
        state = self._platforms.get(platform)
        if state is None:
            return
        now = self._clock()
        state.last_success = now
        state.sends.append(now)
        horizon = now - self.policy.window_s
        while state.sends and state.sends[0] < horizon:
            state.sends.popleft()
        ceiling = state.ceiling.global_per_s
        if state.rate >= ceiling or now - state.changed_at < self.policy.probe_every_s:
            return
        if len(state.sends) < 0.8 * state.rate * self.policy.window_s:
            return  # not sending at the current rate: nothing to learn by going faster
        step = max(0.5, self.policy.probe_step_share * ceiling)
        target = min(ceiling, state.rate + step)
        if target >= state.refused_rate and now - state.refused_at < self.policy.relearn_s:
            return  # that rate drew a 429 a moment ago: stay just under it for a while
        self._set_rate(platform, state, target, now, "no 429 lately")

    def rate_limited(self, platform: str, chat: str, after_s: float, *, known_global: bool = False) -> str:
        """A send to `chat` was refused with "retry after `after_s`": pause what must wait and
        return the scope that was paused (`Scope.CHAT` or `Scope.GLOBAL`).

        `known_global`: the adapter knows the limit is the account's token bucket (a Matrix
        homeserver's), whose `retry_after` is the time until it holds one more event; the time
        since the last success plus that wait is then at least one refill period, and the rate
        is kept under its inverse (so a slow bucket is learnt from one 429, not from many)."""
        state = self._platforms.get(platform)
        now = self._clock()
        if state is None:  # a platform flood control does not pace: honour the wait as given
            self.limiter.pause(platform, None if known_global else chat, after_s)
            return Scope.GLOBAL if known_global else Scope.CHAT
        horizon = now - self.policy.window_s
        while state.refused and state.refused[0][0] < horizon:
            state.refused.popleft()
        other_chat_refused = any(
            chat_ != chat and when >= state.last_success for when, chat_ in state.refused
        )
        state.refused.append((now, chat))
        platform_wide = known_global or after_s >= self.policy.long_wait_s or other_chat_refused
        if not platform_wide:
            state.scopes[Scope.CHAT] += 1
            self.limiter.pause(platform, chat, after_s)
            return Scope.CHAT
        state.scopes[Scope.GLOBAL] += 1
        self.limiter.pause(platform, None, after_s)
        if now >= state.penalty_until:  # a new penalty, not a send that left before we paused
            succeeded = sum(1 for when in state.sends if when >= horizon)
            through = succeeded / self.policy.window_s  # what the server let through: its limit
            state.refused_rate = min(state.rate, through) if succeeded >= 3 else state.rate
            state.refused_at = now
            lower = state.rate * self.policy.decrease
            if succeeded >= 3:
                lower = min(lower, self.policy.margin * through)
            if known_global and state.last_success > float("-inf"):
                refill = 1.0 / (now - state.last_success + after_s)  # the bucket's rate, at most
                state.refused_rate = min(state.refused_rate, refill)
                lower = min(lower, self.policy.margin * refill)
            floor = max(0.1, self.policy.floor_share * state.ceiling.global_per_s)
            self._set_rate(
                platform, state, max(floor, lower), now, f"platform-wide 429, retry after {after_s:g}s"
            )
        state.penalty_until = max(state.penalty_until, now + after_s)
        return Scope.GLOBAL

    def current_rate(self, platform: str) -> float | None:
        """The global rate a platform is paced at now (None: not paced)."""
        state = self._platforms.get(platform)
        return None if state is None else state.rate

    def report(self) -> dict[str, tuple[float, float, int, int]]:
        """Per platform: current rate, ceiling, and 429s seen by inferred scope (chat, global)."""
        return {
            name: (s.rate, s.ceiling.global_per_s, s.scopes[Scope.CHAT], s.scopes[Scope.GLOBAL])
            for name, s in sorted(self._platforms.items())
        }

    def _set_rate(self, platform: str, state: _State, rate: float, now: float, why: str) -> None:
        if abs(rate - state.rate) < 1e-9:
            return
        log.info("%s: send rate %.1f/s -> %.1f/s (%s)", platform, state.rate, rate, why)
        state.rate = rate
        state.changed_at = now
        self._apply(platform)

    def _apply(self, platform: str) -> None:
        state = self._platforms[platform]
        self.limiter.configure(platform, replace(state.ceiling, global_per_s=state.rate))
