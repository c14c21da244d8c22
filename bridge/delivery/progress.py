"""A large fan-out's progress for its author: the wording, and queueing it in the notice lane."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from bridge.i18n import _, speaking
from bridge.models import NoticeLane
from bridge.notices import NoticeQueue
from bridge.ports import Reply
from bridge.privacy import Sealed, Sealer, UnsealError
from bridge.store import ProgressReport, Store

log = logging.getLogger(__name__)


def progress_text(report: ProgressReport) -> str:
    """The progress message's text (edited in place as the fan-out goes)."""
    c = report.counts
    figures = _(
        "delivered {delivered}, pending {pending}, failed {failed}"
    ).format(delivered=c.delivered, pending=c.pending, failed=c.failed)
    return _(
        "Post #{post_id} progress: {figures}"
    ).format(post_id=report.post_id, figures=figures) + (_(" (done).") if report.done else ".")


def summary_text(report: ProgressReport) -> str:
    """The final summary, sent once as a message of its own."""
    c = report.counts
    summary = _(
        "Post #{post_id} finished: delivered {delivered}, failed {failed}"
    ).format(post_id=report.post_id, delivered=c.delivered, failed=c.failed)
    if c.skipped:
        summary += _(", skipped {skipped}").format(skipped=c.skipped)
    if report.reasons:
        summary += " (" + "; ".join(f"{r.reason} ×{r.copies}" for r in report.reasons) + ")"
    return summary + "."


class ProgressReporter:
    """Keeps the author of a large fan-out's progress message up to date (one message, edited
    in place) and queues the final summary; both go out through the notice lane."""

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        notices: NoticeQueue,
        threshold: int,
        interval_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.notices = notices
        self.threshold = threshold
        self.interval_s = interval_s
        self.clock = clock

    def report(self, posts: Iterable[int]) -> tuple[set[int], bool]:
        """Queue what the authors of `posts` should see now. Returns the posts to look at again
        (their report could not be queued) and whether anything was queued."""
        retry: set[int] = set()
        queued = False
        for post_id in posts:
            with self.store.unit_of_work() as s:
                report = self.store.fanout.progress(s, post_id, self.clock(), self.threshold, self.interval_s)
            if report is None:
                continue
            try:
                self._queue(report)
                queued = True
            except Exception as exc:
                log.warning("progress of post %s could not be queued: %s", post_id, type(exc).__name__)
                if report.summary:  # the summary is claimed once: give it back
                    self.store.atomically(self.store.fanout.reset_summary, post_id)
                retry.add(post_id)
        return retry, queued

    def _queue(self, report: ProgressReport) -> None:
        """Queue the report, worded in the language its author chose with `/lang`."""
        now = self.clock()
        with speaking(self._language(report.author)):
            if report.progress:
                self.notices.update_progress(report.post_id, report.author, progress_text(report), now)
            if report.summary:
                address = self.sealer.open(report.author)
                self.notices.enqueue(address, [Reply(summary_text(report))], NoticeLane.NOTICE, now)

    def _language(self, sealed_author: Sealed) -> str | None:
        """The language the author chose with `/lang` (None: the default, also when the sealed
        author cannot be opened; the notice lane reports that when it sends)."""
        try:
            address = self.sealer.open(sealed_author)
        except UnsealError:
            return None
        with self.store.unit_of_work() as s:
            return self.store.languages.of_address(s, self.sealer, address)


__all__ = ["ProgressReporter", "progress_text", "summary_text"]
