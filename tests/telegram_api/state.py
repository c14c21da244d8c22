"""The records the local Bot API server keeps: users, chats, messages, files, polls, calls."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


@dataclass
class FakeUser:
    """A Telegram user with a private chat with the bot (chat id == user id)."""

    id: int
    first_name: str
    username: str | None = None
    #: the user pressed Start once; before that the bot may not write to them
    started: bool = True
    #: the user blocked the bot: every call aimed at their chat answers 403
    blocked: bool = False
    #: the account was deleted: every call aimed at their chat answers 403
    deactivated: bool = False
    #: the IETF language tag of the user's app (`from.language_code`), None: not sent
    language_code: str | None = None

    def to_json(self) -> JSON:
        """The `User` object."""
        out: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username:
            out["username"] = self.username
        if self.language_code:
            out["language_code"] = self.language_code
        return out

    def chat_json(self) -> JSON:
        """The private `Chat` object."""
        out: JSON = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.username:
            out["username"] = self.username
        return out


@dataclass
class FakeGroup:
    """A group or supergroup the bot is a member of (mirror rooms, group messages)."""

    id: int
    title: str
    type: str = "supergroup"

    def chat_json(self) -> JSON:
        """The group `Chat` object."""
        return {"id": self.id, "type": self.type, "title": self.title}


@dataclass
class StoredFile:
    """Bytes the server holds under a file id (uploads and user-sent media)."""

    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    file_path: str
    mime_type: str | None = None
    file_name: str | None = None
    width: int = 0
    height: int = 0
    duration: int = 0


@dataclass
class PollRecord:
    """A poll the bot sent, with its live tallies."""

    id: str
    chat_id: int
    message_id: int
    question: str
    options: list[str]
    is_anonymous: bool
    allows_multiple_answers: bool
    is_closed: bool = False
    #: "regular" or "quiz"
    type: str = "regular"
    #: a quiz's correct option (0-based); the bot sees it in the polls it sent (Bot API 9.6:
    #: as the one-item list `correct_option_ids`)
    correct_option_id: int | None = None
    #: a quiz's explanation, after entity parsing
    explanation: str | None = None
    #: user id -> chosen option ids
    answers: dict[int, list[int]] = field(default_factory=dict)

    def to_json(self) -> JSON:
        """The `Poll` object."""
        counts = [0] * len(self.options)
        for chosen in self.answers.values():
            for option in chosen:
                counts[option] += 1
        quiz: JSON = {}
        if self.correct_option_id is not None:
            quiz["correct_option_ids"] = [self.correct_option_id]
        if self.explanation:
            quiz["explanation"] = self.explanation
        return {
            "id": self.id,
            "question": self.question,
            "options": [
                {"text": text, "voter_count": count, "persistent_id": str(index)}
                for index, (text, count) in enumerate(zip(self.options, counts, strict=True))
            ],
            "total_voter_count": sum(1 for chosen in self.answers.values() if chosen),
            "is_closed": self.is_closed,
            "is_anonymous": self.is_anonymous,
            "type": self.type,
            "allows_multiple_answers": self.allows_multiple_answers,
            "allows_revoting": self.type != "quiz",  # a quiz answer is final
            "members_only": False,
            **quiz,
        }


@dataclass
class ChatMessage:
    """One message in a chat as it currently stands (edits applied, deletions flagged)."""

    message_id: int
    chat: JSON
    sender: JSON
    date: int
    #: "text", "photo", "video", "voice", "sticker", "poll", "paid_media" or "service"
    kind: str
    #: plain text after entity parsing (text messages)
    text: str | None = None
    #: plain caption after entity parsing (photo, video and voice)
    caption: str | None = None
    #: the text or caption exactly as sent (HTML source when parse_mode=HTML)
    source: str | None = None
    parse_mode: str | None = None
    file: StoredFile | None = None
    #: PhotoSize list for photos (thumbnail first, like Telegram)
    photo_sizes: list[StoredFile] = field(default_factory=list)
    poll: PollRecord | None = None
    reply_markup: JSON | None = None
    reply_to: ChatMessage | None = None
    disable_notification: bool = False
    deleted: bool = False
    edit_date: int | None = None
    #: earlier versions of the text or caption, oldest first
    history: list[str] = field(default_factory=list)
    #: user id -> current emoji reactions
    reactions: dict[int, list[str]] = field(default_factory=dict)
    #: further Message fields as sent (kind "paid_media" and "service": paid_media,
    #: successful_payment, refunded_payment ...)
    extra: JSON = field(default_factory=dict)

    @property
    def chat_id(self) -> int:
        """The chat this message lives in."""
        return int(self.chat["id"])

    @property
    def from_bot(self) -> bool:
        """Whether the bot sent it."""
        return bool(self.sender.get("is_bot"))

    def to_json(self, *, with_reply: bool = True) -> JSON:
        """The `Message` object."""
        out: JSON = {
            "message_id": self.message_id,
            "from": self.sender,
            "chat": self.chat,
            "date": self.date,
        }
        if self.edit_date is not None:
            out["edit_date"] = self.edit_date
        if self.kind == "text":
            out["text"] = self.text or ""
            if self.text and self.text.startswith("/"):
                out["entities"] = [{"type": "bot_command", "offset": 0, "length": len(self.text.split()[0])}]
        elif self.kind == "photo":
            out["photo"] = [_photo_size(size) for size in self.photo_sizes]
        elif self.kind == "video" and self.file is not None:
            out["video"] = _video(self.file)
        elif self.kind == "sticker" and self.file is not None:
            out["sticker"] = _sticker(self.file)
        elif self.kind == "voice" and self.file is not None:
            out["voice"] = _voice(self.file)
        elif self.kind == "poll" and self.poll is not None:
            out["poll"] = self.poll.to_json()
        out.update(self.extra)
        if self.caption is not None and self.kind in ("photo", "video", "voice", "paid_media"):
            out["caption"] = self.caption
        if self.reply_markup:
            out["reply_markup"] = self.reply_markup
        if with_reply and self.reply_to is not None:
            out["reply_to_message"] = self.reply_to.to_json(with_reply=False)
        return out


@dataclass
class Call:
    """One Bot API request as the server received it."""

    method: str
    params: JSON
    #: multipart file parts: field name -> bytes
    files: dict[str, bytes]
    at: float = field(default_factory=time.monotonic)
    #: the HTTP status the server answered with
    status: int = 200

    @property
    def chat_id(self) -> int | None:
        """The chat_id parameter, when there is one."""
        value = self.params.get("chat_id")
        return value if isinstance(value, int) else None

    @property
    def paid(self) -> bool:
        """Whether the call asked for a paid broadcast (`allow_paid_broadcast=true`)."""
        return self.params.get("allow_paid_broadcast") is True


@dataclass
class FailureRule:
    """An injected failure: matching calls answer `status`, `times` times (None = until cleared)."""

    method: str | None
    chat_id: int | None
    status: int
    description: str
    retry_after: int | None = None
    times: int | None = 1
    #: let this many matching calls through before failing
    after: int = 0
    #: how many calls this rule has failed so far
    hits: int = 0
    #: how many matching calls it let through
    passed: int = 0

    def matches(self, method: str, chat_id: int | None) -> bool:
        """Whether a call is hit by this rule (and the rule still has uses left)."""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.chat_id is None or self.chat_id == chat_id


def _photo_size(f: StoredFile) -> JSON:
    return {
        "file_id": f.file_id,
        "file_unique_id": f.file_unique_id,
        "width": f.width,
        "height": f.height,
        "file_size": len(f.data),
    }


def _video(f: StoredFile) -> JSON:
    out: JSON = {
        "file_id": f.file_id,
        "file_unique_id": f.file_unique_id,
        "width": f.width,
        "height": f.height,
        "duration": f.duration,
        "file_size": len(f.data),
        "mime_type": f.mime_type or "video/mp4",
    }
    if f.file_name:
        out["file_name"] = f.file_name
    return out


def _voice(f: StoredFile) -> JSON:
    return {
        "file_id": f.file_id,
        "file_unique_id": f.file_unique_id,
        "duration": f.duration,
        "mime_type": f.mime_type or "audio/ogg",
        "file_size": len(f.data),
    }


def _sticker(f: StoredFile) -> JSON:
    return {
        "file_id": f.file_id,
        "file_unique_id": f.file_unique_id,
        "type": "regular",
        "width": f.width or 512,
        "height": f.height or 512,
        "is_animated": False,
        "is_video": False,
        "emoji": "🙂",
        "file_size": len(f.data),
    }


def file_json(f: StoredFile) -> JSON:
    """The `File` object returned by getFile."""
    return {
        "file_id": f.file_id,
        "file_unique_id": f.file_unique_id,
        "file_size": len(f.data),
        "file_path": f.file_path,
    }
