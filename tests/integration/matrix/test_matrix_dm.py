"""A follower's encrypted DM with the bot: commands in, replies out, over a real Synapse."""

from __future__ import annotations

import io

import pytest
from nio.crypto import encrypt_attachment

from adapters.base import Address, Message
from adapters.matrix.adapter import MatrixAdapter

from .conftest import Recorder

pytestmark = [pytest.mark.matrix, pytest.mark.integration]


async def test_command_in_encrypted_dm_reaches_handler_and_reply_decrypts(
    bot_user, adapter_factory, follower_factory
):
    recorder = Recorder()
    await adapter_factory(bot_user, recorder)
    alice = await follower_factory()
    room_id = await alice.open_dm(bot_user.user_id, encrypted=True)

    await alice.say(room_id, "!follow news")

    event = await recorder.next()
    assert event == Message(Address("matrix", alice.user_id, chat=room_id), "!follow news")
    reply = await alice.wait_event(room_id, lambda s: s["content"].get("msgtype") == "m.notice")
    assert reply.decrypted
    assert reply.source["content"]["body"] == "ok, followed"
    assert reply.source["content"]["formatted_body"] == "<b>ok</b>, followed"
    assert reply.source["content"]["format"] == "org.matrix.custom.html"


async def test_command_in_unencrypted_dm_is_answered_in_the_clear(
    bot_user, adapter_factory, follower_factory
):
    recorder = Recorder()
    await adapter_factory(bot_user, recorder)
    bob = await follower_factory()
    room_id = await bob.open_dm(bot_user.user_id, encrypted=False)

    await bob.say(room_id, "/help")

    assert await recorder.next() == Message(Address("matrix", bob.user_id, chat=room_id), "/help")
    reply = await bob.wait_event(room_id, lambda s: s["content"].get("msgtype") == "m.notice")
    assert reply.source["type"] == "m.room.message"
    assert reply.source["content"]["body"] == "ok, followed"


async def test_caption_command_on_encrypted_image_carries_the_decrypted_bytes(
    bot_user, adapter_factory, follower_factory
):
    recorder = Recorder()
    await adapter_factory(bot_user, recorder)
    alice = await follower_factory()
    room_id = await alice.open_dm(bot_user.user_id, encrypted=True)
    picture = b"\x89PNG fake picture bytes" * 10
    ciphertext, keys = encrypt_attachment(picture)
    upload, _ = await alice.client.upload(io.BytesIO(ciphertext), "application/octet-stream",
                                          filesize=len(ciphertext))
    await alice.send(room_id, "m.room.message", {
        "msgtype": "m.image", "body": "/post news look at this", "filename": "cat.png",
        "info": {"mimetype": "image/png", "w": 4, "h": 3},
        "file": {"url": upload.content_uri, **keys},
    })

    event = await recorder.next()
    assert isinstance(event, Message)
    assert event.text == "/post news look at this"
    assert event.media is not None and event.media.fetch is not None
    assert event.media.data is None  # nothing is downloaded before the engine authorizes
    assert await event.media.fetch(10_000) == picture
    assert (event.media.mime, event.media.filename, event.media.width) == ("image/png", "cat.png", 4)


async def test_password_login_keeps_one_device_across_restarts(
    synapse, bot_user, follower_factory, tmp_path
):
    def make() -> MatrixAdapter:
        return MatrixAdapter(synapse.url, bot_user.user_id, password=bot_user.password,
                             store_dir=tmp_path / "pw-store")

    recorder = Recorder()
    adapter = make()
    await adapter.start(recorder)
    try:
        device = adapter.client.device_id
        assert device and device != bot_user.device_id  # a device of its own
        alice = await follower_factory()
        room_id = await alice.open_dm(bot_user.user_id, encrypted=True)
        await alice.say(room_id, "!start")
        assert await recorder.next() == Message(Address("matrix", alice.user_id, chat=room_id),
                                                "!start")
    finally:
        await adapter.stop()
    again = make()
    await again.start(recorder)
    try:
        assert again.client.device_id == device
    finally:
        await again.stop()
