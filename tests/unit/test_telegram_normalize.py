"""Telegram update -> neutral event: what is mapped, what is skipped, and how."""

from __future__ import annotations

from typing import Any

from telegram import Update

from adapters.base import Address, Message, PollVote, PostKind, Reaction
from adapters.telegram.normalize import strip_bot_mention, to_inbound

ALICE = {"id": 77, "is_bot": False, "first_name": "Alice"}
PRIVATE = {"id": 77, "type": "private", "first_name": "Alice"}
GROUP = {"id": -100, "type": "supergroup", "title": "G"}
SENDER = Address("telegram", "77", chat="77")


def update(**payload: Any) -> Update:
    return Update.de_json({"update_id": 1, **payload}, None)


def message(**fields: Any) -> dict[str, Any]:
    return {"message_id": 3, "date": 1, "chat": PRIVATE, "from": ALICE, **fields}


def test_private_text_becomes_a_message_and_our_mention_is_stripped() -> None:
    event = to_inbound(update(message=message(text="/start@Our_Bot news")), bot_username="our_bot")
    assert event == Message(SENDER, "/start news")
    assert strip_bot_mention("/start@other_bot x", "our_bot") == "/start@other_bot x"


def test_group_and_bot_messages_are_skipped() -> None:
    assert to_inbound(update(message=message(text="/help", chat=GROUP))) is None
    bot = {**ALICE, "is_bot": True}
    assert to_inbound(update(message=message(text="/help", **{"from": bot}))) is None


def test_photo_caption_command_keeps_the_largest_size_without_bytes() -> None:
    photo = [
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
        {"file_id": "big", "file_unique_id": "b", "width": 1280, "height": 720},
    ]
    event = to_inbound(update(message=message(photo=photo, caption="/post news hi")))
    assert isinstance(event, Message) and event.media is not None
    assert event.text == "/post news hi"
    assert (event.media.kind, event.media.platform_ref, event.media.data) == (PostKind.PHOTO, "big", None)
    assert to_inbound(update(message=message(photo=photo, caption="just a photo"))) is None


def test_reply_to_a_foreign_sticker_does_not_attach_it() -> None:
    sticker = {"file_id": "st", "file_unique_id": "u", "type": "regular", "width": 512,
               "height": 512, "is_animated": False, "is_video": False}  # fmt: skip
    own = message(message_id=2, sticker=sticker)
    foreign = {**own, "from": {"id": 5, "is_bot": True, "first_name": "Bot"}}
    event = to_inbound(update(message=message(text="/post news", reply_to_message=own)))
    assert isinstance(event, Message) and event.media is not None
    assert event.media.kind is PostKind.STICKER and event.media.mime == "image/webp"
    event = to_inbound(update(message=message(text="/post news", reply_to_message=foreign)))
    assert event == Message(SENDER, "/post news")


def test_button_press_poll_answer_and_reactions() -> None:
    bot = {"id": 5, "is_bot": True, "first_name": "B"}
    query = {"id": "q", "from": ALICE, "chat_instance": "c", "data": "/follow news",
             "message": message(text="menu", **{"from": bot})}  # fmt: skip
    assert to_inbound(update(callback_query=query)) == Message(SENDER, "/follow news")
    answer = {"poll_id": "p1", "user": ALICE, "option_ids": [1, 2], "option_persistent_ids": ["1", "2"]}
    assert to_inbound(update(poll_answer=answer)) == PollVote(SENDER, "p1", (1, 2))
    reaction = {"chat": PRIVATE, "message_id": 9, "user": ALICE, "date": 1, "old_reaction": [],
                "new_reaction": [{"type": "custom_emoji", "custom_emoji_id": "x"},
                                 {"type": "emoji", "emoji": "🔥"}]}  # fmt: skip
    assert to_inbound(update(message_reaction=reaction)) == Reaction(SENDER, "77:9", "🔥")
    removed = {**reaction, "new_reaction": []}
    assert to_inbound(update(message_reaction=removed)) == Reaction(SENDER, "77:9", None)
    in_group = {**reaction, "chat": GROUP}
    assert to_inbound(update(message_reaction=in_group)) is None


def test_voice_note_with_command_caption_becomes_voice_media() -> None:
    raw = {
        "update_id": 1,
        "message": {
            "message_id": 5, "date": 0, "caption": "/post news listen",
            "chat": {"id": 42, "type": "private", "first_name": "A"},
            "from": {"id": 42, "is_bot": False, "first_name": "A"},
            "voice": {"file_id": "AwAC1", "file_unique_id": "u", "duration": 7,
                      "mime_type": "audio/ogg", "file_size": 900},
        },
    }  # fmt: skip
    event = to_inbound(Update.de_json(raw, None))
    assert isinstance(event, Message) and event.text == "/post news listen"
    assert event.media is not None and event.media.kind == PostKind.VOICE
    assert (event.media.platform_ref, event.media.duration, event.media.size) == ("AwAC1", 7, 900)
    assert event.media.mime == "audio/ogg"
