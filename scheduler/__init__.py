"""APScheduler wiring: timed posts, poll deadlines, recurring posts."""
