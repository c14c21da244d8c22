"""MatrixAdapter: the `bridge.ports.Adapter` for Matrix, built on matrix-nio's AsyncClient.

The adapter wires the parts, each one job: `session` (login, the nio client, the one road of
every event-creating request), `sync` (the sync loop: events -> `Inbound`), `invites`,
`rooms` (DMs, mirror rooms, leaving), `media` (upload once, download bounded), `render` (pure
request builders) and `errors` (nio outcomes -> the core's three failure types).

Lifecycle: `start()` logs in, loads the olm store under `store_dir`, does one sync (the first
sync ever skips history) and runs the sync loop in a background task; `stop()` ends it.

Rate limits: the adapter neither waits nor retries. A 429 (`M_LIMIT_EXCEEDED`) becomes
`RetryLater(retry_after, scope="global")` and the delivery worker, whose flood control paces
every platform, retries the copy or the answer. Every step of a copy is safe to retry: its
transaction id derives from the delivery, a DM already opened is adopted, media is uploaded
once per blob.

Privacy: the DM map and the reaction map are keyed by a keyed hash (HMAC-SHA256 with a random
key kept in `store_dir/state.key`) of the Matrix user id. Under the app (`use_sealer`) the
state and the olm store are sealed with the operator's privacy key, so nothing in store_dir
names a person; without a sealer they are plain files: keep store_dir private (0700). No log
line of this package names a user or a room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

from nio import AsyncClient, RoomSendResponse

from adapters.base import Dispatcher, trace
from bridge.ports import (
    Address,
    Capabilities,
    Content,
    InboundHandler,
    Message,
    MessageRef,
    OutboxSend,
    PermanentFailure,
    PollVote,
    PostKind,
    RateLimits,
    Reaction,
    Reply,
)
from bridge.privacy import Sealer

from . import render
from .invites import Invites
from .media import Media
from .normalize import MediaPointer, post_ref, split_ref
from .rooms import Rooms
from .session import Session
from .sync import SyncLoop

log = logging.getLogger(__name__)

_STOP_GRACE_S = 30.0


class MatrixAdapter:
    """Delivers posts to Matrix DMs and mirror rooms and turns Matrix events into `Inbound`."""

    platform = "matrix"
    capabilities = Capabilities()
    default_limits = RateLimits(global_per_s=10, per_chat_per_s=5, group_per_min=600)

    def __init__(
        self,
        homeserver: str,
        user_id: str,
        *,
        access_token: str | None = None,
        password: str | None = None,
        device_id: str | None = None,
        store_dir: Path,
        encryption: bool = True,
        mirror_rooms: Collection[str] = (),
        limits: RateLimits | None = None,
    ) -> None:
        """Configure; nothing touches the network before `start()`."""
        if not access_token and not password:
            raise ValueError("matrix: access_token or password is required")
        if limits is not None:
            self.default_limits = limits
        self._store_dir = Path(store_dir)
        self._session = Session(
            homeserver, user_id, access_token=access_token, password=password, device_id=device_id,
            store_dir=self._store_dir, encryption=encryption, mirror_rooms=mirror_rooms,
        )  # fmt: skip
        self._rooms = Rooms(self._session, self._notify)
        self._media = Media(self._session)
        self._invites = Invites(self._session, self._rooms)
        self._sync: SyncLoop | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._dispatch: Dispatcher | None = None
        self._sealer: Sealer | None = None
        self._outbox: OutboxSend | None = None

    def use_outbox(self, send: OutboxSend) -> None:
        """Send this adapter's own notices through the app's reply lane (paced and retried by
        the delivery worker). The app calls this before `start()`."""
        self._outbox = send

    def use_sealer(self, sealer: Sealer) -> None:
        """Seal what this adapter keeps in store_dir (its state and nio's olm store) with the
        operator's privacy key. The app calls this before `start()`."""
        self._sealer = sealer

    # -- views of the session (tests and the app read them) -------------------------------------

    @property
    def client(self) -> AsyncClient:
        """The logged-in nio client (only valid between `start()` and `stop()`; else it raises
        `RetryLater`, so a copy in flight at stop is retried after the next start)."""
        return self._session.client

    @property
    def _client(self) -> AsyncClient | None:
        return self._session.client_or_none

    @_client.setter
    def _client(self, client: AsyncClient | None) -> None:
        self._session.client_or_none = client

    @property
    def _hash_key(self) -> bytes:
        return self._session.hash_key

    @_hash_key.setter
    def _hash_key(self, key: bytes) -> None:
        self._session.hash_key = key

    @property
    def rate_limited(self) -> int:
        """How many requests the homeserver refused with M_LIMIT_EXCEEDED (counts only)."""
        return self._session.rate_limited

    @property
    def join_cap(self) -> int:
        """Invites answered per minute; more are ignored (an invite flood)."""
        return self._invites.join_cap

    @join_cap.setter
    def join_cap(self, cap: int) -> None:
        self._invites.join_cap = cap

    def _load_hash_key(self) -> bytes:
        return self._session.files.hash_key()

    def _user_hash(self, user_id: str) -> str:
        return self._session.user_hash(user_id)

    def _member_with_hash(self, room_id: str, user_hash: str, likely: str) -> str | None:
        return self._sync_loop().member_with_hash(room_id, user_hash, likely)

    async def _download(self, pointer: MediaPointer, limit: int | None = None) -> bytes:
        return await self._media.download(pointer, limit)

    # -- lifecycle ------------------------------------------------------------------------------

    def _sync_loop(self) -> SyncLoop:
        if self._sync is None:
            self._sync = SyncLoop(
                self._session, self._rooms, self._invites, deliver=self._deliver,
                notify=self._notify, download=lambda p, limit: self._download(p, limit),
            )  # fmt: skip
        return self._sync

    async def start(self, handler: InboundHandler) -> None:
        """Log in, sync once, then keep syncing in a background task; returns once running."""
        self._dispatch = Dispatcher(self.platform, handler, self.reply)
        loop = self._sync_loop()
        loop.stopping = False
        first, first_ever = await self._session.open(self._sealer)
        if first_ever:
            try:
                await loop.first(first)
            except BaseException:
                await self._session.close()
                raise
        self._sync_task = asyncio.create_task(loop.run(None if first_ever else first), name="matrix-sync")

    def is_connected(self) -> bool:
        """Whether the sync loop runs and its last requests reached the homeserver (`/readyz`:
        three failed syncs in a row, about 7 s of retries, count as disconnected)."""
        task = self._sync_task
        return task is not None and not task.done() and self._sync is not None and self._sync.failures < 3

    async def stop(self) -> None:
        """Stop syncing (finishing the batch being handled) and close the HTTP session."""
        await self._end_sync()
        await self._invites.cancel()
        await self._session.close()

    async def _end_sync(self) -> None:
        """End the sync loop's task, letting a batch being handled finish (within a grace)."""
        self._sync_loop().stopping = True
        task, self._sync_task = self._sync_task, None
        if task is None:
            return
        if self._session.polling:  # idle in the long poll: nothing in flight, cancel it
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=_STOP_GRACE_S)
        if not done:
            task.cancel()
            await asyncio.wait({task})
        elif not task.cancelled() and task.exception() is not None:
            log.error("matrix sync loop ended with an error: %s", trace(task.exception()))

    # -- inbound --------------------------------------------------------------------------------

    async def _deliver(self, room_id: str, inbound: Message | PollVote | Reaction) -> None:
        """Pass one event to the shared dispatch loop; its answers go back to that room."""
        assert self._dispatch is not None
        await self._dispatch(inbound, Address(self.platform, room_id))

    async def _notify(self, room_id: str, text: str, wait: bool = False) -> None:
        """A notice of the adapter's own into a room (a refused command, leaving a room): through
        the app's reply lane when there is one (`wait`: until it went out), else sent once."""
        address = Address(self.platform, room_id)
        if self._outbox is not None:
            await self._outbox(address, text, wait)
            return
        assert self._dispatch is not None
        await self._dispatch.answer(address, Reply(text))

    # -- outbound -------------------------------------------------------------------------------

    async def _send(self, event: render.RoomEvent) -> str:
        """Send one event into a room it may go to; returns the event id."""
        await self._rooms.check_room(event.room_id)
        client = self._session.client
        resp = await self._session.request(
            "send",
            lambda: client.room_send(
                event.room_id, event.event_type, event.content,
                tx_id=event.tx_id, ignore_unverified_devices=True,
            ),
        )  # fmt: skip
        assert isinstance(resp, RoomSendResponse)
        return str(resp.event_id)

    async def _room_of(self, address: Address) -> str:
        return await self._rooms.room_for(address.id, address.chat)

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Deliver one copy; returns `MessageRef(key="<room>|<event>", media_ref=<plain mxc>)`."""
        room_id = await self._room_of(address)
        room = await self._rooms.check_room(room_id)
        content = replace(content, follow_url=render.follow_link(self._session.user_id))
        event_type, body, media_ref = await self._media.render_post(room, content, self._download)
        tx = render.tx_id(content.delivery_id, "send")
        event_id = await self._send(render.RoomEvent(room_id, event_type, body, tx))
        return MessageRef(key=post_ref(room_id, event_id), media_ref=media_ref)

    async def edit(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Replace a delivered copy with an `m.replace` edit carrying `m.new_content`."""
        room_id, event_id = split_ref(ref.key)
        if content.kind is PostKind.STICKER:
            raise PermanentFailure("stickers cannot be edited on Matrix")
        room = await self._rooms.check_room(room_id)
        content = replace(content, follow_url=render.follow_link(self._session.user_id))
        event_type, body, _ = await self._media.render_post(room, content, self._download)
        event_type, outer = render.edit_of(event_id, event_type, body)
        tx = render.tx_id(content.delivery_id, "edit")
        await self._send(render.RoomEvent(room_id, event_type, outer, tx))

    async def delete(self, address: Address, ref: MessageRef) -> None:
        """Redact a delivered copy (idempotent: the transaction id derives from the ref)."""
        room_id, event_id = split_ref(ref.key)
        await self._rooms.check_room(room_id)
        client = self._session.client
        tx = render.redaction_tx_id(ref.key)
        await self._session.request("delete", lambda: client.room_redact(room_id, event_id, tx_id=tx))

    async def close_poll(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Send an MSC3381 poll end referencing the delivered poll start."""
        room_id, event_id = split_ref(ref.key)
        event_type, body = render.poll_end(event_id)
        tx = render.tx_id(content.delivery_id, "close")
        await self._send(render.RoomEvent(room_id, event_type, body, tx))

    async def reply(self, address: Address, reply: Reply) -> MessageRef | None:
        """Answer in the person's DM as an `m.notice` (plain body + HTML formatted_body); with
        `reply.edit_of`, replace that earlier notice (`m.replace`) instead."""
        body = render.reply_message(reply)
        if reply.edit_of is not None:
            room_id, event_id = split_ref(reply.edit_of)
            event_type, outer = render.edit_of(event_id, "m.room.message", body)
            await self._send(render.RoomEvent(room_id, event_type, outer, render.random_tx_id()))
            return MessageRef(reply.edit_of)
        room_id = await self._room_of(address)
        if reply.image is not None:  # a picture (a `/stats` chart): uploaded, sent as m.image
            room = await self._rooms.check_room(room_id)
            body = await self._media.image_message(room, reply.image, reply.text)
        event_id = await self._send(render.RoomEvent(room_id, "m.room.message", body, render.random_tx_id()))
        return MessageRef(post_ref(room_id, event_id))

    # -- extras ---------------------------------------------------------------------------------

    def add_mirror_room(self, room_id: str) -> None:
        """Treat `room_id` as a mirror room from now on (accept its invite, ignore commands in
        it); called when an operator adds a mirror at run time."""
        self._rooms.add_mirror_room(room_id)

    async def create_mirror_room(self, name: str, topic: str) -> str:
        """Create a read-only mirror room and return its id.

        The room is public-joinable (join rule `public`) but not listed in the directory: anyone
        given its id or a link can join, and every member sees the other members, as Matrix
        rooms always do. Only the bot may post; members may react, vote and redact their own
        reactions. It is unencrypted: it is meant for an open audience.
        """
        return await self._rooms.create_mirror_room(name, topic)

    async def forget(self, address: Address) -> None:
        """Erase what this adapter keeps about a person after their `/forgetme` (called by the
        app): their DM entry, reactions and gone-room marks in the state, and the bot's
        `m.direct` entry for them on the homeserver; their DM is left and forgotten once the
        current batch's answers are sent. What the homeserver itself keeps is in the README."""
        await self._rooms.forget(address.id, address.chat)
