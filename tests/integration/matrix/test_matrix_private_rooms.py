"""Only a direct chat is private: rooms that grow, invite floods and /forgetme, on a real Synapse.

A room is a follower's direct chat only while it holds exactly the bot and that person (joined
or invited). Commands from any other room are refused with an answer, copies never go there,
the bot leaves it, and it answers at most a few invites a minute.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse

import pytest
from nio import RoomCreateResponse

from adapters.base import Address, Content, Message, PostKind, Reaction
from adapters.matrix.adapter import MatrixAdapter

from .conftest import Follower, Recorder

pytestmark = [pytest.mark.matrix, pytest.mark.integration]


def _text(delivery_id: int, text: str = "hi") -> Content:
    return Content(post_id=7, kind=PostKind.TEXT, channel_handle="news", channel_name="News",
                   text=text, delivery_id=delivery_id)


def _notice_with(text: str):
    def match(source: dict) -> bool:
        content = source.get("content") or {}
        return content.get("msgtype") == "m.notice" and text in str(content.get("body"))
    return match


def _bot_left(person: Follower, room_id: str, bot_id: str):
    def check() -> bool:
        room = person.client.rooms.get(room_id)
        return room is not None and bot_id not in room.users
    return check


async def test_command_in_a_dm_that_grew_is_refused_and_no_copy_goes_there(
    bot_user, adapter_factory, follower_factory
):
    recorder = Recorder()
    adapter = await adapter_factory(bot_user, recorder)
    alice, mallory = await follower_factory(), await follower_factory()
    room_id = await alice.open_dm(bot_user.user_id, encrypted=False)
    await alice.say(room_id, "!follow news")
    assert await recorder.next() == Message(Address("matrix", alice.user_id, chat=room_id),
                                            "!follow news")

    # the DM grows: someone else is invited and joins, then alice types a command there
    await alice.client.room_invite(room_id, mallory.user_id)
    await mallory.sync(0)
    assert (await mallory.client.join(room_id)).room_id == room_id
    await alice.say(room_id, "!follow news")

    await alice.wait_event(room_id, _notice_with("direct chat"))
    await alice.wait_until(_bot_left(alice, room_id, bot_user.user_id))
    await asyncio.sleep(0.5)
    assert recorder.seen == [Message(Address("matrix", alice.user_id, chat=room_id),
                                     "!follow news")]  # the second command never reached the core

    # a copy addressed to the old chat goes to a new direct chat with alice only
    ref = await adapter.send(Address("matrix", alice.user_id, chat=room_id), _text(901))
    new_room = ref.key.split("|", 1)[0]
    assert new_room != room_id
    assert set(adapter.client.rooms[new_room].users) == {bot_user.user_id, alice.user_id}


async def test_dm_flagged_invite_into_a_room_with_others_is_left(
    bot_user, adapter_factory, follower_factory
):
    await adapter_factory(bot_user, Recorder())
    mallory, bob = await follower_factory(), await follower_factory()
    resp = await mallory.client.room_create(is_direct=True, invite=[bot_user.user_id, bob.user_id])
    assert isinstance(resp, RoomCreateResponse)

    def bot_joined_then_left() -> bool:
        room = mallory.client.rooms.get(resp.room_id)
        return room is not None and bot_user.user_id not in room.users and any(
            getattr(ev, "state_key", None) == bot_user.user_id
            and getattr(ev, "membership", None) == "leave"
            for ev in mallory.timeline.get(resp.room_id, []))

    await mallory.wait_until(bot_joined_then_left, timeout=20)


async def test_invite_flood_is_answered_at_a_capped_rate(
    synapse, bot_user, adapter_factory, follower_factory
):
    adapter = await adapter_factory(bot_user, Recorder())
    adapter.join_cap = 2
    mallory = await follower_factory()
    rooms = []
    for _ in range(5):
        resp = await mallory.client.room_create(is_direct=True, invite=[bot_user.user_id])
        assert isinstance(resp, RoomCreateResponse)
        rooms.append(resp.room_id)

    def joined() -> list[str]:
        return [r for r in rooms if r in adapter.client.rooms]

    async with asyncio.timeout(15):
        while len(joined()) < 2:
            await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)  # two more sync rounds: nothing else is joined this minute
    status, body = synapse.request("GET", "/_matrix/client/v3/joined_rooms",
                                   token=bot_user.access_token)
    assert status == 200
    assert len([r for r in body["joined_rooms"] if r in rooms]) == 2


async def test_adapter_forget_erases_state_and_m_direct_and_leaves_the_dm(
    synapse, bot_user, adapter_factory, follower_factory, tmp_path
):
    recorder = Recorder()
    adapter: MatrixAdapter = await adapter_factory(bot_user, recorder, store="forget-store")
    alice, bob = await follower_factory(), await follower_factory()
    bob_to = Address("matrix", bob.user_id)
    await adapter.send(bob_to, _text(910, "bob's copy"))  # the bot opens bob's DM: m.direct
    room_id = await alice.open_dm(bot_user.user_id, encrypted=True)
    await alice.say(room_id, "!follow news")
    sender = Address("matrix", alice.user_id, chat=room_id)
    assert await recorder.next() == Message(sender, "!follow news")
    ref = await adapter.send(sender, _text(911))
    event_id = ref.key.split("|", 1)[1]
    await alice.wait_event(room_id, lambda s: s.get("event_id") == event_id)
    await alice.send(room_id, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": "👍"}})
    assert await recorder.next() == Reaction(sender, ref.key, "👍")
    state_file = tmp_path / "forget-store" / "state.json"
    user_hash = adapter._user_hash(alice.user_id)
    assert user_hash in state_file.read_text()

    assert room_id in state_file.read_text()

    await adapter.forget(sender)

    await alice.wait_until(_bot_left(alice, room_id, bot_user.user_id))
    text = state_file.read_text()
    assert user_hash not in text and room_id not in text and event_id not in text
    path = (f"/_matrix/client/v3/user/{urllib.parse.quote(bot_user.user_id)}"
            "/account_data/m.direct")
    status, direct = synapse.request("GET", path, token=bot_user.access_token)
    assert status == 200 and alice.user_id not in direct and bob.user_id in direct
    assert adapter._user_hash(bob.user_id) in json.loads(text)["dm_rooms"]  # others are kept
