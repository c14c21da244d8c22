"""The delivery policy as plain data, and the one retry rule every outgoing message follows."""

from __future__ import annotations

import random
from dataclasses import dataclass

from bridge.ports import RetryLater


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retry and batching policy, as plain data (from `[delivery]` in the config)."""

    concurrency: int = 16
    batch_size: int = 500
    max_attempts: int = 8
    backoff_base_s: float = 2.0
    backoff_max_s: float = 600.0
    lease_s: float = 60.0
    progress_threshold: int = 50
    progress_interval_s: float = 5.0  #: the progress message is edited at most this often
    max_wait_s: float = 24 * 3600.0  #: how long platform rate limits may hold a row back
    idle_poll_s: float = 1.0

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with jitter for the given attempt number (1-based)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** max(0, attempts - 1))
        return ceiling * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class RetryDecision:
    """What to do with a message whose send must be tried again."""

    next_attempt_at: float | None  #: when to try again; None: give up (fail it with `error`)
    refund_attempt: bool  #: the platform asked us to wait: this try does not count
    error: str  #: why (recorded on the row)

    @property
    def give_up(self) -> bool:
        """Whether the message is failed for good."""
        return self.next_attempt_at is None


def decide_retry(
    policy: DeliveryPolicy, attempts: int, created_at: float, exc: RetryLater, now: float
) -> RetryDecision:
    """The retry rule. A wait the platform asked for (429 with retry-after) is pacing, not
    failure: it does not use up an attempt, but a message cannot wait forever either
    (`max_wait_s` since it was queued). Other errors use up attempts."""
    paced = exc.after_s is not None
    waited = now - created_at if created_at else 0.0
    if paced and waited > policy.max_wait_s:
        return RetryDecision(None, False, f"gave up after {waited / 3600:.1f} h of rate limits")
    if not paced and attempts >= policy.max_attempts:
        return RetryDecision(None, False, f"gave up after {attempts} attempts: {exc.reason}"[:300])
    wait = exc.after_s if exc.after_s is not None else policy.backoff(attempts)
    return RetryDecision(now + wait, paced, exc.reason[:300])


__all__ = ["DeliveryPolicy", "RetryDecision", "decide_retry"]
