"""Telegram rendering: splitting never loses text, limits hold, escaping, keys, buttons."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.base import Button, Content, MediaContent, PermanentFailure, PollContent, PostKind, Reply
from adapters.telegram.render import (
    MessageKey,
    inline_keyboard,
    post_bodies,
    render_edit,
    render_post,
    render_reply,
    split_text,
    utf16_len,
)

TEXTS = st.text(alphabet=st.sampled_from(["a", "b", " ", "\n", "é", "😀", "<", "&"]), max_size=400)


@given(TEXTS, st.integers(min_value=2, max_value=60), st.integers(min_value=-5, max_value=60))
def test_split_text_loses_nothing_and_respects_limits(text: str, limit: int, first: int) -> None:
    chunks = split_text(text, limit, first_limit=first)
    assert "".join(chunks) == text
    assert utf16_len(chunks[0]) <= max(first, 0) or (first > 0 and first < 2)
    assert all(utf16_len(chunk) <= limit for chunk in chunks[1:])


def test_split_prefers_paragraphs_then_lines_then_spaces() -> None:
    assert split_text("aaaa\n\nbbbb cccc", 10) == ["aaaa\n\n", "bbbb cccc"]
    assert split_text("aaaa\nbbbb cccc", 10) == ["aaaa\n", "bbbb cccc"]
    assert split_text("aaaa bbbb cccc", 10) == ["aaaa bbbb ", "cccc"]
    assert split_text("abcdefghijkl", 5) == ["abcde", "fghij", "kl"]


def test_split_counts_utf16_units_like_telegram() -> None:
    chunks = split_text("😀" * 5, 4)  # each emoji is 2 UTF-16 units
    assert chunks == ["😀😀", "😀😀", "😀"]


def _post(kind: PostKind, text: str) -> Content:
    media = MediaContent(1, kind, "image/png", "p.png", b"png") if kind != PostKind.TEXT else None
    return Content(5, kind, "news", "A & B", text=text, media=media)


def test_post_bodies_escape_text_and_bold_the_header() -> None:
    assert post_bodies(_post(PostKind.TEXT, "x < y & z")) == ["<b>A &amp; B (#5)</b>\nx &lt; y &amp; z"]
    assert post_bodies(_post(PostKind.TEXT, "   ")) == ["<b>A &amp; B (#5)</b>"]


def test_media_caption_overflow_continues_as_text_messages() -> None:
    calls = render_post("42", _post(PostKind.PHOTO, "short.\n\n" + "long " * 300))
    assert [c.method for c in calls] == ["sendPhoto", "sendMessage"]
    assert calls[0].params["caption"] == "<b>A &amp; B (#5)</b>\nshort."
    assert calls[1].params["text"].startswith("long long")


def test_media_without_bytes_or_file_id_is_a_permanent_failure() -> None:
    content = Content(5, PostKind.PHOTO, "news", "N", media=MediaContent(1, PostKind.PHOTO, "i", "f", None))
    with pytest.raises(PermanentFailure):
        render_post("42", content)


def test_message_key_round_trips_and_rejects_garbage() -> None:
    key = MessageKey("-100123", (5, 6, 7))
    assert MessageKey.parse(str(key)) == key and str(key) == "-100123:5,6,7"
    for bad in ("", "12", "12:", ":5", "12:a,b"):
        with pytest.raises(PermanentFailure):
            MessageKey.parse(bad)


def test_edit_of_a_poll_is_refused() -> None:
    poll = Content(5, PostKind.POLL, "news", "N")
    with pytest.raises(PermanentFailure, match="polls cannot be edited"):
        render_edit(MessageKey("1", (2,)), poll)


def test_buttons_with_callback_data_over_64_bytes_are_dropped() -> None:
    keyboard = inline_keyboard(
        [Button("ok", "/follow news"), Button("long", "/x " + "é" * 31), Button("", "/empty")]
    )
    assert keyboard == {"inline_keyboard": [[{"text": "ok", "callback_data": "/follow news"}]]}
    assert inline_keyboard([Button("long", "/" + "y" * 64)]) is None


def test_reply_uses_html_when_short_and_puts_buttons_under_the_last_part() -> None:
    [call] = render_reply("9", Reply("a<b", html="<i>a</i>"))
    assert call.params["text"] == "<i>a</i>" and "reply_markup" not in call.params
    calls = render_reply("9", Reply("p " * 3000, buttons=(Button("Go", "/go"),)))
    assert len(calls) == 2 and "reply_markup" in calls[1].params
    assert "reply_markup" not in calls[0].params


def test_a_quiz_is_a_telegram_quiz_with_its_correct_option_and_explanation() -> None:
    poll = PollContent("Capital?", ("Lyon", "Paris"), correct=1, explanation="🎉" * 150)
    [call] = render_post("7", Content(5, PostKind.POLL, "news", "N", poll=poll))
    assert call.method == "sendPoll"
    params = call.params
    assert params["type"] == "quiz" and params["correct_option_ids"] == [1]
    assert params["allows_multiple_answers"] is False and params["is_anonymous"] is False
    assert utf16_len(params["explanation"]) == 200  # cut in UTF-16 units, never mid-emoji
    plain = render_post("7", Content(5, PostKind.POLL, "news", "N", poll=PollContent("Q", ("a", "b"))))
    assert not {"type", "correct_option_ids", "explanation"} & set(plain[0].params)


def test_a_voice_post_is_send_voice_with_caption_and_duration_and_its_edit_a_caption_edit() -> None:
    media = MediaContent(3, PostKind.VOICE, "audio/ogg", "v.ogg", None, platform_ref="AwAC1", duration=9)
    content = Content(5, PostKind.VOICE, "news", "N", text="Listen", media=media)
    [call] = render_post("7", content)
    assert call.method == "sendVoice" and call.params["voice"] == "AwAC1"
    assert call.params["duration"] == 9 and call.params["caption"] == "<b>N (#5)</b>\nListen"
    calls, leftover = render_edit(MessageKey("7", (11,)), content)
    assert [c.method for c in calls] == ["editMessageCaption"] and leftover == ()
