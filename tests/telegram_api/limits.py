"""Flood control for the local Bot API server: Telegram's limits, enforced the way Telegram does.

The rules (all times from one monotonic clock; `Limits` holds the numbers):

- **Free global budget.** Sends without `allow_paid_broadcast` are accepted while fewer than
  `global_per_s` free sends were accepted in the last second (a sliding window: at most
  `global_per_s` in any interval `(t - 1 s, t]`).
- **Paid ceiling.** Sends with `allow_paid_broadcast=true` count against their own sliding window
  of `paid_per_s` instead of the free one (Telegram allows up to 1,000/s and charges Stars for
  those above the free rate).
- **Per chat.** Every limited request aimed at a chat (free or paid) takes one token from that
  chat's bucket: capacity `per_chat_burst`, refilled at `per_chat_per_s` tokens per second. An
  empty bucket is a chat-scoped 429.
- **Penalties.** A request refused for the budget of a scope starts a penalty on that scope —
  `"global"` (free budget of the token), `"paid"` (paid ceiling of the token) or `"chat"` (one
  chat) — lasting `retry_after = max(1, ceil(wait))` seconds, where `wait` is how long the budget
  needs to admit one more send. While a penalty runs, every request of its scope is refused
  without being counted, *and* extends the penalty: the remaining time becomes
  `min(max_penalty_s, remaining * penalty_factor + penalty_step_s)`. A request aimed at a chat
  extends the running token penalty of its budget and the chat's own running penalty alike.
  `penalty_factor=1, penalty_step_s=0` turns growth off.
- **retry_after** in every 429 is the remaining time of the longest penalty that refused the
  request, rounded up to whole seconds (>= 1). A client that waits exactly that long is never
  refused for the same penalty again.
- **Only accepted requests count** against the windows and buckets. Refused ones cost nothing but
  the penalty growth.
- **Changing the limits** (`configure`) applies at once to the next request: the windows keep
  the sends already accepted (lowering `global_per_s` below the last second's count refuses the
  next send), buckets keep their level (clipped to the new burst) and running penalties keep
  running.

One `FloodControl` belongs to one bot token; the server shares it between every connection and
every process that uses the token.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

#: the scopes a 429 can be counted under
SCOPES = ("global", "paid", "chat")


@dataclass(frozen=True)
class Limits:
    """The numbers `FloodControl` enforces (defaults: Telegram's documented limits)."""

    #: free sends per sliding second for the whole token (Telegram: about 30)
    global_per_s: float = 30
    #: per-chat bucket refill rate, tokens per second (Telegram: about 1)
    per_chat_per_s: float = 1
    #: per-chat bucket capacity: this many quick sends pass before 1/s applies
    per_chat_burst: int = 3
    #: sends with allow_paid_broadcast per sliding second for the whole token (Telegram: 1,000)
    paid_per_s: float = 1000
    #: a request under a running penalty multiplies its remaining time by this ...
    penalty_factor: float = 2.0
    #: ... then adds this many seconds
    penalty_step_s: float = 0.0
    #: penalties never grow beyond this
    max_penalty_s: float = 300.0

    def __post_init__(self) -> None:
        if min(self.global_per_s, self.per_chat_per_s, self.paid_per_s) <= 0:
            raise ValueError("rates must be > 0")
        if self.per_chat_burst < 1:
            raise ValueError("per_chat_burst must be >= 1")
        if self.penalty_factor < 1 or self.penalty_step_s < 0 or self.max_penalty_s < 1:
            raise ValueError("penalties must not shrink: factor >= 1, step >= 0, max >= 1")


class FloodRefused(Exception):
    """The flood control refused a request: answer 429 with `retry_after` (whole seconds)."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"flood control ({scope}): retry after {retry_after}")
        #: "global", "paid" or "chat": the scope whose budget or penalty refused the request
        self.scope = scope
        self.retry_after = retry_after


@dataclass
class _Bucket:
    tokens: float
    at: float


class FloodControl:
    """Per-token flood control (see the module docstring for the rules); not thread-safe, which
    is fine on one event loop: `admit` never awaits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._windows: dict[str, collections.deque[float]] = {
            "global": collections.deque(),
            "paid": collections.deque(),
        }
        self._buckets: dict[int, _Bucket] = {}
        #: scope key ("global", "paid" or a chat id) -> monotonic instant the penalty ends
        self._penalties: dict[str | int, float] = {}

    def configure(self, limits: Limits, now: float) -> None:
        """Change the limits from `now` on (buckets are first refilled at the old rate)."""
        for bucket in self._buckets.values():
            self._refill(bucket, now)
            bucket.tokens = min(bucket.tokens, limits.per_chat_burst)
        self.limits = limits

    def admit(self, chat_id: int | None, *, paid: bool, now: float) -> None:
        """Count one request at `now`, or raise `FloodRefused` (starting or growing a penalty)."""
        budget = "paid" if paid else "global"
        running = [key for key in (budget, chat_id) if key is not None and self._remaining(key, now) > 0]
        if running:
            longest = max(self._grow(key, now) for key in running)
            raise FloodRefused(budget if budget in running else "chat", _whole(longest))
        window = self._windows[budget]
        while window and window[0] <= now - 1.0:
            window.popleft()
        capacity = max(1, math.floor(self.limits.paid_per_s if paid else self.limits.global_per_s))
        if len(window) >= capacity:
            # free once the oldest sends beyond capacity - 1 have left the window
            self._refuse(budget, window[len(window) - capacity] + 1.0 - now, now)
        bucket = None
        if chat_id is not None:
            bucket = self._buckets.get(chat_id)
            if bucket is None:
                bucket = self._buckets[chat_id] = _Bucket(float(self.limits.per_chat_burst), now)
            self._refill(bucket, now)
            if bucket.tokens < 1:
                self._refuse(chat_id, (1 - bucket.tokens) / self.limits.per_chat_per_s, now)
        window.append(now)
        if bucket is not None:
            bucket.tokens -= 1

    def remaining(self, chat_id: int | None = None, *, paid: bool = False, now: float) -> float:
        """Seconds left of the penalty on a chat (or, with chat_id None, on the token's free or
        paid budget); 0 when none runs."""
        key: str | int = chat_id if chat_id is not None else ("paid" if paid else "global")
        return self._remaining(key, now)

    # ------------------------------------------------------------------ internals

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(0.0, now - bucket.at)
        refilled = bucket.tokens + elapsed * self.limits.per_chat_per_s
        bucket.tokens = min(float(self.limits.per_chat_burst), refilled)
        bucket.at = now

    def _remaining(self, key: str | int, now: float) -> float:
        end = self._penalties.get(key)
        if end is None:
            return 0.0
        if end <= now:
            del self._penalties[key]
            return 0.0
        return end - now

    def _grow(self, key: str | int, now: float) -> float:
        limits, remaining = self.limits, self._remaining(key, now)
        grown = min(limits.max_penalty_s, remaining * limits.penalty_factor + limits.penalty_step_s)
        grown = max(grown, remaining)  # a cap lowered at run time never shortens a penalty
        self._penalties[key] = now + grown
        return grown

    def _refuse(self, key: str | int, wait: float, now: float) -> None:
        retry_after = _whole(wait)
        self._penalties[key] = now + retry_after
        raise FloodRefused(key if isinstance(key, str) else "chat", retry_after)


def _whole(seconds: float) -> int:
    """Seconds rounded up to a whole number, at least 1 (Telegram's retry_after)."""
    return max(1, math.ceil(seconds - 1e-9))
