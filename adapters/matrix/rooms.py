"""Rooms and direct chats: which room a copy goes to, opening DMs, leaving rooms, m.direct.

A follower's copies go only to a direct chat holding exactly the bot and that person. A DM is
opened when there is none (and adopted when one already exists, so a retried send never opens
a second room); a room that stops being private is left at the end of the sync batch, after
its notice; a room whose follower left makes later sends `RecipientGone`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
from nio import ErrorResponse, MatrixRoom, RoomCreateResponse, RoomPreset

from bridge.ports import PermanentFailure, RecipientGone

from .errors import check, error_for_response, http_status, translated
from .session import Session

log = logging.getLogger(__name__)

_MEGOLM = "m.megolm.v1.aes-sha2"
_JOIN_GRACE_S = 5.0
_NOT_PRIVATE = (
    "This chat is not private any more, so I am leaving it. Commands and channel "
    "posts work only in a direct chat with just you and me: start one to go on."
)
#: sends a notice into a room (the adapter's one road for answers)
#: a notice of the adapter's own: (room, text, wait until sent)
Notify = Callable[[str, str, bool], Awaitable[None]]


class Rooms:
    """Room bookkeeping for one session."""

    def __init__(self, session: Session, notify: Notify) -> None:
        self._s = session
        self._notify = notify

    # -- where a copy goes ---------------------------------------------------------------------

    async def room_for(self, target: str, chat: str | None) -> str:
        """The room for `target` (a room id, or a person's user id with their `chat`): a mirror
        room, or the person's direct chat. A chat the bot left because it was no longer private
        (or forgot) is replaced by their current DM, opened anew when there is none: a copy
        never goes to a room with others in it."""
        if target.startswith("!"):
            return target
        state = self._s.state
        if chat and chat not in state.shared_rooms and chat not in self._s.to_leave:
            if chat in self._s.mirrors or chat in state.gone_rooms:
                return chat
            if await self.known_room(chat) is not None:
                return chat
        user_hash = self._s.user_hash(target)
        async with self._s.lock(f"dm:{user_hash}"):
            room_id = state.dm_rooms.get(user_hash) or self._existing_dm(target)
            if room_id is None:
                room_id = await self._create_dm(target)
            if state.dm_rooms.get(user_hash) != room_id:
                state.dm_rooms[user_hash] = room_id
                self._s.save()
            return room_id

    def _existing_dm(self, user_id: str) -> str | None:
        """A room already holding just the bot and `user_id`: e.g. the DM a retried send opened
        before its answer was lost. Adopting it keeps a retry from opening a second room."""
        for room_id in self._s.client.rooms:
            if self.is_dm_of(room_id, user_id) and room_id not in self._s.state.shared_rooms:
                return room_id
        return None

    async def _create_dm(self, user_id: str) -> str:
        client = self._s.client
        initial_state = (
            [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": _MEGOLM}}]
            if self._s.encryption
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
            if isinstance(err, PermanentFailure) and http_status(resp) in (403, 404):
                raise RecipientGone("open chat: user cannot be invited")
            raise err
        assert isinstance(resp, RoomCreateResponse)
        room_id = resp.room_id
        # make it sendable now: the sync loop may not have seen the room or the invite yet
        room = client.rooms.get(room_id)
        if room is None:
            room = client.rooms[room_id] = MatrixRoom(room_id, self._s.user_id, self._s.encryption)
        if self._s.user_id not in room.users:
            room.add_member(self._s.user_id, None, None)
        if user_id not in room.users:
            room.add_member(user_id, None, None, invited=True)
        if self._s.encryption:
            room.encrypted = True
            client.encrypted_rooms.add(room_id)
            if client.olm is not None:
                client.olm.update_tracked_users(room)
        self._s.state.dm_rooms[self._s.user_hash(user_id)] = room_id
        self._s.save()
        await self._edit_direct(lambda current: _add_direct(current, user_id, room_id))
        return room_id

    async def check_room(self, room_id: str) -> MatrixRoom:
        """The room a copy is about to go to; `RecipientGone` when nobody is left to read it."""
        if room_id in self._s.state.gone_rooms:
            raise RecipientGone("the follower left the chat")
        room = await self.known_room(room_id)
        if room is None:
            raise RecipientGone("the bot is not in that room")
        if room_id not in self._s.mirrors and room.joined_count <= 1 and not room.invited_users:
            raise RecipientGone("the bot is alone in the chat")
        return room

    async def known_room(self, room_id: str) -> MatrixRoom | None:
        """The room, waiting a moment when the bot may just have joined it."""
        client = self._s.client
        room = client.rooms.get(room_id)
        if room is None:  # maybe just joined: give the sync loop a moment to catch up
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_JOIN_GRACE_S):
                    while room is None and self._s.syncing:
                        await self._s.synced.wait()
                        room = client.rooms.get(room_id)
        return room

    def is_dm_of(self, room_id: str, user_id: str) -> bool:
        """True while the room holds exactly the bot and `user_id` (joined or invited): the
        only room where that person's commands are accepted and their posts delivered."""
        s = self._s
        if room_id in s.mirrors or room_id in s.state.gone_rooms or room_id in s.to_leave:
            return False
        room = s.client.rooms.get(room_id)
        return room is not None and set(room.users) == {s.user_id, user_id}

    # -- membership changes --------------------------------------------------------------------

    def review_room(self, room_id: str, *, someone_left: bool = False) -> None:
        """After a membership change: a room that is no longer a direct chat is left at the
        end of the batch — when the follower left (the bot is alone; later sends raise
        `RecipientGone`), or when someone else was invited or joined (it is not private any
        more: later sends go to the person's new direct chat)."""
        s = self._s
        if room_id in s.mirrors or room_id in s.state.gone_rooms:
            return
        room = s.client.rooms.get(room_id)
        if room is None or s.user_id not in room.users:
            return
        others = [u for u in room.users if u != s.user_id]
        if not others:
            if not someone_left:  # a room the bot is still creating (the invite comes next)
                return
            self.mark_gone(room_id)  # the follower left: the bot is alone in the DM
            s.to_leave.setdefault(room_id, None)
        elif len(others) > 1:
            for user_hash in [h for h, r in s.state.dm_rooms.items() if r == room_id]:
                del s.state.dm_rooms[user_hash]
            s.state.shared_rooms[room_id] = time.time()
            s.dirty = True
            s.to_leave.setdefault(room_id, _NOT_PRIVATE)

    def left_dm(self, room_id: str) -> None:
        """The bot is out of a room (kicked, or it left): a DM still in use is gone. Rooms it
        left because they were shared, or after a `/forgetme`, are no DM any more."""
        if room_id in self._s.state.dm_rooms.values():
            self.mark_gone(room_id)

    def mark_gone(self, room_id: str) -> None:
        """Remember that the follower of this DM left."""
        if self._s.state.mark_gone(room_id, time.time()):
            self._s.dirty = True

    async def leave_pending(self) -> None:
        """Leave the rooms this batch found are no longer direct chats (after its answers)."""
        pending, self._s.to_leave = self._s.to_leave, {}
        for room_id, notice in pending.items():
            if notice is not None:
                await self._notify(room_id, notice, True)  # the notice must go out before we leave
            log.info("matrix: leaving a room that is no longer a direct chat")
            await self.leave(room_id)

    async def leave(self, room_id: str) -> None:
        """Leave a room and forget it (nio drops its state; the server may purge it once
        every member forgot it). Failures are logged: the next start's sync shows it again."""
        client = self._s.client
        try:
            left = await client.room_leave(room_id)
            if isinstance(left, ErrorResponse):
                log.warning("matrix: could not leave a room: %s", left.status_code)
                return
            await client.room_forget(room_id)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("matrix: could not leave a room: %s", type(exc).__name__)

    # -- mirror rooms and forgetting -----------------------------------------------------------

    def add_mirror_room(self, room_id: str) -> None:
        """Treat `room_id` as a mirror room from now on."""
        if room_id not in self._s.mirrors:
            self._s.state.mirror_rooms.append(room_id)
            self._s.save()

    async def create_mirror_room(self, name: str, topic: str) -> str:
        """Create a public-joinable (unlisted), unencrypted, read-only room; members may
        react, vote and redact their own reactions."""
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
        client = self._s.client
        with translated("create room"):
            resp = await client.room_create(
                name=name, topic=topic, preset=RoomPreset.public_chat, power_level_override=power
            )
        check(resp, "create room")
        assert isinstance(resp, RoomCreateResponse)
        room_id = resp.room_id
        self._s.state.mirror_rooms.append(room_id)
        self._s.save()
        if room_id not in client.rooms:
            room = MatrixRoom(room_id, self._s.user_id, encrypted=False)
            room.add_member(self._s.user_id, None, None)
            client.rooms[room_id] = room
        return room_id

    async def forget(self, user_id: str, chat: str | None) -> None:
        """Erase a person's DM entry, reactions and gone-room marks, and the bot's `m.direct`
        entry for them; their DM is left once the current batch's answers are sent."""
        s = self._s
        user_hash = s.user_hash(user_id)
        rooms = {r for r in (s.state.dm_rooms.get(user_hash), chat) if r}
        rooms.discard(user_id)
        rooms -= s.mirrors
        s.state.forget_user(user_hash, rooms)
        s.save()
        for room_id in rooms:
            if room_id in s.client.rooms:
                s.to_leave.setdefault(room_id, None)
        if s.client_or_none is not None and user_id.startswith("@"):
            await self._edit_direct(lambda current: current.pop(user_id, None) is not None)
        if s.polling:  # called between sync batches: no answer is pending
            await self.leave_pending()

    async def _edit_direct(self, change: Callable[[dict[str, Any]], bool]) -> None:
        """Read the bot's own `m.direct` account data, apply `change`, write it back when it
        changed (nio has no call for it). Failures are logged."""
        client = self._s.client
        path = f"/_matrix/client/v3/user/{quote(self._s.user_id)}/account_data/m.direct"
        headers = {"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"}
        try:
            current: dict[str, Any] = {}
            got = await client.send("GET", path, headers=headers)
            if got.status == 200:
                body = await got.json()
                current = body if isinstance(body, dict) else {}
            if not change(current):
                return
            put = await client.send("PUT", path, json.dumps(current), headers=headers)
            if put.status != 200:
                log.warning("matrix: could not update m.direct (%s)", put.status)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            log.warning("matrix: could not update m.direct: %s", type(exc).__name__)


def _add_direct(current: dict[str, Any], user_id: str, room_id: str) -> bool:
    rooms = current.setdefault(user_id, [])
    if room_id not in rooms:
        rooms.append(room_id)
    return True
