"""Every kind of object the local Bot API server emits parses with python-telegram-bot's
`de_json`, with no unknown fields (they would land in `api_kwargs`) and nothing dropped."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import File, Message, Poll, TelegramObject, Update, User

from tests.telegram_api import ApiError, FakeBotApi

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x20" + b"\x00" * 16


def assert_exact(obj: TelegramObject, original: Any) -> None:
    """No unknown keys anywhere, and every key we sent survives the round trip."""
    _no_unknown_fields(obj)
    _contains(original, obj.to_dict(recursive=True))


def _no_unknown_fields(obj: Any) -> None:
    if isinstance(obj, TelegramObject):
        assert obj.api_kwargs == {}, f"{type(obj).__name__} got unknown fields {obj.api_kwargs}"
        for value in obj._get_attrs(recursive=False).values():
            _no_unknown_fields(value)
    elif isinstance(obj, tuple | list):
        for item in obj:
            _no_unknown_fields(item)


def _contains(original: Any, parsed: Any) -> None:
    if isinstance(original, dict):
        for key, value in original.items():
            if value == [] and key not in parsed:  # PTB leaves empty arrays out of to_dict
                continue
            assert key in parsed, f"{key} dropped by PTB"
            _contains(value, parsed[key])
    elif isinstance(original, list):
        assert len(original) == len(parsed)
        for a, b in zip(original, parsed, strict=True):
            _contains(a, b)
    else:
        assert original == parsed


@pytest.fixture
def api() -> FakeBotApi:
    return FakeBotApi()


async def test_get_me_is_a_bot_user(api: FakeBotApi) -> None:
    raw = await api.dispatch("getMe", {})
    me = User.de_json(raw, None)
    assert me.is_bot and me.username == "channelbridge_test_bot"
    assert_exact(me, raw)


async def test_sent_text_message_parses_with_keyboard(api: FakeBotApi) -> None:
    user = api.add_user(username="alice")
    markup = {"inline_keyboard": [[{"text": "Follow", "callback_data": "/follow news"}]]}
    raw = await api.dispatch(
        "sendMessage",
        {"chat_id": user.id, "text": "<b>x</b> &amp; y", "parse_mode": "HTML", "reply_markup": markup},
    )
    msg = Message.de_json(raw, None)
    assert msg.text == "x & y" and msg.chat.type == "private"
    assert_exact(msg, raw)


@pytest.mark.parametrize("kind", ["photo", "video", "sticker"])
async def test_sent_media_messages_parse(api: FakeBotApi, kind: str) -> None:
    user = api.add_user()
    method = {"photo": "sendPhoto", "video": "sendVideo", "sticker": "sendSticker"}[kind]
    params: dict[str, Any] = {"chat_id": user.id}
    if kind != "sticker":
        params["caption"] = "caption"
    raw = await api.dispatch(method, params, {kind: PNG})
    msg = Message.de_json(raw, None)
    assert_exact(msg, raw)
    if kind == "photo":
        assert msg.photo[-1].width == 16 and msg.caption == "caption"
    elif kind == "video":
        assert msg.video is not None and msg.video.mime_type == "video/mp4"
    else:
        assert msg.sticker is not None and msg.sticker.type == "regular"


async def test_poll_message_stop_poll_and_edits_parse(api: FakeBotApi) -> None:
    user = api.add_user()
    raw = await api.dispatch(
        "sendPoll",
        {"chat_id": user.id, "question": "Lunch?", "options": [{"text": "a"}, {"text": "b"}],
         "is_anonymous": False},
    )  # fmt: skip
    msg = Message.de_json(raw, None)
    assert msg.poll is not None and not msg.poll.is_anonymous
    assert_exact(msg, raw)
    stopped = await api.dispatch("stopPoll", {"chat_id": user.id, "message_id": msg.message_id})
    poll = Poll.de_json(stopped, None)
    assert poll.is_closed
    assert_exact(poll, stopped)

    text = await api.dispatch("sendMessage", {"chat_id": user.id, "text": "one"})
    edited = await api.dispatch(
        "editMessageText", {"chat_id": user.id, "message_id": text["message_id"], "text": "two"}
    )
    edited_msg = Message.de_json(edited, None)
    assert edited_msg.edit_date is not None and edited_msg.text == "two"
    assert_exact(edited_msg, edited)
    photo = await api.dispatch("sendPhoto", {"chat_id": user.id}, {"photo": PNG})
    recaptioned = await api.dispatch(
        "editMessageCaption", {"chat_id": user.id, "message_id": photo["message_id"], "caption": "c"}
    )
    assert_exact(Message.de_json(recaptioned, None), recaptioned)


async def test_get_file_parses(api: FakeBotApi) -> None:
    user = api.add_user()
    sent = await api.dispatch("sendPhoto", {"chat_id": user.id}, {"photo": PNG})
    raw = await api.dispatch("getFile", {"file_id": sent["photo"][-1]["file_id"]})
    f = File.de_json(raw, None)
    assert f.file_size == len(PNG) and f.file_path
    assert_exact(f, raw)


async def test_every_update_kind_parses(api: FakeBotApi) -> None:
    user = api.add_user(username="bob")
    group = api.add_group()
    text = api.user_sends_text(user.id, "/start news")
    api.user_sends_photo(user.id, PNG, caption="/post news")
    api.user_sends_video(user.id, b"video-bytes", caption="/post news")
    sticker = api.user_sends_sticker(user.id, PNG)
    api.user_sends_text(user.id, "/post news", reply_to=sticker.message_id)
    api.group_message(group.id, user.id, "hello group")
    sent = await api.dispatch(
        "sendMessage",
        {"chat_id": user.id, "text": "pick",
         "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": "/a"}]]}},
    )  # fmt: skip
    api.press_button(user.id, sent["message_id"], "/a")
    poll = await api.dispatch(
        "sendPoll",
        {"chat_id": user.id, "question": "Q", "options": ["x", "y"], "is_anonymous": False},
    )
    api.answer_poll(user.id, poll["poll"]["id"], [1])
    api.react(user.id, text.message_id, "👍")
    api.react(user.id, text.message_id, None)

    raw = await api.dispatch(
        "getUpdates",
        {"timeout": 0, "allowed_updates": ["message", "callback_query", "poll_answer", "poll",
                                           "message_reaction"]},
    )  # fmt: skip
    kinds: set[str] = set()
    for item in raw:
        update = Update.de_json(item, None)
        assert_exact(update, item)
        kinds.update(key for key in item if key != "update_id")
    assert kinds == {"message", "callback_query", "poll", "poll_answer", "message_reaction"}
    assert len(raw) == 11  # 6 messages, a press, poll + poll_answer, 2 reactions


async def test_reactions_are_withheld_unless_allowed(api: FakeBotApi) -> None:
    user = api.add_user()
    msg = api.user_sends_text(user.id, "hi")
    api.react(user.id, msg.message_id, "🔥")
    raw = await api.dispatch("getUpdates", {"timeout": 0, "allowed_updates": []})
    assert [next(k for k in u if k != "update_id") for u in raw] == ["message"]


async def test_error_body_has_telegram_fields(api: FakeBotApi) -> None:
    with pytest.raises(ApiError) as caught:
        await api.dispatch("sendMessage", {"chat_id": 42, "text": "x"})
    assert caught.value.body() == {
        "ok": False, "error_code": 400, "description": "Bad Request: chat not found"
    }  # fmt: skip
    rule = api.fail("sendMessage", status=429, retry_after=7)
    assert rule.description == "Too Many Requests: retry after 7"
    assert ApiError(429, rule.description, 7).body()["parameters"] == {"retry_after": 7}


# -- quizzes and voice notes (issue 15) --------------------------------------------------------

OGG = b"OggS\x00\x02" + b"\x00" * 20 + b"OpusHead\x01\x01\x38\x01" + b"\x00" * 40


def _quiz(chat_id: int, **extra: Any) -> dict[str, Any]:
    return {"chat_id": chat_id, "question": "Capital?", "options": ["Lyon", "Paris"], "type": "quiz",
            "is_anonymous": False, **extra}  # fmt: skip


async def test_sent_quiz_parses_with_its_correct_option_and_explanation(api: FakeBotApi) -> None:
    user = api.add_user()
    raw = await api.dispatch("sendPoll", _quiz(user.id, correct_option_ids=[1], explanation="Since 508."))
    msg = Message.de_json(raw, None)
    assert_exact(msg, raw)
    assert msg.poll is not None and msg.poll.type == "quiz" and not msg.poll.allows_revoting
    assert msg.poll.correct_option_ids == (1,) and msg.poll.explanation == "Since 508."
    legacy = await api.dispatch("sendPoll", _quiz(user.id, correct_option_id=0))  # before Bot API 9.6
    assert legacy["poll"]["correct_option_ids"] == [0]
    api.answer_poll(user.id, msg.poll.id, [0])
    with pytest.raises(ValueError, match="can't be changed"):  # a quiz answer is final
        api.answer_poll(user.id, msg.poll.id, [1])
    with pytest.raises(ValueError, match="can't be changed"):
        api.answer_poll(user.id, msg.poll.id, [])


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({}, "QUIZ_CORRECT_ANSWERS_EMPTY"),
        ({"correct_option_ids": []}, "QUIZ_CORRECT_ANSWERS_EMPTY"),
        ({"correct_option_ids": [2]}, "QUIZ_CORRECT_ANSWER_INVALID"),
        ({"correct_option_id": -1}, "QUIZ_CORRECT_ANSWER_INVALID"),
        ({"correct_option_ids": [0, 1]}, "QUIZ_CORRECT_ANSWERS_TOO_MUCH"),
        ({"correct_option_ids": [0], "correct_option_id": 0}, "not both"),
        ({"correct_option_ids": [0], "allows_multiple_answers": True}, "multiple answers"),
        ({"correct_option_ids": [0], "explanation": "e" * 201}, "explanation is too long"),
        ({"correct_option_ids": [0], "explanation": "a\nb\nc\nd"}, "explanation is too long"),
        ({"correct_option_ids": [0], "type": "trivia"}, "wrong poll type"),
    ],
)
async def test_a_malformed_quiz_is_refused_like_telegram_refuses_it(
    api: FakeBotApi, extra: dict[str, Any], error: str
) -> None:
    user = api.add_user()
    with pytest.raises(ApiError, match=error):
        await api.dispatch("sendPoll", _quiz(user.id, **extra))


async def test_a_regular_poll_refuses_quiz_fields(api: FakeBotApi) -> None:
    user = api.add_user()
    base = {"chat_id": user.id, "question": "Q", "options": ["x", "y"]}
    with pytest.raises(ApiError, match="only for quizzes"):
        await api.dispatch("sendPoll", {**base, "correct_option_ids": [0]})
    with pytest.raises(ApiError, match="only for quizzes"):
        await api.dispatch("sendPoll", {**base, "explanation": "why"})


async def test_sent_voice_parses_reuses_its_file_id_and_takes_a_new_caption(api: FakeBotApi) -> None:
    user = api.add_user()
    params = {"chat_id": user.id, "caption": "hi", "duration": 7}
    raw = await api.dispatch("sendVoice", params, {"voice": OGG})
    msg = Message.de_json(raw, None)
    assert_exact(msg, raw)
    assert msg.voice is not None and msg.voice.mime_type == "audio/ogg" and msg.caption == "hi"
    again = await api.dispatch("sendVoice", {"chat_id": user.id, "voice": msg.voice.file_id})
    assert again["voice"]["file_id"] == msg.voice.file_id and len(api.uploads) == 1
    recaptioned = await api.dispatch(
        "editMessageCaption", {"chat_id": user.id, "message_id": raw["message_id"], "caption": "new"}
    )
    assert Message.de_json(recaptioned, None).caption == "new"
    with pytest.raises(ApiError, match="can't use file of type Voice as Photo"):
        await api.dispatch("sendPhoto", {"chat_id": user.id, "photo": msg.voice.file_id})


async def test_a_voice_upload_that_is_no_audio_is_refused(api: FakeBotApi) -> None:
    user = api.add_user()
    with pytest.raises(ApiError, match="wrong voice file format"):
        await api.dispatch("sendVoice", {"chat_id": user.id}, {"voice": PNG})


async def test_a_users_voice_note_update_parses(api: FakeBotApi) -> None:
    user = api.add_user()
    api.user_sends_voice(user.id, OGG, caption="/post news", duration=9)
    [item] = await api.dispatch("getUpdates", {"timeout": 0})
    update = Update.de_json(item, None)
    assert_exact(update, item)
    assert update.message is not None and update.message.voice is not None
    assert update.message.voice.file_size == len(OGG) and update.message.caption == "/post news"
