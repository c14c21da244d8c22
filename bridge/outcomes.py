"""Typed outcomes the engine reports to its callers (the scheduler, the delivery worker)."""

from __future__ import annotations

import enum


class Claim(enum.Enum):
    """The result of an atomic claim (publishing, poll close, recurrence, skip, invite). It is
    true only when won, so `if not store.schedule.claim_poll_close(...)` reads as it means."""

    WON = "won"  #: this call made the change; it alone acts on it
    LOST = "lost"  #: another call (process, wake-up) made it first, or nothing was there to claim

    def __bool__(self) -> bool:
        return self is Claim.WON

    @classmethod
    def of(cls, rowcount: int | None) -> Claim:
        """WON when the claiming UPDATE changed exactly one row."""
        return cls.WON if (rowcount or 0) == 1 else cls.LOST


class PublishOutcome(enum.StrEnum):
    """What `publish_scheduled` did with a scheduled post."""

    PUBLISHED = "published"  #: published on time
    PUBLISHED_LATE = "published late"  #: published after more than the grace (late_policy publish)
    SKIPPED = "skipped"  #: skipped: too late (late_policy skip) or its author is no longer an admin
    NOT_DUE = "not due"  #: woken early: its time has not come
    ALREADY_HANDLED = "already handled"  #: another wake-up or process handled it first


__all__ = ["Claim", "PublishOutcome"]
