"""Per-sender inbound throttle: one person's flood of commands cannot take more than a fair share.

Each sender (known by a blind index, never by identity) has a token bucket. A command that
finds a token is handled; the first one that finds the bucket empty gets one "slow down"
answer, and every further one is ignored until a token is back. So a person typing quickly
sees each command answered or covered by that one answer, and no single sender can fill the
reply lane or push the bot into a platform-wide flood penalty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SenderThrottle", "Verdict"]

#: how many idle senders to keep before forgetting the full buckets
_PRUNE_AT = 4096


class Verdict:
    """What to do with one inbound event."""

    HANDLE = "handle"  #: within the sender's share
    SLOW_DOWN = "slow_down"  #: over it, for the first time in this spell: answer "slow down" once
    IGNORE = "ignore"  #: over it again: drop silently


@dataclass
class _Bucket:
    tokens: float
    at: float
    warned: bool = False


class SenderThrottle:
    """Token buckets keyed by an opaque sender key (a blind index)."""

    def __init__(
        self, burst: int = 8, per_s: float = 0.5, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if burst < 1 or per_s <= 0:
            raise ValueError("a throttle needs burst >= 1 and per_s > 0")
        self.burst = burst
        self.per_s = per_s
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def check(self, sender: str) -> str:
        """Take a token for `sender` and say whether to handle, warn once, or ignore."""
        now = self._clock()
        bucket = self._buckets.get(sender)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_AT:
                self._prune(now)
            bucket = self._buckets[sender] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.per_s)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.warned = False
            return Verdict.HANDLE
        if bucket.warned:
            return Verdict.IGNORE
        bucket.warned = True
        return Verdict.SLOW_DOWN

    def _prune(self, now: float) -> None:
        """Forget senders whose bucket has refilled: they carry no information."""
        self._buckets = {
            key: b for key, b in self._buckets.items() if b.tokens + (now - b.at) * self.per_s < self.burst
        }
