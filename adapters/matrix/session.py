"""The Matrix session: one logged-in nio client and what every part of the adapter shares.

`Session` logs in (access token + device id, or password with the session kept in store_dir),
opens nio's olm store (sealed under the app's privacy key, see `sealed_store`), and holds the
state, the rooms to leave after the current batch and the per-key locks. `Session.request` is
the one road of every request that creates an event (send, redact, join): it translates nio's
outcome into the core's failure types and counts the homeserver's 429s — nothing more. It
never waits or retries: the delivery worker and its flood control own pacing and retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from nio import AsyncClient, AsyncClientConfig, ErrorResponse, LoginResponse, SyncResponse, WhoamiResponse

from bridge.ports import PermanentFailure, RetryLater
from bridge.privacy import Sealer, UnsealError

from .errors import check, error_for_response, is_rate_limited, translated
from .sealed_store import SealedStore
from .state import State, StoreDir, user_hash

log = logging.getLogger(__name__)

_TIMELINE_LIMIT = 50  #: events per room and batch (also what a restart catches up on)
_SYNC_FILTER = {"room": {"timeline": {"limit": _TIMELINE_LIMIT}}, "presence": {"types": []}}
_FIRST_SYNC_FILTER = {"room": {"timeline": {"limit": 1}}, "presence": {"types": []}}

_R = TypeVar("_R")


class Session:
    """One bot account's client, state and shared bookkeeping (one per `MatrixAdapter`)."""

    def __init__(
        self,
        homeserver: str,
        user_id: str,
        *,
        access_token: str | None,
        password: str | None,
        device_id: str | None,
        store_dir: Path,
        encryption: bool,
        mirror_rooms: Collection[str],
    ) -> None:
        self.homeserver = homeserver.rstrip("/")
        self.user_id = user_id
        self.encryption = encryption
        self.files = StoreDir(Path(store_dir))
        self.state = State()
        self.client_or_none: AsyncClient | None = None
        self.hash_key = b""
        #: the state changed since it was last written
        self.dirty = False
        #: rooms to leave once the current batch's answers are out -> the notice to send first
        self.to_leave: dict[str, str | None] = {}
        #: set (then replaced) after each handled sync batch
        self.synced = asyncio.Event()
        #: the sync loop runs (a room just joined shows up in its next batch)
        self.syncing = False
        #: the sync loop waits in its long poll: no batch is being handled
        self.polling = False
        #: how many requests the homeserver refused with M_LIMIT_EXCEEDED (counts only)
        self.rate_limited = 0
        #: when the last two event-creating requests began (the sync loop paces itself by them)
        self._recent_requests: deque[float] = deque(maxlen=2)
        self._access_token = access_token
        self._password = password
        self._device_id = device_id
        self._configured_mirrors = frozenset(mirror_rooms)
        self._locks: dict[str, asyncio.Lock] = {}
        self._sealed_store: SealedStore | None = None

    # -- shared helpers ------------------------------------------------------------------------

    @property
    def client(self) -> AsyncClient:
        """The logged-in nio client (only valid between `open()` and `close()`).

        Outside that window it raises `RetryLater`: the app stops adapters before the delivery
        worker, so a copy still in flight then is simply retried after the next start.
        """
        if self.client_or_none is None:
            raise RetryLater(None, reason="matrix adapter is not running")
        return self.client_or_none

    @property
    def mirrors(self) -> frozenset[str]:
        """Mirror rooms: configured ones and those the bot created."""
        return self._configured_mirrors | frozenset(self.state.mirror_rooms)

    def user_hash(self, user_id: str) -> str:
        """A keyed hash of a user id: what the state stores instead of the id."""
        return user_hash(self.hash_key, user_id)

    def update_of(self, event_id: str) -> int | None:
        """The number an inbound event is claimed by when several processes share a database
        (a keyed hash of its event id under the app's key; None when the adapter runs alone)."""
        sealer = self.files.sealer
        return None if sealer is None else sealer.update_number("matrix", event_id)

    def lock(self, key: str) -> asyncio.Lock:
        """A lock per key (one DM creation per person, one upload per blob)."""
        return self._locks.setdefault(key, asyncio.Lock())

    def save(self) -> None:
        """Write the state now."""
        self.files.save_state(self.state)
        self.dirty = False

    def save_store(self) -> None:
        """Write nio's olm store sealed when it changed (only under a sealer)."""
        if self._sealed_store is not None and self.client_or_none is not None:
            self._sealed_store.save(self.client_or_none.store)

    def save_token(self, token: str) -> None:
        """Persist the olm store and handled-state (when changed) first, then the sync token:
        a restart never skips past keys it has not kept."""
        self.save_store()
        if self.dirty:
            self.save()
        self.files.save_token(token)

    async def request(self, what: str, call: Callable[[], Awaitable[_R]]) -> _R:
        """Run one event-creating request: its failure leaves translated (a 429 as
        `RetryLater(retry_after, scope="global")`, counted in `rate_limited`)."""
        self._recent_requests.append(asyncio.get_running_loop().time())
        with translated(what):
            resp = await call()
        if isinstance(resp, ErrorResponse):
            if is_rate_limited(resp):
                self.rate_limited += 1
            raise error_for_response(resp, what)
        return resp

    def sending(self, within_s: float) -> bool:
        """Whether the bot made two event-creating requests or more in the last `within_s` seconds."""
        recent = self._recent_requests
        return len(recent) == 2 and asyncio.get_running_loop().time() - recent[0] <= within_s

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self, sealer: Sealer | None) -> tuple[SyncResponse, bool]:
        """Log in and do one full-state sync so every room is known; returns its batch and
        whether this is the first start ever (whose timeline is history, to be skipped)."""
        self.files.sealer = sealer
        self.files.prepare()
        self.hash_key = self.files.hash_key()
        self.state = self.files.load_state()
        sealed: dict[str, Any] = {}
        if sealer is not None:
            self._sealed_store = SealedStore(sealer, self.files.path)
            # our sync_token file is what counts: nio's copy would re-seal the store every batch
            sealed["store_sync_tokens"] = False
            try:
                sealed["store"] = self._sealed_store.store_class()
            except UnsealError as exc:
                raise PermanentFailure(
                    f"matrix: the sealed store in {self.files.path} does not open with this privacy key"
                ) from exc
        config = AsyncClientConfig(
            max_limit_exceeded=0,
            max_timeouts=0,
            encryption_enabled=self.encryption,
            **({"store_sync_tokens": True} | sealed),
        )
        if self.state.hash_user_ids(self.user_hash) or (sealer is not None and self.files.has_plain_state()):
            self.save()
        client = AsyncClient(self.homeserver, self.user_id, store_path=str(self.files.path), config=config)
        self.client_or_none = client
        try:
            await self._login(client)
            if client.should_upload_keys:
                check(await client.keys_upload(), "keys upload")
            first_ever = self.files.load_token() is None
            return await self._initial_sync(client), first_ever
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Write nio's store and close the HTTP session."""
        self.save_store()
        client, self.client_or_none = self.client_or_none, None
        if client is not None:
            await client.close()

    async def _login(self, client: AsyncClient) -> None:
        if self._access_token:
            device_id = self._device_id
            if not device_id:
                client.access_token = self._access_token
                with translated("whoami"):
                    who = await client.whoami()
                if not isinstance(who, WhoamiResponse) or not who.device_id:
                    raise PermanentFailure("matrix: cannot learn the device id of the token")
                device_id = who.device_id
            client.restore_login(self.user_id, device_id, self._access_token)
            return
        saved = self.files.load_session()
        if saved.get("access_token") and saved.get("device_id"):
            client.restore_login(self.user_id, saved["device_id"], saved["access_token"])
            return
        assert self._password is not None
        with translated("login"):
            if self._device_id:
                client.device_id = self._device_id
            resp = await client.login(self._password, device_name="channelbridge")
        if not isinstance(resp, LoginResponse):
            raise PermanentFailure("matrix: login refused")
        self.files.save_session(resp.access_token, resp.device_id)

    async def _initial_sync(self, client: AsyncClient) -> SyncResponse | None:
        token = self.files.load_token()
        with translated("sync"):
            resp = await client.sync(
                timeout=0,
                full_state=True,
                since=token,
                sync_filter=_SYNC_FILTER if token else _FIRST_SYNC_FILTER,
            )
        check(resp, "sync")
        assert isinstance(resp, SyncResponse)
        await self.key_maintenance()
        self.save_store()
        return resp

    async def key_maintenance(self) -> None:
        """Send queued to-device messages and upload/query/claim keys as nio asks."""
        client = self.client
        if not self.encryption or client.olm is None:
            return
        try:
            await client.send_to_device_messages()
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("matrix key maintenance failed: %s", type(exc).__name__)

    async def next_batch(self, timeout_ms: int, *, without_own: bool = False) -> SyncResponse | None:
        """One long-poll sync (`without_own`: leaving out the bot's own events); None when it
        failed (logged)."""
        sync_filter = _SYNC_FILTER
        if without_own:
            timeline = {"limit": _TIMELINE_LIMIT, "not_senders": [self.user_id]}
            sync_filter = {**_SYNC_FILTER, "room": {"timeline": timeline}}
        try:
            resp = await self.client.sync(timeout=timeout_ms, sync_filter=sync_filter)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("matrix sync failed: %s", type(exc).__name__)
            return None
        if isinstance(resp, ErrorResponse):
            log.warning("matrix sync error: %s", resp.status_code)
        return resp if isinstance(resp, SyncResponse) else None
