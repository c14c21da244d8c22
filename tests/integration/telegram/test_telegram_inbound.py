"""Telegram adapter, inbound side, over real HTTP against the local Bot API server:
lifecycle, commands, buttons, votes, reactions, media commands, a failing handler."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from adapters.base import (
    Address,
    Button,
    Content,
    Inbound,
    Message,
    PollContent,
    PollVote,
    PostKind,
    Reaction,
    Reply,
)
from adapters.telegram.adapter import ALLOWED_UPDATES, TelegramAdapter
from tests.telegram_api import FakeBotApi

from .conftest import Inbox, make_adapter

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    # PTB warns from inside RetryAfter.__init__ about its own timedelta migration
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x00\xc0" + bytes(range(64))


def to(user_id: int) -> Address:
    """The address of a user's private chat."""
    return Address("telegram", str(user_id), chat=str(user_id))


async def test_start_checks_token_publishes_menu_and_stop_is_clean(api: FakeBotApi, inbox: Inbox) -> None:
    tg = make_adapter(
        api,
        commands=[("start", "Start"), ("follow", "Follow a channel")],
        admin_commands=[("post", "Post to a channel"), ("invite-admin", "dash is not allowed")],
    )
    await tg.start(inbox)
    try:
        await api.wait_for(lambda: api.calls_to("getUpdates"), what="long polling")
        assert api.calls_to("getMe")
        assert [c["command"] for c in api.commands["default"]] == ["start", "follow"]
        assert [c["command"] for c in api.commands["all_private_chats"]] == [
            "start", "follow", "post"
        ]  # fmt: skip
        poll = api.calls_to("getUpdates")[0].params
        assert set(ALLOWED_UPDATES) <= set(poll["allowed_updates"])
        assert "message_reaction" in poll["allowed_updates"] and poll["timeout"] > 0
    finally:
        await tg.stop()
    calls_after_stop = len(api.calls)
    api.user_sends_text(api.add_user().id, "/help")
    await asyncio.sleep(0.3)
    assert len(api.calls) == calls_after_stop and inbox.events == []


async def test_wrong_token_fails_start(api: FakeBotApi, inbox: Inbox) -> None:
    tg = TelegramAdapter("999:wrong", api_base_url=api.base_url, file_base_url=api.file_base_url)
    with pytest.raises(Exception, match="token"):
        await tg.start(inbox)
    assert not api.calls_to("getUpdates")


async def test_start_deep_link_reaches_handler_and_reply_has_buttons(
    api: FakeBotApi, adapter: TelegramAdapter, inbox: Inbox
) -> None:
    async def respond(event: Inbound) -> Sequence[Reply]:
        return [
            Reply(
                "Welcome to <News> & more",
                buttons=(Button("Follow", "/follow news"), Button("Too long", "/x " + "y" * 70)),
            )
        ]

    inbox.respond = respond
    alice = api.add_user()
    api.user_sends_text(alice.id, "/start@channelbridge_test_bot news")
    [event] = await inbox.next()
    assert event == Message(to(alice.id), "/start news")
    [answer] = await api.wait_for(lambda: api.bot_messages(alice.id), what="the reply")
    assert answer.text == "Welcome to <News> & more"
    assert answer.reply_markup == {"inline_keyboard": [[{"text": "Follow", "callback_data": "/follow news"}]]}


async def test_group_messages_are_ignored(api: FakeBotApi, adapter: TelegramAdapter, inbox: Inbox) -> None:
    group = api.add_group()
    alice = api.add_user()
    api.group_message(group.id, alice.id, "/follow news")
    api.user_sends_text(alice.id, "/help")
    events = await inbox.next()
    assert [e.text for e in events if isinstance(e, Message)] == ["/help"]


async def test_button_press_arrives_as_its_command_and_is_answered(
    api: FakeBotApi, adapter: TelegramAdapter, inbox: Inbox
) -> None:
    alice = api.add_user()
    await adapter.reply(to(alice.id), Reply("Pick", buttons=(Button("Follow", "/follow news"),)))
    [menu] = api.bot_messages(alice.id)
    query_id = api.press_button(alice.id, menu.message_id, "/follow news")
    [event] = await inbox.next()
    assert event == Message(to(alice.id), "/follow news")
    await api.wait_for(lambda: api.callback_answers[query_id], what="answerCallbackQuery")


async def test_poll_answer_becomes_a_vote_keyed_by_poll_id(
    api: FakeBotApi, adapter: TelegramAdapter, inbox: Inbox
) -> None:
    alice = api.add_user()
    poll = PollContent("Lunch?", ("Pizza", "Soup", "Salad"), multi=True)
    ref = await adapter.send(to(alice.id), Content(3, PostKind.POLL, "news", "News", poll=poll))
    assert ref.alt is not None and ref.alt in api.polls
    api.answer_poll(alice.id, ref.alt, [0, 2])
    api.answer_poll(alice.id, ref.alt, [])
    events = await inbox.next(2)
    assert events == [
        PollVote(to(alice.id), ref.alt, (0, 2)),
        PollVote(to(alice.id), ref.alt, ()),
    ]


async def test_reaction_in_private_chat_becomes_a_reaction_on_the_copy(
    api: FakeBotApi, adapter: TelegramAdapter, inbox: Inbox
) -> None:
    alice = api.add_user()
    ref = await adapter.send(to(alice.id), Content(4, PostKind.TEXT, "news", "News", text="Hi"))
    message_id = api.bot_messages(alice.id)[0].message_id
    api.react(alice.id, message_id, "👍")
    api.react(alice.id, message_id, None)
    events = await inbox.next(2)
    assert events == [
        Reaction(to(alice.id), ref.key, "👍"),
        Reaction(to(alice.id), ref.key, None),
    ]


@pytest.mark.parametrize("kind", [PostKind.PHOTO, PostKind.VIDEO])
async def test_media_with_a_command_caption_arrives_with_its_bytes(
    api: FakeBotApi, adapter: TelegramAdapter, inbox: Inbox, kind: PostKind
) -> None:
    admin = api.add_user("Admin")
    if kind is PostKind.PHOTO:
        api.user_sends_photo(admin.id, PNG, caption="/post news Look at this")
    else:
        api.user_sends_video(admin.id, b"\x00\x00\x00\x18ftypmp42" * 50, caption="/post news")
    [event] = await inbox.next()
    assert isinstance(event, Message) and event.media is not None
    assert event.text.startswith("/post news")
    assert event.media.kind is kind
    assert event.media.data is None and not api.calls_to("getFile")  # fetched only on demand
    assert event.media.fetch is not None
    data = await event.media.fetch(1_000_000)
    if kind is PostKind.PHOTO:
        assert data == PNG  # the full size, not the thumbnail
        assert (event.media.width, event.media.height) == (256, 192)
    else:
        assert data == b"\x00\x00\x00\x18ftypmp42" * 50
        assert event.media.duration == 3 and event.media.mime == "video/mp4"
    assert event.media.platform_ref in api.files


async def test_sticker_then_reply_with_post_command_carries_the_sticker(
    api: FakeBotApi, adapter: TelegramAdapter, inbox: Inbox
) -> None:
    admin = api.add_user("Admin")
    sticker = api.user_sends_sticker(admin.id, b"RIFF....WEBPVP8 sticker")
    api.user_sends_text(admin.id, "/post news", reply_to=sticker.message_id)
    [event] = await inbox.next()
    assert isinstance(event, Message) and event.text == "/post news"
    assert event.media is not None and event.media.kind is PostKind.STICKER
    assert event.media.fetch is not None
    assert await event.media.fetch(1_000_000) == b"RIFF....WEBPVP8 sticker"
    assert event.media.mime == "image/webp"


async def test_media_without_a_command_is_skipped(
    api: FakeBotApi, adapter: TelegramAdapter, inbox: Inbox
) -> None:
    alice = api.add_user()
    api.user_sends_photo(alice.id, PNG, caption="holiday")
    api.user_sends_text(alice.id, "/help")
    events = await inbox.next()
    assert events == [Message(to(alice.id), "/help")]


async def test_handler_exception_does_not_stop_polling(
    api: FakeBotApi, adapter: TelegramAdapter, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    async def respond(event: Inbound) -> Sequence[Reply]:
        if isinstance(event, Message) and event.text == "/boom":
            raise RuntimeError("engine bug")
        return [Reply("ok")]

    inbox.respond = respond
    alice = api.add_user()
    api.user_sends_text(alice.id, "/boom")
    await inbox.next()
    api.user_sends_text(alice.id, "/help")
    await inbox.next(2)
    [answer] = await api.wait_for(lambda: api.bot_messages(alice.id), what="the reply")
    assert answer.text == "ok"
    assert "handler failed" in caplog.text
    assert str(alice.id) not in caplog.text  # no identity in the logs


async def test_get_updates_failure_is_retried(api: FakeBotApi, inbox: Inbox) -> None:
    api.fail("getUpdates", status=500, times=1)
    alice = api.add_user()
    api.user_sends_text(alice.id, "/help")
    tg = make_adapter(api)
    await tg.start(inbox)
    try:
        events = await inbox.next(timeout=5)
        assert events == [Message(to(alice.id), "/help")]
        assert [c.status for c in api.calls_to("getUpdates")][:2] == [500, 200]
    finally:
        await tg.stop()


async def test_an_update_the_sdk_cannot_parse_is_skipped(
    api: FakeBotApi, adapter: TelegramAdapter, inbox: Inbox
) -> None:
    alice = api.add_user()
    api.push_update("message", {"message_id": 1})  # no chat, no date: PTB refuses it
    api.user_sends_text(alice.id, "/help")
    events = await inbox.next()
    assert events == [Message(to(alice.id), "/help")]


async def test_handled_updates_are_confirmed_on_stop(api: FakeBotApi, inbox: Inbox) -> None:
    alice = api.add_user()
    first = make_adapter(api)
    await first.start(inbox)
    api.user_sends_text(alice.id, "/help")
    await inbox.next()
    await first.stop()
    second_inbox = Inbox()
    second = make_adapter(api)
    await second.start(second_inbox)
    try:
        api.user_sends_text(alice.id, "/following")
        events = await second_inbox.next()
        assert events == [Message(to(alice.id), "/following")]
    finally:
        await second.stop()


async def test_sending_process_receives_only_while_it_holds_the_inbound_lease(
    api: FakeBotApi, inbox: Inbox
) -> None:
    alice = api.add_user()
    sender = make_adapter(api)
    await sender.start(inbox, receive=False)  # another process holds Telegram's inbound lease
    try:
        assert api.calls_to("getUpdates") == []
        await sender.send(to(alice.id), Content(1, PostKind.TEXT, "news", "News", text="from anywhere"))
        assert [m.text for m in api.bot_messages(alice.id)] == ["News (#1)\nfrom anywhere"]

        await sender.set_receiving(True)  # the lease is won
        api.user_sends_text(alice.id, "/help")
        assert await inbox.next() == [Message(to(alice.id), "/help")]

        await sender.set_receiving(False)  # lost again: polling stops, handled updates confirmed
        polls = len(api.calls_to("getUpdates"))
        api.user_sends_text(alice.id, "/following")
        await asyncio.sleep(0.3)
        assert len(inbox.events) == 1 and len(api.calls_to("getUpdates")) == polls

        await sender.set_receiving(True)  # the update that waited arrives once, the old one not again
        events = await inbox.next(2)
        assert events[1:] == [Message(to(alice.id), "/following")]
    finally:
        await sender.stop()
