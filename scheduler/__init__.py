"""APScheduler wiring: timed posts, poll deadlines, recurring posts."""

from scheduler.service import (
    LatePolicy,
    PassReport,
    SchedulerEngine,
    SchedulerService,
    Wakeup,
    WakeupKind,
    WakeupOutcome,
)
from scheduler.when import Recurrence, WhenError, format_local, parse_recurrence, parse_when

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
