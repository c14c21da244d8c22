"""Webhooks for the local Bot API server: `setWebhook`, `deleteWebhook`, `getWebhookInfo`, and
delivery of updates by HTTP POST, as Telegram does it.

While a webhook is set, every queued update (`push_update`, `user_sends_text`, ...) is POSTed to
its URL as JSON with the `X-Telegram-Bot-Api-Secret-Token` header, at most `max_connections` at
a time; an update leaves the queue only when the answer is HTTP 200, else it is sent again after
`retry_delay_s` (Telegram retries with growing delays). `getUpdates` is refused with 409 while a
webhook is set, as on Telegram. `attempts` records each delivery attempt's (update_id, status),
0 for a connection failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import aiohttp

from .state import JSON

if TYPE_CHECKING:
    from .server import FakeBotApi

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active;"
    " use deleteWebhook to delete the webhook first"
)


def _bad(description: str) -> Exception:
    from .server import ApiError

    return ApiError(400, f"Bad Request: {description}")


class Webhooks:
    """The webhook state of the one bot the server serves, and the deliverer."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api
        self.url = ""
        self.secret: str | None = None
        self.max_connections = 40
        #: seconds before an update whose delivery failed is sent again
        self.retry_delay_s = 0.2
        #: every delivery attempt: (update_id, HTTP status or 0 when the connection failed)
        self.attempts: list[tuple[int, int]] = []
        self.last_error: str | None = None
        self.last_error_date: int | None = None
        self._in_flight: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    def methods(self) -> dict[str, Any]:
        """The Bot API methods this part serves, by name."""
        return {
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
        }

    @property
    def active(self) -> bool:
        """Whether a webhook is set (getUpdates is refused then)."""
        return bool(self.url)

    def delivered(self) -> list[int]:
        """The update ids answered with 200, in order."""
        return [uid for uid, status in self.attempts if status == 200]

    def kick(self) -> None:
        """New updates are queued: deliver them (when a webhook is set)."""
        self._wake.set()
        if self.active and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._deliver_loop(), name="fake-telegram-webhook")

    async def stop(self) -> None:
        """Stop delivering and close the client."""
        self.url = ""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ Bot API

    async def _set_webhook(self, params: JSON, files: dict[str, bytes]) -> bool:
        url = str(params.get("url") or "")
        if url:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:  # Telegram: https only
                raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET.fullmatch(str(secret)):
            raise _bad("bad webhook: Secret token contains unallowed characters")
        connections = int(params.get("max_connections") or 40)
        if not 1 <= connections <= 100:
            raise _bad("bad webhook: max_connections must be between 1 and 100")
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            from .server import DEFAULT_UPDATES

            self.api.allowed_updates = frozenset(allowed) if allowed else DEFAULT_UPDATES
        if params.get("drop_pending_updates") in (True, "true", "True"):
            self.api._updates.clear()
        self.url, self.secret, self.max_connections = url, (str(secret) if secret else None), connections
        self.kick()
        return True

    async def _delete_webhook(self, params: JSON, files: dict[str, bytes]) -> bool:
        if params.get("drop_pending_updates") in (True, "true", "True"):
            self.api._updates.clear()
        self.url, self.secret = "", None
        self._wake.set()
        return True

    async def _get_webhook_info(self, params: JSON, files: dict[str, bytes]) -> JSON:
        info: JSON = {
            "url": self.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.api._updates),
        }
        if self.url:
            info["max_connections"] = self.max_connections
            info["allowed_updates"] = sorted(self.api.allowed_updates)
        if self.last_error_date is not None:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error
        return info

    # ------------------------------------------------------------------ delivery

    async def _deliver_loop(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        slots = asyncio.Semaphore(self.max_connections)
        tasks: set[asyncio.Task[None]] = set()
        while self.active:
            self._wake.clear()
            self.api._updates = [u for u in self.api._updates if u[1] in self.api.allowed_updates]
            for update_id, kind, payload in list(self.api._updates):
                if update_id in self._in_flight:
                    continue
                self._in_flight.add(update_id)
                task = asyncio.create_task(
                    self._deliver(slots, update_id, {"update_id": update_id, kind: payload})
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5)
        for task in tasks:
            task.cancel()

    async def _deliver(self, slots: asyncio.Semaphore, update_id: int, body: JSON) -> None:
        assert self._session is not None
        status = 0
        try:
            async with slots:
                if not self.active:
                    return
                headers = {SECRET_HEADER: self.secret} if self.secret else {}
                try:
                    async with self._session.post(
                        self.url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
                    ) as response:
                        status = response.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.last_error = f"Connection failed: {type(exc).__name__}"
                self.attempts.append((update_id, status))
            if status == 200:
                self.api._updates = [u for u in self.api._updates if u[0] != update_id]
                return
            if status:
                self.last_error = f"Wrong response from the webhook: {status}"
            self.last_error_date = int(time.time())
            await asyncio.sleep(self.retry_delay_s)
        finally:
            self._in_flight.discard(update_id)
            self._wake.set()
