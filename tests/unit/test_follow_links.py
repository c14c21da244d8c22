"""A follow link on every copy (issue 15 part 6): Telegram links the header (its visible text
is the header, so no limit moves) and gives a poll or sticker a link button; Matrix adds a
matrix.to link and the command; an earlier post says so in its header."""

from __future__ import annotations

from dataclasses import replace

from adapters.matrix.render import poll_fallback, post_text
from adapters.telegram.render import CAPTION_LIMIT, follow_link, render_post, utf16_len
from bridge.ports import Content, MediaContent, PollContent, PostKind
from tests.telegram_api._html import parse_html

URL = follow_link("news_bot", "news")
MEDIA = MediaContent(blob_id=1, kind=PostKind.PHOTO, mime="image/png", filename="a.png", data=b"x")


def _post(kind: PostKind, text: str = "") -> Content:
    return Content(post_id=5, kind=kind, channel_handle="news", channel_name="Daily News", text=text)


def test_the_telegram_header_is_the_follow_link_and_a_long_caption_still_fits() -> None:
    assert URL == "https://t.me/news_bot?start=news"
    photo = replace(_post(PostKind.PHOTO, "x" * 3000), media=MEDIA, follow_url=URL)
    calls = render_post("42", photo)
    caption = calls[0].params["caption"]
    assert caption.startswith(f'<a href="{URL}"><b>Daily News (#5)</b></a>\n')
    assert utf16_len(parse_html(caption)) <= CAPTION_LIMIT  # what Telegram counts
    assert "".join(parse_html(c.params.get("caption") or c.params["text"]) for c in calls).count("x") == 3000


def test_a_telegram_poll_gets_a_follow_button_and_an_earlier_header() -> None:
    poll = replace(
        _post(PostKind.POLL, "Lunch?"), poll=PollContent("Lunch?", ("a", "b")), follow_url=URL, earlier=True
    )
    (call,) = render_post("42", poll)
    assert call.params["question"] == "Daily News (#5, earlier post): Lunch?"
    assert call.params["reply_markup"] == {"inline_keyboard": [[{"text": "Follow Daily News", "url": URL}]]}


def test_matrix_copies_carry_the_matrix_to_link_and_the_command() -> None:
    content = replace(_post(PostKind.TEXT, "Hello"), follow_url="https://matrix.to/#/@bot:hs")
    plain, rich = post_text(content)
    assert plain == "Daily News (#5) · Follow: send /follow news to https://matrix.to/#/@bot:hs\nHello"
    assert '<a href="https://matrix.to/#/@bot:hs">@bot:hs</a>' in rich and "<code>/follow news</code>" in rich
    poll = replace(content, kind=PostKind.POLL, poll=PollContent("Q", ("a", "b")))
    assert "/follow news" in poll_fallback(poll, PollContent("Q", ("a", "b")))
