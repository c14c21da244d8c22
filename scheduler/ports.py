"""What the scheduler needs of the rest of the product, as small Protocols: it imports nothing
above itself (`bridge.app` builds it and passes the engine)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bridge.outcomes import PublishOutcome
from bridge.store import ScheduleSnapshot


class SchedulerEngine(Protocol):
    """What the scheduler needs of the engine (`bridge.engine.ChannelEngine` provides it)."""

    def clock(self) -> float:
        """Now, in epoch seconds (the engine's clock: tests may drive it)."""
        ...

    def schedule_snapshot(self) -> ScheduleSnapshot:
        """Everything timed, from the database: called on every pass."""
        ...

    async def publish_scheduled(self, post_id: int, *, grace_s: float, late_policy: str) -> PublishOutcome:
        """Publish a due scheduled post once across processes (a POST wake-up)."""
        ...

    def close_poll(self, post_id: int) -> bool:
        """Close a poll at its deadline; False when it was already closed (a POLL_CLOSE wake-up)."""
        ...

    async def fire_recurring(self, recurring_id: int, due_at: float) -> int | None:
        """Post one occurrence of a recurring post; None when already handled (a RECURRING wake-up)."""
        ...

    def set_on_schedule_change(self, callback: Callable[[], None] | None) -> None:
        """Install (or remove) the hook a command calls when it adds or removes something timed."""
        ...

    async def notice_expired_access(self) -> int:
        """Tell followers whose paid access ended once each (called on passes, about every minute)."""
        ...

    async def drain_planning(self) -> None:
        """Wait for fan-out planning started by wake-ups (on stop)."""
        ...


class SchedulerSettings(Protocol):
    """The `[scheduler]` settings the service reads."""

    @property
    def sweep_interval_s(self) -> float:
        """Seconds between two sweeps."""
        ...

    @property
    def misfire_grace_s(self) -> float:
        """How late a post may go out before the late policy applies."""
        ...

    @property
    def late_policy(self) -> str:
        """ "publish" or "skip"."""
        ...


class _HasSchedulerSettings(Protocol):
    @property
    def scheduler(self) -> SchedulerSettings:
        """The `[scheduler]` section."""
        ...


class SchedulerHost(Protocol):
    """What `SchedulerService.for_app` needs of the application (`bridge.app.App` is one)."""

    @property
    def engine(self) -> SchedulerEngine:
        """The engine the wake-ups call."""
        ...

    @property
    def settings(self) -> _HasSchedulerSettings:
        """The settings, with a `[scheduler]` section."""
        ...


__all__ = ["SchedulerEngine", "SchedulerHost", "SchedulerSettings"]
