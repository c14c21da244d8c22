"""Voice posts in the engine, on SQLite and PostgreSQL: a voice note with the `/post` caption
is a post kind of its own, uploaded once per platform, capped like video, editable like a
photo; `--paid` works as for any post and `--stars` stays photo/video only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.engine import EngineOptions
from bridge.ports import InboundMedia, Message, PostKind
from tests.support import OPERATOR, Harness, build, person

VOICE = b"OggS\x00\x02" + b"\x00" * 20 + b"OpusHead" + bytes(range(64))


def _voice(data: bytes = VOICE, size: int | None = None) -> InboundMedia:
    return InboundMedia(PostKind.VOICE, data=data, mime="audio/ogg", filename="v.ogg", duration=7, size=size)


async def _post(h: Harness, caption: str, media: InboundMedia) -> str:
    return "\n".join(r.text for r in await h.engine.handle(Message(OPERATOR, caption, media)))


@pytest.fixture
async def paid_harness(store_url: str) -> AsyncIterator[Harness]:
    """A harness whose engine sells (payments on)."""
    h = build(store_url, options=EngineOptions(payments_enabled=True, payments_support="help@example.org"))
    await h.worker.start()
    yield h
    await h.worker.stop()
    h.store.dispose()


async def test_voice_note_reaches_every_follower_from_one_upload_and_is_editable(harness: Harness) -> None:
    h = harness
    await h.say(OPERATOR, "/newchannel news Daily News")
    for n in range(3):
        await h.say(person(n), "/follow news")
    assert "is on its way to 3 followers" in await _post(h, "/post news Listen", _voice())
    await h.settle()
    sends = h.adapter.of("send")
    assert len(sends) == 3 and h.adapter.uploads == 1
    assert sum(1 for call in sends if call.has_data) == 1  # the others reuse the platform's ref
    with h.store.session() as s:
        view = h.store.posts.view(s, 1, 0.0)
    assert view is not None and view.content.kind is PostKind.VOICE
    assert view.content.media is not None and view.content.media.duration == 7
    assert view.content.media.mime == "audio/ogg"
    assert "3 delivered copies will be updated" in await h.say(OPERATOR, "/edit 1 Listen again")
    await h.settle()
    assert [c.text for c in h.adapter.of("edit")] == ["Listen again"] * 3


async def test_voice_note_over_its_cap_is_refused_and_nothing_is_posted(harness: Harness) -> None:
    h = harness
    await h.say(OPERATOR, "/newchannel news Daily News")
    h.engine.options.media_limits[PostKind.VOICE] = 50
    answer = await _post(h, "/post news Too long", _voice(size=500))
    assert "larger than" in answer and "voice" in answer
    assert "There is no poll" in await h.say(OPERATOR, "/results 1")  # no post #1 exists


async def test_paid_voice_post_is_for_subscribers_and_stars_stay_photo_and_video(
    paid_harness: Harness,
) -> None:
    h = paid_harness
    await h.say(OPERATOR, "/newchannel news Daily News")
    await h.say(OPERATOR, "/price news 50")
    assert "on its way to subscribers" in await _post(h, "/post news --paid Members only", _voice())
    refused = await _post(h, "/post news --stars 5 Buy me", _voice())
    assert "photo or a video" in refused
