"""APScheduler wiring: timed posts, poll deadlines, recurring posts."""

from bridge.when import Recurrence, WhenError, format_local, parse_recurrence, parse_when
from scheduler.service import LatePolicy, PassReport, SchedulerService, Wakeup, WakeupKind

__all__ = [
    "LatePolicy",
    "PassReport",
    "Recurrence",
    "SchedulerService",
    "Wakeup",
    "WakeupKind",
    "WhenError",
    "format_local",
    "parse_recurrence",
    "parse_when",
]
