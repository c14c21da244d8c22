"""Fixtures for the Matrix integration tests: a real Synapse, users, followers, the adapter.

One session-scoped Synapse serves every test. It keeps Synapse's default `rc_message` limit
(0.2/s, burst 10) and every user the tests drive is exempted per user through the admin API —
except the deliberately non-exempt bot of the 429 test. One server is cheaper than two (about
2-4 s of start-up each) and exercises the same limiter a production homeserver applies.
Each test registers fresh users, so tests never share rooms or state.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    MegolmEvent,
    RoomCreateResponse,
    RoomSendResponse,
    SyncResponse,
)

from adapters.base import Inbound, Reply
from adapters.matrix.adapter import MatrixAdapter
from bridge.privacy import Sealer

from .synapse import RegisteredUser, SynapseServer

_counter = itertools.count()
MEGOLM = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


@pytest.fixture(scope="session")
def synapse() -> Iterator[SynapseServer]:
    """A running Synapse on 127.0.0.1 for the whole session (skipped if not installed)."""
    if importlib.util.find_spec("synapse") is None:
        pytest.skip("matrix-synapse is not installed in this environment")
    server = SynapseServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def synapse_admin(synapse: SynapseServer) -> RegisteredUser:
    """A server admin, used to lift rate limits."""
    return synapse.register("admin", admin=True)


@pytest.fixture
def new_user(
    synapse: SynapseServer, synapse_admin: RegisteredUser
) -> Callable[..., RegisteredUser]:
    """Register a fresh user (`exempt=False` keeps the default message rate limit)."""

    def make(prefix: str, *, exempt: bool = True) -> RegisteredUser:
        user = synapse.register(f"{prefix}{next(_counter)}")
        if exempt:
            synapse.exempt_from_ratelimit(synapse_admin.access_token, user.user_id)
        return user

    return make


class Recorder:
    """The inbound handler under test: records events, answers with scripted replies."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[Inbound] = asyncio.Queue()
        self.seen: list[Inbound] = []
        self.replies: list[Reply] = [Reply("ok, followed", html="<b>ok</b>, followed")]

    async def __call__(self, event: Inbound) -> Sequence[Reply]:
        self.seen.append(event)
        await self.events.put(event)
        return self.replies

    async def next(self, timeout: float = 15) -> Inbound:
        """The next inbound event the adapter produced."""
        return await asyncio.wait_for(self.events.get(), timeout)


class Follower:
    """A plain nio client with its own olm store, standing in for a person."""

    def __init__(self, url: str, user: RegisteredUser, store: Path) -> None:
        store.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.client = AsyncClient(
            url, user.user_id, store_path=str(store),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False,
                                     max_limit_exceeded=0, max_timeouts=3),
        )
        self.client.restore_login(user.user_id, user.device_id, user.access_token)
        self.timeline: dict[str, list[Any]] = {}

    @property
    def user_id(self) -> str:
        """The follower's Matrix id."""
        return self.user.user_id

    async def sync(self, timeout_ms: int = 500) -> SyncResponse:
        """One sync plus the key housekeeping sync_forever would do; records timelines."""
        client = self.client
        resp = await client.sync(timeout=timeout_ms, full_state=client.next_batch is None)
        assert isinstance(resp, SyncResponse), resp
        for room_id, info in resp.rooms.join.items():
            self.timeline.setdefault(room_id, []).extend(info.timeline.events)
        await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        return resp

    async def open_dm(self, bot_id: str, *, encrypted: bool = True, timeout: float = 15) -> str:
        """Create a direct chat with the bot and wait until the bot has joined."""
        await self.sync(0)
        resp = await self.client.room_create(
            is_direct=True, invite=[bot_id], initial_state=[MEGOLM] if encrypted else []
        )
        assert isinstance(resp, RoomCreateResponse), resp
        await self.wait_until(lambda: self._joined(resp.room_id, bot_id), timeout)
        return resp.room_id

    def _joined(self, room_id: str, user_id: str) -> bool:
        room = self.client.rooms.get(room_id)
        return room is not None and user_id in room.users and not room.users[user_id].invited

    async def accept_invites(self) -> list[str]:
        """Join every room the follower is invited to; returns their ids."""
        rooms = list(self.client.invited_rooms)
        for room_id in rooms:
            await self.client.join(room_id)
        await self.sync(0)
        return rooms

    async def send(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        """Send an event (encrypted when the room is); returns its event id."""
        resp = await self.client.room_send(room_id, event_type, content,
                                           ignore_unverified_devices=True)
        assert isinstance(resp, RoomSendResponse), resp
        return resp.event_id

    async def say(self, room_id: str, text: str) -> str:
        """Send an m.text message."""
        return await self.send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 15) -> None:
        """Sync until `predicate()` holds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self.sync()

    async def wait_event(
        self, room_id: str, match: Callable[[dict[str, Any]], bool], timeout: float = 15
    ) -> Any:
        """Sync until an event in `room_id` matches (on its decrypted source); returns it."""
        found: list[Any] = []

        def look() -> bool:
            for ev in self.timeline.get(room_id, []):
                assert not isinstance(ev, MegolmEvent), "follower could not decrypt an event"
                if match(ev.source):
                    found.append(ev)
                    return True
            return False

        await self.wait_until(look, timeout)
        return found[0]

    async def leave(self, room_id: str) -> None:
        """Leave a room."""
        await self.client.room_leave(room_id)


@pytest.fixture
async def follower_factory(
    synapse: SynapseServer, new_user: Callable[..., RegisteredUser], tmp_path: Path
) -> AsyncIterator[Callable[[], Awaitable[Follower]]]:
    """Create followers (fresh users with uploaded device keys); closed after the test."""
    made: list[Follower] = []

    async def make() -> Follower:
        user = new_user("follower")
        follower = Follower(synapse.url, user, tmp_path / f"f-{user.user_id[1:].split(':')[0]}")
        await follower.sync(0)
        made.append(follower)
        return follower

    yield make
    for follower in made:
        await follower.client.close()


@pytest.fixture
def bot_user(new_user: Callable[..., RegisteredUser]) -> RegisteredUser:
    """A fresh, rate-limit-exempt bot account."""
    return new_user("bot")


@pytest.fixture
async def adapter_factory(
    synapse: SynapseServer, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[MatrixAdapter]]]:
    """Start MatrixAdapters for a bot account; each is stopped after the test."""
    started: list[MatrixAdapter] = []

    async def make(
        bot: RegisteredUser, handler: Recorder, *, store: str = "bot-store", sealer: Sealer | None = None,
        **kwargs: Any,
    ) -> MatrixAdapter:
        adapter = MatrixAdapter(
            synapse.url, bot.user_id, access_token=bot.access_token, device_id=bot.device_id,
            store_dir=tmp_path / store, **kwargs,
        )
        if sealer is not None:  # as under the app: store sealed, inbound events numbered
            adapter.use_sealer(sealer)
        await adapter.start(handler)
        started.append(adapter)
        return adapter

    yield make
    for adapter in started:
        await adapter.stop()
