"""Posts of every kind delivered to encrypted and plain DMs; edits, deletes, poll closing."""

from __future__ import annotations

import itertools

import pytest
from nio import MemoryDownloadResponse, RedactionEvent
from nio.crypto import decrypt_attachment

from adapters.base import Address, Content, MediaContent, MessageRef, PollContent, PostKind

from .conftest import Recorder

pytestmark = [pytest.mark.matrix, pytest.mark.integration]

_delivery = itertools.count(1)
PICTURE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
CLIP = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 500


def post(kind: PostKind, *, text: str = "", media: MediaContent | None = None,
         poll: PollContent | None = None, silent: bool = False, post_id: int = 7) -> Content:
    """A post as the delivery worker would hand it over, with a fresh delivery id."""
    return Content(post_id=post_id, kind=kind, channel_handle="news", channel_name="News",
                   text=text, media=media, poll=poll, silent=silent,
                   delivery_id=next(_delivery))


def photo(*, data: bytes | None = PICTURE, ref: str | None = None) -> MediaContent:
    """The same photo blob (id 1) with bytes or an existing mxc reference."""
    return MediaContent(blob_id=1, kind=PostKind.PHOTO, mime="image/png", filename="p.png",
                        data=data, platform_ref=ref, width=16, height=16)


async def fetch(follower, url: str) -> bytes:
    """Download media as the follower."""
    resp = await follower.client.download(url)
    assert isinstance(resp, MemoryDownloadResponse), resp
    return resp.body


async def test_every_post_kind_reaches_encrypted_and_plain_dms(
    bot_user, adapter_factory, follower_factory
):
    adapter = await adapter_factory(bot_user, Recorder())
    alice, dave = await follower_factory(), await follower_factory()  # encrypted DMs
    bob, carol = await follower_factory(), await follower_factory()  # plain DMs
    rooms = {f: await f.open_dm(bot_user.user_id, encrypted=f in (alice, dave))
             for f in (alice, dave, bob, carol)}

    def to(f) -> Address:
        return Address("matrix", f.user_id, chat=rooms[f])

    def event_of(ref: MessageRef) -> str:
        return ref.key.split("|", 1)[1]

    # text: header + text, HTML; muted follower gets m.notice
    ref = await adapter.send(to(alice), post(PostKind.TEXT, text="hello <world>"))
    ev = await alice.wait_event(rooms[alice], lambda s: s.get("event_id") == event_of(ref))
    assert ev.decrypted
    assert ev.source["content"]["msgtype"] == "m.text"
    link = f"https://matrix.to/#/{bot_user.user_id}"  # every copy's follow link (issue 15)
    follow = f" · Follow: send /follow news to {link}"
    follow_html = f' · Follow: send <code>/follow news</code> to <a href="{link}">{bot_user.user_id}</a>'
    assert ev.source["content"]["body"] == f"News (#7){follow}\nhello <world>"
    assert ev.source["content"]["formatted_body"] == f"<b>News (#7)</b>{follow_html}<br>hello &lt;world&gt;"
    ref = await adapter.send(to(bob), post(PostKind.TEXT, text="quiet", silent=True))
    ev = await bob.wait_event(rooms[bob], lambda s: s.get("event_id") == event_of(ref))
    assert ev.source["content"]["msgtype"] == "m.notice"

    # photo: one encrypted upload shared by encrypted rooms, one plain upload reused after
    ref_a = await adapter.send(to(alice), post(PostKind.PHOTO, text="pic", media=photo()))
    ref_d = await adapter.send(to(dave), post(PostKind.PHOTO, text="pic", media=photo()))
    assert ref_a.media_ref is None and ref_d.media_ref is None
    ev_a = await alice.wait_event(rooms[alice], lambda s: s.get("event_id") == event_of(ref_a))
    ev_d = await dave.wait_event(rooms[dave], lambda s: s.get("event_id") == event_of(ref_d))
    file = ev_a.source["content"]["file"]
    assert "url" not in ev_a.source["content"]
    assert {"url", "key", "iv", "hashes", "v"} <= file.keys()
    assert ev_d.source["content"]["file"]["url"] == file["url"]
    plain = decrypt_attachment(await fetch(alice, file["url"]), file["key"]["k"],
                               file["hashes"]["sha256"], file["iv"])
    assert plain == PICTURE
    assert ev_a.source["content"]["msgtype"] == "m.image"
    assert ev_a.source["content"]["body"] == f"News (#7){follow}\npic"

    ref_b = await adapter.send(to(bob), post(PostKind.PHOTO, text="pic", media=photo()))
    assert ref_b.media_ref is not None and ref_b.media_ref.startswith("mxc://")
    ref_c = await adapter.send(
        to(carol), post(PostKind.PHOTO, text="pic", media=photo(data=None, ref=ref_b.media_ref))
    )
    assert ref_c.media_ref == ref_b.media_ref
    ev_b = await bob.wait_event(rooms[bob], lambda s: s.get("event_id") == event_of(ref_b))
    ev_c = await carol.wait_event(rooms[carol], lambda s: s.get("event_id") == event_of(ref_c))
    assert ev_b.source["content"]["url"] == ev_c.source["content"]["url"] == ref_b.media_ref
    assert await fetch(carol, ref_b.media_ref) == PICTURE

    # video into the encrypted room, sticker (plain url even there), poll to both kinds
    video = MediaContent(blob_id=2, kind=PostKind.VIDEO, mime="video/mp4", filename="v.mp4",
                         data=CLIP, duration=3)
    ref = await adapter.send(to(alice), post(PostKind.VIDEO, text="clip", media=video))
    ev = await alice.wait_event(rooms[alice], lambda s: s.get("event_id") == event_of(ref))
    assert ev.source["content"]["msgtype"] == "m.video"
    assert ev.source["content"]["info"]["duration"] == 3000
    sticker = MediaContent(blob_id=3, kind=PostKind.STICKER, mime="image/webp",
                           filename="s.webp", data=b"RIFF....WEBP")
    ref = await adapter.send(to(alice), post(PostKind.STICKER, media=sticker))
    ev = await alice.wait_event(rooms[alice], lambda s: s.get("event_id") == event_of(ref))
    assert ev.source["type"] == "m.sticker"
    assert ev.source["content"]["url"] == ref.media_ref

    poll = PollContent("Lunch?", ("pizza", "salad", "soup"), multi=True)
    for f in (alice, bob):
        ref = await adapter.send(to(f), post(PostKind.POLL, poll=poll))
        ev = await f.wait_event(rooms[f], lambda s, r=ref: s.get("event_id") == event_of(r))
        start = ev.source["content"]["org.matrix.msc3381.poll.start"]
        assert ev.source["type"] == "org.matrix.msc3381.poll.start"
        assert start["kind"] == "org.matrix.msc3381.poll.disclosed"
        assert start["max_selections"] == 3
        assert [a["id"] for a in start["answers"]] == ["0", "1", "2"]
        assert "1. pizza" in ev.source["content"]["org.matrix.msc1767.text"]


async def test_resend_with_same_delivery_id_is_not_a_second_message(
    bot_user, adapter_factory, follower_factory
):
    adapter = await adapter_factory(bot_user, Recorder())
    alice = await follower_factory()
    room_id = await alice.open_dm(bot_user.user_id, encrypted=True)
    content = post(PostKind.TEXT, text="once")

    first = await adapter.send(Address("matrix", alice.user_id, chat=room_id), content)
    again = await adapter.send(Address("matrix", alice.user_id, chat=room_id), content)

    assert first.key == again.key


async def test_edit_delete_and_poll_close_arrive(bot_user, adapter_factory, follower_factory):
    adapter = await adapter_factory(bot_user, Recorder())
    alice = await follower_factory()
    room_id = await alice.open_dm(bot_user.user_id, encrypted=True)
    to = Address("matrix", alice.user_id, chat=room_id)

    ref = await adapter.send(to, post(PostKind.TEXT, text="draft"))
    event_id = ref.key.split("|", 1)[1]
    await adapter.edit(to, ref, post(PostKind.TEXT, text="final"))
    edit = await alice.wait_event(
        room_id, lambda s: s["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
    )
    assert edit.source["content"]["m.relates_to"]["event_id"] == event_id
    follow = f" · Follow: send /follow news to https://matrix.to/#/{bot_user.user_id}"
    assert edit.source["content"]["m.new_content"]["body"] == f"News (#7){follow}\nfinal"

    await adapter.delete(to, ref)
    redaction = await alice.wait_event(room_id, lambda s: s.get("type") == "m.room.redaction")
    assert isinstance(redaction, RedactionEvent)
    assert redaction.redacts == event_id

    poll_ref = await adapter.send(to, post(PostKind.POLL, poll=PollContent("Q?", ("a", "b"))))
    await adapter.close_poll(to, poll_ref, post(PostKind.POLL, poll=PollContent("Q?", ("a", "b"))))
    end = await alice.wait_event(room_id, lambda s: s.get("type") == "org.matrix.msc3381.poll.end")
    assert end.source["content"]["m.relates_to"] == {
        "rel_type": "m.reference", "event_id": poll_ref.key.split("|", 1)[1]}
