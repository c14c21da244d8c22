"""Neutral posts and replies -> Matrix event (type, content) pairs. Pure functions, no I/O.

Media helpers take the already-uploaded reference: `url` (a plain mxc:// URI) or `file` (an
encrypted-attachment dict with url/key/iv/hashes/v, as the spec requires in encrypted rooms).
Polls follow MSC3381 (`org.matrix.msc3381.poll.*`) with an MSC1767 text fallback.
"""

from __future__ import annotations

import hashlib
import html
import uuid
from dataclasses import dataclass
from typing import Any

from bridge.i18n import N_, _
from bridge.ports import Content, MediaContent, PollContent, PostKind, Reply

Event = tuple[str, dict[str, Any]]
#: (event type, content, the plain mxc:// URI of uploaded media to report) for one copy
RenderedPost = tuple[str, dict[str, Any], str | None]

HTML_FORMAT = "org.matrix.custom.html"
POLL_START = "org.matrix.msc3381.poll.start"
POLL_END = "org.matrix.msc3381.poll.end"
POLL_RESPONSE_TYPES = frozenset({"org.matrix.msc3381.poll.response", "m.poll.response"})
TEXT_KEY = "org.matrix.msc1767.text"
DISCLOSED = "org.matrix.msc3381.poll.disclosed"
#: marks an `m.audio` event as a voice message (MSC3245); its value is an object
VOICE_KEY = "org.matrix.msc3245.voice"
#: MSC1767 extensible audio: `duration` in milliseconds (maybe a `waveform`)
AUDIO_KEY = "org.matrix.msc1767.audio"
_MSGTYPES = {PostKind.PHOTO: "m.image", PostKind.VIDEO: "m.video", PostKind.VOICE: "m.audio"}
#: how a copy's header introduces the channel's follow link
#: a copy's words are the operator's language (`general.language`); the post itself never changes
FOLLOW_HOW = N_("Follow: send {command} to {link}")


def _html_lines(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def follow_link(bot_user_id: str) -> str:
    """The link that opens a chat with the bot (a copy's header adds the command to send)."""
    return f"https://matrix.to/#/{bot_user_id}"


def header_text(content: Content) -> tuple[str, str]:
    """The (plain, html) header line: the channel, the post, and with `content.follow_url` how
    to follow the channel (a matrix.to link to the bot and the command to send it)."""
    plain, rich = content.header, f"<b>{html.escape(content.header)}</b>"
    if content.follow_url:
        url, command = content.follow_url, content.follow_command
        plain += " · " + _(FOLLOW_HOW).format(command=command, link=url)
        rich += " · " + _(FOLLOW_HOW).format(
            command=f"<code>{html.escape(command)}</code>",
            link=f'<a href="{html.escape(url)}">{html.escape(url.rsplit("/", 1)[-1])}</a>',
        )
    return plain, rich


def post_text(content: Content) -> tuple[str, str]:
    """The (plain, html) body of a post: a bold header line, then the post's text; buttons (a
    teaser's Subscribe) degrade to a line saying what to send."""
    head, rich = header_text(content)
    plain = head if not content.text else f"{head}\n{content.text}"
    if content.text:
        rich += f"<br>{_html_lines(content.text)}"
    for button in content.buttons:
        plain += f"\nSend {button.command}"
        rich += f"<br>Send <code>{html.escape(button.command)}</code>"
    return plain, rich


def text_message(content: Content) -> dict[str, Any]:
    """An `m.room.message` content for a text post; muted followers get `m.notice`."""
    plain, rich = post_text(content)
    return {
        "msgtype": "m.notice" if content.silent else "m.text",
        "body": plain,
        "format": HTML_FORMAT,
        "formatted_body": rich,
    }


def _media_info(media: MediaContent, size: int | None) -> dict[str, Any]:
    info: dict[str, Any] = {"mimetype": media.mime}
    if size is not None:
        info["size"] = size
    if media.width:
        info["w"] = media.width
    if media.height:
        info["h"] = media.height
    if media.duration:
        info["duration"] = media.duration * 1000  # Matrix wants milliseconds
    return info


def media_message(
    content: Content,
    *,
    url: str | None = None,
    file: dict[str, Any] | None = None,
    size: int | None = None,
) -> Event:
    """A photo (`m.image`), video (`m.video`), voice message (`m.audio` marked with MSC3245's
    `org.matrix.msc3245.voice`) or sticker (`m.sticker`) event.

    Photos, videos and voice messages carry the header and text as an MSC2530 caption (`body` +
    `filename`).
    Stickers are `m.sticker` events, which only allow a plain `url`.
    """
    media = content.media
    if media is None:
        raise ValueError("media post without media")
    info = _media_info(media, size)
    if content.kind is PostKind.STICKER:
        if url is None:
            raise ValueError("a sticker needs a plain mxc url")
        return "m.sticker", {"body": content.text or media.filename, "url": url, "info": info}
    plain, rich = post_text(content)
    body: dict[str, Any] = {
        "msgtype": _MSGTYPES[content.kind],
        "body": plain,
        "filename": media.filename,
        "format": HTML_FORMAT,
        "formatted_body": rich,
        "info": info,
    }
    if content.kind is PostKind.VOICE:  # a voice message (MSC3245), its duration in ms (MSC1767)
        body[VOICE_KEY] = {}
        if media.duration:
            body[AUDIO_KEY] = {"duration": media.duration * 1000}
    if file is not None:
        body["file"] = file
    elif url is not None:
        body["url"] = url
    else:
        raise ValueError("media message needs a url or an encrypted file")
    return "m.room.message", body


def poll_fallback(content: Content, poll: PollContent) -> str:
    """The plain-text form of a poll for clients without MSC3381 support."""
    lines = [header_text(content)[0], poll.question]
    lines += [f"{i}. {option}" for i, option in enumerate(poll.options, start=1)]
    if poll.quiz:
        lines.append("A quiz: the bot tells you the answer after you vote.")
    return "\n".join(lines)


def poll_start(content: Content) -> Event:
    """An MSC3381 poll start: disclosed, answers with ids "0", "1", ..."""
    poll = content.poll
    if poll is None:
        raise ValueError("poll post without a poll")
    return POLL_START, {
        POLL_START: {
            "question": {TEXT_KEY: poll.question},
            "kind": DISCLOSED,
            "max_selections": len(poll.options) if poll.multi else 1,
            "answers": [{"id": str(i), TEXT_KEY: opt} for i, opt in enumerate(poll.options)],
        },
        TEXT_KEY: poll_fallback(content, poll),
    }


def poll_end(start_event_id: str) -> Event:
    """An MSC3381 poll end referencing its start event."""
    return POLL_END, {
        "m.relates_to": {"rel_type": "m.reference", "event_id": start_event_id},
        TEXT_KEY: _("The poll has ended."),
    }


def render_post(
    content: Content,
    *,
    url: str | None = None,
    file: dict[str, Any] | None = None,
    size: int | None = None,
) -> Event:
    """Any post kind -> (event type, content)."""
    if content.kind is PostKind.TEXT:
        return "m.room.message", text_message(content)
    if content.kind is PostKind.POLL:
        return poll_start(content)
    return media_message(content, url=url, file=file, size=size)


def edit_of(event_id: str, event_type: str, new_content: dict[str, Any]) -> Event:
    """Wrap a re-rendered post as an `m.replace` edit of `event_id`."""
    outer = dict(new_content)
    fallback_key = "body" if "body" in outer else TEXT_KEY
    if isinstance(outer.get(fallback_key), str):
        outer[fallback_key] = f"* {outer[fallback_key]}"
    outer.pop("formatted_body", None)
    outer.pop("format", None)
    outer["m.new_content"] = new_content
    outer["m.relates_to"] = {"rel_type": "m.replace", "event_id": event_id}
    return event_type, outer


def reply_message(reply: Reply) -> dict[str, Any]:
    """A command answer: `m.notice` with plain `body` and HTML `formatted_body`.

    Matrix has no inline buttons, so buttons degrade visibly to a list of commands to type.
    """
    plain = reply.text
    rich = reply.html if reply.html is not None else _html_lines(reply.text)
    if reply.buttons:
        plain += "\n" + "\n".join(f"• {b.label}: {b.command}" for b in reply.buttons)
        items = "".join(
            f"<li>{html.escape(b.label)}: <code>{html.escape(b.command)}</code></li>" for b in reply.buttons
        )
        rich += f"<ul>{items}</ul>"
    return {"msgtype": "m.notice", "body": plain, "format": HTML_FORMAT, "formatted_body": rich}


@dataclass(frozen=True)
class RoomEvent:
    """One event to send into a room: exactly what nio's `room_send` takes."""

    room_id: str
    event_type: str
    content: dict[str, Any]
    #: the transaction id: the homeserver answers a repeated one with the first event
    tx_id: str


def tx_id(delivery_id: int, suffix: str) -> str:
    """The transaction id of one step of one delivery: deterministic, so a retried copy is
    never a second event (delivery 0, outside the outbox, gets a random one)."""
    return f"cb{delivery_id}-{suffix}" if delivery_id else random_tx_id()


def random_tx_id() -> str:
    """A fresh transaction id (an answer: a retry of it by the worker is a new message)."""
    return f"cb-{uuid.uuid4().hex}"


def redaction_tx_id(ref_key: str) -> str:
    """The transaction id of a copy's redaction, derived from the copy: deleting twice is one
    redaction."""
    return "cb" + hashlib.sha256(ref_key.encode()).hexdigest()[:24] + "-delete"
