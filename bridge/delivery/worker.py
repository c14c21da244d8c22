"""The outbox worker: claims due deliveries, sends them through adapters, records the outcome.

A pipeline of three kinds of task shares one process: a claimer leases due rows in batches, a
pool of `concurrency` senders pushes them through the rate limiter to the adapter, and a
recorder writes outcomes in batches (and keeps the leases of rows in flight alive). A process
that dies leaves leased rows; their lease expires and any worker takes them again, so nothing
is lost and at most the sends in flight at the crash are repeated.

Everything the bot sends takes this road. Besides post copies (the `delivery` table) the
claimer takes queued replies and notices (`bridge.notices`) first, and senders serve them
first: a person's answer overtakes a broadcast, inside the same budgets. A 429 goes to flood
control (`bridge.flood`), which decides whether the chat or the whole platform waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace

from bridge.delivery.policy import DeliveryPolicy
from bridge.delivery.progress import ProgressReporter
from bridge.delivery.sender import Job, Result, Sender, TakenOver, WorkerStats
from bridge.flood import FloodControl
from bridge.metrics import Metrics, SendOutcome
from bridge.models import DeliveryAction, DeliveryStatus, NoticeLane
from bridge.notices import ClaimedNotice, NoticeOutcome, NoticeQueue
from bridge.ports import Adapter, RetryLater
from bridge.privacy import Sealer
from bridge.ratelimit import RateLimiter
from bridge.store import Store
from bridge.store.ops import COPY_LANE

log = logging.getLogger(__name__)


#: queue priorities: replies, then notices, then post copies
_BULK = len(NoticeLane)
#: metric lane names of the notice lanes
_LANE_NAMES = {int(lane): lane.name.lower() for lane in NoticeLane}
_OUTCOMES = {
    DeliveryStatus.DELIVERED: SendOutcome.DELIVERED,
    DeliveryStatus.FAILED: SendOutcome.FAILED,
    DeliveryStatus.SKIPPED: SendOutcome.SKIPPED,
}


class DeliveryWorker:
    """Moves outbox rows to the platforms. `start()` runs it in the background, `stop()` ends
    it after recording what is in flight; `drain()` waits until nothing is due (tests, console)."""

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        adapters: Mapping[str, Adapter],
        limiter: RateLimiter,
        *,
        policy: DeliveryPolicy | None = None,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        notices: NoticeQueue | None = None,
        flood: FloodControl | None = None,
        active_platforms: Callable[[], Collection[str]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        #: counters and histograms of what is sent (`bridge.metrics`)
        self.metrics = metrics or Metrics()
        self._first_checked: dict[int, None] = {}  #: posts whose first copy was looked for
        self.sealer = sealer
        self.adapters = dict(adapters)
        self.limiter = limiter
        #: replies and notices; without it the worker sends post copies only
        self.notices = notices
        self.flood = flood or FloodControl(limiter)
        self.policy = policy or DeliveryPolicy()
        self.owner = owner or f"w-{uuid.uuid4().hex[:12]}"
        self.clock = clock
        #: with several processes: the platforms whose adapter runs here now (see bridge.app)
        self.active_platforms = active_platforms
        self.stats = WorkerStats()
        self._wake = asyncio.Event()
        self._stopping = False
        #: (priority, sequence, the row, when it was claimed)
        self._queue: asyncio.PriorityQueue[tuple[int, int, Job | ClaimedNotice | None, float]] = (
            asyncio.PriorityQueue()
        )
        self._seq = itertools.count()
        self._inflight: set[int] = set()
        self._notices_inflight: set[int] = set()
        self._notice_results: list[NoticeOutcome] = []
        self._look_for_notices = True
        self._last_notice_look = 0.0
        self._results: list[Result] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._have_results = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._progress_posts: set[int] = set()
        self._last_reap = 0.0
        #: when the recorder last renewed the leases of every row in hand
        self._renewed_at = 0.0
        #: rows (copies, notices) claimed here that another worker took over during a stall
        self._taken: set[int] = set()
        self._notices_taken: set[int] = set()
        self._sender_ = Sender(
            store, self.adapters, limiter, self.flood, self.policy, clock, self.stats, self.metrics
        )
        self._progress = (
            ProgressReporter(
                store, sealer, notices, self.policy.progress_threshold, self.policy.progress_interval_s, clock
            )
            if notices is not None
            else None
        )
        self._first_claim = max(1, min(self.policy.batch_size, 2 * self.policy.concurrency))
        self._claim_size = self._first_claim

    # ---- lifecycle --------------------------------------------------------------------------

    def wake(self) -> None:
        """New rows may be due: claim now rather than at the next poll."""
        self._wake.set()

    def wake_notices(self) -> None:
        """A reply or notice was queued: claim it before anything else."""
        self._look_for_notices = True
        self._wake.set()

    async def start(self) -> None:
        """Start the claimer, the senders and the recorder."""
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._claimer(), name="delivery-claimer"),
            asyncio.create_task(self._recorder(), name="delivery-recorder"),
        ]
        self._tasks += [
            asyncio.create_task(self._sender(), name=f"delivery-sender-{i}")
            for i in range(self.policy.concurrency)
        ]

    async def stop(self) -> None:
        """Stop claiming, let in-flight sends finish, record them, and end the tasks."""
        self._stopping = True
        self._wake.set()
        if not self._tasks:
            return
        claimer, recorder, *senders = self._tasks
        await asyncio.gather(claimer, return_exceptions=True)
        # rows claimed but not started go back to pending at once
        unsent: list[int] = []
        unsent_notices: list[int] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()[2]
            if isinstance(item, Job):
                unsent.append(item.row.id)
            elif isinstance(item, ClaimedNotice):
                unsent_notices.append(item.id)
        for _ in senders:
            self._queue.put_nowait((_BULK + 1, next(self._seq), None, 0.0))
        await asyncio.gather(*senders, return_exceptions=True)  # the recorder still runs
        recorder.cancel()
        await asyncio.gather(recorder, return_exceptions=True)
        await self._flush()
        if unsent:
            with self.store.connection() as conn:
                self.store.outbox.return_to_pending(conn, self.owner, unsent)
            self._inflight.difference_update(unsent)
        if unsent_notices and self.notices is not None:
            self.notices.return_to_pending(self.owner, unsent_notices)
            self._notices_inflight.difference_update(unsent_notices)
        self._tasks = []

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until no row is pending (retries included) and nothing is in flight; raises
        TimeoutError when that does not happen within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.wake()
            await asyncio.sleep(0.02)
            idle_here = (
                not self._inflight
                and not self._notices_inflight
                and not self._results
                and not self._notice_results
                and self._queue.empty()
            )
            if idle_here and self._nothing_open():
                return
            if time.monotonic() > deadline:
                raise TimeoutError("deliveries still due after drain timeout")

    def _nothing_open(self) -> bool:
        with self.store.connection() as conn:
            if self.store.outbox.next_due_at(conn) is not None or self.store.outbox.has_leased(conn):
                return False
        notices = self.notices  # a notice for a platform that does not run here cannot be sent
        return notices is None or (
            notices.next_due_at(sorted(self.adapters)) is None and not notices.has_leased()
        )

    # ---- claimer ----------------------------------------------------------------------------

    async def _claimer(self) -> None:
        while not self._stopping:
            try:
                claimed = await self._claim_some()
            except Exception:
                log.exception("claiming deliveries failed; retrying")
                claimed = 0
            if claimed:
                continue
            await self._sleep_until_due()

    async def _claim_some(self) -> int:
        now = self.clock()
        if now - self._last_reap > self.policy.lease_s / 4:
            self._last_reap = now
            with self.store.connection() as conn:
                self.store.outbox.release_expired(conn, now)
            if self.notices is not None:
                self.notices.release_expired(now)
        notices = self._claim_notices(now)
        depth = self._queue_depth()
        room = depth - self._queue.qsize()
        if room < max(1, depth // 4):
            await asyncio.sleep(0.005)
            return 1  # the queue is full enough; look again soon (replies are looked for first)
        # slow start: after an idle spell claim a small batch first, so the first copies go out
        # at once, then double up to batch_size while there is work
        limit = min(room, self._claim_size)
        outbox = self.store.outbox
        with self.store.connection() as conn:
            rows = outbox.claim(conn, self.owner, now, self.policy.lease_s, limit, self._platforms())
        if not rows:
            self._claim_size = self._first_claim
            return notices
        self._claim_size = min(self.policy.batch_size, self._claim_size * 2)
        with self.store.connection() as conn:
            context = outbox.context(conn, rows, self.sealer)
        for row in rows:
            self._inflight.add(row.id)
            source = context.sources.get(row.source_id) if row.source_id is not None else None
            job = Job(row, context.addresses.get(row.id), source, context.broken.get(row.id))
            self._queue.put_nowait((_BULK, next(self._seq), job, now))
        return notices + len(rows)

    def _claim_notices(self, now: float) -> int:
        """Claim due replies and notices when one was queued here, or every so often (retries
        falling due, rows queued by another process)."""
        if self.notices is None:
            return 0
        if not self._look_for_notices and now - self._last_notice_look < 0.25:
            return 0
        if len(self._notices_inflight) >= 4 * self.policy.concurrency:
            return 0  # enough in hand; the rest is claimed as these go out
        self._look_for_notices = False
        self._last_notice_look = now
        limit = max(1, 4 * self.policy.concurrency)
        platforms = self._platforms()
        if platforms is None:  # only what an adapter here can send (a notice is tied to a platform)
            platforms = sorted(self.adapters)
        claimed = self.notices.claim(self.owner, now, self.policy.lease_s, limit, platforms)
        for notice in claimed:
            self._notices_inflight.add(notice.id)
            self._queue.put_nowait((notice.lane, next(self._seq), notice, now))
        if len(claimed) == limit:
            self._look_for_notices = True  # there may be more
        return len(claimed)

    def _queue_depth(self) -> int:
        """How many claimed rows to hold: a batch, but no more than about two seconds of what the
        platforms' budgets let out, so a retried row never waits behind a long claimed queue."""
        platforms = self._platforms()
        names = platforms if platforms is not None else list(self.adapters)
        rates = [self.limiter.throughput(name) for name in names]
        if not rates or any(rate is None for rate in rates):
            return self.policy.batch_size
        paced = int(2 * sum(rate for rate in rates if rate is not None))
        return max(1, min(self.policy.batch_size, max(paced, 2 * self.policy.concurrency)))

    def _platforms(self) -> list[str] | None:
        """The platforms this process sends for now (None: every row, single-process mode)."""
        return None if self.active_platforms is None else sorted(self.active_platforms())

    async def _sleep_until_due(self) -> None:
        platforms = self._platforms()
        with self.store.connection() as conn:
            dues = [self.store.outbox.next_due_at(conn, platforms)]
        if self.notices is not None:
            here = platforms if platforms is not None else sorted(self.adapters)
            dues.append(self.notices.next_due_at(here))
        wait = self.policy.idle_poll_s
        for due in dues:
            if due is not None:
                # a due row that was not claimed waits behind an earlier one to the same chat:
                # the recorder wakes us when that one is done
                wait = max(0.02, min(wait, due - self.clock()))
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=wait)

    # ---- senders ----------------------------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            _, _, job, claimed_at = await self._queue.get()
            if job is None:
                return
            if not self._still_ours(job, claimed_at):
                self._forget(job)
                continue
            done = asyncio.get_running_loop().create_future()
            still_ours = functools.partial(self._still_ours, job, claimed_at)
            if isinstance(job, ClaimedNotice):
                try:  # the recorder swaps the result lists meanwhile
                    outcome = await self._sender_.process_notice(job, still_ours)
                except TakenOver:
                    self._forget(job)
                    continue
                self._count(outcome)
                lane = _LANE_NAMES.get(job.lane, "notice")
                self._observe(job.platform, lane, outcome.status, outcome.error)
                self._notice_results.append(replace(outcome, platform=job.platform))
            else:
                row = job.row
                try:
                    result = await self._sender_.process(job, still_ours)
                except TakenOver:
                    self._forget(job)
                    continue
                except Exception as exc:  # a bug in rendering must not lose the row: retry it later
                    log.exception("delivery %s crashed", row.id)
                    result = self._sender_.retry_result(
                        row, RetryLater(None, reason=f"internal error: {type(exc).__name__}")
                    )
                self._results.append(result)
                self._observe(row.platform, COPY_LANE, result.outcome.status, result.outcome.error)
            # group commit: this sender takes no new row until its outcome is durable, so a
            # crash repeats at most `concurrency` sends
            self._waiters.append(done)
            self._have_results.set()
            await done
            self._forget(job)

    def _still_ours(self, job: Job | ClaimedNotice, claimed_at: float) -> bool:
        """Whether this worker may still send a row it claimed. The recorder renews every lease
        each `lease_s / 3` and learns which rows another worker took over; a row whose lease was
        neither set nor renewed for two thirds of `lease_s` waited through a stall (a frozen
        process, a starved loop), during which another worker may have claimed and sent it:
        renew its lease first, and leave the row to the other worker if that fails (what this
        prevents is a second copy, or a second answer)."""
        key = job.id if isinstance(job, ClaimedNotice) else job.row.id
        if key in (self._notices_taken if isinstance(job, ClaimedNotice) else self._taken):
            return False  # the sender drops it, and `_forget` clears the mark
        now = self.clock()
        if now - max(claimed_at, self._renewed_at) < self.policy.lease_s * 2 / 3:
            return True
        until = now + self.policy.lease_s
        try:
            if isinstance(job, ClaimedNotice):
                ours = self.notices is not None and bool(self.notices.extend_leases(self.owner, [key], until))
            else:
                with self.store.connection() as conn:
                    ours = bool(self.store.outbox.extend_leases(conn, self.owner, [key], until))
        except Exception as exc:  # the database is away: sending now could repeat another's send
            log.warning("could not renew a lease after a stall (%s); not sending", type(exc).__name__)
            return False
        if not ours:
            log.warning("a row claimed here was taken over by another worker during a stall; not sending it")
        return ours

    def _forget(self, job: Job | ClaimedNotice) -> None:
        """The row is no longer in hand here (its outcome is recorded, or it is another's)."""
        if isinstance(job, ClaimedNotice):
            self._notices_inflight.discard(job.id)
            self._notices_taken.discard(job.id)
        else:
            self._inflight.discard(job.row.id)
            self._taken.discard(job.row.id)

    def _observe(self, platform: str, lane: str, status: DeliveryStatus, error: str | None) -> None:
        """Count one send attempt in the metrics (a deferral until its chat may receive, which
        has no error, is not an attempt)."""
        if status == DeliveryStatus.PENDING:
            if error is None:
                return
            outcome = SendOutcome.RETRIED
        else:
            outcome = _OUTCOMES.get(status, SendOutcome.FAILED)
        self.metrics.delivery(platform, lane, outcome)

    def _count(self, outcome: NoticeOutcome) -> None:
        """Count a notice's outcome (a deferral until its chat may receive is not a retry)."""
        if outcome.status == DeliveryStatus.DELIVERED:
            self.stats.notices_sent += 1
        elif outcome.status == DeliveryStatus.FAILED:
            self.stats.notices_failed += 1
        elif outcome.error is not None:
            self.stats.retried += 1

    # ---- recorder ---------------------------------------------------------------------------

    async def _recorder(self) -> None:
        last_lease = self.clock()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._have_results.wait(), timeout=0.5)
            self._have_results.clear()
            try:
                await self._flush()
                if self.clock() - last_lease > self.policy.lease_s / 3:
                    last_lease = self.clock()
                    until = self.clock() + self.policy.lease_s
                    self._renew_leases(until)
                await self._report_progress()
            except Exception:
                log.exception("recording delivery outcomes failed; will retry")
                await asyncio.sleep(0.5)
                self._have_results.set()

    def _renew_leases(self, until: float) -> None:
        """Extend the lease of every row in hand; one another worker took over during a stall
        is marked, and its sender drops it unsent."""
        held = list(self._inflight)
        if held:
            with self.store.connection() as conn:
                kept = self.store.outbox.extend_leases(conn, self.owner, held, until)
            self._taken.update(set(held) - kept)
        held = list(self._notices_inflight)
        if held and self.notices is not None:
            self._notices_taken.update(set(held) - self.notices.extend_leases(self.owner, held, until))
        self._renewed_at = until - self.policy.lease_s

    async def _flush(self) -> None:
        if not self._results and not self._notice_results:
            return
        results, self._results = self._results, []
        notices, self._notice_results = self._notice_results, []
        waiters, self._waiters = self._waiters, []
        recorded_at = self.clock()
        try:
            with self.store.connection() as conn:
                outcomes = [r.outcome for r in results]
                self.store.outbox.record(conn, self.owner, outcomes, recorded_at, self.sealer)
            if notices and self.notices is not None:
                self.notices.record(self.owner, notices, self.clock())
        except Exception:
            # keep what was not recorded for the next flush (outcomes are idempotent per lease)
            self._results = results + self._results
            self._notice_results = notices + self._notice_results
            self._waiters = waiters + self._waiters
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if any(r.outcome.status != DeliveryStatus.PENDING for r in results) or notices:
            self.wake()  # a finished row may let the next one to the same chat go
            if notices:
                self._look_for_notices = True
        gone = {r.claimed.follower_id for r in results if r.gone and r.claimed.follower_id}
        for follower_id in gone:
            self.store.atomically(self.store.followers.pause, follower_id)
        delivered_sends = [
            r
            for r in results
            if r.outcome.status == DeliveryStatus.DELIVERED and r.claimed.action == DeliveryAction.SEND
        ]
        if delivered_sends:
            copies = [(r.claimed.id, r.claimed.post_id, r.edit_count) for r in delivered_sends]
            with self.store.connection() as conn:
                self.store.fanout.plan_catch_up(conn, copies, self.clock())
            self._first_copies({r.claimed.post_id for r in delivered_sends}, recorded_at)
        self._progress_posts.update(
            r.claimed.post_id for r in results if r.claimed.action == DeliveryAction.SEND
        )

    def _first_copies(self, posts: set[int], recorded_at: float) -> None:
        """Observe publish -> first send for the posts whose first copy was just recorded (each
        post is looked at once per process: one index probe)."""
        new = [p for p in sorted(posts) if p not in self._first_checked]
        if not new:
            return
        with self.store.connection() as conn:
            for post_id in new:
                self._first_checked[post_id] = None
                published = self.store.ops.first_copy_pending(conn, post_id, recorded_at)
                if published is not None:
                    latency = max(0.0, recorded_at - published)
                    self.metrics.publish_to_first_send.observe(latency)
                    log.info(
                        "post %s: first copy sent %.2f s after publication",
                        post_id,
                        latency,
                        extra={"post_id": post_id, "outcome": "first_copy"},
                    )
        while len(self._first_checked) > 4096:
            self._first_checked.pop(next(iter(self._first_checked)))

    async def _report_progress(self) -> None:
        """Bring the progress messages of the posts whose copies were recorded up to date."""
        if self._progress is None or not self._progress_posts:
            return
        posts, self._progress_posts = self._progress_posts, set()
        # counting a large post's copies is a query over all its rows: off the loop, so the
        # sends already let through by the limiter are not held back and bunched up behind it
        retry, queued = await asyncio.to_thread(self._progress.report, posts)
        self._progress_posts |= retry
        if queued:
            self.wake_notices()


__all__ = ["DeliveryPolicy", "DeliveryWorker", "WorkerStats"]
