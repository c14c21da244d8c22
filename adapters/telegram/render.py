"""Neutral post / reply -> Bot API calls (method + parameters); the message-key format.

Pure: builds the parameters only. Text is sent in HTML parse mode and always escaped here;
limits are counted like Telegram counts them (UTF-16 code units of the text after parsing).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from telegram import InputFile

from adapters.base import Button, Content, MediaContent, PermanentFailure, PostKind, Reply
from bridge.i18n import N_, _

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
POLL_QUESTION_LIMIT = 300
QUIZ_EXPLANATION_LIMIT = 200
#: a copy's words are the operator's language (`general.language`); the post itself never changes
DELETED_NOTICE = N_("This post was deleted by the channel.")
#: the follow button of a copy without a header to link (a poll, a sticker)
FOLLOW_LABEL = N_("Follow")
_MEDIA_METHODS = {
    PostKind.PHOTO: ("sendPhoto", "photo"),
    PostKind.VIDEO: ("sendVideo", "video"),
    PostKind.STICKER: ("sendSticker", "sticker"),
    PostKind.VOICE: ("sendVoice", "voice"),
}
#: kinds whose first message carries the post's text as a caption
CAPTIONED = frozenset({PostKind.PHOTO, PostKind.VIDEO, PostKind.VOICE})


@dataclass(frozen=True)
class ApiCall:
    """One Bot API request: the method name and its parameters."""

    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class MessageKey:
    """Where a copy lives: `"<chat id>:<message id>[,<message id>...]"` (one id per part)."""

    chat_id: str
    message_ids: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.chat_id}:{','.join(str(i) for i in self.message_ids)}"

    @classmethod
    def parse(cls, key: str) -> MessageKey:
        """Read a key written by `str()`; a malformed key is a `PermanentFailure`."""
        chat_id, sep, ids = key.rpartition(":")
        try:
            message_ids = tuple(int(part) for part in ids.split(","))
        except ValueError:
            message_ids = ()
        if not sep or not chat_id or not message_ids:
            raise PermanentFailure("malformed Telegram message key")
        return cls(chat_id, message_ids)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram's limits are counted in."""
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, start: int, budget: int) -> int:
    """The largest `end` with `text[start:end]` no longer than `budget` UTF-16 units."""
    end = min(len(text), start + budget)
    while end > start and (excess := utf16_len(text[start:end]) - budget) > 0:
        end -= max(1, excess // 2)
    return end


def split_text(text: str, limit: int, *, first_limit: int | None = None) -> list[str]:
    """Cut `text` into consecutive slices (their concatenation is `text`, nothing is lost),
    each at most `limit` UTF-16 units (`first_limit` for the first). Cuts prefer a paragraph
    break, then a line break, then a space; a separator stays with the slice before it."""
    if first_limit is not None and first_limit <= 0:
        return ["", *split_text(text, limit)]
    if limit < 2:
        raise ValueError("limit must be at least 2")
    chunks: list[str] = []
    start = 0
    budget = first_limit if first_limit is not None else limit
    while utf16_len(text[start:]) > budget:
        end = _fit(text, start, max(budget, 2))
        cut = end
        for separator in ("\n\n", "\n", " "):
            at = text.rfind(separator, start, end)
            if at > start:
                cut = at + len(separator)
                break
        chunks.append(text[start:cut])
        start = cut
        budget = limit
    chunks.append(text[start:])
    return chunks


def escape(text: str) -> str:
    """Escape plain text for HTML parse mode."""
    return html.escape(text, quote=False)


def post_bodies(content: Content) -> list[str]:
    """The HTML of each part of a text, photo, video or voice post: the bold header line, then
    the text, split at paragraphs. For media the first body is the caption (1,024 limit)."""
    header = content.header
    bold = f"<b>{escape(header)}</b>"
    if content.follow_url:  # the header is the channel's follow link: same visible length
        bold = f'<a href="{html.escape(content.follow_url)}">{bold}</a>'
    text = content.text.strip()
    if not text:
        return [bold]
    first_limit = CAPTION_LIMIT if content.kind in CAPTIONED else TEXT_LIMIT
    chunks = split_text(text, TEXT_LIMIT, first_limit=first_limit - utf16_len(header) - 1)
    first = chunks[0].strip()
    bodies = [f"{bold}\n{escape(first)}" if first else bold]
    bodies.extend(escape(chunk.strip()) for chunk in chunks[1:] if chunk.strip())
    return bodies


def media_input(media: MediaContent, *, upload: bool = False) -> str | InputFile:
    """The file_id to reuse, or the bytes to upload (always upload when `upload`)."""
    if media.platform_ref and not upload:
        return media.platform_ref
    if media.data is None:
        raise PermanentFailure("media has neither bytes nor a Telegram file id")
    upload_file = InputFile(media.data, filename=media.filename)
    if media.mime and media.mime != "application/octet-stream":
        upload_file.mimetype = media.mime
    return upload_file


def _poll_question(content: Content) -> str:
    assert content.poll is not None
    question = content.poll.question
    prefixed = f"{content.header}: {question}"
    return prefixed if len(prefixed) <= POLL_QUESTION_LIMIT else question


def follow_link(bot_username: str, handle: str) -> str:
    """A channel's follow link: opening it sends the bot `/start <handle>`."""
    return f"https://t.me/{bot_username}?start={handle}"


def render_post(
    chat_id: str, content: Content, *, upload: bool = False, anonymous_poll: bool = False
) -> list[ApiCall]:
    """The calls that deliver one post to one chat, in order; the first carries the media or
    the poll. With `content.follow_url` the bold header links to it (the link text is the
    header, so no limit moves); a poll or sticker gets a Follow link button instead.
    `upload` forces re-uploading media bytes instead of reusing a file_id;
    `anonymous_poll` is for channels, which refuse polls that show who voted (their votes
    then reach nobody but the channel's own tally). The content's buttons (a teaser's
    Subscribe) go under the last message."""
    calls = _render_post(chat_id, content, upload=upload, anonymous_poll=anonymous_poll)
    buttons = content.buttons
    if content.follow_url and content.kind in (PostKind.POLL, PostKind.STICKER):  # no header to link
        buttons = (*buttons, Button(f"{_(FOLLOW_LABEL)} {content.channel_name}", "", url=content.follow_url))
    keyboard = inline_keyboard(buttons)
    if keyboard is not None:
        calls[-1].params["reply_markup"] = keyboard
    return calls


def _render_post(chat_id: str, content: Content, *, upload: bool, anonymous_poll: bool) -> list[ApiCall]:
    common: dict[str, Any] = {"chat_id": chat_id}
    if content.silent:
        common["disable_notification"] = True
    if content.kind is PostKind.POLL:
        if content.poll is None:
            raise PermanentFailure("poll post without a poll")
        params = {
            **common,
            "question": _poll_question(content),
            "options": [{"text": option} for option in content.poll.options],
            "is_anonymous": anonymous_poll,
            "allows_multiple_answers": content.poll.multi,
        }
        if content.poll.quiz:  # Telegram's own quiz: it shows each voter the answer
            # Bot API 9.6 lists the correct options (`correct_option_ids`, was `correct_option_id`)
            params.update(type="quiz", correct_option_ids=[content.poll.correct])
            params["allows_multiple_answers"] = False
            if content.poll.explanation:
                explanation = content.poll.explanation
                params["explanation"] = explanation[: _fit(explanation, 0, QUIZ_EXPLANATION_LIMIT)]
        if content.poll.closed:
            params["is_closed"] = True
        return [ApiCall("sendPoll", params)]
    if content.kind in _MEDIA_METHODS:
        if content.media is None:
            raise PermanentFailure(f"{content.kind} post without media")
        method, field = _MEDIA_METHODS[content.kind]
        params = {**common, field: media_input(content.media, upload=upload)}
        if content.kind is PostKind.STICKER:
            return [ApiCall(method, params)]
        bodies = post_bodies(content)
        params.update(caption=bodies[0], parse_mode="HTML")
        if content.kind is PostKind.VIDEO:
            params["supports_streaming"] = True
            for name in ("width", "height", "duration"):
                value = getattr(content.media, name)
                if value:
                    params[name] = value
        if content.kind is PostKind.VOICE and content.media.duration:
            params["duration"] = content.media.duration
        calls = [ApiCall(method, params)]
        calls.extend(
            ApiCall("sendMessage", {**common, "text": body, "parse_mode": "HTML"}) for body in bodies[1:]
        )
        return calls
    return [
        ApiCall("sendMessage", {**common, "text": body, "parse_mode": "HTML"})
        for body in post_bodies(content)
    ]


def render_edit(key: MessageKey, content: Content) -> tuple[list[ApiCall], tuple[int, ...]]:
    """The calls that replace a delivered copy's text, and the message ids left over when the
    new text needs fewer parts (the caller removes them)."""
    if content.kind is PostKind.POLL:
        raise PermanentFailure("polls cannot be edited")
    if content.kind is PostKind.STICKER:
        raise PermanentFailure("stickers cannot be edited")
    bodies = post_bodies(content)
    if len(bodies) > len(key.message_ids):
        raise PermanentFailure("the edited text needs more messages than the delivered copy has")
    calls = []
    for index, (message_id, body) in enumerate(zip(key.message_ids, bodies, strict=False)):
        params = {"chat_id": key.chat_id, "message_id": message_id, "parse_mode": "HTML"}
        if index == 0 and content.kind in CAPTIONED:
            calls.append(ApiCall("editMessageCaption", {**params, "caption": body}))
        else:
            calls.append(ApiCall("editMessageText", {**params, "text": body}))
    return calls, key.message_ids[len(bodies) :]


def deleted_notice(chat_id: str, message_id: int, *, caption: bool) -> ApiCall:
    """The edit that replaces a copy Telegram refuses to delete (older than 48 h)."""
    params = {"chat_id": chat_id, "message_id": message_id, "parse_mode": "HTML"}
    notice = f"<i>{escape(_(DELETED_NOTICE))}</i>"
    if caption:
        return ApiCall("editMessageCaption", {**params, "caption": notice})
    return ApiCall("editMessageText", {**params, "text": notice})


def inline_keyboard(buttons: Sequence[Button]) -> dict[str, Any] | None:
    """One button per row: a link button opens its URL, any other sends its command; a button
    whose command exceeds 64 bytes is dropped."""
    rows = [
        [{"text": button.label, "url": button.url}]
        if button.url
        else [{"text": button.label, "callback_data": button.command}]
        for button in buttons
        if button.label
        and (button.url or (button.command and len(button.command.encode("utf-8")) <= CALLBACK_DATA_LIMIT))
    ]
    return {"inline_keyboard": rows} if rows else None


def render_reply(chat_id: str, reply: Reply) -> list[ApiCall]:
    """The messages answering a command: `reply.html` when given and short enough, else the
    escaped text split at paragraphs; the buttons go under the last message."""
    if reply.html and len(reply.html) <= TEXT_LIMIT:
        bodies = [reply.html]
    else:
        bodies = [escape(c.strip()) for c in split_text(reply.text, TEXT_LIMIT) if c.strip()]
    calls = [
        ApiCall("sendMessage", {"chat_id": chat_id, "text": body, "parse_mode": "HTML"}) for body in bodies
    ]
    keyboard = inline_keyboard(reply.buttons)
    if calls and keyboard is not None:
        calls[-1].params["reply_markup"] = keyboard
    return calls


def render_reply_image(chat_id: str, reply: Reply) -> list[ApiCall]:
    """A reply that carries a picture (a `/stats` chart): one photo upload with the text as its
    caption (what exceeds 1,024 follows as messages), the buttons under the last message."""
    assert reply.image is not None
    chunks = [c.strip() for c in split_text(reply.text, TEXT_LIMIT, first_limit=CAPTION_LIMIT)]
    photo = InputFile(reply.image, filename="chart.png")
    photo.mimetype = "image/png"
    params: dict[str, Any] = {"chat_id": chat_id, "photo": photo}
    if chunks and chunks[0]:
        params.update(caption=escape(chunks[0]), parse_mode="HTML")
    calls = [ApiCall("sendPhoto", params)]
    calls.extend(
        ApiCall("sendMessage", {"chat_id": chat_id, "text": escape(c), "parse_mode": "HTML"})
        for c in chunks[1:]
        if c
    )
    keyboard = inline_keyboard(reply.buttons)
    if keyboard is not None:
        calls[-1].params["reply_markup"] = keyboard
    return calls


def render_reply_edit(key: MessageKey, reply: Reply) -> ApiCall:
    """The edit that replaces the text of an earlier reply (a progress message) in place."""
    if reply.html and len(reply.html) <= TEXT_LIMIT:
        body = reply.html
    else:
        chunks = [c.strip() for c in split_text(reply.text, TEXT_LIMIT) if c.strip()]
        body = escape(chunks[0] if chunks else reply.text[:TEXT_LIMIT])
    params: dict[str, Any] = {
        "chat_id": key.chat_id,
        "message_id": key.message_ids[0],
        "text": body,
        "parse_mode": "HTML",
    }
    keyboard = inline_keyboard(reply.buttons)
    if keyboard is not None:
        params["reply_markup"] = keyboard
    return ApiCall("editMessageText", params)
