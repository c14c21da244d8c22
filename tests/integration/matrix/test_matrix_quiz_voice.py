"""Quizzes and voice posts through the whole App on a real Synapse (issue 15, parts 4 and 5).

A quiz is an MSC3381 poll; right after a person's vote the bot tells that person, in their DM
and only once, whether they were right, the answer and the explanation. A voice note sent with
the `/post <handle>` caption (`m.audio` marked `org.matrix.msc3245.voice`) is uploaded once and
delivered to every follower as a voice message; its caption edits and its deletion reach every
copy.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from nio.crypto import encrypt_attachment

from .conftest import Follower
from .synapse import RegisteredUser
from .test_matrix_app import (  # noqa: F401  (fixtures used by name)
    POLL_START,
    Bridge,
    adapter_logs_name_nobody,
    ask,
    ask_until,
    bridge,
    content_of,
    copy_of,
    is_edit,
    media_bytes,
    numbered,
    text_of,
)

pytestmark = [pytest.mark.matrix, pytest.mark.integration]

#: an Ogg Opus voice note's first bytes (the bot never decodes it)
VOICE = b"OggS\x00\x02" + b"\x00" * 20 + b"OpusHead\x01\x01\x38\x01" + bytes(range(200)) * 4
VOICE_KEY = "org.matrix.msc3245.voice"
AUDIO_KEY = "org.matrix.msc1767.audio"


def _notices(person: Follower, room: str, bot: str, start: str) -> list[str]:
    return [
        text_of(ev.source)
        for ev in person.timeline.get(room, [])
        if ev.source.get("sender") == bot
        and content_of(ev.source).get("msgtype") == "m.notice"
        and text_of(ev.source).startswith(start)
    ]


async def test_voice_note_is_uploaded_once_delivered_as_voice_then_edited_and_deleted(
    bridge: Bridge,  # noqa: F811
    bot_user: RegisteredUser,
    follower_factory: Callable[[], Awaitable[Follower]],
) -> None:
    op, *followers = [await follower_factory() for _ in range(4)]
    app, adapter = await bridge(bot_user, op.user_id)
    bot = bot_user.user_id
    op_room = await op.open_dm(bot, encrypted=True)  # the bot must download, decrypt, upload
    await ask(op, op_room, "/newchannel news Daily News", bot, "created")
    rooms = []
    for person in followers:
        room = await person.open_dm(bot, encrypted=False)
        await ask(person, room, "/follow news", bot, "You now follow Daily News")
        rooms.append(room)

    uploads: list[str] = []
    real_upload = adapter._media._upload

    async def counting_upload(data: bytes, mime: str, filename: str) -> str:
        url = await real_upload(data, mime, filename)
        uploads.append(mime)
        return url

    adapter._media._upload = counting_upload  # type: ignore[method-assign]
    # a voice message as Element sends it: m.audio marked as voice, its duration in ms
    cipher, keys = encrypt_attachment(VOICE)
    upload, _ = await op.client.upload(io.BytesIO(cipher), "application/octet-stream",
                                       filesize=len(cipher))
    await op.send(op_room, "m.room.message", {
        "msgtype": "m.audio", "body": "/post news Listen to this", "filename": "voice.ogg",
        "info": {"mimetype": "audio/ogg", "duration": 7000, "size": len(VOICE)},
        "file": {"url": upload.content_uri, **keys},
        VOICE_KEY: {}, AUDIO_KEY: {"duration": 7000}})
    await op.wait_event(op_room, lambda s: "Post #1 is on its way" in text_of(s))
    # plain audio (no voice mark) with the same caption is not a post kind: nothing is posted
    await op.send(op_room, "m.room.message", {
        "msgtype": "m.audio", "body": "/post news Music", "filename": "song.ogg",
        "info": {"mimetype": "audio/ogg"}, "file": {"url": upload.content_uri, **keys}})
    copies: list[dict[str, Any]] = []
    for person, room in zip(followers, rooms, strict=True):
        ev = await copy_of(person, room, bot, numbered(1))
        content = content_of(ev.source)
        assert content["msgtype"] == "m.audio" and content[VOICE_KEY] == {}
        assert content[AUDIO_KEY] == {"duration": 7000}
        assert content["info"]["duration"] == 7000 and content["info"]["mimetype"] == "audio/ogg"
        body = text_of(ev.source)  # the header line (with the follow link), then the caption
        assert body.startswith("Daily News (#1)") and body.endswith("\nListen to this")
        assert await media_bytes(person, content) == VOICE
        copies.append(ev.source)
    assert uploads == ["audio/ogg"]  # one upload for three followers
    assert len({content_of(c)["url"] for c in copies}) == 1

    await ask(op, op_room, "/edit 1 Listen again", bot, "Post #1 edited; 3 delivered copies")
    await ask(op, op_room, "/delete 1", bot, "Post #1 deleted: 3 delivered copies")
    for person, room, copy in zip(followers, rooms, copies, strict=True):
        first = copy["event_id"]
        edit = await person.wait_event(room, lambda s, e=first: is_edit(s)
                                       and content_of(s)["m.relates_to"]["event_id"] == e)
        new = content_of(edit.source)["m.new_content"]
        assert new["body"].startswith("Daily News (#1)") and new["body"].endswith("\nListen again")
        assert new["msgtype"] == "m.audio"
        assert VOICE_KEY in new and new["url"] == content_of(copy)["url"]
        await person.wait_event(room, lambda s, e=first: s.get("type") == "m.room.redaction"
                                and (s.get("redacts") or content_of(s).get("redacts")) == e)
    assert uploads == ["audio/ogg"]  # the edit reused the upload too
    await app.sync()
    assert not any("(#2)" in text_of(ev.source) for ev in followers[0].timeline[rooms[0]])


async def test_quiz_reveals_the_answer_to_each_voter_once_and_results_count_correct_ones(
    bridge: Bridge,  # noqa: F811
    bot_user: RegisteredUser,
    follower_factory: Callable[[], Awaitable[Follower]],
) -> None:
    op, alice, bob = [await follower_factory() for _ in range(3)]
    app, _adapter = await bridge(bot_user, op.user_id)
    bot = bot_user.user_id
    op_room = await op.open_dm(bot, encrypted=False)
    await ask(op, op_room, "/newchannel news Daily News", bot, "created")
    alice_room = await alice.open_dm(bot, encrypted=True)
    bob_room = await bob.open_dm(bot, encrypted=False)
    for person, room in ((alice, alice_room), (bob, bob_room)):
        await ask(person, room, "/follow news", bot, "You now follow Daily News")
    await ask(op, op_room, '/quiz news "Capital of France?" "Lyon" "Paris" --answer 2 '
              '--explain "Paris has been the capital since 508."', bot, "Post #1 is on its way")

    starts = {}
    for person, room in ((alice, alice_room), (bob, bob_room)):
        ev = await copy_of(person, room, bot, lambda s: s.get("type") == POLL_START)
        start = content_of(ev.source)[POLL_START]
        assert [a["org.matrix.msc1767.text"] for a in start["answers"]] == ["Lyon", "Paris"]
        assert start["max_selections"] == 1
        assert "A quiz" in content_of(ev.source)["org.matrix.msc1767.text"]
        starts[person.user_id] = ev.source["event_id"]

    async def vote(person: Follower, room: str, answer: str) -> None:
        await person.send(room, "org.matrix.msc3381.poll.response", {
            "m.relates_to": {"rel_type": "m.reference", "event_id": starts[person.user_id]},
            "org.matrix.msc3381.poll.response": {"answers": [answer]}})

    await vote(alice, alice_room, "0")
    await vote(bob, bob_room, "1")
    wrong = await alice.wait_event(alice_room, lambda s: text_of(s).startswith("Quiz #1"))
    right = await bob.wait_event(bob_room, lambda s: text_of(s).startswith("Quiz #1"))
    assert text_of(wrong.source) == (
        "Quiz #1: not quite — you answered 1. Lyon; the answer is 2. Paris.\n"
        "Paris has been the capital since 508."
    )
    assert content_of(wrong.source)["msgtype"] == "m.notice"
    assert text_of(right.source).startswith("Quiz #1: right! The answer is 2. Paris.")

    await vote(alice, alice_room, "1")  # alice changes her vote in her client: no second reveal
    results = await ask_until(op, op_room, "/results 1", bot, "Poll #1",
                              lambda text: "2 voters" in text)
    assert results.endswith("Answered correctly: 1 of 2")
    assert "1. Lyon — 1" in results and "2. Paris — 1" in results
    await app.sync()
    await asyncio.sleep(0.5)
    await alice.sync()
    assert len(_notices(alice, alice_room, bot, "Quiz #1")) == 1
    assert bob.user_id not in str(alice.timeline) and alice.user_id not in str(bob.timeline)
