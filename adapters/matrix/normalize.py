"""Matrix timeline events (decrypted source dicts) -> neutral inbound values.

Works on the event's JSON (`event.source` from nio, already decrypted) so it is pure and
unit-testable. Anything unmapped returns None and is skipped. Media is not downloaded here:
a `MediaPointer` says what to fetch and the adapter turns it into `InboundMedia`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.commands import COMMAND_PREFIXES
from bridge.ports import Address, Message, PollVote, PostKind, Reaction

from .render import AUDIO_KEY, POLL_RESPONSE_TYPES, VOICE_KEY

PLATFORM = "matrix"
_MEDIA_MSGTYPES = {"m.image": PostKind.PHOTO, "m.video": PostKind.VIDEO}


def post_ref(room_id: str, event_id: str) -> str:
    """The `MessageRef.key` / `post_ref` form of one event: `"<room>|<event>"`."""
    return f"{room_id}|{event_id}"


def split_ref(key: str) -> tuple[str, str]:
    """Inverse of `post_ref`."""
    room_id, _, event_id = key.partition("|")
    if not room_id or not event_id:
        raise ValueError("not a matrix message key")
    return room_id, event_id


@dataclass(frozen=True)
class MediaPointer:
    """Where inbound media lives: a plain `url`, or `file` (encrypted attachment info)."""

    kind: PostKind
    url: str
    file: dict[str, Any] | None
    mime: str
    filename: str
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    size: int | None = None  # what the sender's client announced (`info.size`), unverified


@dataclass(frozen=True)
class MediaMessage:
    """A caption command with media still to download."""

    sender: Address
    text: str
    media: MediaPointer


@dataclass(frozen=True)
class RedactionSeen:
    """Someone redacted `redacts` (maybe a reaction we mapped earlier)."""

    sender: Address
    room_id: str
    redacts: str


@dataclass(frozen=True)
class ReactionSeen:
    """A reaction plus its own event id, so a later redaction can be mapped back."""

    reaction: Reaction
    event_id: str


Normalized = Message | MediaMessage | PollVote | ReactionSeen | RedactionSeen


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _media_pointer(content: dict[str, Any], kind: PostKind) -> MediaPointer | None:
    info = content.get("info") if isinstance(content.get("info"), dict) else {}
    assert isinstance(info, dict)
    file = content.get("file") if isinstance(content.get("file"), dict) else None
    url = file.get("url") if file else content.get("url")
    if not isinstance(url, str) or not url.startswith("mxc://"):
        return None
    mime = info.get("mimetype") or (file or {}).get("mimetype") or "application/octet-stream"
    filename = content.get("filename") or content.get("body") or "media"
    duration_ms = _int(info.get("duration"))
    audio = content.get(AUDIO_KEY)
    if duration_ms is None and isinstance(audio, dict):
        duration_ms = _int(audio.get("duration"))
    return MediaPointer(
        kind=kind,
        url=url,
        file=file,
        mime=str(mime),
        filename=str(filename)[:200],
        width=_int(info.get("w")),
        height=_int(info.get("h")),
        duration=None if duration_ms is None else duration_ms // 1000,
        size=_int(info.get("size")),
    )


def _poll_vote(sender: Address, room_id: str, content: dict[str, Any]) -> PollVote | None:
    relates = content.get("m.relates_to")
    if not isinstance(relates, dict) or not isinstance(relates.get("event_id"), str):
        return None
    body = content.get("org.matrix.msc3381.poll.response") or content.get("m.selections")
    answers: Any = None
    if isinstance(body, dict):
        answers = body.get("answers")
    elif isinstance(body, list):
        answers = body
    if answers is None and isinstance(content.get("m.poll.response"), dict):
        answers = content["m.poll.response"].get("answers")
    if not isinstance(answers, list):
        return None
    ids: list[int] = []
    for answer in answers:
        if isinstance(answer, str) and answer.isdigit() and int(answer) not in ids:
            ids.append(int(answer))
    return PollVote(sender, post_ref(room_id, relates["event_id"]), tuple(ids))


def normalize(source: dict[str, Any], room_id: str, *, own_user_id: str) -> Normalized | None:
    """One timeline event -> a neutral value, or None when it is not ours to handle.

    The bot's own events, edits, notices and non-command media are skipped.
    """
    sender_id = source.get("sender")
    if not isinstance(sender_id, str) or sender_id == own_user_id:
        return None
    sender = Address(PLATFORM, sender_id, chat=room_id)
    event_type = source.get("type")
    content = source.get("content")
    if not isinstance(content, dict):
        content = {}
    if event_type == "m.room.redaction":
        redacts = source.get("redacts") or content.get("redacts")
        return RedactionSeen(sender, room_id, redacts) if isinstance(redacts, str) else None
    if event_type == "m.reaction":
        relates = content.get("m.relates_to")
        if not isinstance(relates, dict):
            return None
        target, key, event_id = relates.get("event_id"), relates.get("key"), source.get("event_id")
        if not (isinstance(target, str) and isinstance(key, str) and isinstance(event_id, str)):
            return None
        return ReactionSeen(Reaction(sender, post_ref(room_id, target), key), event_id)
    if event_type in POLL_RESPONSE_TYPES:
        return _poll_vote(sender, room_id, content)
    relates = content.get("m.relates_to")
    if isinstance(relates, dict) and relates.get("rel_type") == "m.replace":
        return None  # edits of the follower's own messages are not new commands
    body = content.get("body")
    if not isinstance(body, str):
        return None
    if event_type == "m.sticker":
        pointer = _media_pointer(content, PostKind.STICKER)
        if pointer is None or not body.startswith(COMMAND_PREFIXES):
            return None
        return MediaMessage(sender, body.strip(), pointer)
    if event_type != "m.room.message":
        return None
    msgtype = content.get("msgtype")
    if msgtype == "m.text":
        return Message(sender, body.strip())
    kind = _MEDIA_MSGTYPES.get(str(msgtype))
    if msgtype == "m.audio" and isinstance(content.get(VOICE_KEY), dict):
        kind = PostKind.VOICE  # a voice message (MSC3245); other audio is not a post kind
    if kind is None:
        return None
    pointer = _media_pointer(content, kind)
    # a caption is a body that differs from the file name (MSC2530) and reads as a command
    if pointer is None or not body.startswith(COMMAND_PREFIXES):
        return None
    return MediaMessage(sender, body.strip(), pointer)
