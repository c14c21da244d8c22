"""APScheduler wiring: timed posts, poll deadlines, recurring posts."""

from scheduler.service import LatePolicy, PassReport, SchedulerService, Wakeup, WakeupKind
from scheduler.when import Recurrence, WhenError, format_local, parse_recurrence, parse_when

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
