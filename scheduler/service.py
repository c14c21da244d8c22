"""SchedulerService: wakes the process when scheduled posts, poll deadlines and recurring
occurrences fall due. The database is the truth; APScheduler only holds wake-up alarms.

How it works:

- Every *pass* (at start, every `sweep_interval_s`, and shortly after any command that may add
  or remove something timed) reads `engine.schedule_snapshot()` (the engine is anything
  that satisfies `SchedulerEngine`; `bridge.app` passes the `ChannelEngine`), handles everything already
  due (publish per the late policy, close polls, fire missed recurring occurrences once), then
  makes the in-memory APScheduler job store match the database: one `DateTrigger` job per
  scheduled post, per open poll deadline and per recurring post's `next_at`.
- A job only calls the engine, whose atomic claims make a double wake-up (job + sweep, or two
  processes) harmless: each post is published once, each poll closed once, each occurrence
  posted once.
- Recurring posts use one `DateTrigger` per next occurrence, never `CronTrigger`: APScheduler
  3.11's cron arithmetic skips the 00:xx occurrence on the day after a spring-forward and fires
  twice in a fall-back hour, while `Recurrence.next_after` (stored as `next_at`) is DST-correct.
  After a fire the engine stores the next `next_at` and the resync registers its job.

Jobs never raise: failures are logged (post and recurring ids only, never identities) and the
next sweep retries, because the database still says the thing is due.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bridge.outcomes import PublishOutcome
from scheduler.ports import SchedulerEngine, SchedulerHost, SchedulerSettings

log = logging.getLogger(__name__)

LatePolicy = Literal["publish", "skip"]

SWEEP_JOB_ID = "sweep"
RESYNC_DELAY_S = 0.2
#: how often a pass looks for paid access that ended (an expiry notice is due once per ending)
EXPIRY_CHECK_S = 60.0
STOP_TIMEOUT_S = 10.0


class WakeupKind(enum.StrEnum):
    """What a wake-up job does when it fires."""

    POST = "post"  #: publish a scheduled post (late policy applies)
    POLL_CLOSE = "poll-close"  #: close a poll at its deadline
    RECURRING = "recurring"  #: post one occurrence of a recurring post


class WakeupOutcome(enum.StrEnum):
    """What one wake-up did (a post's outcome is the engine's `PublishOutcome`)."""

    PUBLISHED = PublishOutcome.PUBLISHED.value  #: a scheduled post went out on time
    PUBLISHED_LATE = PublishOutcome.PUBLISHED_LATE.value  #: it went out after the grace
    SKIPPED = PublishOutcome.SKIPPED.value  #: it was skipped (late policy, author gone)
    NOT_DUE = PublishOutcome.NOT_DUE.value  #: woken early: the job is re-armed
    ALREADY_HANDLED = PublishOutcome.ALREADY_HANDLED.value  #: another wake-up or process did it
    CLOSED = "closed"  #: a poll was closed at its deadline
    ALREADY_CLOSED = "already closed"  #: the poll was closed before
    FIRED = "fired"  #: a recurring post's occurrence was posted
    FAILED = "failed"  #: it raised; the next sweep retries it


#: the quiet outcomes: nothing happened worth a log line
_QUIET = frozenset({WakeupOutcome.ALREADY_HANDLED, WakeupOutcome.ALREADY_CLOSED, WakeupOutcome.NOT_DUE})


@dataclass(frozen=True)
class Wakeup:
    """One alarm: `kind` for the post or recurring post `target_id`, due at `at` (epoch s UTC)."""

    kind: WakeupKind
    target_id: int
    at: float

    @property
    def job_id(self) -> str:
        """The APScheduler job id; it includes the due time, so a changed time is a new job."""
        return f"{self.kind.value}:{self.target_id}:{self.at:.6f}"


@dataclass
class PassReport:
    """What one catch-up + resync pass did (counts only)."""

    published: int = 0  #: scheduled posts published on time
    published_late: int = 0  #: published after more than the grace (policy "publish")
    skipped: int = 0  #: skipped after more than the grace (policy "skip")
    polls_closed: int = 0  #: polls closed because their deadline had passed
    recurring_fired: int = 0  #: recurring occurrences posted (a missed run fires once)
    failed: int = 0  #: wake-ups that raised; the next sweep retries them
    jobs_added: int = 0  #: date jobs registered to match the database
    jobs_removed: int = 0  #: date jobs dropped because the database no longer lists them
    expiry_notices: int = 0  #: followers told that their paid access ended

    @property
    def handled(self) -> int:
        """How many due things this pass acted on."""
        return self.published + self.published_late + self.skipped + self.polls_closed + self.recurring_fired


class SchedulerService:
    """Timed posts, poll deadlines and recurring posts on an `AsyncIOScheduler`.

    `bridge.app` builds it from its `[scheduler]` settings, calls `start()` after the worker and adapters and
    `stop()` before them. Tests may drive it without real waiting: `sweep()` runs one pass and
    `run_wakeup()` is exactly what a fired job does. `clock` (epoch seconds) defaults to the
    engine's clock; due times are read on it and mapped onto APScheduler's wall clock.
    """

    def __init__(
        self,
        engine: SchedulerEngine,
        *,
        sweep_interval_s: float = 30.0,
        misfire_grace_s: float = 300.0,
        late_policy: LatePolicy = "publish",
        clock: Callable[[], float] | None = None,
        resync_delay_s: float = RESYNC_DELAY_S,
    ) -> None:
        if sweep_interval_s <= 0:
            raise ValueError("sweep_interval_s must be positive")
        if misfire_grace_s < 0:
            raise ValueError("misfire_grace_s must not be negative")
        if late_policy not in ("publish", "skip"):
            raise ValueError('late_policy must be "publish" or "skip"')
        self.engine = engine
        self.sweep_interval_s = sweep_interval_s
        self.misfire_grace_s = misfire_grace_s
        self.late_policy: LatePolicy = late_policy
        self._clock: Callable[[], float] = clock or engine.clock
        self._resync_delay_s = resync_delay_s
        self._scheduler: AsyncIOScheduler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pass_lock = asyncio.Lock()
        self._pass_waiting = False
        self._resync_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._expiry_checked_at: float | None = None

    @classmethod
    def for_app(cls, app: SchedulerHost) -> SchedulerService:
        """The scheduler for a running application, configured from its `[scheduler]` settings."""
        cfg = app.settings.scheduler
        return cls(
            app.engine,
            sweep_interval_s=cfg.sweep_interval_s,
            misfire_grace_s=cfg.misfire_grace_s,
            late_policy=cast(LatePolicy, cfg.late_policy),
        )

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between a successful `start()` and `stop()`."""
        return self._scheduler is not None and not self._stopping

    async def start(self) -> None:
        """Catch up on everything already due, register a job per timed thing, start the
        periodic sweep and listen for schedule changes. Returns once running."""
        if self._scheduler is not None:
            return
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={
                # The database decides lateness (misfire_grace_s + late_policy), so APScheduler
                # must run a late job rather than drop it; two missed runs of the same job are one.
                "misfire_grace_time": None,
                "coalesce": True,
                "max_instances": 1,
            },
        )
        scheduler.start()
        self._scheduler = scheduler
        try:
            # listen first: a command that arrives while we catch up is picked up right after
            self.engine.set_on_schedule_change(self.request_resync)
            report = await self.sweep()
            if report.handled:
                log.info("scheduler catch-up: %s", _summary(report))
            scheduler.add_job(
                self._sweep_job,
                IntervalTrigger(seconds=self.sweep_interval_s, timezone=UTC),
                id=SWEEP_JOB_ID,
                name="scheduler sweep",
                replace_existing=True,
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop waking up, let wake-ups in flight finish (bounded), and shut APScheduler down."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        self._stopping = True
        self.engine.set_on_schedule_change(None)
        if self._resync_handle is not None:
            self._resync_handle.cancel()
            self._resync_handle = None
        with suppress(SchedulerNotRunningError):
            scheduler.remove_all_jobs()
            scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the next turn of the loop
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=STOP_TIMEOUT_S)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("scheduler: %d wake-up(s) still running at stop were cancelled", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        await self.engine.drain_planning()
        self._scheduler = None
        self._loop = None

    # ---- passes ---------------------------------------------------------------------------

    async def sweep(self) -> PassReport:
        """One pass: act on everything due now, then make the jobs match the database."""
        async with self._pass_lock:
            return await self._pass()

    async def _pass(self) -> PassReport:
        report = PassReport()
        if self._stopping:
            return report
        now = self._clock()
        posts, polls, recurring = self.engine.schedule_snapshot()
        due = [Wakeup(WakeupKind.POST, i, at) for i, at in posts if at <= now]
        # posts first: a scheduled poll whose deadline has also passed is published, then closed
        due += [Wakeup(WakeupKind.POLL_CLOSE, i, at) for i, at in polls if at <= now]
        due += [Wakeup(WakeupKind.RECURRING, i, at) for i, at in recurring if at <= now]
        for wakeup in sorted(due, key=lambda w: (_ORDER[w.kind], w.at)):
            _count(report, await self.run_wakeup(wakeup))
        if due:
            posts, polls, recurring = self.engine.schedule_snapshot()
        wanted = [Wakeup(WakeupKind.POST, i, at) for i, at in posts]
        wanted += [Wakeup(WakeupKind.POLL_CLOSE, i, at) for i, at in polls]
        wanted += [Wakeup(WakeupKind.RECURRING, i, at) for i, at in recurring]
        report.jobs_added, report.jobs_removed = self._sync_jobs(wanted)
        report.expiry_notices = await self._notice_expiries(now)
        return report

    async def _notice_expiries(self, now: float) -> int:
        """About once a minute, tell followers whose paid access ended (never raises)."""
        if self._expiry_checked_at is not None and now - self._expiry_checked_at < EXPIRY_CHECK_S:
            return 0
        self._expiry_checked_at = now
        try:
            return await self.engine.notice_expired_access()
        except Exception:
            log.exception("scheduler: looking for ended paid access failed; the next pass retries")
            return 0

    def request_resync(self) -> None:
        """Ask for a pass soon (debounced; returns at once). Installed as the engine's
        on-schedule-change hook; safe to call from any thread."""
        loop = self._loop
        if loop is None or self._stopping:
            return
        try:
            same_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self._arm_resync()
        else:
            with suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._arm_resync)

    def pending(self) -> list[Wakeup]:
        """The wake-ups currently registered with APScheduler, soonest first."""
        if self._scheduler is None:
            return []
        found = [job.args[0] for job in self._scheduler.get_jobs() if job.id != SWEEP_JOB_ID]
        return sorted((w for w in found if isinstance(w, Wakeup)), key=lambda w: w.at)

    # ---- wake-ups ----------------------------------------------------------------------------

    async def run_wakeup(self, wakeup: Wakeup) -> WakeupOutcome:
        """What a fired job does; never raises. Returns its outcome; NOT_DUE when woken early
        (the job is re-armed)."""
        outcome: WakeupOutcome
        try:
            if wakeup.at > self._clock():
                self._rearm(wakeup)
                return WakeupOutcome.NOT_DUE
            if wakeup.kind is WakeupKind.POST:
                published = await self.engine.publish_scheduled(
                    wakeup.target_id, grace_s=self.misfire_grace_s, late_policy=self.late_policy
                )
                outcome = WakeupOutcome(published.value)
                if outcome is WakeupOutcome.NOT_DUE:
                    self._rearm(wakeup)
            elif wakeup.kind is WakeupKind.POLL_CLOSE:
                closed = self.engine.close_poll(wakeup.target_id)
                outcome = WakeupOutcome.CLOSED if closed else WakeupOutcome.ALREADY_CLOSED
            else:
                post_id = await self.engine.fire_recurring(wakeup.target_id, wakeup.at)
                outcome = WakeupOutcome.FIRED if post_id is not None else WakeupOutcome.ALREADY_HANDLED
                if post_id is not None:
                    self.request_resync()  # register the next occurrence's job
        except Exception as exc:  # a job must never raise into APScheduler; the sweep retries
            log.error(
                "scheduler: %s wake-up for #%s failed (%s); the next sweep retries it",
                wakeup.kind.value,
                wakeup.target_id,
                type(exc).__name__,
            )
            log.debug("scheduler failure detail", exc_info=True)
            return WakeupOutcome.FAILED
        if outcome not in _QUIET:
            log.info("scheduler: %s #%s %s", wakeup.kind.value, wakeup.target_id, outcome)
        return outcome

    # ---- internals ----------------------------------------------------------------------------

    def _sync_jobs(self, wanted: list[Wakeup]) -> tuple[int, int]:
        """Make the registered date jobs exactly `wanted`; returns (added, removed)."""
        scheduler = self._scheduler
        if scheduler is None or self._stopping:
            return 0, 0
        by_id = {w.job_id: w for w in wanted}
        existing = {job.id for job in scheduler.get_jobs() if job.id != SWEEP_JOB_ID}
        removed = 0
        for job_id in existing - by_id.keys():
            with suppress(JobLookupError):  # it may have fired and gone meanwhile
                scheduler.remove_job(job_id)
                removed += 1
        added = 0
        for job_id, wakeup in by_id.items():
            if job_id not in existing:
                self._add_job(scheduler, wakeup)
                added += 1
        return added, removed

    def _add_job(self, scheduler: AsyncIOScheduler, wakeup: Wakeup) -> None:
        # `at` is on the engine's clock; APScheduler runs on the wall clock. Mapping through the
        # delay keeps both agreeing even when the engine's clock is not the wall clock (tests).
        delay = max(0.0, wakeup.at - self._clock())
        scheduler.add_job(
            self._job,
            DateTrigger(run_date=datetime.now(UTC) + timedelta(seconds=delay), timezone=UTC),
            args=(wakeup,),
            id=wakeup.job_id,
            name=f"{wakeup.kind.value} #{wakeup.target_id}",
            replace_existing=True,
        )

    def _rearm(self, wakeup: Wakeup) -> None:
        if self._scheduler is not None and not self._stopping:
            self._add_job(self._scheduler, wakeup)

    async def _job(self, wakeup: Wakeup) -> None:
        """The function APScheduler runs: hand the work to a task this service owns, so that
        `stop()` can let it finish instead of APScheduler cancelling it half-way."""
        self._spawn(self.run_wakeup(wakeup))

    async def _sweep_job(self) -> None:
        self._spawn(self._guarded_sweep())

    def _arm_resync(self) -> None:
        if self._resync_handle is None and self._loop is not None and not self._stopping:
            self._resync_handle = self._loop.call_later(self._resync_delay_s, self._resync_now)

    def _resync_now(self) -> None:
        self._resync_handle = None
        if not self._stopping:
            self._spawn(self._guarded_sweep())

    async def _guarded_sweep(self) -> None:
        if self._pass_waiting:  # one pass running and one waiting is enough
            return
        self._pass_waiting = True
        try:
            async with self._pass_lock:
                self._pass_waiting = False
                report = await self._pass()
        except Exception as exc:
            log.error(
                "scheduler sweep failed (%s); it runs again in %ss", type(exc).__name__, self.sweep_interval_s
            )
            log.debug("scheduler sweep failure detail", exc_info=True)
            return
        finally:
            self._pass_waiting = False
        if report.handled or report.failed:
            log.info("scheduler sweep: %s", _summary(report))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


_ORDER = {WakeupKind.POST: 0, WakeupKind.POLL_CLOSE: 1, WakeupKind.RECURRING: 2}


def _count(report: PassReport, outcome: WakeupOutcome) -> None:
    match outcome:
        case WakeupOutcome.PUBLISHED:
            report.published += 1
        case WakeupOutcome.PUBLISHED_LATE:
            report.published_late += 1
        case WakeupOutcome.SKIPPED:
            report.skipped += 1
        case WakeupOutcome.CLOSED:
            report.polls_closed += 1
        case WakeupOutcome.FIRED:
            report.recurring_fired += 1
        case WakeupOutcome.FAILED:
            report.failed += 1
        case _:
            pass


def _summary(report: PassReport) -> str:
    return (
        f"{report.published} published, {report.published_late} published late, {report.skipped} skipped, "
        f"{report.polls_closed} poll(s) closed, {report.recurring_fired} recurring fired, "
        f"{report.failed} failed"
    )


__all__ = [
    "LatePolicy",
    "PassReport",
    "SchedulerEngine",
    "SchedulerHost",
    "SchedulerService",
    "SchedulerSettings",
    "Wakeup",
    "WakeupKind",
    "WakeupOutcome",
]
