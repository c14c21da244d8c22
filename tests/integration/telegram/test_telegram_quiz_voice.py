"""Quizzes and voice posts through the whole App against the local Bot API server (issue 15,
parts 4 and 5): a quiz is Telegram's own quiz poll (Telegram shows the answer, the bot says
nothing more); a voice note goes out with sendVoice, uploaded once and reused by file_id, and its
caption edits and deletion reach every copy."""

from __future__ import annotations

import pytest

from adapters.base import InboundMedia, Message, PostKind
from tests.telegram_api import FakeBotApi

from .test_telegram_app import (  # noqa: F401  (fixtures used by name)
    CHANNEL,
    CONSOLE_OPERATOR,
    Start,
    adapter_logs_name_nobody,
    copies,
    copy_of,
    start_bridge,
)

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

#: an Ogg Opus voice note's first bytes (nobody decodes it)
VOICE = b"OggS\x00\x02" + b"\x00" * 20 + b"OpusHead\x01\x01\x38\x01" + bytes(range(200)) * 4


async def test_quiz_is_a_native_telegram_quiz_and_results_count_correct_answers(
    start_bridge: Start,  # noqa: F811
    api: FakeBotApi,
) -> None:
    bridge = await start_bridge()
    op = bridge.operator
    ann, ben, cem = [await bridge.follower(name) for name in ("Ann", "Ben", "Cem")]
    await bridge.post(
        op, '/quiz news "Capital of France?" "Lyon" "Paris" "Nice" --answer 2 --explain "Since 508."'
    )
    calls = api.calls_to("sendPoll")
    assert len(calls) == 3
    assert all(c.params["type"] == "quiz" and c.params["correct_option_ids"] == [1] for c in calls)
    polls = {}
    for user in (ann, ben, cem):
        msg = copy_of(api, user.id, 1)
        assert msg.poll is not None and msg.poll.type == "quiz"
        assert msg.poll.correct_option_id == 1 and msg.poll.explanation == "Since 508."
        assert msg.poll.question == f"{CHANNEL} (#1): Capital of France?"
        assert not msg.poll.is_anonymous and not msg.poll.allows_multiple_answers
        polls[user.id] = msg.poll.id

    before = {u.id: len(api.messages(u.id)) for u in (ann, ben, cem)}
    api.answer_poll(ann.id, polls[ann.id], [1])
    api.answer_poll(ben.id, polls[ben.id], [0])
    api.answer_poll(cem.id, polls[cem.id], [1])
    results = await bridge.ask(op, "/results 1", "Poll #1")
    assert results.splitlines()[-1] == "Answered correctly: 2 of 3"
    assert "2. Paris — 2" in results and "1. Lyon — 1" in results
    await bridge.app.sync()
    # Telegram showed each of them the answer: the bot sent nobody anything more
    assert {u.id: len(api.messages(u.id)) for u in (ann, ben, cem)} == before
    assert not any(str(u.id) in results for u in (ann, ben, cem))


async def test_voice_note_from_telegram_reuses_the_admins_file_and_is_edited_and_deleted(
    start_bridge: Start,  # noqa: F811
    api: FakeBotApi,
) -> None:
    bridge = await start_bridge()
    op = bridge.operator
    followers = [await bridge.follower(name) for name in ("Ann", "Ben", "Cem")]
    voice_msg = api.user_sends_voice(op.id, VOICE, caption="/post news Listen to this", duration=9)
    await bridge.answer(op, voice_msg.message_id, "is on its way")
    await bridge.app.sync()
    assert voice_msg.file is not None
    sends = api.calls_to("sendVoice")
    assert len(sends) == 3 and api.uploads == []  # the admin's own file_id serves every copy
    for user in followers:
        [voice] = copies(api, user.id)
        assert voice.kind == "voice" and voice.file is not None
        assert voice.file.file_id == voice_msg.file.file_id and voice.file.data == VOICE
        assert voice.caption == f"{CHANNEL} (#1)\nListen to this"
    assert {call.params["duration"] for call in sends} == {9}

    await bridge.ask(op, "/edit 1 Listen again", "3 delivered copies will be updated")
    await bridge.app.sync()
    for user in followers:
        assert copy_of(api, user.id, 1).caption == f"{CHANNEL} (#1)\nListen again"
    assert len(api.calls_to("editMessageCaption")) == 3
    await bridge.ask(op, "/delete 1", "3 delivered copies will be removed")
    await bridge.app.sync()
    for user in followers:
        assert copy_of(api, user.id, 1).deleted


async def test_voice_note_without_a_telegram_file_is_uploaded_once_and_reused(
    start_bridge: Start,  # noqa: F811
    api: FakeBotApi,
) -> None:
    bridge = await start_bridge()
    followers = [await bridge.follower(f"F{n}") for n in range(3)]
    replies = await bridge.app.engine.handle(
        Message(
            CONSOLE_OPERATOR,
            "/post news From the desk",
            InboundMedia(PostKind.VOICE, data=VOICE, mime="audio/ogg", filename="desk.ogg", duration=4),
        )
    )
    assert "is on its way to 3 followers" in replies[0].text
    await bridge.app.sync()
    assert len(api.uploads) == 1 and api.uploads[0].data == VOICE
    sends = api.calls_to("sendVoice")
    assert len(sends) == 3 and sum(1 for call in sends if call.files) == 1
    file_id = api.uploads[0].file_id
    assert sorted(call.params["voice"] for call in sends if not call.files) == [file_id] * 2
    for user in followers:
        [voice] = copies(api, user.id)
        assert voice.kind == "voice" and voice.file is not None and voice.file.file_id == file_id


async def test_a_voice_note_over_the_cap_is_refused_before_download(
    start_bridge: Start,  # noqa: F811
    api: FakeBotApi,
) -> None:
    bridge = await start_bridge(env={"CHANNELBRIDGE_MEDIA__MAX_VOICE_MB": "0.0005"})
    op = bridge.operator
    await bridge.follower("Ann")
    msg = api.user_sends_voice(op.id, VOICE * 2, caption="/post news Too long")
    answer = await bridge.answer(op, msg.message_id, "larger than")
    assert "voice" in answer and "nothing was posted" in answer
    assert api.calls_to("getFile") == [] and api.calls_to("sendVoice") == []
