"""The sync loop: Matrix events in sync order -> neutral inbound values for the handler.

Batches are handled one at a time in the loop's task. The sync token is written only after its
batch was handled, and recently handled event ids are remembered, so a restart neither replays
handled commands nor misses new ones. Commands count only in a direct chat holding just the
bot and the sender; a command elsewhere gets one refusal and the room is reviewed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from nio import MegolmEvent, RoomMemberEvent, SyncResponse

from adapters.base import trace
from bridge.commands import COMMAND_PREFIXES
from bridge.ports import Address, Message, PollVote, Reaction

from .invites import Invites
from .media import Download, with_media
from .normalize import MediaMessage, ReactionSeen, RedactionSeen, normalize, post_ref
from .rooms import Notify, Rooms
from .session import Session

log = logging.getLogger(__name__)

_SYNC_TIMEOUT_MS = 30_000
#: While the bot sends (two event-creating requests or more within this many seconds, e.g. a
#: fan-out), it does not long-poll: it asks for what is new once per this many seconds, leaving out
#: its own events. A long poll would return at each of its own sends, and every sync costs the
#: homeserver CPU for each room it reports, and that CPU is what bounds a fan-out. A command sent
#: during a fan-out is answered at most this much later; an idle or conversing bot long-polls.
BUSY_SYNC_GAP_S = 1.0
_DIRECT_ONLY = (
    "Commands work only in a direct chat with just you and me (nobody else in the room). "
    "Start a direct chat with me and send it there."
)
#: hands one inbound event from a room to the adapter's dispatch loop
Deliver = Callable[[str, Message | PollVote | Reaction], Awaitable[None]]


class SyncLoop:
    """Runs `client.sync` and turns each batch into inbound events."""

    def __init__(
        self,
        session: Session,
        rooms: Rooms,
        invites: Invites,
        *,
        deliver: Deliver,
        notify: Notify,
        download: Download,
    ) -> None:
        self._s = session
        self._rooms = rooms
        self._invites = invites
        self._deliver = deliver
        self._notify = notify
        self._download = download
        self.stopping = False
        #: sync requests that failed in a row (0 while the homeserver answers)
        self.failures = 0

    async def first(self, resp: SyncResponse) -> None:
        """The first start ever: skip history, but still answer pending invites."""
        await self._invites.handle(resp)
        self._s.save_token(resp.next_batch)

    async def run(self, first: SyncResponse | None) -> None:
        """Handle `first` (the start's batch), then sync until stopped."""
        s = self._s
        s.syncing = True
        try:
            if first is not None:
                await self.handle(first)
            self.failures = 0
            clock = asyncio.get_running_loop().time
            began = clock()
            while not self.stopping:
                busy = s.sending(within_s=BUSY_SYNC_GAP_S)
                if busy:
                    await self._idle(began + BUSY_SYNC_GAP_S - clock())
                    if self.stopping:
                        break
                began = clock()
                s.polling = True
                try:
                    resp = await s.next_batch(0 if busy else _SYNC_TIMEOUT_MS, without_own=busy)
                finally:
                    s.polling = False
                if resp is None:
                    self.failures += 1
                    await asyncio.sleep(min(30.0, 0.5 * 2 ** min(self.failures, 6)))
                    continue
                self.failures = 0
                try:
                    await s.key_maintenance()
                    await self.handle(resp)
                except Exception as exc:
                    log.error("matrix: failed to handle a sync batch: %s", trace(exc))
        finally:
            s.syncing = False

    async def _idle(self, seconds: float) -> None:
        """Wait between syncs; `stop()` may cancel the loop here as in the long poll."""
        if seconds <= 0:
            return
        self._s.polling = True
        try:
            await asyncio.sleep(seconds)
        finally:
            self._s.polling = False

    async def handle(self, resp: SyncResponse) -> None:
        """One batch: invites, leaves, memberships and timeline events, then the token."""
        await self._invites.handle(resp)
        for room_id in resp.rooms.leave:
            self._rooms.left_dm(room_id)
        for room_id, info in resp.rooms.join.items():
            changed = someone_left = False
            for event in [*info.state, *info.timeline.events]:
                if isinstance(event, RoomMemberEvent):
                    changed = True
                    someone_left |= event.membership in ("leave", "ban")
                    self._on_membership(room_id, event)
            for event in info.timeline.events:
                if isinstance(event, MegolmEvent):
                    if event.sender != self._s.user_id:  # the bot's other devices' are no loss
                        log.warning("matrix: an event could not be decrypted")
                    continue
                source = getattr(event, "source", None)
                if isinstance(source, dict):
                    await self._on_event(room_id, source)
            if changed:
                self._rooms.review_room(room_id, someone_left=someone_left)
        await self._rooms.leave_pending()
        self._s.save_token(resp.next_batch)
        self._s.synced.set()
        self._s.synced = asyncio.Event()

    def _on_membership(self, room_id: str, event: RoomMemberEvent) -> None:
        if room_id in self._s.mirrors or event.membership not in ("leave", "ban"):
            return
        if event.state_key == self._s.user_id:
            self._rooms.left_dm(room_id)

    async def _on_event(self, room_id: str, source: dict[str, Any]) -> None:
        s = self._s
        event_id = source.get("event_id")
        handled = post_ref(room_id, event_id) if isinstance(event_id, str) else None
        if handled is not None and handled in s.state.seen:
            return
        item = normalize(source, room_id, own_user_id=s.user_id)
        if item is None:
            return
        if handled is not None:
            s.state.seen.append(handled)
            s.dirty = True
        inbound: Message | PollVote | Reaction
        if isinstance(item, ReactionSeen):
            sender = item.reaction.sender
            s.state.reactions[item.event_id] = [s.user_hash(sender.id), item.reaction.post_ref]
            s.dirty = True
            inbound = item.reaction
        elif isinstance(item, RedactionSeen):
            seen = s.state.reactions.pop(item.redacts, None)
            if seen is None:
                return
            s.dirty = True
            # whoever redacted it (the reactor or a moderator), that person's reaction is gone
            reactor = self.member_with_hash(room_id, seen[0], item.sender.id)
            if reactor is None:
                log.info("matrix: a removed reaction's author is no longer in the room")
                return
            inbound = Reaction(Address(item.sender.platform, reactor, chat=room_id), seen[1], None)
        elif isinstance(item, PollVote):
            inbound = item
        else:
            if not self._rooms.is_dm_of(room_id, item.sender.id):
                if room_id not in s.mirrors and item.text.startswith(COMMAND_PREFIXES):
                    await self._notify(room_id, _DIRECT_ONLY, False)
                    self._rooms.review_room(room_id)
                return
            user_hash = s.user_hash(item.sender.id)
            if s.state.dm_rooms.get(user_hash) != room_id:
                s.state.dm_rooms[user_hash] = room_id
                s.dirty = True
            inbound = with_media(item, self._download) if isinstance(item, MediaMessage) else item
        if not self._rooms.is_dm_of(room_id, inbound.sender.id):  # a vote or reaction in a shared room:
            inbound = replace(inbound, sender=Address(inbound.sender.platform, inbound.sender.id))
        if isinstance(event_id, str):  # a lease holder that stalled and its successor both see it
            inbound = replace(inbound, update=s.update_of(event_id))
        await self._deliver(room_id, inbound)

    def member_with_hash(self, room_id: str, user_hash: str, likely: str) -> str | None:
        """The user id (the redacting user, else a room member) whose hash is `user_hash`."""
        if self._s.user_hash(likely) == user_hash:
            return likely
        room = self._s.client.rooms.get(room_id)
        for user_id in room.users if room is not None else ():
            if self._s.user_hash(user_id) == user_hash:
                return user_id
        return None
