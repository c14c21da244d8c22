"""Invites: the bot joins direct chats and mirror rooms it is invited to, and leaves others.

An incremental sync shows an invite only once, so a join the homeserver refuses for its rate
limit is tried again in the background after the server's `retry_after` (a join is not a
delivery: the outbox has no row for it). An invite flood is capped: at most `join_cap` invites
a minute and `_MAX_PENDING_JOINS` waiting; the rest is ignored (a restart's full sync shows
them again).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import aiohttp
from nio import InviteMemberEvent, JoinedMembersResponse, SyncResponse

from bridge.ports import PermanentFailure, RecipientGone, RetryLater

from .rooms import Rooms
from .session import Session

log = logging.getLogger(__name__)

_JOINS_PER_MIN = 60  # invites answered per minute; more are ignored (an invite flood)
_MAX_PENDING_JOINS = 50  # invites still being retried in the background
_JOIN_ATTEMPTS = 8
_JOIN_TTL_S = 300.0  # an invite not joined within this time is given up


class Invites:
    """Answers the invites of each sync batch."""

    def __init__(self, session: Session, rooms: Rooms) -> None:
        self._s = session
        self._rooms = rooms
        self._joining: dict[str, asyncio.Task[None]] = {}  # invites still to join, by room
        self._joins: deque[float] = deque()  # loop times of recent invite answers
        #: invites answered per minute (tests lower it)
        self.join_cap = _JOINS_PER_MIN

    async def handle(self, resp: SyncResponse) -> None:
        """Answer every invite of one sync batch."""
        for room_id, info in resp.rooms.invite.items():
            direct = any(
                isinstance(ev, InviteMemberEvent)
                and ev.state_key == self._s.user_id
                and ev.content.get("is_direct") is True
                for ev in info.invite_state
            )
            await self._answer(room_id, direct)

    async def cancel(self) -> None:
        """Stop the joins still waiting (at stop)."""
        joining = list(self._joining.values())
        for pending in joining:
            pending.cancel()
        if joining:
            await asyncio.wait(joining)

    def _may_answer(self) -> bool:
        now = asyncio.get_running_loop().time()
        while self._joins and self._joins[0] <= now - 60.0:
            self._joins.popleft()
        if len(self._joins) >= self.join_cap or len(self._joining) >= _MAX_PENDING_JOINS:
            return False
        self._joins.append(now)
        return True

    async def _answer(self, room_id: str, direct: bool) -> None:
        """Join now; when the homeserver refuses for now, keep trying in the background."""
        if room_id in self._joining or room_id in self._s.client.rooms:
            return
        if not self._may_answer():
            log.info("matrix: ignoring an invite: too many invites in the last minute")
            return
        try:
            await self._join(room_id, direct)
            return
        except RetryLater as exc:
            first_wait = exc.after_s
        except (RecipientGone, PermanentFailure) as exc:
            log.warning("matrix: could not join an invited room: %s", exc.reason)
            return
        task = asyncio.create_task(self._join_later(room_id, direct, first_wait), name="matrix-join")
        self._joining[room_id] = task
        task.add_done_callback(lambda _t: self._joining.pop(room_id, None))

    async def _join_later(self, room_id: str, direct: bool, wait: float | None) -> None:
        try:
            async with asyncio.timeout(_JOIN_TTL_S):  # a pending invite expires
                for attempt in range(1, _JOIN_ATTEMPTS + 1):
                    # the server's retry_after when it gave one; else back off
                    await asyncio.sleep(wait if wait is not None else min(30.0, 0.5 * 2**attempt))
                    try:
                        await self._join(room_id, direct)
                        return
                    except RetryLater as exc:
                        wait = exc.after_s
                    except (RecipientGone, PermanentFailure) as exc:
                        log.warning("matrix: could not join an invited room: %s", exc.reason)
                        return
        except TimeoutError:
            pass
        log.warning("matrix: gave up joining an invited room")

    async def _join(self, room_id: str, direct: bool) -> None:
        """Join, then leave again unless it is a mirror room or a direct chat: the bot and one
        person (the `is_direct` flag alone proves nothing)."""
        client = self._s.client
        await self._s.request("join", lambda: client.join(room_id))
        if room_id in self._s.mirrors:
            return
        try:
            members = await client.joined_members(room_id)
            if isinstance(members, JoinedMembersResponse) and len(members.members) <= 2:
                return  # invited members are checked when the room's state arrives by sync
            log.info("matrix: leaving a room that is neither a DM nor a mirror room")
            await self._rooms.leave(room_id)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("matrix: invite handling failed: %s", type(exc).__name__)
