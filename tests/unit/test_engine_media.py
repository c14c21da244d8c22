"""Inbound media is fetched only for an authorized admin's post, within the cap of its kind."""

from __future__ import annotations

from bridge.ports import InboundMedia, MediaTooLarge, Message, PermanentFailure, PostKind
from tests.support import OPERATOR, Harness, person


def _lazy(data: bytes, fetched: list[int], *, size: int | None = None, fail: bool = False) -> InboundMedia:
    async def fetch(limit: int) -> bytes:
        fetched.append(limit)
        if fail:
            raise PermanentFailure("download failed")
        if len(data) > limit:
            raise MediaTooLarge()
        return data

    return InboundMedia(PostKind.PHOTO, mime="image/png", filename="p.png", size=size, fetch=fetch)


async def _send(h: Harness, who, caption: str, media: InboundMedia) -> str:
    replies = await h.engine.handle(Message(who, caption, media))
    return "\n".join(r.text for r in replies)


async def test_media_of_strangers_and_of_non_posting_commands_is_never_fetched(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    fetched: list[int] = []
    assert "Only admins" in await _send(harness, person(1), "/post news x", _lazy(b"x", fetched))
    assert "/follow" in await _send(harness, person(1), "/help", _lazy(b"x", fetched))
    assert "caption" in await _send(harness, person(1), "holiday", _lazy(b"x", fetched))
    assert "There is no channel" in await _send(harness, OPERATOR, "/post nope x", _lazy(b"x", fetched))
    assert fetched == []


async def test_admin_media_is_capped_by_announced_size_then_by_bytes(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    harness.engine.options.media_limits[PostKind.PHOTO] = 100
    fetched: list[int] = []
    announced = await _send(harness, OPERATOR, "/post news a", _lazy(b"x" * 50, fetched, size=500))
    assert announced.startswith("This photo is larger than") and fetched == []
    lied = await _send(harness, OPERATOR, "/post news a", _lazy(b"x" * 500, fetched, size=10))
    assert lied == announced and fetched == [100]
    failed = await _send(harness, OPERATOR, "/post news a", _lazy(b"x", fetched, fail=True))
    assert "could not be downloaded" in failed
    up_front = InboundMedia(PostKind.PHOTO, data=b"x" * 101)  # e.g. bytes an adapter already had
    assert (await _send(harness, OPERATOR, "/post news a", up_front)).startswith("This photo is larger")
    ok = await _send(harness, OPERATOR, "/post news a", _lazy(b"x" * 100, fetched))
    assert "Post #1 is on its way" in ok
