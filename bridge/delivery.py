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
import itertools
import logging
import random
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace

from bridge.flood import FloodControl
from bridge.models import DeliveryAction, DeliveryStatus, NoticeLane, PostStatus
from bridge.notices import ClaimedNotice, NoticeOutcome, NoticeQueue
from bridge.ports import (
    Adapter,
    Address,
    Content,
    MediaContent,
    MediaRefRejected,
    MessageRef,
    PermanentFailure,
    PollContent,
    RecipientGone,
    Reply,
    RetryLater,
)
from bridge.privacy import Sealed, Sealer
from bridge.ratelimit import RateLimiter
from bridge.store import ClaimedDelivery, DeliveryOutcome, ProgressReport, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retry and batching policy, as plain data (from `[delivery]` in the config)."""

    concurrency: int = 16
    batch_size: int = 500
    max_attempts: int = 8
    backoff_base_s: float = 2.0
    backoff_max_s: float = 600.0
    lease_s: float = 60.0
    progress_threshold: int = 50
    progress_interval_s: float = 5.0  #: the progress message is edited at most this often
    max_wait_s: float = 24 * 3600.0  #: how long platform rate limits may hold a row back
    idle_poll_s: float = 1.0

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with jitter for the given attempt number (1-based)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempts - 1))
        return ceiling * random.uniform(0.5, 1.0)


@dataclass
class _PostView:
    """What the worker needs of a post to render copies; refreshed every second."""

    post_id: int
    status: str
    edit_count: int
    content: Content
    media_id: int | None
    media_refs: dict[str, str]
    loaded_at: float
    author: Sealed | None = None


@dataclass(frozen=True)
class _Job:
    """A claimed row with what was loaded for it in the claim's batch."""

    row: ClaimedDelivery
    address: Address | None
    source: tuple[str | None, str | None] | None
    broken: str | None = None  #: its sealed data does not open: fail it with this reason


@dataclass
class _Result:
    claimed: ClaimedDelivery
    outcome: DeliveryOutcome
    edit_count: int = 0
    gone: bool = False


@dataclass(frozen=True)
class _Retry:
    """What to do with a row whose send must be tried again (None fields: give up)."""

    next_attempt_at: float | None
    refund_attempt: bool
    error: str


#: queue priorities: replies, then notices, then post copies
_BULK = len(NoticeLane)
#: a message whose chat may not receive for longer than this goes back to the queue until
#: then rather than hold a sender (a person's second answer within a second, a busy group)
_HOLD_S = 0.25


@dataclass
class WorkerStats:
    """Counters of one worker since it started (for benchmarks and logs)."""

    sent: int = 0  #: post copies, edits, deletes and poll closes done
    failed: int = 0
    retried: int = 0  #: copies and notices put back to wait (a 429, a transient error)
    skipped: int = 0
    notices_sent: int = 0  #: replies, notices and progress messages (or edits of them) sent
    notices_failed: int = 0


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
    ) -> None:
        self.store = store
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
        self._queue: asyncio.PriorityQueue[tuple[int, int, _Job | ClaimedNotice | None]] = (
            asyncio.PriorityQueue()
        )
        self._seq = itertools.count()
        self._inflight: set[int] = set()
        self._notices_inflight: set[int] = set()
        self._notice_results: list[NoticeOutcome] = []
        self._look_for_notices = True
        self._last_notice_look = 0.0
        self._results: list[_Result] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._have_results = asyncio.Event()
        self._posts: dict[int, _PostView] = {}
        self._upload_locks: dict[tuple[int, str], asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._progress_posts: set[int] = set()
        self._last_reap = 0.0
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
            if isinstance(item, _Job):
                unsent.append(item.row.id)
            elif isinstance(item, ClaimedNotice):
                unsent_notices.append(item.id)
        for _ in senders:
            self._queue.put_nowait((_BULK + 1, next(self._seq), None))
        await asyncio.gather(*senders, return_exceptions=True)  # the recorder still runs
        recorder.cancel()
        await asyncio.gather(recorder, return_exceptions=True)
        await self._flush()
        if unsent:
            self.store.return_to_pending(self.owner, unsent)
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
        if self.store.next_due_at() is not None or self.store.has_leased_rows():
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
            self.store.release_expired_leases(now)
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
        rows = self.store.claim_deliveries(self.owner, now, self.policy.lease_s, limit, self._platforms())
        if not rows:
            self._claim_size = self._first_claim
            return notices
        self._claim_size = min(self.policy.batch_size, self._claim_size * 2)
        context = self.store.delivery_context(rows, self.sealer)
        for row in rows:
            self._inflight.add(row.id)
            source = context.sources.get(row.source_id) if row.source_id is not None else None
            job = _Job(row, context.addresses.get(row.id), source, context.broken.get(row.id))
            self._queue.put_nowait((_BULK, next(self._seq), job))
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
            self._queue.put_nowait((notice.lane, next(self._seq), notice))
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
        dues = [self.store.next_due_at(platforms)]
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
            job = (await self._queue.get())[2]
            if job is None:
                return
            done = asyncio.get_running_loop().create_future()
            if isinstance(job, ClaimedNotice):
                outcome = await self._process_notice(job)  # the recorder swaps the list meanwhile
                self._count(outcome)
                self._notice_results.append(replace(outcome, platform=job.platform))
            else:
                row = job.row
                try:
                    result = await self._process(job)
                except Exception as exc:  # a bug in rendering must not lose the row: retry it later
                    log.exception("delivery %s crashed", row.id)
                    result = self._retry_result(
                        row, RetryLater(None, reason=f"internal error: {type(exc).__name__}")
                    )
                self._results.append(result)
            # group commit: this sender takes no new row until its outcome is durable, so a
            # crash repeats at most `concurrency` sends
            self._waiters.append(done)
            self._have_results.set()
            await done
            if isinstance(job, ClaimedNotice):
                self._notices_inflight.discard(job.id)
            else:
                self._inflight.discard(job.row.id)

    def _count(self, outcome: NoticeOutcome) -> None:
        """Count a notice's outcome (a deferral until its chat may receive is not a retry)."""
        if outcome.status == DeliveryStatus.DELIVERED:
            self.stats.notices_sent += 1
        elif outcome.status == DeliveryStatus.FAILED:
            self.stats.notices_failed += 1
        elif outcome.error is not None:
            self.stats.retried += 1

    async def _process_notice(self, notice: ClaimedNotice) -> NoticeOutcome:
        """Send one reply or notice (or edit a progress message) under the same limiter and
        retry rules as post copies."""
        if notice.address is None or notice.reply is None:
            return NoticeOutcome(
                notice.id, DeliveryStatus.FAILED, error="does not unseal with the current privacy key"
            )
        adapter = self.adapters.get(notice.platform)
        if adapter is None:
            exc = RetryLater(None, reason=f"{notice.platform} adapter is not running")
            return self._notice_retry(notice, exc)
        address = notice.address
        wait = self.limiter.chat_wait(notice.platform, address.target)
        if wait > _HOLD_S:  # that chat's budget is spent for now: come back then, free the sender
            return NoticeOutcome(
                notice.id, DeliveryStatus.PENDING, next_attempt_at=self.clock() + wait, refund_attempt=True
            )
        try:
            await self.limiter.acquire(notice.platform, address.target)
            ref = await adapter.reply(address, notice.reply)
            self.flood.sent(notice.platform)
            # only a progress message is edited later: an answer's row is deleted, not its ref sealed
            kept = ref if notice.post_id is not None else None
            return NoticeOutcome(notice.id, DeliveryStatus.DELIVERED, ref=kept)
        except RetryLater as exc:
            self._paused(notice.platform, address.target, exc, notice.attempts)
            return self._notice_retry(notice, exc)
        except RecipientGone as exc:
            log.info("a %s notice was dropped: the recipient is gone (%s)", notice.platform, exc.reason)
            return NoticeOutcome(notice.id, DeliveryStatus.FAILED, error=exc.reason[:300], gone=True)
        except PermanentFailure as exc:
            log.warning("a %s notice failed for good: %s", notice.platform, exc.reason)
            return NoticeOutcome(notice.id, DeliveryStatus.FAILED, error=exc.reason[:300])
        except Exception as exc:  # a bug in rendering must not lose the notice: retry it later
            log.exception("notice %s crashed", notice.id)
            crash = RetryLater(None, reason=f"internal error: {type(exc).__name__}")
            return self._notice_retry(notice, crash)

    def _notice_retry(self, notice: ClaimedNotice, exc: RetryLater) -> NoticeOutcome:
        decision = self._retry(notice.attempts, notice.created_at, exc)
        if decision.next_attempt_at is None:
            log.warning("a %s notice was given up: %s", notice.platform, decision.error)
            return NoticeOutcome(notice.id, DeliveryStatus.FAILED, error=decision.error)
        return NoticeOutcome(
            notice.id,
            DeliveryStatus.PENDING,
            error=decision.error,
            next_attempt_at=decision.next_attempt_at,
            refund_attempt=decision.refund_attempt,
        )

    def _paused(self, platform: str, chat: str, exc: RetryLater, attempts: int) -> None:
        """Tell flood control (a 429) or back the chat off (a transient error)."""
        if exc.after_s is not None:
            self.flood.rate_limited(platform, chat, exc.after_s, known_global=exc.scope == "global")
            return
        wait = self.policy.backoff(attempts)
        self.limiter.pause(platform, None if exc.scope == "global" else chat, wait)

    def _view(self, post_id: int, *, fresh: bool = False) -> _PostView | None:
        view = self._posts.get(post_id)
        if view is not None and not fresh and self.clock() - view.loaded_at < 1.0:
            return view
        loaded = self.store.load_post_view(post_id, self.clock())
        if loaded is None:
            self._posts.pop(post_id, None)
            return None
        new = _PostView(**loaded)
        if view is not None and view.content.media is not None and new.content.media is not None:
            new.content = _with_media(new.content, view.content.media.data)  # keep loaded bytes
        self._posts[post_id] = new
        if len(self._posts) > 256:
            self._posts.pop(next(iter(self._posts)))
        return new

    async def _process(self, job: _Job) -> _Result:
        row = job.row
        if job.broken is not None:
            log.warning("delivery %s failed: %s", row.id, job.broken)
            self.stats.failed += 1
            return self._final(row, DeliveryStatus.FAILED, error=job.broken[:300])
        # follow-ups (edit, delete, close) exist because the post changed: never use a stale view
        view = self._view(row.post_id, fresh=row.action != DeliveryAction.SEND.value)
        if view is None:
            return self._final(row, DeliveryStatus.SKIPPED, error="post no longer exists")
        if row.action == DeliveryAction.SEND.value and view.status == PostStatus.DELETED.value:
            return self._final(row, DeliveryStatus.SKIPPED, error="post deleted")
        adapter = self.adapters.get(row.platform)
        if adapter is None:
            return self._retry_result(row, RetryLater(None, reason=f"{row.platform} adapter is not running"))
        address = job.address
        if address is None:
            return self._final(row, DeliveryStatus.SKIPPED, error="recipient no longer exists")
        wait = self.limiter.chat_wait(row.platform, address.target)
        if wait > _HOLD_S:  # that chat's budget is spent for now: come back then, free the sender
            outcome = DeliveryOutcome(
                row.id, DeliveryStatus.PENDING, next_attempt_at=self.clock() + wait, refund_attempt=True
            )
            return _Result(row, outcome)
        content = view.content
        if row.silent or content.delivery_id != row.id:
            content = _replace(content, silent=row.silent, delivery_id=row.id)
        try:
            if row.action == DeliveryAction.SEND.value:
                ref = await self._send(adapter, row, address, view, content)
                self.flood.sent(row.platform)
                self.stats.sent += 1
                return _Result(
                    row,
                    DeliveryOutcome(
                        row.id, DeliveryStatus.DELIVERED, ref.key, ref.alt, platform=row.platform
                    ),
                    edit_count=view.edit_count,
                )
            source = job.source
            if source is None or source[0] is None:
                return self._final(row, DeliveryStatus.SKIPPED, error="no delivered copy to change")
            ref = MessageRef(source[0], source[1])
            await self.limiter.acquire(row.platform, address.target, group=row.mirror_id is not None)
            if row.action == DeliveryAction.EDIT.value:
                await adapter.edit(address, ref, _replace(content, edited=True))
            elif row.action == DeliveryAction.DELETE.value:
                await adapter.delete(address, ref)
            else:
                await adapter.close_poll(address, ref, _replace(content, poll=_closed(content.poll)))
            self.flood.sent(row.platform)
            self.stats.sent += 1
            return _Result(
                row,
                DeliveryOutcome(row.id, DeliveryStatus.DELIVERED, ref.key, ref.alt, platform=row.platform),
            )
        except RetryLater as exc:
            self._paused(row.platform, address.target, exc, row.attempts)
            return self._retry_result(row, exc)
        except RecipientGone as exc:
            self.stats.failed += 1
            result = self._final(row, DeliveryStatus.FAILED, error=f"recipient gone: {exc.reason}")
            result.gone = row.follower_id is not None
            return result
        except PermanentFailure as exc:
            self.stats.failed += 1
            return self._final(row, DeliveryStatus.FAILED, error=exc.reason[:300])

    async def _send(
        self, adapter: Adapter, row: ClaimedDelivery, address: Address, view: _PostView, content: Content
    ) -> MessageRef:
        """Send one copy; media is uploaded once per platform and its reference reused."""
        group = row.mirror_id is not None
        if content.media is None or view.media_id is None:
            await self.limiter.acquire(row.platform, address.target, group=group, paid=True)
            return await adapter.send(address, content)
        known = view.media_refs.get(row.platform)
        if known is not None:
            try:
                await self.limiter.acquire(row.platform, address.target, group=group, paid=True)
                return await adapter.send(address, _with_ref(content, known))
            except MediaRefRejected:
                # the platform forgot the upload (e.g. a new bot token): upload the bytes again
                if view.media_refs.get(row.platform) == known:
                    del view.media_refs[row.platform]
                    self.store.forget_media_ref(view.media_id, row.platform, known)
        lock = self._upload_locks.setdefault((view.media_id, row.platform), asyncio.Lock())
        async with lock:
            known = view.media_refs.get(row.platform)
            if known is None:
                data = content.media.data
                if data is None:
                    data = self.store.media_data(view.media_id)
                    view.content = _with_media(view.content, data)
                await self.limiter.acquire(row.platform, address.target, group=group, paid=True)
                ref = await adapter.send(address, _with_media(content, data, platform_ref=None))
                if ref.media_ref:
                    view.media_refs[row.platform] = ref.media_ref
                    self.store.save_media_ref(view.media_id, row.platform, ref.media_ref)
                return ref
        await self.limiter.acquire(row.platform, address.target, group=group, paid=True)
        return await adapter.send(address, _with_ref(content, known))

    def _final(self, row: ClaimedDelivery, status: DeliveryStatus, *, error: str) -> _Result:
        if status == DeliveryStatus.SKIPPED:
            self.stats.skipped += 1
        return _Result(row, DeliveryOutcome(row.id, status, error=error))

    def _retry(self, attempts: int, created_at: float, exc: RetryLater) -> _Retry:
        """The retry rule every outgoing message follows. A wait the platform asked for (429 with
        retry-after) is pacing, not failure: it does not use up an attempt, but a row cannot wait
        forever either (max_wait_s since it was queued). Other errors use up attempts."""
        paced = exc.after_s is not None
        waited = self.clock() - created_at if created_at else 0.0
        if paced and waited > self.policy.max_wait_s:
            return _Retry(None, False, f"gave up after {waited / 3600:.1f} h of rate limits")
        if not paced and attempts >= self.policy.max_attempts:
            return _Retry(None, False, f"gave up after {attempts} attempts: {exc.reason}"[:300])
        wait = exc.after_s if exc.after_s is not None else self.policy.backoff(attempts)
        return _Retry(self.clock() + wait, paced, exc.reason[:300])

    def _retry_result(self, row: ClaimedDelivery, exc: RetryLater) -> _Result:
        decision = self._retry(row.attempts, row.created_at, exc)
        if decision.next_attempt_at is None:
            self.stats.failed += 1
            return self._final(row, DeliveryStatus.FAILED, error=decision.error)
        self.stats.retried += 1
        return _Result(
            row,
            DeliveryOutcome(
                row.id,
                DeliveryStatus.PENDING,
                error=decision.error,
                next_attempt_at=decision.next_attempt_at,
                refund_attempt=decision.refund_attempt,
            ),
        )

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
                    if self._inflight:
                        self.store.extend_leases(self.owner, list(self._inflight), until)
                    if self._notices_inflight and self.notices is not None:
                        self.notices.extend_leases(self.owner, list(self._notices_inflight), until)
                await self._report_progress()
            except Exception:
                log.exception("recording delivery outcomes failed; will retry")
                await asyncio.sleep(0.5)
                self._have_results.set()

    async def _flush(self) -> None:
        if not self._results and not self._notice_results:
            return
        results, self._results = self._results, []
        notices, self._notice_results = self._notice_results, []
        waiters, self._waiters = self._waiters, []
        try:
            self.store.record_outcomes(self.owner, [r.outcome for r in results], self.clock(), self.sealer)
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
            self.store.pause_follower_now(follower_id)
        delivered_sends = [
            r
            for r in results
            if r.outcome.status == DeliveryStatus.DELIVERED and r.claimed.action == DeliveryAction.SEND.value
        ]
        if delivered_sends:
            self.store.plan_catch_up(
                [(r.claimed.id, r.claimed.post_id, r.edit_count) for r in delivered_sends], self.clock()
            )
        self._progress_posts.update(
            r.claimed.post_id for r in results if r.claimed.action == DeliveryAction.SEND.value
        )

    async def _report_progress(self) -> None:
        """Keep the author of a large fan-out's progress message up to date (one message, edited
        in place), and queue the final summary; both go out through the notice lane."""
        if self.notices is None or not self._progress_posts:
            return
        posts, self._progress_posts = self._progress_posts, set()
        for post_id in posts:
            report = self.store.progress_report(
                post_id, self.clock(), self.policy.progress_threshold, self.policy.progress_interval_s
            )
            if report is None:
                continue
            try:
                self._queue_progress(post_id, report)
            except Exception as exc:
                log.warning("progress of post %s could not be queued: %s", post_id, type(exc).__name__)
                if report.summary is not None:  # the summary is claimed once: give it back
                    self.store.reset_summary(post_id)
                self._progress_posts.add(post_id)

    def _queue_progress(self, post_id: int, report: ProgressReport) -> None:
        assert self.notices is not None
        now = self.clock()
        if report.progress is not None:
            self.notices.update_progress(post_id, report.author, report.progress, now)
        if report.summary is not None:
            address = self.sealer.open(report.author)
            self.notices.enqueue(address, [Reply(report.summary)], NoticeLane.NOTICE, now)
        self.wake_notices()


def _replace(content: Content, **changes: object) -> Content:
    return replace(content, **changes)  # type: ignore[arg-type]


def _with_ref(content: Content, ref: str) -> Content:
    assert content.media is not None
    # with the platform's reference known, the bytes are not needed (and must not be re-uploaded)
    return _replace(content, media=_media_replace(content.media, platform_ref=ref, data=None))


def _with_media(content: Content, data: bytes | None, **changes: object) -> Content:
    if content.media is None:
        return content
    return _replace(content, media=_media_replace(content.media, data=data, **changes))


def _media_replace(media: MediaContent, **changes: object) -> MediaContent:
    return replace(media, **changes)  # type: ignore[arg-type]


def _closed(poll: PollContent | None) -> PollContent | None:
    return None if poll is None else replace(poll, closed=True)
