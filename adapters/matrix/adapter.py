"""MatrixAdapter: the `bridge.ports.Adapter` for Matrix, built on matrix-nio's AsyncClient.

Lifecycle: `start()` logs in (access token + device id, or password), loads the olm store under
`store_dir`, does one sync (the first sync ever skips history) and runs a sync loop in a
background task; `stop()` ends it. Inbound events are handled in sync order, one batch at a
time, inside that task. The sync token (`store_dir/sync_token`) is written only after its batch
was handled; DM rooms, rooms whose follower left, the reaction map, recently handled event ids
and the encrypted-media cache live in `store_dir/state.json`. So a restart neither replays
handled commands nor misses new ones.

Privacy: the DM map and the reaction map are keyed by a keyed hash (HMAC-SHA256 with a random
key kept in `store_dir/state.key`) of the Matrix user id; a removed reaction is mapped back to
its author by hashing the room's members. The state still holds room and event ids, and the
olm/megolm store necessarily holds the user ids, device ids and identity keys of everyone the bot
shares keys with. Under the app (`use_sealer`) both are sealed with the operator's privacy key:
the state as `store_dir/state.sealed`, the olm store kept in memory and written as
`store_dir/olm-store.sealed` (see `sealed_store`), so nothing in store_dir names a person.
Without a sealer (the adapter on its own) they are plain files (`state.json`,
`<bot>_<device>.db`): keep store_dir private (0700). No log line of this module names a user or
a room.

Rate limits: a 429 becomes `RetryLater(scope="global")` for the delivery worker, and the adapter
also closes a gate until the server's `retry_after_ms` has passed, then for a while sends one
request at a time spaced by the server's refill period (learnt from the 429s), so a fan-out
drains at the homeserver's pace instead of collecting a 429 per request. Command replies and
joins of invited rooms wait at the same gate and are retried instead of being dropped (an
incremental sync shows an invite only once).

Media reuse: in unencrypted rooms (and for stickers, which Matrix only allows as plain `url`) a
post's media is uploaded once and its plain mxc:// URI is returned as `MessageRef.media_ref`;
later copies reuse `MediaContent.platform_ref`. In encrypted rooms the media is uploaded once per
blob as an encrypted attachment (AES-CTR key/iv/hashes) and that `file` object is reused for
every encrypted room (the key only travels inside megolm-encrypted events); the plain mxc is
never used there, so the server never holds a plaintext copy meant for encrypted rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import aiohttp
from nio import (
    Api,
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    InviteMemberEvent,
    JoinedMembersResponse,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    MemoryDownloadResponse,
    RoomCreateResponse,
    RoomMemberEvent,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
    WhoamiResponse,
)
from nio.crypto import decrypt_attachment, encrypt_attachment

from bridge.ports import (
    Address,
    Capabilities,
    Content,
    DeliveryError,
    InboundHandler,
    InboundMedia,
    MediaTooLarge,
    Message,
    MessageRef,
    PermanentFailure,
    PollVote,
    PostKind,
    RateLimits,
    Reaction,
    RecipientGone,
    Reply,
    RetryLater,
)
from bridge.privacy import Sealer, UnsealError, read_sealed_file, write_sealed_file

from . import render
from .errors import check, error_for_response, is_rate_limited, translated
from .normalize import (
    COMMAND_PREFIXES,
    MediaMessage,
    MediaPointer,
    ReactionSeen,
    RedactionSeen,
    normalize,
    post_ref,
    split_ref,
)
from .sealed_store import SealedStore

log = logging.getLogger(__name__)

_MEGOLM = "m.megolm.v1.aes-sha2"
_STATE_FILE = "state.json"
_SEALED_STATE_FILE = "state.sealed"
_SESSION_FILE = "session.json"
_TOKEN_FILE = "sync_token"
_KEY_FILE = "state.key"
_REPLY_ATTEMPTS = 4
_JOIN_ATTEMPTS = 8
_PACING_S = 30.0
_MAX_REACTIONS = 5_000
_MAX_SEEN = 500
_SYNC_TIMEOUT_MS = 30_000
_JOIN_GRACE_S = 5.0
_JOINS_PER_MIN = 60  # invites answered per minute; more are ignored (an invite flood)
_MAX_PENDING_JOINS = 50  # invites still being retried in the background
_JOIN_TTL_S = 300.0  # an invite not joined within this time is given up
_MAX_GONE = 10_000  # rooms remembered as left by their follower
_GONE_TTL_S = 90 * 24 * 3600.0  # ... and for how long
_DIRECT_ONLY = (
    "Commands work only in a direct chat with just you and me (nobody else in the room). "
    "Start a direct chat with me and send it there."
)
_SYNC_FILTER = {"room": {"timeline": {"limit": 50}}, "presence": {"types": []}}
_FIRST_SYNC_FILTER = {"room": {"timeline": {"limit": 1}}, "presence": {"types": []}}


def _trace(exc: BaseException | None) -> str:
    """An exception's type and stack without its message (a message may name someone)."""
    if exc is None:
        return "no exception"
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return f"{type(exc).__name__}\n{frames}".rstrip()


@dataclass
class _State:
    """What survives a restart, persisted as JSON under store_dir."""

    dm_rooms: dict[str, str] = field(default_factory=dict)  # user hash -> DM room id
    gone_rooms: dict[str, float] = field(default_factory=dict)  # DM room whose follower left -> when
    shared_rooms: dict[str, float] = field(default_factory=dict)  # ex-DM left as not private -> when
    mirror_rooms: list[str] = field(default_factory=list)  # rooms made by create_mirror_room
    reactions: dict[str, list[str]] = field(default_factory=dict)  # event -> [user hash, post_ref]
    enc_media: dict[str, dict[str, Any]] = field(default_factory=dict)  # blob id -> `file`
    seen: list[str] = field(default_factory=list)  # recently handled "<room>|<event>"

    @classmethod
    def load(cls, path: Path) -> _State:
        """Read the state file, or start empty."""
        try:
            return cls.parse(path.read_bytes())
        except OSError:
            return cls()

    @classmethod
    def parse(cls, text: bytes) -> _State:
        """The state written by `dumps` (empty when unreadable)."""
        try:
            raw = json.loads(text)
        except ValueError:
            return cls()
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        gone = known.get("gone_rooms")
        if isinstance(gone, list):  # written before gone rooms expired: they count from now
            now = time.time()
            known["gone_rooms"] = {room_id: now for room_id in gone if isinstance(room_id, str)}
        return cls(**known)

    def hash_user_ids(self, digest: Callable[[str], str]) -> bool:
        """Replace plain user ids (a state file written before ids were hashed); True if any."""
        changed = False
        for user_id in [k for k in self.dm_rooms if k.startswith("@")]:
            self.dm_rooms[digest(user_id)] = self.dm_rooms.pop(user_id)
            changed = True
        for entry in self.reactions.values():
            if entry and entry[0].startswith("@"):
                entry[0] = digest(entry[0])
                changed = True
        return changed

    def mark_gone(self, room_id: str, now: float) -> bool:
        """Remember that a DM's follower left (bounded: the oldest entries go first)."""
        if room_id in self.gone_rooms:
            return False
        self.gone_rooms[room_id] = now
        return True

    def forget_user(self, user_hash: str, rooms: Collection[str]) -> None:
        """Erase what names one person: their DM entry, their reactions, their rooms."""
        self.dm_rooms.pop(user_hash, None)
        for room_id in rooms:
            self.gone_rooms.pop(room_id, None)
            self.shared_rooms.pop(room_id, None)
            for other in [h for h, r in self.dm_rooms.items() if r == room_id]:
                del self.dm_rooms[other]
        prefixes = tuple(f"{room_id}|" for room_id in rooms)
        self.seen = [key for key in self.seen if not key.startswith(prefixes)]
        for event_id in [
            e for e, (who, ref) in self.reactions.items() if who == user_hash or ref.startswith(prefixes)
        ]:
            del self.reactions[event_id]

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename), bounding what only grows."""
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(self.dumps())
        os.replace(tmp, path)

    def dumps(self) -> bytes:
        """The state as JSON, after bounding what only grows."""
        if len(self.reactions) > _MAX_REACTIONS:
            for key in list(self.reactions)[: len(self.reactions) - _MAX_REACTIONS]:
                del self.reactions[key]
        self.seen = self.seen[-_MAX_SEEN:]
        self.gone_rooms = _bounded(self.gone_rooms)
        self.shared_rooms = _bounded(self.shared_rooms)
        return json.dumps(self.__dict__).encode()


def _bounded(rooms: dict[str, float]) -> dict[str, float]:
    """Rooms marked less than `_GONE_TTL_S` ago, at most `_MAX_GONE` of them (the newest)."""
    horizon = time.time() - _GONE_TTL_S
    if len(rooms) <= _MAX_GONE and all(t >= horizon for t in rooms.values()):
        return rooms
    kept = sorted((t, r) for r, t in rooms.items() if t >= horizon)[-_MAX_GONE:]
    return {r: t for t, r in kept}


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
        self._homeserver = homeserver.rstrip("/")
        self._user_id = user_id
        self._access_token = access_token
        self._password = password
        self._device_id = device_id
        self._store_dir = Path(store_dir)
        self._encryption = encryption
        self._configured_mirrors = frozenset(mirror_rooms)
        if limits is not None:
            self.default_limits = limits
        self._state = _State()
        self._client: AsyncClient | None = None
        self._handler: InboundHandler | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._polling = False
        self._locks: dict[str, asyncio.Lock] = {}
        self._synced = asyncio.Event()  # set (then replaced) after each handled sync batch
        self._dirty = False  # state changed since it was last written
        self._hash_key = b""
        self._not_before = 0.0  # loop time before which nothing is sent (after a 429)
        self._interval = 0.0  # spacing of requests while pacing (the server's refill period)
        self._last_ok = float("-inf")  # loop time of the last request the server accepted
        #: how many requests the homeserver refused with M_LIMIT_EXCEEDED (counts only)
        self.rate_limited = 0
        self._paced_until = 0.0  # loop time until which requests are spaced
        self._probe = asyncio.Lock()  # while pacing, one request at a time
        self._joining: dict[str, asyncio.Task[None]] = {}  # invites still to join, by room
        self._joins: deque[float] = deque()  # loop times of recent invite answers
        self.join_cap = _JOINS_PER_MIN  # invites answered per minute (tests lower it)
        self._to_leave: dict[str, str | None] = {}  # rooms to leave after this batch -> notice
        self._sealer: Sealer | None = None
        self._sealed_store: SealedStore | None = None

    def use_sealer(self, sealer: Sealer) -> None:
        """Seal what this adapter keeps in store_dir (its state and nio's olm store) with the
        operator's privacy key. The app calls this before `start()`."""
        self._sealer = sealer

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def _mirrors(self) -> frozenset[str]:
        return self._configured_mirrors | frozenset(self._state.mirror_rooms)

    @property
    def client(self) -> AsyncClient:
        """The logged-in nio client (only valid between `start()` and `stop()`).

        Outside that window it raises `RetryLater`: the app stops adapters before the delivery
        worker, so a copy still in flight then is simply retried after the next start.
        """
        if self._client is None:
            raise RetryLater(None, reason="matrix adapter is not running")
        return self._client

    async def start(self, handler: InboundHandler) -> None:
        """Log in, sync once, then keep syncing in a background task; returns once running."""
        self._store_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self._store_dir.chmod(0o700)
        self._hash_key = self._load_hash_key()
        self._state = self._load_state()
        sealed: dict[str, Any] = {}
        if self._sealer is not None:
            self._sealed_store = SealedStore(self._sealer, self._store_dir)
            # our sync_token file is what counts: nio's copy would re-seal the store every batch
            sealed["store_sync_tokens"] = False
            try:
                sealed["store"] = self._sealed_store.store_class()
            except UnsealError as exc:
                raise PermanentFailure(
                    f"matrix: the sealed store in {self._store_dir} does not open with this privacy key"
                ) from exc
        config = AsyncClientConfig(
            max_limit_exceeded=0,
            max_timeouts=0,
            encryption_enabled=self._encryption,
            **({"store_sync_tokens": True} | sealed),
        )
        if self._state.hash_user_ids(self._user_hash) or (
            self._sealer is not None and (self._store_dir / _STATE_FILE).exists()
        ):
            self._save()
        self._handler = handler
        self._stopping = False
        client = AsyncClient(self._homeserver, self._user_id, store_path=str(self._store_dir), config=config)
        self._client = client
        try:
            await self._login(client)
            if client.should_upload_keys:
                check(await client.keys_upload(), "keys upload")
            first = await self._initial_sync(client)
            self._save_store()
        except BaseException:
            await self._close_client()
            raise
        self._sync_task = asyncio.create_task(self._sync_loop(first), name="matrix-sync")

    def _load_hash_key(self) -> bytes:
        """The random key of the user-id hashes, created on first start (mode 0600)."""
        path = self._store_dir / _KEY_FILE
        with contextlib.suppress(OSError, ValueError):
            key = bytes.fromhex(path.read_text().strip())
            if len(key) >= 16:
                return key
        key = os.urandom(32)
        tmp = path.with_name(_KEY_FILE + ".tmp")
        tmp.write_text(key.hex())
        tmp.chmod(0o600)
        os.replace(tmp, path)
        return key

    def _user_hash(self, user_id: str) -> str:
        """A keyed hash of a user id: what state.json stores instead of the id."""
        return hmac.new(self._hash_key, user_id.encode(), hashlib.sha256).hexdigest()[:32]

    async def stop(self) -> None:
        """Stop syncing (finishing the batch being handled) and close the HTTP session."""
        self._stopping = True
        task, self._sync_task = self._sync_task, None
        if task is not None:
            if self._polling:  # idle in the long poll: nothing in flight, cancel it
                task.cancel()
            done, _ = await asyncio.wait({task}, timeout=30)
            if not done:
                task.cancel()
                await asyncio.wait({task})
            elif not task.cancelled() and task.exception() is not None:
                log.error("matrix sync loop ended with an error: %s", _trace(task.exception()))
        joining = list(self._joining.values())
        for pending in joining:
            pending.cancel()
        if joining:
            await asyncio.wait(joining)
        self._save_store()
        await self._close_client()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _login(self, client: AsyncClient) -> None:
        session_path = self._store_dir / _SESSION_FILE
        if self._access_token:
            device_id = self._device_id
            if not device_id:
                client.access_token = self._access_token
                with translated("whoami"):
                    who = await client.whoami()
                if not isinstance(who, WhoamiResponse) or not who.device_id:
                    raise PermanentFailure("matrix: cannot learn the device id of the token")
                device_id = who.device_id
            client.restore_login(self._user_id, device_id, self._access_token)
            return
        saved: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads(session_path.read_text())
        if saved.get("access_token") and saved.get("device_id"):
            client.restore_login(self._user_id, saved["device_id"], saved["access_token"])
            return
        assert self._password is not None
        with translated("login"):
            if self._device_id:
                client.device_id = self._device_id
            resp = await client.login(self._password, device_name="channelbridge")
        if not isinstance(resp, LoginResponse):
            raise PermanentFailure("matrix: login refused")
        session_path.write_text(json.dumps({"access_token": resp.access_token, "device_id": resp.device_id}))
        session_path.chmod(0o600)

    async def _initial_sync(self, client: AsyncClient) -> SyncResponse | None:
        """Full-state sync so every room is known. The first sync ever ignores its timeline."""
        token = self._load_token()
        with translated("sync"):
            resp = await client.sync(
                timeout=0,
                full_state=True,
                since=token,
                sync_filter=_SYNC_FILTER if token else _FIRST_SYNC_FILTER,
            )
        check(resp, "sync")
        assert isinstance(resp, SyncResponse)
        await self._key_maintenance(client)
        if token is None:  # first start ever: skip history, but still answer pending invites
            await self._handle_invites(resp)
            self._save_token(resp.next_batch)
            return None
        return resp

    # -- sync loop ------------------------------------------------------------------------------

    async def _sync_loop(self, first: SyncResponse | None) -> None:
        client = self.client
        if first is not None:
            await self._handle_sync(first)
        failures = 0
        while not self._stopping:
            self._polling = True
            try:
                resp = await client.sync(timeout=_SYNC_TIMEOUT_MS, sync_filter=_SYNC_FILTER)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                resp = None
                log.warning("matrix sync failed: %s", type(exc).__name__)
            finally:
                self._polling = False
            if not isinstance(resp, SyncResponse):
                failures += 1
                if isinstance(resp, ErrorResponse):
                    log.warning("matrix sync error: %s", resp.status_code)
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
                continue
            failures = 0
            try:
                await self._key_maintenance(client)
                await self._handle_sync(resp)
            except Exception as exc:
                log.error("matrix: failed to handle a sync batch: %s", _trace(exc))

    async def _key_maintenance(self, client: AsyncClient) -> None:
        """Send queued to-device messages and upload/query/claim keys as nio asks."""
        if not self._encryption or client.olm is None:
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

    async def _handle_sync(self, resp: SyncResponse) -> None:
        await self._handle_invites(resp)
        for room_id in resp.rooms.leave:
            self._left_dm(room_id)
        for room_id, info in resp.rooms.join.items():
            changed = someone_left = False
            for event in [*info.state, *info.timeline.events]:
                if isinstance(event, RoomMemberEvent):
                    changed = True
                    someone_left |= event.membership in ("leave", "ban")
                    await self._on_membership(room_id, event)
            for event in info.timeline.events:
                if isinstance(event, MegolmEvent):
                    log.warning("matrix: an event could not be decrypted")
                    continue
                source = getattr(event, "source", None)
                if isinstance(source, dict):
                    await self._on_event(room_id, source)
            if changed:
                self._review_room(room_id, someone_left=someone_left)
        await self._leave_pending()
        self._save_token(resp.next_batch)
        self._synced.set()
        self._synced = asyncio.Event()

    async def _handle_invites(self, resp: SyncResponse) -> None:
        for room_id, info in resp.rooms.invite.items():
            direct = any(
                isinstance(ev, InviteMemberEvent)
                and ev.state_key == self._user_id
                and ev.content.get("is_direct") is True
                for ev in info.invite_state
            )
            await self._answer_invite(room_id, direct)

    def _may_answer_invite(self) -> bool:
        """At most `join_cap` invites a minute and `_MAX_PENDING_JOINS` in the background:
        the rest of an invite flood is ignored (a restart's full sync shows them again)."""
        now = asyncio.get_running_loop().time()
        while self._joins and self._joins[0] <= now - 60.0:
            self._joins.popleft()
        if len(self._joins) >= self.join_cap or len(self._joining) >= _MAX_PENDING_JOINS:
            return False
        self._joins.append(now)
        return True

    async def _answer_invite(self, room_id: str, direct: bool) -> None:
        """Join an invited room now; when the homeserver is limiting us (or fails), keep
        trying in the background for a while — an incremental sync shows an invite only once."""
        if room_id in self._joining or room_id in self.client.rooms:
            return
        if not self._may_answer_invite():
            log.info("matrix: ignoring an invite: too many invites in the last minute")
            return
        if not self._pacing() and self._not_before <= asyncio.get_running_loop().time():
            try:
                await self._join_invited(room_id, direct)
                return
            except RetryLater:
                pass
            except (RecipientGone, PermanentFailure) as exc:
                log.warning("matrix: could not join an invited room: %s", exc.reason)
                return
        task = asyncio.create_task(self._join_later(room_id, direct), name="matrix-join")
        self._joining[room_id] = task
        task.add_done_callback(lambda _t: self._joining.pop(room_id, None))

    async def _join_later(self, room_id: str, direct: bool) -> None:
        try:
            async with asyncio.timeout(_JOIN_TTL_S):  # a pending invite expires
                for attempt in range(1, _JOIN_ATTEMPTS + 1):
                    try:
                        await self._join_invited(room_id, direct)
                        return
                    except RetryLater as exc:
                        if exc.after_s is None:  # a rate limit waits at the gate; others back off
                            await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
                    except (RecipientGone, PermanentFailure) as exc:
                        log.warning("matrix: could not join an invited room: %s", exc.reason)
                        return
        except TimeoutError:
            pass
        log.warning("matrix: gave up joining an invited room")

    async def _join_invited(self, room_id: str, direct: bool) -> None:
        """Join (paced like every send), then leave again unless it is a mirror room or a
        direct chat: the bot and one person (the `is_direct` flag alone proves nothing)."""
        client = self.client
        await self._paced("join", lambda: client.join(room_id))
        if room_id in self._mirrors:
            return
        try:
            members = await client.joined_members(room_id)
            if isinstance(members, JoinedMembersResponse) and len(members.members) <= 2:
                return  # invited members are checked when the room's state arrives by sync
            log.info("matrix: leaving a room that is neither a DM nor a mirror room")
            await self._leave(room_id)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("matrix: invite handling failed: %s", type(exc).__name__)

    async def _on_membership(self, room_id: str, event: RoomMemberEvent) -> None:
        if room_id in self._mirrors or event.membership not in ("leave", "ban"):
            return
        if event.state_key == self._user_id:
            self._left_dm(room_id)

    def _review_room(self, room_id: str, *, someone_left: bool = False) -> None:
        """After a membership change: a room that is no longer a direct chat is left at the
        end of the batch — when the follower left (the bot is alone; later sends raise
        `RecipientGone`), or when someone else was invited or joined (it is not private any
        more: later sends go to the person's new direct chat)."""
        if room_id in self._mirrors or room_id in self._state.gone_rooms:
            return
        room = self.client.rooms.get(room_id)
        if room is None or self._user_id not in room.users:
            return
        others = [u for u in room.users if u != self._user_id]
        if not others:
            if not someone_left:  # a room the bot is still creating (the invite comes next)
                return
            # the follower left: the bot is alone in the DM
            self._mark_gone(room_id)
            self._to_leave.setdefault(room_id, None)
        elif len(others) > 1:
            self._drop_dm(room_id)
            self._state.shared_rooms[room_id] = time.time()
            self._dirty = True
            self._to_leave.setdefault(
                room_id,
                "This chat is not private any more, so I am leaving it. Commands and channel "
                "posts work only in a direct chat with just you and me: start one to go on.",
            )

    def _drop_dm(self, room_id: str) -> None:
        for user_hash in [h for h, r in self._state.dm_rooms.items() if r == room_id]:
            del self._state.dm_rooms[user_hash]
            self._dirty = True

    async def _leave_pending(self) -> None:
        """Leave the rooms this batch found are no longer direct chats (after its answers)."""
        pending, self._to_leave = self._to_leave, {}
        for room_id, notice in pending.items():
            if notice is not None:
                await self._send_reply(room_id, Reply(notice))
            log.info("matrix: leaving a room that is no longer a direct chat")
            await self._leave(room_id)

    async def _leave(self, room_id: str) -> None:
        """Leave a room and forget it (nio drops its state; the server may purge it once
        every member forgot it). Failures are logged: the next start's sync shows it again."""
        client = self.client
        try:
            left = await client.room_leave(room_id)
            if isinstance(left, ErrorResponse):
                log.warning("matrix: could not leave a room: %s", left.status_code)
                return
            await client.room_forget(room_id)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("matrix: could not leave a room: %s", type(exc).__name__)

    def _left_dm(self, room_id: str) -> None:
        """The bot is out of a room (kicked, or it left): a DM still in use is gone. Rooms it
        left because they were shared, or after a `/forgetme`, are no DM any more."""
        if room_id in self._state.dm_rooms.values():
            self._mark_gone(room_id)

    def _mark_gone(self, room_id: str) -> None:
        if self._state.mark_gone(room_id, time.time()):
            self._dirty = True

    def _is_dm_of(self, room_id: str, user_id: str) -> bool:
        """True while the room holds exactly the bot and `user_id` (joined or invited): the
        only room where that person's commands are accepted and their posts delivered."""
        if room_id in self._mirrors or room_id in self._state.gone_rooms or room_id in self._to_leave:
            return False
        room = self.client.rooms.get(room_id)
        return room is not None and set(room.users) == {self._user_id, user_id}

    async def forget(self, address: Address) -> None:
        """Erase what this adapter keeps about a person after their `/forgetme` (called by the
        app): their DM entry, reactions and gone-room marks in state.json, and the bot's
        `m.direct` entry for them on the homeserver; their DM is left and forgotten once the
        current batch's answers are sent. What the homeserver itself keeps is in the README."""
        user_hash = self._user_hash(address.id)
        rooms = {r for r in (self._state.dm_rooms.get(user_hash), address.chat) if r}
        rooms.discard(address.id)
        rooms -= self._mirrors
        self._state.forget_user(user_hash, rooms)
        self._save()
        for room_id in rooms:
            if room_id in self.client.rooms:
                self._to_leave.setdefault(room_id, None)
        if self._client is not None and address.id.startswith("@"):
            await self._unmark_direct(address.id)
        if self._polling:  # called between sync batches: no answer is pending
            await self._leave_pending()

    async def _on_event(self, room_id: str, source: dict[str, Any]) -> None:
        event_id = source.get("event_id")
        handled = post_ref(room_id, event_id) if isinstance(event_id, str) else None
        if handled is not None and handled in self._state.seen:
            return
        item = normalize(source, room_id, own_user_id=self._user_id)
        if item is None:
            return
        if handled is not None:
            self._state.seen.append(handled)
            self._dirty = True
        inbound: Message | PollVote | Reaction | None
        if isinstance(item, ReactionSeen):
            sender = item.reaction.sender
            self._state.reactions[item.event_id] = [self._user_hash(sender.id), item.reaction.post_ref]
            self._dirty = True
            inbound = item.reaction
        elif isinstance(item, RedactionSeen):
            seen = self._state.reactions.pop(item.redacts, None)
            if seen is None:
                return
            self._dirty = True
            # whoever redacted it (the reactor or a moderator), that person's reaction is gone
            reactor = self._member_with_hash(room_id, seen[0], item.sender.id)
            if reactor is None:
                log.info("matrix: a removed reaction's author is no longer in the room")
                return
            inbound = Reaction(Address(item.sender.platform, reactor, chat=room_id), seen[1], None)
        elif isinstance(item, PollVote):
            inbound = item
        else:
            if not self._is_dm_of(room_id, item.sender.id):
                if room_id not in self._mirrors and item.text.startswith(COMMAND_PREFIXES):
                    await self._send_reply(room_id, Reply(_DIRECT_ONLY))
                    self._review_room(room_id)
                return
            user_hash = self._user_hash(item.sender.id)
            if self._state.dm_rooms.get(user_hash) != room_id:
                self._state.dm_rooms[user_hash] = room_id
                self._dirty = True
            inbound = self._with_media(item) if isinstance(item, MediaMessage) else item
        if inbound is None:
            return
        if not self._is_dm_of(room_id, inbound.sender.id):  # a vote or reaction in a shared room:
            inbound = replace(inbound, sender=Address(inbound.sender.platform, inbound.sender.id))
        await self._dispatch(room_id, inbound)

    async def _unmark_direct(self, user_id: str) -> None:
        """Remove a person from the bot's `m.direct` account data (kept on the homeserver)."""
        client = self.client
        path = f"/_matrix/client/v3/user/{quote(self._user_id)}/account_data/m.direct"
        headers = {"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"}
        try:
            got = await client.send("GET", path, headers=headers)
            if got.status != 200:
                return
            current = await got.json()
            if not isinstance(current, dict) or current.pop(user_id, None) is None:
                return
            put = await client.send("PUT", path, json.dumps(current), headers=headers)
            if put.status != 200:
                log.warning("matrix: could not update m.direct (%s)", put.status)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            log.warning("matrix: could not update m.direct: %s", type(exc).__name__)

    def _member_with_hash(self, room_id: str, user_hash: str, likely: str) -> str | None:
        """The user id (the redacting user, else a room member) whose hash is `user_hash`."""
        if self._user_hash(likely) == user_hash:
            return likely
        room = self.client.rooms.get(room_id)
        for user_id in room.users if room is not None else ():
            if self._user_hash(user_id) == user_hash:
                return user_id
        return None

    def _with_media(self, item: MediaMessage) -> Message:
        """The message with a bounded download for the engine to call once it has authorized
        the sender; nothing is fetched here."""
        pointer = item.media

        async def fetch(limit: int) -> bytes:
            return await self._download(pointer, limit)

        media = InboundMedia(
            kind=pointer.kind,
            mime=pointer.mime,
            filename=pointer.filename,
            platform_ref=None if pointer.file else pointer.url,
            width=pointer.width,
            height=pointer.height,
            duration=pointer.duration,
            size=pointer.size,
            fetch=fetch,
        )
        return Message(item.sender, item.text, media)

    async def _download(self, pointer: MediaPointer, limit: int | None = None) -> bytes:
        """Fetch (and decrypt) media; with `limit`, stop reading and raise `MediaTooLarge` as
        soon as the body is larger (an encrypted attachment is as long as its plaintext)."""
        if limit is None:
            resp = await self.client.download(pointer.url)
            if not isinstance(resp, MemoryDownloadResponse):
                raise (
                    error_for_response(resp, "download")
                    if isinstance(resp, ErrorResponse)
                    else PermanentFailure("download: unexpected response")
                )
            body = resp.body
        else:
            body = await self._download_bounded(pointer.url, limit)
        if pointer.file is None:
            return body
        file = pointer.file
        try:
            return decrypt_attachment(body, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentFailure("download: the attachment does not decrypt") from exc

    async def _download_bounded(self, mxc: str, limit: int) -> bytes:
        client = self.client
        parsed = urlparse(mxc)
        _, path = Api.download(
            parsed.netloc, parsed.path.strip("/"), None, True, access_token=client.access_token
        )
        with translated("download"):
            resp = await client.send("GET", path)
            try:
                if resp.status != 200:
                    raise PermanentFailure(f"download refused ({resp.status})")
                if (resp.content_length or 0) > limit:
                    raise MediaTooLarge()
                body = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > limit:
                        raise MediaTooLarge()
                return bytes(body)
            finally:
                resp.release()

    async def _dispatch(self, room_id: str, inbound: Message | PollVote | Reaction) -> None:
        assert self._handler is not None
        try:
            replies: Sequence[Reply] = await self._handler(inbound)
        except Exception as exc:
            log.error("matrix: inbound handler failed: %s", _trace(exc))
            return
        for reply in replies:
            await self._send_reply(room_id, reply)

    async def _send_reply(self, room_id: str, reply: Reply) -> None:
        """Send one command answer; a rate limit or a transient error is retried a few times
        (one transaction id, so a retry never doubles it)."""
        body = render.reply_message(reply)
        tx = f"cb-{uuid.uuid4().hex}"
        for attempt in range(1, _REPLY_ATTEMPTS + 1):
            try:
                await self._send_event(room_id, "m.room.message", body, tx)
                return
            except RetryLater as exc:
                if attempt == _REPLY_ATTEMPTS or self._stopping:
                    log.warning("matrix: reply not delivered: %s", exc.reason)
                    return
                if exc.after_s is None:  # a rate limit waits at the gate; others back off
                    await asyncio.sleep(0.5 * 2**attempt)
            except (RecipientGone, PermanentFailure) as exc:
                log.warning("matrix: reply not delivered: %s", exc.reason)
                return

    def _load_state(self) -> _State:
        """The state: sealed, or (no sealer, or written by an earlier version) state.json."""
        if self._sealer is not None:
            try:
                sealed = read_sealed_file(self._sealer, self._store_dir / _SEALED_STATE_FILE)
            except UnsealError as exc:
                raise PermanentFailure(
                    f"matrix: the sealed state in {self._store_dir} does not open with this privacy key"
                ) from exc
            if sealed is not None:
                return _State.parse(sealed)
        return _State.load(self._store_dir / _STATE_FILE)

    def _save(self) -> None:
        if self._sealer is None:
            self._state.save(self._store_dir / _STATE_FILE)
        else:
            write_sealed_file(self._sealer, self._store_dir / _SEALED_STATE_FILE, self._state.dumps())
            with contextlib.suppress(FileNotFoundError):
                (self._store_dir / _STATE_FILE).unlink()  # written by an earlier version, in clear
        self._dirty = False

    def _save_store(self) -> None:
        """Write nio's olm store sealed when it changed (only under a sealer)."""
        if self._sealed_store is not None and self._client is not None:
            self._sealed_store.save(self._client.store)

    def _load_token(self) -> str | None:
        with contextlib.suppress(OSError):
            return (self._store_dir / _TOKEN_FILE).read_text().strip() or None
        return None

    def _save_token(self, token: str) -> None:
        """Persist the olm store and handled-state (when changed) first, then the sync token,
        atomically: a restart never skips past keys it has not kept."""
        self._save_store()
        if self._dirty:
            self._save()
        path = self._store_dir / _TOKEN_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(token)
        os.replace(tmp, path)

    # -- outbound -------------------------------------------------------------------------------

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _room_for(self, address: Address) -> str:
        """The room of an address: a mirror room, or the person's direct chat. A chat the bot
        left because it was no longer private (or forgot) is replaced by their current DM,
        opened anew when there is none: a copy never goes to a room with others in it."""
        if address.id.startswith("!"):
            return address.id
        chat = address.chat
        if chat and chat not in self._state.shared_rooms and chat not in self._to_leave:
            if chat in self._mirrors or chat in self._state.gone_rooms:
                return chat
            if await self._known_room(chat) is not None:
                return chat
        user_hash = self._user_hash(address.id)
        async with self._lock(f"dm:{user_hash}"):
            room_id = self._state.dm_rooms.get(user_hash)
            if room_id is None:
                room_id = await self._create_dm(address.id)
            return room_id

    async def _create_dm(self, user_id: str) -> str:
        client = self.client
        initial_state = (
            [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": _MEGOLM}}]
            if self._encryption
            else []
        )
        with translated("open chat"):
            resp = await client.room_create(
                is_direct=True,
                invite=[user_id],
                preset=RoomPreset.trusted_private_chat,
                initial_state=initial_state,
            )
        if isinstance(resp, ErrorResponse):
            err = error_for_response(resp, "open chat")
            status = getattr(getattr(resp, "transport_response", None), "status", None)
            if isinstance(err, PermanentFailure) and status in (403, 404):
                raise RecipientGone("open chat: user cannot be invited")
            raise err
        assert isinstance(resp, RoomCreateResponse)
        room_id = resp.room_id
        # make it sendable now: the sync loop may not have seen the room or the invite yet
        room = client.rooms.get(room_id)
        if room is None:
            room = client.rooms[room_id] = MatrixRoom(room_id, self._user_id, self._encryption)
        if self._user_id not in room.users:
            room.add_member(self._user_id, None, None)
        if user_id not in room.users:
            room.add_member(user_id, None, None, invited=True)
        if self._encryption:
            room.encrypted = True
            client.encrypted_rooms.add(room_id)
            if client.olm is not None:
                client.olm.update_tracked_users(room)
        self._state.dm_rooms[self._user_hash(user_id)] = room_id
        self._save()
        await self._mark_direct(user_id, room_id)
        return room_id

    async def _mark_direct(self, user_id: str, room_id: str) -> None:
        """Add the room to the bot's own `m.direct` account data (nio has no call for it)."""
        client = self.client
        path = f"/_matrix/client/v3/user/{quote(self._user_id)}/account_data/m.direct"
        headers = {"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"}
        try:
            current: dict[str, list[str]] = {}
            got = await client.send("GET", path, headers=headers)
            if got.status == 200:
                current = await got.json()
            rooms = current.setdefault(user_id, [])
            if room_id not in rooms:
                rooms.append(room_id)
            put = await client.send("PUT", path, json.dumps(current), headers=headers)
            if put.status != 200:
                log.warning("matrix: could not update m.direct (%s)", put.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("matrix: could not update m.direct: %s", type(exc).__name__)

    async def _check_room(self, room_id: str) -> MatrixRoom:
        if room_id in self._state.gone_rooms:
            raise RecipientGone("the follower left the chat")
        room = await self._known_room(room_id)
        if room is None:
            raise RecipientGone("the bot is not in that room")
        if room_id not in self._mirrors and room.joined_count <= 1 and not room.invited_users:
            raise RecipientGone("the bot is alone in the chat")
        return room

    async def _known_room(self, room_id: str) -> MatrixRoom | None:
        """The room, waiting a moment when the bot may just have joined it."""
        room = self.client.rooms.get(room_id)
        if room is None:  # maybe just joined: give the sync loop a moment to catch up
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_JOIN_GRACE_S):
                    while room is None and self._sync_task is not None:
                        await self._synced.wait()
                        room = self.client.rooms.get(room_id)
        return room

    def _pacing(self) -> bool:
        """True while a recent 429 makes us space our requests."""
        return asyncio.get_running_loop().time() < self._paced_until

    async def _paced(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one rate-limited request: wait for the 429 gate, record a new 429, translate.

        After a 429 the gate stays shut for the server's `retry_after_ms`, and for a while
        (`_PACING_S`, renewed by every further 429) requests go out one at a time, the gate
        shutting for the server's refill period after each, so a fan-out drains at the
        server's pace instead of collecting a 429 per request.
        """
        await self._wait_gate()
        if not self._pacing():
            return await self._attempt(what, call, paced=False)
        async with self._probe:
            await self._wait_gate()
            return await self._attempt(what, call, paced=True)

    async def _wait_gate(self) -> None:
        loop = asyncio.get_running_loop()
        while (wait := self._not_before - loop.time()) > 0:
            await asyncio.sleep(wait)

    async def _attempt(self, what: str, call: Callable[[], Awaitable[Any]], *, paced: bool) -> Any:
        """One request. A 429 shuts the gate for its retry-after and (re)starts pacing; while
        pacing, any other outcome shuts the gate for one refill period (`_interval`).

        The refill period: Synapse's retry-after is the time until its bucket holds one more
        event. While pacing, requests go one at a time and the bucket is empty after each
        accepted one, so the time since the last accepted request plus the retry-after is one
        period (the retry-after alone is shorter whenever the refused request came late, and
        spacing by it alone draws a 429 for nearly every event). Outside pacing (concurrent
        requests) only the retry-after is known. An estimate at most doubles at a time.
        """
        try:
            with translated(what):
                resp = await call()
        except DeliveryError:
            self._space_next()
            raise
        now = asyncio.get_running_loop().time()
        if isinstance(resp, ErrorResponse):
            if is_rate_limited(resp):
                self.rate_limited += 1
                retry_ms = getattr(resp, "retry_after_ms", None)
                after = retry_ms / 1000 if isinstance(retry_ms, int | float) else 1.0
                after = min(max(after, 0.05), 300.0)
                period = after
                if paced:
                    period = min(after + max(0.0, now - self._last_ok), 2 * max(self._interval, after))
                self._interval = min(period, 300.0)
                self._not_before = max(self._not_before, now + after)
                self._paced_until = now + max(_PACING_S, 10 * self._interval)
                raise error_for_response(resp, what)
            self._space_next()
            raise error_for_response(resp, what)
        self._last_ok = now
        self._space_next()
        return resp

    def _space_next(self) -> None:
        """While pacing, shut the gate for one refill period after a request."""
        if self._pacing():
            now = asyncio.get_running_loop().time()
            self._not_before = max(self._not_before, now + self._interval)

    async def _send_event(
        self, room_id: str, event_type: str, body: dict[str, Any], tx_id: str | None
    ) -> str:
        await self._check_room(room_id)
        tx = tx_id or f"cb-{uuid.uuid4().hex}"
        resp = await self._paced(
            "send",
            lambda: self.client.room_send(
                room_id, event_type, body, tx_id=tx, ignore_unverified_devices=True
            ),
        )
        assert isinstance(resp, RoomSendResponse)
        return resp.event_id

    async def _upload(self, data: bytes, mime: str, filename: str) -> str:
        with translated("upload"):
            resp, _ = await self.client.upload(
                io.BytesIO(data), content_type=mime, filename=filename, filesize=len(data)
            )
        check(resp, "upload")
        assert isinstance(resp, UploadResponse)
        return resp.content_uri

    async def _media_bytes(self, content: Content) -> bytes:
        media = content.media
        assert media is not None
        if media.data is not None:
            return media.data
        if media.platform_ref:
            pointer = MediaPointer(media.kind, media.platform_ref, None, media.mime, media.filename)
            with translated("download"):
                return await self._download(pointer)
        raise PermanentFailure("media post without data or reference")

    async def _render_post(
        self, room: MatrixRoom, content: Content
    ) -> tuple[str, dict[str, Any], str | None]:
        """(event type, content, plain mxc to report) for one copy, uploading at most once."""
        media = content.media
        if content.kind not in (PostKind.PHOTO, PostKind.VIDEO, PostKind.STICKER):
            event_type, body = render.render_post(content)
            return event_type, body, None
        if media is None:
            raise PermanentFailure("media post without media")
        size = len(media.data) if media.data is not None else None
        encrypted = self._encryption and room.encrypted and content.kind is not PostKind.STICKER
        if not encrypted:
            url = media.platform_ref
            if not url:
                async with self._lock(f"plain:{media.blob_id}"):
                    url = await self._upload(await self._media_bytes(content), media.mime, media.filename)
            event_type, body = render.render_post(content, url=url, size=size)
            return event_type, body, url
        key = str(media.blob_id)
        async with self._lock(f"enc:{key}"):
            file = self._state.enc_media.get(key)
            if file is None:
                data = await self._media_bytes(content)
                size = len(data)
                ciphertext, keys = encrypt_attachment(data)
                url = await self._upload(ciphertext, "application/octet-stream", media.filename)
                file = {"url": url, "mimetype": media.mime, "size": size, **keys}
                self._state.enc_media[key] = file
                self._save()
        event_type, body = render.render_post(content, file=file, size=file.get("size"))
        return event_type, body, None

    @staticmethod
    def _tx(content: Content, suffix: str) -> str | None:
        """Deterministic transaction id per delivery (None for delivery 0: random)."""
        return f"cb{content.delivery_id}-{suffix}" if content.delivery_id else None

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Deliver one copy; returns `MessageRef(key="<room>|<event>", media_ref=<plain mxc>)`."""
        room_id = await self._room_for(address)
        room = await self._check_room(room_id)
        event_type, body, media_ref = await self._render_post(room, content)
        event_id = await self._send_event(room_id, event_type, body, self._tx(content, "send"))
        return MessageRef(key=post_ref(room_id, event_id), media_ref=media_ref)

    async def edit(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Replace a delivered copy with an `m.replace` edit carrying `m.new_content`."""
        room_id, event_id = split_ref(ref.key)
        if content.kind is PostKind.STICKER:
            raise PermanentFailure("stickers cannot be edited on Matrix")
        room = await self._check_room(room_id)
        event_type, body, _ = await self._render_post(room, content)
        event_type, outer = render.edit_of(event_id, event_type, body)
        await self._send_event(room_id, event_type, outer, self._tx(content, "edit"))

    async def delete(self, address: Address, ref: MessageRef) -> None:
        """Redact a delivered copy (idempotent: the transaction id derives from the ref)."""
        room_id, event_id = split_ref(ref.key)
        await self._check_room(room_id)
        tx = "cb" + hashlib.sha256(ref.key.encode()).hexdigest()[:24] + "-delete"
        await self._paced("delete", lambda: self.client.room_redact(room_id, event_id, tx_id=tx))

    async def close_poll(self, address: Address, ref: MessageRef, content: Content) -> None:
        """Send an MSC3381 poll end referencing the delivered poll start."""
        room_id, event_id = split_ref(ref.key)
        event_type, body = render.poll_end(event_id)
        await self._send_event(room_id, event_type, body, self._tx(content, "close"))

    async def reply(self, address: Address, reply: Reply) -> MessageRef | None:
        """Answer in the person's DM as an `m.notice` (plain body + HTML formatted_body); with
        `reply.edit_of`, replace that earlier notice (`m.replace`) instead."""
        body = render.reply_message(reply)
        if reply.edit_of is not None:
            room_id, event_id = split_ref(reply.edit_of)
            event_type, outer = render.edit_of(event_id, "m.room.message", body)
            await self._send_event(room_id, event_type, outer, None)
            return MessageRef(reply.edit_of)
        room_id = await self._room_for(address)
        event_id = await self._send_event(room_id, "m.room.message", body, None)
        return MessageRef(post_ref(room_id, event_id))

    # -- extras ---------------------------------------------------------------------------------

    def add_mirror_room(self, room_id: str) -> None:
        """Treat `room_id` as a mirror room from now on (accept its invite, ignore commands in
        it); called when an operator adds a mirror at run time."""
        if room_id not in self._mirrors:
            self._state.mirror_rooms.append(room_id)
            self._save()

    async def create_mirror_room(self, name: str, topic: str) -> str:
        """Create a read-only mirror room and return its id.

        The room is public-joinable (join rule `public`) but not listed in the directory: anyone
        given its id or a link can join, and every member sees the other members, as Matrix
        rooms always do. Only the bot may post; members may react, vote and redact their own
        reactions. It is unencrypted: it is meant for an open audience.
        """
        power = {
            "events_default": 100,
            "users_default": 0,
            "events": {
                "m.reaction": 0,
                "m.room.redaction": 0,
                "org.matrix.msc3381.poll.response": 0,
                "m.poll.response": 0,
            },
        }
        with translated("create room"):
            resp = await self.client.room_create(
                name=name,
                topic=topic,
                preset=RoomPreset.public_chat,
                power_level_override=power,
            )
        check(resp, "create room")
        assert isinstance(resp, RoomCreateResponse)
        room_id = resp.room_id
        self._state.mirror_rooms.append(room_id)
        self._save()
        if room_id not in self.client.rooms:
            room = MatrixRoom(room_id, self._user_id, encrypted=False)
            room.add_member(self._user_id, None, None)
            self.client.rooms[room_id] = room
        return room_id
