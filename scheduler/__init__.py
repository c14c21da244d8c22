"""APScheduler wiring: timed posts, poll deadlines, recurring posts."""

from bridge.when import Recurrence, WhenError, format_local, parse_recurrence, parse_when
from scheduler.service import (
    LatePolicy,
    PassReport,
    SchedulerEngine,
    SchedulerService,
    Wakeup,
    WakeupKind,
    WakeupOutcome,
)

__all__ = [
    "LatePolicy",
    "PassReport",
    "Recurrence",
    "SchedulerEngine",
    "SchedulerService",
    "Wakeup",
    "WakeupKind",
    "WakeupOutcome",
    "WhenError",
    "format_local",
    "parse_recurrence",
    "parse_when",
]
