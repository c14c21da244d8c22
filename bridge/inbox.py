"""The webhook receiver: record an update durably, acknowledge it, process it afterwards.

`WebhookInbox.receive` serves one adapter's webhook path on the process's HTTP server. It
refuses a request without the platform's secret header (401) or with a wrong one (403, compared
in constant time), records the update sealed in `received_update` (unique by update id, so a
redelivery is acknowledged and not run again) and only then answers 200. Requests arriving
together are recorded in one statement and transaction (group commit), so a burst costs a
commit per batch; recording runs on the event loop's thread, ahead of processing.

A processor task claims recorded updates (on PostgreSQL with `SKIP LOCKED`: any process may
process what any other received) and hands each to the adapter's normal inbound path, then
drops its body. A crash after recording loses nothing: the row is still there at restart (its
claim lapses after `lease_s`). A crash before the 200 makes the platform send it again.
Update bodies hold user ids: they are sealed in the table and never logged.

`ReceivedOnce` covers long polling in several processes: only the holder of a platform's
inbound lease polls, but a holder that stalls past its lease (a slow database, a starved CPU)
goes on handling what it fetched while the process that took the lease over fetches the same,
still unconfirmed, updates. Each process claims an update by its id in the same table before
handling it, so the two never both run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import Callable

from aiohttp import web

from bridge.http import HttpServer
from bridge.ports import WebhookAdapter, WebhookSpec
from bridge.privacy import Sealer
from bridge.store import ClaimedUpdate, Store

log = logging.getLogger(__name__)

_TABLE = "received_update"
#: processed update ids are kept this long for deduplication (Telegram keeps an update a day)
KEEP_IDS_S = 24 * 3600.0
#: how often a processor looks for updates other processes recorded (PostgreSQL)
_POLL_S = 0.5
#: the most updates recorded in one statement
_MAX_BATCH = 500
#: how often processed update ids older than KEEP_IDS_S are purged
_PURGE_EVERY_S = 3600.0


class WebhookInbox:
    """One adapter's webhook: the HTTP handler, the group-commit recorder and the processor."""

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        adapter: WebhookAdapter,
        spec: WebhookSpec,
        platform: str,
        owner: str,
        *,
        lease_s: float = 60.0,
        batch: int = 50,
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.adapter = adapter
        self.spec = spec
        self.platform = platform
        self.owner = owner
        self.lease_s = lease_s
        self.batch = batch
        #: updates received here and recorded for the first time (a redelivery not counted)
        self.recorded = 0
        #: (update id, body, its future: True recorded now, False already, None failed)
        self._pending: list[tuple[int, bytes, asyncio.Future[bool | None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._processor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def register(self, http: HttpServer) -> None:
        """Serve the webhook path on `http` (before it starts)."""
        http.add_route("POST", self.spec.path, self.receive)

    # ---- receiving ------------------------------------------------------------------------

    async def receive(self, request: web.Request) -> web.Response:
        """One delivery from the platform: 200 once the update is recorded (or was already)."""
        given = request.headers.get(self.spec.header)
        if given is None:
            return web.Response(status=401, text="missing secret token")
        if not hmac.compare_digest(given.encode(), self.spec.secret.encode()):
            return web.Response(status=403, text="wrong secret token")
        raw = await request.read()
        try:
            update = json.loads(raw)
        except ValueError:
            update = None
        key = self.adapter.update_key(update) if isinstance(update, dict) else None
        if key is None:
            return web.Response(status=400, text="not an update")
        if self._stopping:
            return web.Response(status=503, text="stopping")
        future: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._pending.append((key, raw, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=f"{self.platform}-webhook-record")
        if await asyncio.shield(future) is None:  # not recorded: the platform sends it again
            return web.Response(status=500, text="not recorded; send it again")
        return web.Response(text="ok")

    async def _flush(self) -> None:
        """Record what arrived, one transaction per batch, until nothing waits."""
        await asyncio.sleep(0)  # let the requests that arrived together join the batch
        while self._pending:
            batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
            try:  # on the loop's thread: a thread would wait for the GIL behind the processing
                fresh = self._record([(k, raw) for k, raw, _ in batch])
            except Exception as exc:  # the type only: the statement's parameters are update ids
                log.error(
                    "%s webhook: could not record %d update(s): %s",
                    self.platform,
                    len(batch),
                    type(exc).__name__,
                )
                for _, _, future in batch:
                    if not future.done():
                        future.set_result(None)
                continue
            for (_, _, future), new in zip(batch, fresh, strict=True):
                if not future.done():
                    future.set_result(new)
            self.recorded += sum(fresh)
            if any(fresh):
                self._wake.set()
            await asyncio.sleep(0)

    def _record(self, updates: list[tuple[int, bytes]]) -> list[bool]:
        def seal(plain: bytes, update_id: int) -> bytes:  # bound to the platform's update id
            return self.sealer.seal_bytes(plain, table=_TABLE, row_id=update_id, platform=self.platform)

        with self.store.connection() as conn:
            return self.store.updates.record(conn, self.platform, updates, time.time(), seal)

    # ---- processing -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the processor; on SQLite (one process) take back claims a crash left."""
        if self.store.is_sqlite:
            with self.store.connection() as conn:
                self.store.updates.release(conn, "*")
        self._stopping = False
        self._processor = asyncio.create_task(self._process_loop(), name=f"{self.platform}-webhook-process")

    async def stop(self) -> None:
        """Refuse new deliveries (503: the platform retries), record those in hand, let the
        update being processed finish, give back the rest of the claimed batch."""
        self._stopping = True
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        processor, self._processor = self._processor, None
        if processor is not None:
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(processor, 10.0)
        with contextlib.suppress(Exception), self.store.connection() as conn:
            self.store.updates.release(conn, self.owner)

    async def _process_loop(self) -> None:
        last_purge = 0.0
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = self._claim()  # short; a thread would hold the write lock waiting for the GIL
            except Exception:
                log.exception("%s webhook: claiming recorded updates failed", self.platform)
                claimed = []
            for update in claimed:
                await self._yield_to_recording()
                if self._stopping:
                    break
                await self._process(update)
            now = time.time()
            if now - last_purge > _PURGE_EVERY_S:
                last_purge = now
                with contextlib.suppress(Exception):
                    self._purge(now - KEEP_IDS_S)
            if not claimed and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _POLL_S)

    async def _yield_to_recording(self) -> None:
        """Acknowledging comes first: while updates arrive, processing waits (the platform
        waits for our 200; processing can wait for the burst to pass)."""
        while (flusher := self._flusher) is not None and not flusher.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(flusher)
            await asyncio.sleep(0)

    def _claim(self) -> list[ClaimedUpdate]:
        with self.store.connection() as conn:
            return self.store.updates.claim(
                conn, self.platform, self.owner, time.time(), self.lease_s, self.batch
            )

    async def _process(self, claimed: ClaimedUpdate) -> None:
        try:
            plain = self.sealer.unseal_bytes(
                claimed.body, table=_TABLE, row_id=claimed.update_id, platform=self.platform
            )
            await self.adapter.process_update(json.loads(plain))
        except Exception:  # never the body: it holds user ids
            log.exception("%s webhook: failed to process update %d", self.platform, claimed.update_id)
        with self.store.connection() as conn:
            self.store.updates.done(conn, claimed.row_id)

    def _purge(self, before: float) -> None:
        with self.store.connection() as conn:
            self.store.updates.purge(conn, before)


class ReceivedOnce:
    """Claims polled updates by id so that one process handles each (several processes on one
    PostgreSQL database); claims are kept for a day, like webhook update ids.

    An update is claimed before it is handled, so one being handled when its process dies is
    not handled again by the next lease holder: a lost command (its sender sends it again)
    instead of a repeated one (a post published twice)."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._last_purge = clock()

    def first(self, platform: str, update: int) -> bool:
        """Claim `update` of `platform`: True when this is its first claim anywhere."""
        now = self.clock()
        with self.store.connection() as conn:
            first = self.store.updates.first_claim(conn, platform, update, now)
        if now - self._last_purge > _PURGE_EVERY_S:
            self._last_purge = now
            try:
                with self.store.connection() as conn:
                    self.store.updates.purge(conn, now - KEEP_IDS_S)
            except Exception as exc:  # the type only: the statement's parameters are update ids
                log.warning("could not purge old update ids: %s", type(exc).__name__)
        return first


__all__ = ["KEEP_IDS_S", "ReceivedOnce", "WebhookInbox"]
