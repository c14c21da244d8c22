"""Coordination of several `channelbridge run` processes sharing one PostgreSQL database.

- Inbound once: each platform's updates are received by exactly one process at a time, the
  holder of the lease `inbound:<platform>`; when it dies, another takes over within
  `ttl_s + interval_s` seconds.
- Shared budgets: every process heartbeats; with N alive, each paces its sends at 1/N of each
  configured platform budget, so together they stay within it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from bridge.flood import FloodControl
from bridge.ports import RateLimits
from bridge.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """How often processes renew leases and heartbeats, and when one counts as dead."""

    interval_s: float = 1.0
    ttl_s: float = 4.0


def share(limits: RateLimits, processes: int) -> RateLimits:
    """One process's share of a platform budget."""
    n = max(1, processes)
    paid = None if limits.paid_per_s is None else limits.paid_per_s / n
    return RateLimits(limits.global_per_s / n, limits.per_chat_per_s / n, limits.group_per_min / n, paid)


class Coordinator:
    """Keeps this process's heartbeat and inbound leases, and calls back on every change.

    `on_lease(platform, held)` is awaited when this process gains or loses a platform's inbound
    lease; the budgets (flood control's ceilings) are re-divided whenever the number of live
    processes changes.
    """

    def __init__(
        self,
        store: Store,
        owner: str,
        platforms: Mapping[str, RateLimits],
        limiter: FloodControl,
        on_lease: Callable[[str, bool], Awaitable[None]],
        *,
        timing: Timing | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.owner = owner
        self.budgets = dict(platforms)
        self.limiter = limiter
        self.on_lease = on_lease
        self.timing = timing or Timing()
        self.clock = clock
        self.held: set[str] = set()
        self.processes = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run one round at once (so a lone process receives immediately), then keep going."""
        await self._round()
        self._task = asyncio.create_task(self._loop(), name="coordinator")

    async def stop(self) -> None:
        """Stop renewing; give up leases and the heartbeat so others take over at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for platform in sorted(self.held):
            with contextlib.suppress(Exception):
                await self.on_lease(platform, False)
            self.store.atomically(self.store.leases.release, f"inbound:{platform}", self.owner)
        self.held.clear()
        with contextlib.suppress(Exception):
            self.store.atomically(self.store.leases.leave, self.owner)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.timing.interval_s)
            try:
                await self._round()
            except Exception:
                log.exception("coordination round failed; will retry")

    async def _round(self) -> None:
        now = self.clock()
        alive = self.store.atomically(self.store.leases.heartbeat, self.owner, now, self.timing.ttl_s)
        if alive != self.processes:
            self.processes = alive
            for platform, budget in self.budgets.items():
                self.limiter.configure(platform, share(budget, alive))
            log.info("%d process(es) share the platform budgets", alive)
        for platform in sorted(self.budgets):
            lease = f"inbound:{platform}"
            holds = self.store.atomically(self.store.leases.hold, lease, self.owner, now, self.timing.ttl_s)
            if holds and platform not in self.held:
                self.held.add(platform)
                log.info("this process now receives %s updates", platform)
                await self.on_lease(platform, True)
            elif not holds and platform in self.held:
                self.held.discard(platform)
                log.warning("lost the %s inbound lease; another process receives now", platform)
                await self.on_lease(platform, False)
