"""Rendering neutral posts and replies into Matrix event contents (pure functions)."""

from __future__ import annotations

import pytest

from adapters.base import Button, Content, MediaContent, PollContent, PostKind, Reply
from adapters.matrix import render


def _content(kind: PostKind = PostKind.TEXT, **kwargs) -> Content:
    return Content(post_id=12, kind=kind, channel_handle="news", channel_name="News & Co",
                   **kwargs)


def test_text_post_has_escaped_html_header_and_plain_body():
    event_type, body = render.render_post(_content(text="a <b>\nline two"))
    assert event_type == "m.room.message"
    assert body == {
        "msgtype": "m.text",
        "body": "News & Co (#12)\na <b>\nline two",
        "format": "org.matrix.custom.html",
        "formatted_body": "<b>News &amp; Co (#12)</b><br>a &lt;b&gt;<br>line two",
    }


def test_muted_follower_gets_a_notice_not_a_text():
    _, body = render.render_post(_content(text="hi", silent=True))
    assert body["msgtype"] == "m.notice"


def test_encrypted_photo_carries_file_and_no_plain_url():
    media = MediaContent(blob_id=1, kind=PostKind.PHOTO, mime="image/png", filename="p.png",
                         data=b"x", width=3, height=2)
    file = {"url": "mxc://s/enc", "key": {"k": "K"}, "iv": "IV", "hashes": {"sha256": "H"},
            "v": "v2"}
    event_type, body = render.render_post(_content(PostKind.PHOTO, text="cap", media=media),
                                          file=file, size=1)
    assert event_type == "m.room.message"
    assert body["msgtype"] == "m.image"
    assert body["file"] == file and "url" not in body
    assert body["info"] == {"mimetype": "image/png", "size": 1, "w": 3, "h": 2}
    assert body["filename"] == "p.png" and body["body"] == "News & Co (#12)\ncap"


def test_video_duration_is_sent_in_milliseconds():
    media = MediaContent(blob_id=1, kind=PostKind.VIDEO, mime="video/mp4", filename="v.mp4",
                         data=None, duration=4)
    _, body = render.render_post(_content(PostKind.VIDEO, media=media), url="mxc://s/v")
    assert body["msgtype"] == "m.video" and body["url"] == "mxc://s/v"
    assert body["info"]["duration"] == 4000


def test_sticker_needs_a_plain_url():
    media = MediaContent(blob_id=1, kind=PostKind.STICKER, mime="image/webp",
                         filename="s.webp", data=b"x")
    with pytest.raises(ValueError, match="plain mxc"):
        render.render_post(_content(PostKind.STICKER, media=media), file={"url": "mxc://s/e"})
    event_type, body = render.render_post(_content(PostKind.STICKER, media=media),
                                          url="mxc://s/s")
    assert event_type == "m.sticker" and body["url"] == "mxc://s/s"


@pytest.mark.parametrize(("multi", "expected"), [(False, 1), (True, 3)])
def test_poll_start_is_disclosed_msc3381_with_numbered_ids(multi, expected):
    poll = PollContent("Q?", ("a", "b", "c"), multi=multi)
    event_type, body = render.render_post(_content(PostKind.POLL, poll=poll))
    start = body["org.matrix.msc3381.poll.start"]
    assert event_type == "org.matrix.msc3381.poll.start"
    assert start["max_selections"] == expected
    assert start["kind"] == "org.matrix.msc3381.poll.disclosed"
    assert start["answers"][2] == {"id": "2", "org.matrix.msc1767.text": "c"}
    assert body["org.matrix.msc1767.text"] == "News & Co (#12)\nQ?\n1. a\n2. b\n3. c"


def test_poll_end_references_the_start_event():
    event_type, body = render.poll_end("$start")
    assert event_type == "org.matrix.msc3381.poll.end"
    assert body["m.relates_to"] == {"rel_type": "m.reference", "event_id": "$start"}


def test_edit_wraps_new_content_in_m_replace_with_star_fallback():
    new = render.text_message(_content(text="fixed"))
    event_type, body = render.edit_of("$orig", "m.room.message", new)
    assert event_type == "m.room.message"
    assert body["m.new_content"] == new
    assert body["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$orig"}
    assert body["body"] == "* News & Co (#12)\nfixed"


def test_reply_is_a_notice_and_buttons_degrade_to_visible_commands():
    body = render.reply_message(Reply("Pick one", buttons=(Button("Follow", "/follow news"),)))
    assert body["msgtype"] == "m.notice"
    assert body["body"] == "Pick one\n• Follow: /follow news"
    assert "<code>/follow news</code>" in body["formatted_body"]
    assert body["format"] == "org.matrix.custom.html"


def test_reply_keeps_given_html():
    body = render.reply_message(Reply("plain", html="<i>rich</i>"))
    assert (body["body"], body["formatted_body"]) == ("plain", "<i>rich</i>")


def test_voice_post_is_an_m_audio_voice_message_with_its_duration():
    media = MediaContent(3, PostKind.VOICE, "audio/ogg", "v.ogg", None, duration=9)
    event_type, body = render.render_post(
        _content(PostKind.VOICE, text="Listen", media=media), url="mxc://localhost/v", size=120
    )
    assert event_type == "m.room.message"
    assert body["msgtype"] == "m.audio" and body["url"] == "mxc://localhost/v"
    assert body["org.matrix.msc3245.voice"] == {}
    assert body["org.matrix.msc1767.audio"] == {"duration": 9000}
    assert body["info"] == {"mimetype": "audio/ogg", "size": 120, "duration": 9000}
    assert body["body"] == "News & Co (#12)\nListen" and body["filename"] == "v.ogg"


def test_quiz_fallback_says_the_answer_comes_after_the_vote():
    poll = PollContent("Capital?", ("Lyon", "Paris"), correct=1, explanation="Since 508.")
    _, body = render.render_post(_content(PostKind.POLL, poll=poll))
    fallback = body["org.matrix.msc1767.text"]
    assert "A quiz" in fallback and "Paris" in fallback and "Since 508." not in fallback
