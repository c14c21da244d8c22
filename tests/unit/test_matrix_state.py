"""What the Matrix adapter keeps in store_dir and how it paces itself after a 429 (no network)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from nio import RoomSendError, RoomSendResponse

from adapters.base import Address, Content, PostKind, RetryLater
from adapters.matrix import MatrixAdapter
from adapters.matrix.adapter import _State, _trace

ALICE = "@alice:example.org"


def _adapter(store: Path) -> MatrixAdapter:
    adapter = MatrixAdapter("http://127.0.0.1:1", "@bot:example.org", access_token="t",
                            store_dir=store)
    store.mkdir(parents=True, exist_ok=True)
    adapter._hash_key = adapter._load_hash_key()
    return adapter


def test_user_hash_is_stable_per_store_and_differs_between_stores(tmp_path: Path) -> None:
    first, again = _adapter(tmp_path / "a"), _adapter(tmp_path / "a")
    other = _adapter(tmp_path / "b")

    assert first._user_hash(ALICE) == again._user_hash(ALICE)
    assert first._user_hash(ALICE) != other._user_hash(ALICE)
    assert ALICE not in first._user_hash(ALICE) and len(first._user_hash(ALICE)) == 32
    mode = (tmp_path / "a" / "state.key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_old_state_file_with_plain_user_ids_is_rewritten_hashed(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path)
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"dm_rooms": {ALICE: "!dm:example.org"},
                                "reactions": {"$r1": [ALICE, "!dm:example.org|$e1"]}}))
    state = _State.load(path)

    assert state.hash_user_ids(adapter._user_hash) is True
    state.save(path)

    text = path.read_text()
    assert ALICE not in text
    again = _State.load(path)
    assert again.dm_rooms == {adapter._user_hash(ALICE): "!dm:example.org"}
    assert again.reactions["$r1"] == [adapter._user_hash(ALICE), "!dm:example.org|$e1"]
    assert again.hash_user_ids(adapter._user_hash) is False  # already hashed: nothing to do


def test_removed_reaction_is_mapped_back_to_its_author_by_hash(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path)
    adapter._client = SimpleNamespace(rooms={"!m:example.org": SimpleNamespace(
        users={"@bot:example.org": None, ALICE: None, "@bob:example.org": None})})
    stored = adapter._user_hash(ALICE)

    assert adapter._member_with_hash("!m:example.org", stored, ALICE) == ALICE
    # a moderator redacted it: the author is found among the members
    assert adapter._member_with_hash("!m:example.org", stored, "@mod:example.org") == ALICE
    assert adapter._member_with_hash("!m:example.org", "0" * 32, ALICE) is None


def test_trace_keeps_the_stack_but_not_the_message() -> None:
    try:
        raise KeyError(ALICE)
    except KeyError as exc:
        text = _trace(exc)
    assert text.startswith("KeyError") and "test_matrix_state.py" in text
    assert ALICE not in text


def _limited(after_ms: int) -> RoomSendError:
    resp = RoomSendError("slow down", "M_LIMIT_EXCEEDED", after_ms, room_id="!r:s")
    resp.transport_response = SimpleNamespace(status=429)
    return resp


async def test_after_a_429_requests_wait_for_retry_after_and_go_out_spaced(
    tmp_path: Path,
) -> None:
    adapter = _adapter(tmp_path)
    loop = asyncio.get_running_loop()
    sent_at: list[float] = []
    answers = [_limited(200)]

    async def call() -> object:
        sent_at.append(loop.time())
        return answers.pop(0) if answers else RoomSendResponse("$e", "!r:s")

    with pytest.raises(RetryLater) as caught:
        await adapter._paced("send", call)
    assert caught.value.after_s == 0.2 and caught.value.scope == "global"

    await asyncio.gather(*(adapter._paced("send", call) for _ in range(3)))

    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert len(sent_at) == 4
    assert all(gap >= 0.19 for gap in gaps), gaps  # never faster than the server's refill


async def test_pacing_learns_the_refill_period_from_a_late_429_and_stops_drawing_429s(
    tmp_path: Path,
) -> None:
    # a homeserver bucket like Synapse's: one event per 0.3 s; a 429 tells the time until the
    # bucket holds one more event, which is less than the period when the request came late
    adapter = _adapter(tmp_path)
    loop = asyncio.get_running_loop()
    period = 0.3
    last_accept = loop.time() - 0.2
    accepted: list[float] = []
    refused: list[float] = []

    async def server() -> object:
        nonlocal last_accept
        now = loop.time()
        if now < last_accept + period - 0.005:
            refused.append(now)
            return _limited(round((last_accept + period - now) * 1000))
        last_accept = now
        accepted.append(now)
        return RoomSendResponse("$e", "!r:s")

    async def send_until_accepted() -> None:
        while True:  # the delivery worker retries a RetryLater; the gate paces the retry
            with contextlib.suppress(RetryLater):
                await adapter._paced("send", server)
                return

    with pytest.raises(RetryLater):  # a late request: "retry after 0.1 s"
        await adapter._paced("send", server)
    await asyncio.gather(*(send_until_accepted() for _ in range(6)))

    assert len(accepted) == 6
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    assert all(gap >= period - 0.01 for gap in gaps), gaps
    # spacing by the last retry-after alone would draw a 429 for about every event
    assert len(refused) <= 2, len(refused)
    assert sum(gaps) < 6 * period  # and the pace is the server's, not slower


async def test_send_while_not_running_is_retried_later(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path)
    content = Content(post_id=1, kind=PostKind.TEXT, channel_handle="n", channel_name="N",
                      text="hi", delivery_id=3)
    with pytest.raises(RetryLater) as caught:
        await adapter.send(Address("matrix", "!room:example.org"), content)
    assert "not running" in caught.value.reason


def test_gone_rooms_are_a_bounded_expiring_map(tmp_path: Path) -> None:
    import time

    from adapters.matrix import adapter as module

    path = tmp_path / "state.json"
    path.write_text(json.dumps({"gone_rooms": ["!old1:example.org", "!old2:example.org"]}))
    state = _State.load(path)
    assert set(state.gone_rooms) == {"!old1:example.org", "!old2:example.org"}  # old list form

    now = time.time()
    state.gone_rooms["!expired:example.org"] = now - module._GONE_TTL_S - 10
    for n in range(module._MAX_GONE + 500):
        state.mark_gone(f"!r{n}:example.org", now + n)
    state.save(path)

    again = _State.load(path)
    assert isinstance(again.gone_rooms, dict) and len(again.gone_rooms) == module._MAX_GONE
    assert "!expired:example.org" not in again.gone_rooms
    assert f"!r{module._MAX_GONE + 499}:example.org" in again.gone_rooms  # the newest stay
    assert "!r0:example.org" not in again.gone_rooms


def test_forget_user_erases_their_dm_reactions_and_handled_events(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path)
    alice, bob = adapter._user_hash(ALICE), adapter._user_hash("@bob:example.org")
    state = _State(
        dm_rooms={alice: "!a:example.org", bob: "!b:example.org"},
        gone_rooms={"!a:example.org": 1.0, "!b:example.org": 1.0},
        reactions={"$1": [alice, "!a:example.org|$p"], "$2": [bob, "!b:example.org|$p"],
                   "$3": [alice, "!mirror:example.org|$p"]},
        seen=["!a:example.org|$x", "!b:example.org|$y"],
    )
    state.forget_user(alice, {"!a:example.org"})
    assert state.dm_rooms == {bob: "!b:example.org"}
    assert state.gone_rooms == {"!b:example.org": 1.0}
    assert list(state.reactions) == ["$2"]
    assert state.seen == ["!b:example.org|$y"]
