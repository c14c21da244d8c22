"""Room lifecycle against a real Synapse: mirror rooms, new DMs, leaving, restarts, 429."""

from __future__ import annotations

import asyncio
import urllib.parse

import pytest
from nio import InviteMemberEvent, RoomSendError, SyncResponse

from adapters.base import (
    Address,
    Content,
    Message,
    PostKind,
    Reaction,
    RecipientGone,
    RetryLater,
)

from .conftest import Recorder

pytestmark = [pytest.mark.matrix, pytest.mark.integration]


def _text(delivery_id: int, text: str = "hi") -> Content:
    return Content(post_id=3, kind=PostKind.TEXT, channel_handle="news", channel_name="News",
                   text=text, delivery_id=delivery_id)


async def test_mirror_room_refuses_member_message_but_accepts_reaction(
    bot_user, adapter_factory, follower_factory
):
    recorder = Recorder()
    adapter = await adapter_factory(bot_user, recorder)
    room_id = await adapter.create_mirror_room("News mirror", "read-only copy of #news")
    alice = await follower_factory()
    assert (await alice.client.join(room_id)).room_id == room_id
    await alice.sync(0)

    refused = await alice.client.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": "/follow news"})
    assert isinstance(refused, RoomSendError)
    assert refused.transport_response.status == 403

    ref = await adapter.send(Address("matrix", room_id), _text(201, "mirrored"))
    event_id = ref.key.split("|", 1)[1]
    await alice.wait_event(room_id, lambda s: s.get("event_id") == event_id)
    await alice.send(room_id, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": "🎉"}})
    # a room with others is never handed to the core as the member's chat
    assert await recorder.next() == Reaction(Address("matrix", alice.user_id), ref.key, "🎉")
    assert recorder.seen == [Reaction(Address("matrix", alice.user_id),
                                      ref.key, "🎉")]  # the refused message never arrived


async def test_send_without_chat_opens_an_encrypted_direct_room(
    synapse, bot_user, adapter_factory, follower_factory
):
    adapter = await adapter_factory(bot_user, Recorder())
    alice = await follower_factory()

    ref = await adapter.send(Address("matrix", alice.user_id), _text(301, "welcome"))
    room_id, event_id = ref.key.split("|", 1)

    invite = None
    async with asyncio.timeout(10):
        while invite is None:
            resp: SyncResponse = await alice.sync()
            invite = resp.rooms.invite.get(room_id)
    mine = [e for e in invite.invite_state
            if isinstance(e, InviteMemberEvent) and e.state_key == alice.user_id]
    assert mine and mine[0].content["is_direct"] is True
    await alice.accept_invites()
    ev = await alice.wait_event(room_id, lambda s: s.get("event_id") == event_id)
    follow = f" · Follow: send /follow news to https://matrix.to/#/{bot_user.user_id}"  # issue 15
    assert ev.decrypted and ev.source["content"]["body"] == f"News (#3){follow}\nwelcome"

    again = await adapter.send(Address("matrix", alice.user_id), _text(302, "again"))
    assert again.key.split("|", 1)[0] == room_id  # the remembered DM is reused
    path = (f"/_matrix/client/v3/user/{urllib.parse.quote(bot_user.user_id)}"
            "/account_data/m.direct")
    status, direct = synapse.request("GET", path, token=bot_user.access_token)
    assert status == 200 and direct[alice.user_id] == [room_id]


async def test_follower_who_left_makes_next_send_recipient_gone(
    bot_user, adapter_factory, follower_factory
):
    adapter = await adapter_factory(bot_user, Recorder())
    alice = await follower_factory()
    room_id = await alice.open_dm(bot_user.user_id, encrypted=True)
    to = Address("matrix", alice.user_id, chat=room_id)
    await adapter.send(to, _text(401))

    await alice.leave(room_id)

    with pytest.raises(RecipientGone):
        async with asyncio.timeout(10):
            for attempt in range(1000):  # sends succeed until the sync loop sees the leave
                await adapter.send(to, _text(402 + attempt))
                await asyncio.sleep(0.05)


async def test_restart_handles_command_sent_while_down_once(
    bot_user, adapter_factory, follower_factory
):
    recorder = Recorder()
    first = await adapter_factory(bot_user, recorder, store="restart-store")
    alice = await follower_factory()
    room_id = await alice.open_dm(bot_user.user_id, encrypted=True)
    sender = Address("matrix", alice.user_id, chat=room_id)
    await alice.say(room_id, "!follow news")
    assert await recorder.next() == Message(sender, "!follow news")
    await alice.wait_event(room_id, lambda s: s["content"].get("msgtype") == "m.notice")
    await first.stop()

    await alice.say(room_id, "!mute news")  # sent while the bot is down
    await adapter_factory(bot_user, recorder, store="restart-store")
    assert await recorder.next() == Message(sender, "!mute news")
    await alice.say(room_id, "!following")
    assert await recorder.next() == Message(sender, "!following")
    assert [m.text for m in recorder.seen if isinstance(m, Message)] == [
        "!follow news", "!mute news", "!following"]


async def test_default_rate_limit_turns_429_into_retry_later(
    new_user, adapter_factory, follower_factory
):
    limited_bot = new_user("slowbot", exempt=False)
    adapter = await adapter_factory(limited_bot, Recorder(), encryption=False)
    alice = await follower_factory()
    room_id = await alice.open_dm(limited_bot.user_id, encrypted=False)
    to = Address("matrix", alice.user_id, chat=room_id)

    with pytest.raises(RetryLater) as caught:
        for n in range(30):  # rc_message: burst 10 at 0.2/s
            await adapter.send(to, _text(500 + n))
    assert caught.value.after_s is not None and 0 < caught.value.after_s <= 60
