"""Telegram adapter, outbound side, over real HTTP against the local Bot API server:
every post kind, file_id reuse, splitting, edit/delete/close, and failure translation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adapters.base import (
    Address,
    Content,
    MediaContent,
    MediaRefRejected,
    MessageRef,
    PermanentFailure,
    PollContent,
    PostKind,
    RecipientGone,
    RetryLater,
)
from adapters.telegram.adapter import TelegramAdapter
from tests.telegram_api import FakeBotApi

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    # PTB warns from inside RetryAfter.__init__ about its own timedelta migration
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x40\x00\x00\x00\x30" + bytes(range(48))
TWO_DAYS_S = 49 * 3600


def to(user_id: int) -> Address:
    """The address of a user's private chat."""
    return Address("telegram", str(user_id), chat=str(user_id))


def text_post(text: str, **kwargs: object) -> Content:
    """A text post of channel "News"."""
    return Content(12, PostKind.TEXT, "news", "News", text=text, **kwargs)  # type: ignore[arg-type]


def media_post(kind: PostKind, text: str = "", ref: str | None = None, data: bytes = PNG) -> Content:
    """A photo, video or sticker post."""
    media = MediaContent(7, kind, "image/png", "pic.png", data, platform_ref=ref, duration=4)
    return Content(13, kind, "news", "News", text=text, media=media)


def poll_post(multi: bool = False) -> Content:
    """A poll post."""
    return Content(14, PostKind.POLL, "news", "News", poll=PollContent("Lunch?", ("Pizza", "Soup"), multi))


async def test_send_text_has_bold_header_and_escaped_text(api: FakeBotApi, adapter: TelegramAdapter) -> None:
    alice = api.add_user()
    ref = await adapter.send(to(alice.id), text_post("1 < 2 & <b>not bold</b>"))
    [msg] = api.bot_messages(alice.id)
    assert ref == MessageRef(f"{alice.id}:{msg.message_id}")
    assert msg.text == "News (#12)\n1 < 2 & <b>not bold</b>"
    # the bold header is the channel's follow link (issue 15), the text stays escaped
    follow = f"https://t.me/{api.bot_user['username']}?start=news"
    escaped = "1 &lt; 2 &amp; &lt;b&gt;not bold&lt;/b&gt;"
    assert msg.source == f'<a href="{follow}"><b>News (#12)</b></a>\n{escaped}'
    assert msg.parse_mode == "HTML" and not msg.disable_notification


async def test_silent_send_sets_disable_notification(api: FakeBotApi, adapter: TelegramAdapter) -> None:
    alice = api.add_user()
    await adapter.send(to(alice.id), text_post("quiet", silent=True))
    await adapter.send(to(alice.id), replace(media_post(PostKind.PHOTO, "quiet"), silent=True))
    assert [m.disable_notification for m in api.bot_messages(alice.id)] == [True, True]


async def test_photo_is_uploaded_once_then_its_file_id_is_reused(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    alice, bob = api.add_user("Alice"), api.add_user("Bob")
    first = await adapter.send(to(alice.id), media_post(PostKind.PHOTO, "Sunset"))
    assert first.media_ref is not None
    second = await adapter.send(to(bob.id), media_post(PostKind.PHOTO, "Sunset", first.media_ref))
    assert len(api.uploads) == 1 and api.uploads[0].data == PNG
    assert [bool(c.files) for c in api.calls_to("sendPhoto")] == [True, False]
    assert api.calls_to("sendPhoto")[1].params["photo"] == first.media_ref
    assert second.media_ref == first.media_ref
    [copy] = api.bot_messages(bob.id)
    assert copy.kind == "photo" and copy.caption == "News (#13)\nSunset"
    assert copy.file is not None and copy.file.data == PNG


async def test_video_and_sticker_are_sent_and_return_their_file_ids(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    alice = api.add_user()
    video = await adapter.send(to(alice.id), media_post(PostKind.VIDEO, "Clip", data=b"mp4"))
    sticker = await adapter.send(to(alice.id), media_post(PostKind.STICKER, data=b"webp"))
    kinds = [(m.kind, m.file.data if m.file else None) for m in api.bot_messages(alice.id)]
    assert kinds == [("video", b"mp4"), ("sticker", b"webp")]
    assert video.media_ref in api.files and sticker.media_ref in api.files
    assert api.calls_to("sendVideo")[0].params["duration"] == 4


async def test_stale_file_id_falls_back_to_uploading_the_bytes(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    alice = api.add_user()
    ref = await adapter.send(to(alice.id), media_post(PostKind.PHOTO, "x", "AgAC-from-old-token"))
    assert ref.media_ref in api.files and len(api.uploads) == 1


async def test_stale_file_id_without_the_bytes_asks_the_worker_to_upload_again(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    alice = api.add_user()
    post = replace(media_post(PostKind.PHOTO, "x", "AgAC-from-old-token"))
    post = replace(post, media=replace(post.media, data=None))  # type: ignore[arg-type]
    with pytest.raises(MediaRefRejected):
        await adapter.send(to(alice.id), post)
    assert api.uploads == []


async def test_native_poll_is_not_anonymous_and_keeps_multi(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    alice = api.add_user()
    ref = await adapter.send(to(alice.id), poll_post(multi=True))
    [msg] = api.bot_messages(alice.id)
    assert msg.poll is not None and ref.alt == msg.poll.id
    assert ref.key == f"{alice.id}:{msg.message_id}"
    assert not msg.poll.is_anonymous and msg.poll.allows_multiple_answers
    assert msg.poll.options == ["Pizza", "Soup"] and "Lunch?" in msg.poll.question


async def test_poll_to_a_channel_is_sent_anonymous_and_the_channel_is_remembered(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    channel = api.add_group("Mirror channel", chat_type="channel")
    mirror = Address("telegram", str(channel.id))
    first = await adapter.send(mirror, poll_post())
    second = await adapter.send(mirror, poll_post())
    polls = [msg.poll for msg in api.bot_messages(channel.id)]
    assert [poll.is_anonymous for poll in polls if poll] == [True, True]
    assert first.alt is not None and second.alt is not None and first.alt != second.alt
    # the refusal is met once; the second poll goes out anonymous at the first attempt
    assert [call.status for call in api.calls_to("sendPoll")] == [400, 200, 200]


async def test_long_text_is_split_at_paragraphs_and_the_key_addresses_every_part(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    alice = api.add_user()
    paragraphs = [f"Paragraph {i}: " + ("word " * 300).strip() for i in range(6)]  # ~1,500 each
    ref = await adapter.send(to(alice.id), text_post("\n\n".join(paragraphs)))
    parts = api.bot_messages(alice.id)
    assert len(parts) == 3
    assert ref.key == f"{alice.id}:" + ",".join(str(m.message_id) for m in parts)
    assert all(len(m.text or "") <= 4096 for m in parts)
    shown = "\n\n".join(m.text or "" for m in parts)
    assert shown == "News (#12)\n" + "\n\n".join(paragraphs)
    assert all((m.text or "").startswith(("News", "Paragraph")) for m in parts)

    await adapter.delete(to(alice.id), ref)
    assert api.bot_messages(alice.id) == []


async def test_caption_over_the_limit_sends_media_then_the_rest_as_text(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    alice = api.add_user()
    long_text = "First paragraph.\n\n" + "Second paragraph is long. " * 60
    ref = await adapter.send(to(alice.id), media_post(PostKind.PHOTO, long_text))
    photo, rest = api.bot_messages(alice.id)
    assert photo.kind == "photo" and photo.caption == "News (#13)\nFirst paragraph."
    assert rest.kind == "text" and rest.text == long_text.split("\n\n", 1)[1].strip()
    assert ref.key == f"{alice.id}:{photo.message_id},{rest.message_id}"
    assert ref.media_ref is not None


async def test_edit_text_caption_and_unchanged_text(api: FakeBotApi, adapter: TelegramAdapter) -> None:
    alice = api.add_user()
    text_ref = await adapter.send(to(alice.id), text_post("before"))
    photo_ref = await adapter.send(to(alice.id), media_post(PostKind.PHOTO, "before"))
    await adapter.edit(to(alice.id), text_ref, text_post("after", edited=True))
    await adapter.edit(to(alice.id), text_ref, text_post("after", edited=True))  # not modified
    await adapter.edit(to(alice.id), photo_ref, media_post(PostKind.PHOTO, "after"))
    text_msg, photo_msg = api.bot_messages(alice.id)
    assert text_msg.text == "News (#12)\nafter" and text_msg.history == ["News (#12)\nbefore"]
    assert photo_msg.caption == "News (#13)\nafter"


async def test_edit_that_shrinks_a_split_text_removes_the_extra_part(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    alice = api.add_user()
    ref = await adapter.send(to(alice.id), text_post("a " * 1500 + "\n\n" + "b " * 1500))
    assert len(api.bot_messages(alice.id)) == 2
    await adapter.edit(to(alice.id), ref, text_post("short now"))
    [remaining] = api.bot_messages(alice.id)
    assert remaining.text == "News (#12)\nshort now"
    with pytest.raises(PermanentFailure, match="more messages"):
        await adapter.edit(to(alice.id), MessageRef(f"{alice.id}:{remaining.message_id}"),
                           text_post("x " * 1500 + "\n\n" + "y " * 1500))  # fmt: skip


async def test_polls_and_stickers_cannot_be_edited(api: FakeBotApi, adapter: TelegramAdapter) -> None:
    alice = api.add_user()
    poll_ref = await adapter.send(to(alice.id), poll_post())
    with pytest.raises(PermanentFailure, match="polls cannot be edited"):
        await adapter.edit(to(alice.id), poll_ref, poll_post())
    sticker_ref = await adapter.send(to(alice.id), media_post(PostKind.STICKER))
    with pytest.raises(PermanentFailure, match="stickers"):
        await adapter.edit(to(alice.id), sticker_ref, media_post(PostKind.STICKER))


@pytest.mark.parametrize("kind", ["text", "photo", "video", "sticker", "poll"])
async def test_delete_removes_every_kind(api: FakeBotApi, adapter: TelegramAdapter, kind: str) -> None:
    alice = api.add_user()
    content = {
        "text": text_post("bye"),
        "photo": media_post(PostKind.PHOTO, "bye"),
        "video": media_post(PostKind.VIDEO, "bye"),
        "sticker": media_post(PostKind.STICKER),
        "poll": poll_post(),
    }[kind]
    ref = await adapter.send(to(alice.id), content)
    await adapter.delete(to(alice.id), ref)
    assert api.bot_messages(alice.id) == []
    await adapter.delete(to(alice.id), ref)  # already gone: nothing to do
    assert api.bot_messages(alice.id, include_deleted=True)[0].deleted


@pytest.mark.parametrize("with_media_ref", [True, False])
async def test_delete_refused_after_48h_edits_the_copy_to_a_notice(
    api: FakeBotApi, adapter: TelegramAdapter, with_media_ref: bool
) -> None:
    alice = api.add_user()
    text_ref = await adapter.send(to(alice.id), text_post("old news"))
    photo_ref = await adapter.send(to(alice.id), media_post(PostKind.PHOTO, "old photo"))
    if not with_media_ref:  # the core may keep only the key
        photo_ref = MessageRef(photo_ref.key)
    for msg in api.bot_messages(alice.id):
        api.age_message(alice.id, msg.message_id, TWO_DAYS_S)
    await adapter.delete(to(alice.id), text_ref)
    await adapter.delete(to(alice.id), photo_ref)
    text_msg, photo_msg = api.bot_messages(alice.id)
    assert text_msg.text == "This post was deleted by the channel."
    assert photo_msg.caption == "This post was deleted by the channel."


async def test_delete_refused_for_an_old_sticker_is_a_permanent_failure(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    alice = api.add_user()
    ref = await adapter.send(to(alice.id), media_post(PostKind.STICKER))
    api.age_message(alice.id, api.bot_messages(alice.id)[0].message_id, TWO_DAYS_S)
    with pytest.raises(PermanentFailure, match="can't be deleted"):
        await adapter.delete(to(alice.id), MessageRef(ref.key))


async def test_close_poll_stops_it_and_is_idempotent(api: FakeBotApi, adapter: TelegramAdapter) -> None:
    alice = api.add_user()
    ref = await adapter.send(to(alice.id), poll_post())
    await adapter.close_poll(to(alice.id), ref, poll_post())
    await adapter.close_poll(to(alice.id), ref, poll_post())
    assert ref.alt is not None and api.polls[ref.alt].is_closed
    assert [c.status for c in api.calls_to("stopPoll")] == [200, 400]


async def test_rate_limit_raises_retry_later_with_telegrams_delay(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    alice = api.add_user()
    api.fail("sendMessage", chat_id=alice.id, status=429, retry_after=17)
    with pytest.raises(RetryLater) as caught:
        await adapter.send(to(alice.id), text_post("hi"))
    assert caught.value.after_s == 17
    await adapter.send(to(alice.id), text_post("hi"))  # only once
    assert len(api.bot_messages(alice.id)) == 1


async def test_enforced_limits_answer_429_per_chat(api: FakeBotApi, adapter: TelegramAdapter) -> None:
    alice, bob = api.add_user("Alice"), api.add_user("Bob")
    api.enforce_limits(global_per_s=30, per_chat_per_s=1, per_chat_burst=1)
    await adapter.send(to(alice.id), text_post("one"))
    await adapter.send(to(bob.id), text_post("one"))
    with pytest.raises(RetryLater) as caught:
        await adapter.send(to(alice.id), text_post("two"))
    assert caught.value.after_s == 1 and api.rate_limited == 1


async def test_blocked_user_raises_recipient_gone(api: FakeBotApi, adapter: TelegramAdapter) -> None:
    alice = api.add_user()
    api.block(alice.id)
    with pytest.raises(RecipientGone, match="blocked"):
        await adapter.send(to(alice.id), text_post("hi"))
    api.fail("sendPoll", status=403, description="Forbidden: user is deactivated")
    with pytest.raises(RecipientGone, match="deactivated"):
        await adapter.send(to(api.add_user().id), poll_post())


async def test_bad_request_raises_permanent_failure_with_telegrams_description(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    with pytest.raises(PermanentFailure, match="Bad Request: chat not found"):
        await adapter.send(to(4242), text_post("hi"))
    alice = api.add_user()
    api.fail("sendPhoto", status=400, description="Bad Request: PHOTO_INVALID_DIMENSIONS")
    with pytest.raises(PermanentFailure) as caught:
        await adapter.send(to(alice.id), media_post(PostKind.PHOTO, "x"))
    assert caught.value.reason == "Bad Request: PHOTO_INVALID_DIMENSIONS"


@pytest.mark.parametrize("status", [500, 502])
async def test_server_error_raises_retry_later_without_a_delay(
    api: FakeBotApi, adapter: TelegramAdapter, status: int
) -> None:
    alice = api.add_user()
    api.fail(None, chat_id=alice.id, status=status)
    with pytest.raises(RetryLater) as caught:
        await adapter.send(to(alice.id), text_post("hi"))
    assert caught.value.after_s is None


async def test_failed_later_part_removes_the_parts_already_sent(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    alice = api.add_user()
    await adapter.send(to(alice.id), text_post("warm-up"))
    api.fail("sendMessage", status=429, retry_after=2, after=1)  # the second part fails
    with pytest.raises(RetryLater):
        await adapter.send(to(alice.id), text_post("a " * 1500 + "\n\n" + "b " * 1500))
    assert [m.text for m in api.bot_messages(alice.id)] == ["News (#12)\nwarm-up"]


async def test_reply_splits_long_text_and_falls_back_from_long_html(
    api: FakeBotApi, adapter: TelegramAdapter
) -> None:
    from adapters.base import Reply

    alice = api.add_user()
    await adapter.reply(to(alice.id), Reply("plain", html="<b>rich</b> &amp; fine"))
    await adapter.reply(to(alice.id), Reply("line\n" * 1000, html="<b>x</b>" * 1000))
    texts = [m.text for m in api.bot_messages(alice.id)]
    assert texts[0] == "rich & fine"
    assert len(texts) == 3 and "".join(t or "" for t in texts[1:]).count("line") == 1000
