"""Normalizing Matrix event JSON into neutral inbound values (pure functions)."""

from __future__ import annotations

import pytest

from adapters.base import Address, Message, PollVote, PostKind, Reaction
from adapters.matrix.normalize import (
    MediaMessage,
    ReactionSeen,
    RedactionSeen,
    normalize,
    post_ref,
    split_ref,
)

BOT = "@bot:localhost"
ROOM = "!dm:localhost"
ALICE = Address("matrix", "@alice:localhost", chat=ROOM)


def _event(event_type: str, content: dict, **extra) -> dict:
    return {"type": event_type, "sender": "@alice:localhost", "event_id": "$e1",
            "content": content, **extra}


def _norm(source: dict):
    return normalize(source, ROOM, own_user_id=BOT)


def test_text_command_becomes_message_with_dm_room_as_chat():
    item = _norm(_event("m.room.message", {"msgtype": "m.text", "body": " !follow news "}))
    assert item == Message(ALICE, "!follow news")


def test_bots_own_events_are_ignored():
    source = _event("m.room.message", {"msgtype": "m.text", "body": "/help"}, sender=BOT)
    assert _norm(source) is None


@pytest.mark.parametrize("msgtype", ["m.notice", "m.emote", "m.file"])
def test_other_message_types_are_skipped(msgtype):
    assert _norm(_event("m.room.message", {"msgtype": msgtype, "body": "/help"})) is None


def test_follower_edits_are_not_new_commands():
    content = {"msgtype": "m.text", "body": "* /follow x",
               "m.relates_to": {"rel_type": "m.replace", "event_id": "$0"}}
    assert _norm(_event("m.room.message", content)) is None


def test_encrypted_image_with_command_caption_points_at_the_file():
    file = {"url": "mxc://s/enc", "key": {"k": "K"}, "iv": "I", "hashes": {"sha256": "H"}}
    content = {"msgtype": "m.image", "body": "/post news hi", "filename": "a.png",
               "info": {"mimetype": "image/png", "w": 5, "h": 6}, "file": file}
    item = _norm(_event("m.room.message", content))
    assert isinstance(item, MediaMessage)
    assert item.text == "/post news hi"
    assert (item.media.kind, item.media.url, item.media.file) == (PostKind.PHOTO, "mxc://s/enc",
                                                                  file)
    assert (item.media.filename, item.media.mime, item.media.width) == ("a.png", "image/png", 5)


def test_media_without_command_caption_is_skipped():
    content = {"msgtype": "m.video", "body": "holiday.mp4", "url": "mxc://s/v"}
    assert _norm(_event("m.room.message", content)) is None


def test_sticker_with_command_body_is_a_sticker_media_message():
    item = _norm(_event("m.sticker", {"body": "/post news", "url": "mxc://s/st",
                                      "info": {"mimetype": "image/webp"}}))
    assert isinstance(item, MediaMessage) and item.media.kind is PostKind.STICKER


def test_reaction_keeps_its_event_id_for_later_redaction():
    content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$post", "key": "👍"}}
    item = _norm(_event("m.reaction", content))
    assert item == ReactionSeen(Reaction(ALICE, f"{ROOM}|$post", "👍"), "$e1")


def test_redaction_reports_what_was_redacted_in_both_room_version_shapes():
    assert _norm(_event("m.room.redaction", {}, redacts="$r")) == RedactionSeen(ALICE, ROOM, "$r")
    assert _norm(_event("m.room.redaction", {"redacts": "$r"})) == RedactionSeen(ALICE, ROOM, "$r")


@pytest.mark.parametrize(
    ("event_type", "content"),
    [
        ("org.matrix.msc3381.poll.response",
         {"org.matrix.msc3381.poll.response": {"answers": ["2", "0", "2"]}}),
        ("m.poll.response", {"m.selections": ["2", "0"]}),
        ("m.poll.response", {"m.poll.response": {"answers": ["2", "0"]}}),
    ],
)
def test_poll_responses_in_every_shape_become_votes(event_type, content):
    content["m.relates_to"] = {"rel_type": "m.reference", "event_id": "$poll"}
    assert _norm(_event(event_type, content)) == PollVote(ALICE, f"{ROOM}|$poll", (2, 0))


def test_empty_poll_answer_is_a_retraction():
    content = {"m.relates_to": {"rel_type": "m.reference", "event_id": "$poll"},
               "m.selections": []}
    assert _norm(_event("m.poll.response", content)) == PollVote(ALICE, f"{ROOM}|$poll", ())


def test_malformed_events_are_skipped():
    assert _norm(_event("m.reaction", {"m.relates_to": "nope"})) is None
    assert _norm(_event("m.poll.response", {"m.selections": ["0"]})) is None
    assert _norm({"type": "m.room.message", "content": {"body": "/x"}}) is None
    assert _norm(_event("m.room.message", {"msgtype": "m.image", "body": "/x", "url": 5})) is None


def test_refs_round_trip_and_reject_garbage():
    assert split_ref(post_ref("!r:s", "$e")) == ("!r:s", "$e")
    with pytest.raises(ValueError, match="matrix message key"):
        split_ref("no-separator")


def test_voice_message_with_command_caption_is_a_voice_media_message():
    content = {"msgtype": "m.audio", "body": "/post news listen", "url": "mxc://s/v",
               "info": {"mimetype": "audio/ogg", "size": 900},
               "org.matrix.msc3245.voice": {}, "org.matrix.msc1767.audio": {"duration": 7400}}
    item = _norm(_event("m.room.message", content))
    assert isinstance(item, MediaMessage) and item.text == "/post news listen"
    assert (item.media.kind, item.media.mime, item.media.duration) == (PostKind.VOICE, "audio/ogg", 7)
    assert item.media.size == 900


def test_plain_audio_is_no_post_kind():
    content = {"msgtype": "m.audio", "body": "/post news song", "url": "mxc://s/a",
               "info": {"mimetype": "audio/mpeg", "duration": 180000}}
    assert _norm(_event("m.room.message", content)) is None
