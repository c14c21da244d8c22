"""Sending one claimed message: a post copy (send, edit, delete, poll close) or a reply/notice,
through the rate limiter to its adapter, turned into an outcome to record."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from bridge.delivery.earlier import earlier_content
from bridge.delivery.policy import DeliveryPolicy, decide_retry
from bridge.delivery.teaser import teaser_content
from bridge.flood import FloodControl
from bridge.metrics import Metrics
from bridge.models import DeliveryAction, DeliveryStatus, PostStatus
from bridge.notices import ClaimedNotice, NoticeOutcome
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
    RetryLater,
)
from bridge.ratelimit import RateLimiter
from bridge.store import ClaimedDelivery, DeliveryOutcome, PostView, SourceRef, Store

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: a message whose chat may not receive for longer than this goes back to the queue until
#: then rather than hold a sender (a person's second answer within a second, a busy group)
HOLD_S = 0.25


@dataclass
class WorkerStats:
    """Counters of one worker since it started (for benchmarks and logs)."""

    sent: int = 0  #: post copies, edits, deletes and poll closes done
    failed: int = 0
    retried: int = 0  #: copies and notices put back to wait (a 429, a transient error)
    skipped: int = 0
    notices_sent: int = 0  #: replies, notices and progress messages (or edits of them) sent
    notices_failed: int = 0


@dataclass(frozen=True)
class Job:
    """A claimed row with what was loaded for it in the claim's batch."""

    row: ClaimedDelivery
    address: Address | None
    source: SourceRef | None
    broken: str | None = None  #: its sealed data does not open: fail it with this reason


@dataclass
class Result:
    """A row's outcome, with what the recorder does after recording it."""

    claimed: ClaimedDelivery
    outcome: DeliveryOutcome
    edit_count: int = 0  #: the post's edit count the copy was rendered with
    gone: bool = False  #: the follower is gone: pause them


#: asks the worker whether a claimed row is still its own (see `DeliveryWorker._still_ours`)
StillOurs = Callable[[], bool]


def _always() -> bool:
    return True


_ALWAYS: StillOurs = _always


class TakenOver(Exception):
    """Another worker took a row over while this one waited for its turn (a stall outlasted the
    lease): the row is dropped here unsent and unrecorded, the other worker owns it."""


class Sender:
    """Turns one claimed row or notice into an outcome; never raises for a remote failure."""

    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        limiter: RateLimiter,
        flood: FloodControl,
        policy: DeliveryPolicy,
        clock: Callable[[], float],
        stats: WorkerStats,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or Metrics()
        self.adapters = adapters
        self.limiter = limiter
        self.flood = flood
        self.policy = policy
        self.clock = clock
        self.stats = stats
        self._posts: dict[int, PostView] = {}
        self._upload_locks: dict[tuple[int, str], asyncio.Lock] = {}

    # ---- post copies --------------------------------------------------------------------------

    async def process(self, job: Job, still_ours: StillOurs = _ALWAYS) -> Result:
        """Send, edit, delete or close one copy; `TakenOver` when `still_ours()` says, once the
        limiter lets the copy go, that another worker took the row over meanwhile."""
        row = job.row
        if job.broken is not None:
            log.warning(
                "delivery %s failed: %s",
                row.id,
                job.broken,
                extra={"post_id": row.post_id, "platform": row.platform, "outcome": "failed"},
            )
            self.stats.failed += 1
            return self.final(row, DeliveryStatus.FAILED, error=job.broken[:300])
        # follow-ups (edit, delete, close) exist because the post changed: never use a stale view
        view = self._view(row.post_id, fresh=row.action != DeliveryAction.SEND)
        if view is None:
            return self.final(row, DeliveryStatus.SKIPPED, error="post no longer exists")
        first_copy = row.action in (DeliveryAction.SEND, DeliveryAction.TEASER)
        if first_copy and view.status == PostStatus.DELETED.value:
            return self.final(row, DeliveryStatus.SKIPPED, error="post deleted")
        adapter = self.adapters.get(row.platform)
        if adapter is None:
            return self.retry_result(row, RetryLater(None, reason=f"{row.platform} adapter is not running"))
        address = job.address
        if address is None:
            return self.final(row, DeliveryStatus.SKIPPED, error="recipient no longer exists")
        wait = self.limiter.chat_wait(row.platform, address.target)
        if wait > HOLD_S:  # that chat's budget is spent for now: come back then, free the sender
            outcome = DeliveryOutcome(
                row.id, DeliveryStatus.PENDING, next_attempt_at=self.clock() + wait, refund_attempt=True
            )
            return Result(row, outcome)
        content = teaser_content(view) if row.action == DeliveryAction.TEASER else view.content
        if row.earlier:  # a closed poll's first copy shows its results; follow-ups keep the kind
            content = earlier_content(content, view, first=row.action == DeliveryAction.SEND)
        if row.silent or content.delivery_id != row.id:
            content = _replace(content, silent=row.silent, delivery_id=row.id)
        try:
            if row.action == DeliveryAction.TEASER:  # kept without its reference: never changed
                await self._turn(still_ours, row.platform, address.target, paid=True)
                await adapter.send(address, content)
                self.flood.sent(row.platform)
                self.stats.sent += 1
                return Result(row, DeliveryOutcome(row.id, DeliveryStatus.DELIVERED, platform=row.platform))
            if row.action == DeliveryAction.SEND:
                ref = await self._send(adapter, row, address, view, content, still_ours)
                self.flood.sent(row.platform)
                self.stats.sent += 1
                return Result(
                    row,
                    DeliveryOutcome(
                        row.id, DeliveryStatus.DELIVERED, ref.key, ref.alt, platform=row.platform
                    ),
                    edit_count=view.edit_count,
                )
            source = job.source
            if source is None or source.key is None:
                return self.final(row, DeliveryStatus.SKIPPED, error="no delivered copy to change")
            ref = MessageRef(source.key, source.alt)
            await self._turn(still_ours, row.platform, address.target, group=row.mirror_id is not None)
            if row.action == DeliveryAction.EDIT:
                known = view.media_refs.get(row.platform) if content.media is not None else None
                if known is not None:  # an edit re-sends the media (Matrix): reuse the upload
                    content = _with_ref(content, known)
                await self._timed(row.platform, adapter.edit(address, ref, _replace(content, edited=True)))
            elif row.action == DeliveryAction.DELETE:
                await self._timed(row.platform, adapter.delete(address, ref))
            else:
                closed = _replace(content, poll=_closed(content.poll))
                await self._timed(row.platform, adapter.close_poll(address, ref, closed))
            self.flood.sent(row.platform)
            self.stats.sent += 1
            return Result(
                row,
                DeliveryOutcome(row.id, DeliveryStatus.DELIVERED, ref.key, ref.alt, platform=row.platform),
            )
        except RetryLater as exc:
            self._paused(row.platform, address.target, exc, row.attempts)
            return self.retry_result(row, exc)
        except RecipientGone as exc:
            self.stats.failed += 1
            result = self.final(row, DeliveryStatus.FAILED, error=f"recipient gone: {exc.reason}")
            result.gone = row.follower_id is not None
            return result
        except PermanentFailure as exc:
            self.stats.failed += 1
            log.warning(
                "a copy of post %s failed for good: %s",
                row.post_id,
                exc.reason,
                extra={"post_id": row.post_id, "platform": row.platform, "outcome": "failed"},
            )
            return self.final(row, DeliveryStatus.FAILED, error=exc.reason[:300])

    async def _send(
        self,
        adapter: Adapter,
        row: ClaimedDelivery,
        address: Address,
        view: PostView,
        content: Content,
        still_ours: StillOurs,
    ) -> MessageRef:
        """Send one copy; media is uploaded once per platform and its reference reused."""
        group = row.mirror_id is not None
        if content.media is None or view.media_id is None:
            await self._turn(still_ours, row.platform, address.target, group=group, paid=True)
            return await self._timed(row.platform, adapter.send(address, content))
        media_id = view.media_id
        known = view.media_refs.get(row.platform)
        if known is not None:
            try:
                await self._turn(still_ours, row.platform, address.target, group=group, paid=True)
                return await self._timed(row.platform, adapter.send(address, _with_ref(content, known)))
            except MediaRefRejected:
                # the platform forgot the upload (e.g. a new bot token): upload the bytes again
                if view.media_refs.get(row.platform) == known:
                    del view.media_refs[row.platform]
                    self.store.atomically(self.store.posts.forget_media_ref, media_id, row.platform, known)
        lock = self._upload_locks.setdefault((media_id, row.platform), asyncio.Lock())
        async with lock:
            known = view.media_refs.get(row.platform)
            if known is None:
                data = content.media.data
                if data is None:
                    data = self.store.atomically(self.store.posts.media_data, media_id)
                    view.content = _with_media(view.content, data)
                await self._turn(still_ours, row.platform, address.target, group=group, paid=True)
                ref = await self._timed(
                    row.platform, adapter.send(address, _with_media(content, data, platform_ref=None))
                )
                if ref.media_ref:
                    view.media_refs[row.platform] = ref.media_ref
                    posts = self.store.posts
                    self.store.atomically(posts.save_media_ref, media_id, row.platform, ref.media_ref)
                return ref
        await self._turn(still_ours, row.platform, address.target, group=group, paid=True)
        return await self._timed(row.platform, adapter.send(address, _with_ref(content, known)))

    def _view(self, post_id: int, *, fresh: bool = False) -> PostView | None:
        view = self._posts.get(post_id)
        if view is not None and not fresh and self.clock() - view.loaded_at < 1.0:
            return view
        new = self.store.atomically(self.store.posts.view, post_id, self.clock())
        if new is None:
            self._posts.pop(post_id, None)
            return None
        if view is not None and view.content.media is not None and new.content.media is not None:
            new.content = _with_media(new.content, view.content.media.data)  # keep loaded bytes
        self._posts[post_id] = new
        if len(self._posts) > 256:
            self._posts.pop(next(iter(self._posts)))
        return new

    def final(self, row: ClaimedDelivery, status: DeliveryStatus, *, error: str) -> Result:
        """A row done for good without a platform reference."""
        if status == DeliveryStatus.SKIPPED:
            self.stats.skipped += 1
        return Result(row, DeliveryOutcome(row.id, status, error=error))

    def retry_result(self, row: ClaimedDelivery, exc: RetryLater) -> Result:
        """A row to try again later, or failed when the retry rule gives up."""
        decision = decide_retry(self.policy, row.attempts, row.created_at, exc, self.clock())
        if decision.next_attempt_at is None:
            self.stats.failed += 1
            return self.final(row, DeliveryStatus.FAILED, error=decision.error)
        self.stats.retried += 1
        return Result(
            row,
            DeliveryOutcome(
                row.id,
                DeliveryStatus.PENDING,
                error=decision.error,
                next_attempt_at=decision.next_attempt_at,
                refund_attempt=decision.refund_attempt,
            ),
        )

    # ---- replies and notices ------------------------------------------------------------------

    async def process_notice(self, notice: ClaimedNotice, still_ours: StillOurs = _ALWAYS) -> NoticeOutcome:
        """Send one reply or notice (or edit a progress message) under the same limiter and
        retry rules as post copies; `TakenOver` as for a copy."""
        if notice.address is None or notice.reply is None:
            return NoticeOutcome(
                notice.id, DeliveryStatus.FAILED, error="does not unseal with the current privacy key"
            )
        adapter = self.adapters.get(notice.platform)
        if adapter is None:
            exc = RetryLater(None, reason=f"{notice.platform} adapter is not running")
            return self.notice_retry(notice, exc)
        address = notice.address
        wait = self.limiter.chat_wait(notice.platform, address.target)
        if wait > HOLD_S:  # that chat's budget is spent for now: come back then, free the sender
            return NoticeOutcome(
                notice.id, DeliveryStatus.PENDING, next_attempt_at=self.clock() + wait, refund_attempt=True
            )
        try:
            await self._turn(still_ours, notice.platform, address.target, urgent=True)
            ref = await self._timed(notice.platform, adapter.reply(address, notice.reply))
            self.flood.sent(notice.platform)
            # only a progress message is edited later: an answer's row is deleted, not its ref sealed
            kept = ref if notice.post_id is not None else None
            return NoticeOutcome(notice.id, DeliveryStatus.DELIVERED, ref=kept)
        except RetryLater as exc:
            self._paused(notice.platform, address.target, exc, notice.attempts)
            return self.notice_retry(notice, exc)
        except RecipientGone as exc:
            log.info(
                "a %s notice was dropped: the recipient is gone (%s)",
                notice.platform,
                exc.reason,
                extra={"platform": notice.platform, "outcome": "gone"},
            )
            return NoticeOutcome(notice.id, DeliveryStatus.FAILED, error=exc.reason[:300], gone=True)
        except PermanentFailure as exc:
            log.warning(
                "a %s notice failed for good: %s",
                notice.platform,
                exc.reason,
                extra={"platform": notice.platform, "outcome": "failed"},
            )
            return NoticeOutcome(notice.id, DeliveryStatus.FAILED, error=exc.reason[:300])
        except TakenOver:
            raise
        except Exception as exc:  # a bug in rendering must not lose the notice: retry it later
            log.exception("notice %s crashed", notice.id)
            crash = RetryLater(None, reason=f"internal error: {type(exc).__name__}")
            return self.notice_retry(notice, crash)

    def notice_retry(self, notice: ClaimedNotice, exc: RetryLater) -> NoticeOutcome:
        """A notice to try again later, or failed when the retry rule gives up."""
        decision = decide_retry(self.policy, notice.attempts, notice.created_at, exc, self.clock())
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

    async def _turn(self, still_ours: StillOurs, platform: str, target: str, **kinds: bool) -> None:
        """Wait for the limiter to let one message to `target` go, then make sure the row is
        still this worker's: the wait may have spanned a stall during which another worker took
        the row over (and sent it)."""
        await self.limiter.acquire(platform, target, **kinds)
        if not still_ours():
            raise TakenOver

    async def _timed(self, platform: str, call: Awaitable[_T]) -> _T:
        """Await one platform call, observing how long it took (failures included)."""
        started = time.perf_counter()
        try:
            return await call
        finally:
            self.metrics.send_time(platform, time.perf_counter() - started)

    def _paused(self, platform: str, chat: str, exc: RetryLater, attempts: int) -> None:
        """Tell flood control (a 429) or back the chat off (a transient error)."""
        if exc.after_s is not None:
            scope = self.flood.rate_limited(platform, chat, exc.after_s, known_global=exc.scope == "global")
            self.metrics.throttled_429(platform, scope)
            return
        wait = self.policy.backoff(attempts)
        self.limiter.pause(platform, None if exc.scope == "global" else chat, wait)


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


__all__ = ["HOLD_S", "Job", "Result", "Sender", "WorkerStats"]
