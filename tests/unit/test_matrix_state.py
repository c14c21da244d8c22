"""What the Matrix adapter keeps in store_dir and how it paces itself after a 429 (no network)."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from nio import RoomSendError, RoomSendResponse

from adapters.base import Address, Content, Message, PostKind, RetryLater
from adapters.base import trace as _trace
from adapters.matrix.adapter import MatrixAdapter
from adapters.matrix.state import State as _State

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


class _Bucket:
    """A homeserver's message limiter like Synapse's: one event per `period`, burst `burst`;
    a refusal says how long until the bucket holds one more event."""

    def __init__(self, period: float, burst: int = 1) -> None:
        self.period, self.burst = period, burst
        self.loop = asyncio.get_running_loop()
        self.level = 0.0  # events in the bucket, draining at one per period
        self.at = self.loop.time()
        self.sent: list[tuple[float, bool, float]] = []  # (time, refused, retry_after)
        self.events: list[str] = []

    async def room_send(self, room_id: str, event_type: str, content: dict[str, object],
                        tx_id: str | None = None, **_: object) -> object:
        now = self.loop.time()
        self.level = max(0.0, self.level - (now - self.at) / self.period)
        self.at = now
        if self.level + 1 > self.burst + 1e-9:
            after = (self.level + 1 - self.burst) * self.period
            self.sent.append((now, True, after))
            return _limited(round(after * 1000))
        self.level += 1
        self.sent.append((now, False, 0.0))
        self.events.append(f"{room_id} {content.get('body', '')}")
        return RoomSendResponse(f"$e{len(self.events)}", room_id)


def _adapter_on(store: Path, bucket: _Bucket, rooms: list[str]) -> MatrixAdapter:
    adapter = _adapter(store)
    room = SimpleNamespace(joined_count=2, invited_users={}, encrypted=False,
                           users={"@bot:example.org": None, ALICE: None})
    adapter._client = SimpleNamespace(  # type: ignore[assignment]
        rooms=dict.fromkeys(rooms, room), room_send=bucket.room_send)
    return adapter


async def test_a_429_is_retry_later_for_the_worker_and_the_adapter_itself_never_waits(
    tmp_path: Path,
) -> None:
    bucket = _Bucket(period=0.2)
    adapter = _adapter_on(tmp_path, bucket, ["!r:s"])
    content = Content(post_id=1, kind=PostKind.TEXT, channel_handle="n", channel_name="N",
                      text="hi", delivery_id=3)
    await adapter.send(Address("matrix", "!r:s"), content)
    with pytest.raises(RetryLater) as caught:
        await adapter.send(Address("matrix", "!r:s"), content)
    assert caught.value.after_s == 0.2 and caught.value.scope == "global"
    assert adapter.rate_limited == 1
    # no gate of its own: the next request goes out at once (the worker decides when)
    with pytest.raises(RetryLater):
        await adapter.send(Address("matrix", "!r:s"), content)
    assert len(bucket.sent) == 3 and bucket.sent[2][0] - bucket.sent[1][0] < 0.05


async def test_after_a_429_the_worker_waits_for_retry_after_and_loses_nothing(
    tmp_path: Path,
) -> None:
    # pacing after a 429 is the delivery worker's (flood control), as for every platform: it
    # never sends while the server's retry_after runs, learns the server's pace and does not
    # keep drawing a 429 per event; nothing is lost or sent twice
    from bridge.delivery import DeliveryPolicy
    from tests.support import OPERATOR, build

    rooms = [f"!r{n}:s" for n in range(12)]
    bucket = _Bucket(period=0.25, burst=3)
    adapter = _adapter_on(tmp_path / "store", bucket, rooms)
    h = build(f"sqlite:///{tmp_path / 'db.sqlite'}", adapter=adapter,  # type: ignore[arg-type]
              policy=DeliveryPolicy(concurrency=4, backoff_base_s=0.01, backoff_max_s=0.05))
    h.worker.flood.configure(adapter.platform, adapter.default_limits)  # as the app does
    await h.worker.start()
    try:
        await h.say(OPERATOR, "/newchannel news Daily News")
        for room in rooms:
            await h.engine.handle(Message(Address("matrix", room), "/follow news"))
        await h.say(OPERATOR, "/post news one")
        await h.say(OPERATOR, "/post news two")
        await h.engine.drain_planning()
        await h.worker.drain(timeout=30)
    finally:
        await h.worker.stop()

    copies = [e for e in bucket.events if "(#" in e]
    follow = " · Follow: send /follow news to https://matrix.to/#/@bot:example.org"  # every copy's link
    assert sorted(copies) == sorted(f"{r} Daily News (#{n}){follow}\n{t}" for r in rooms
                                    for n, t in ((1, "one"), (2, "two")))
    for room in rooms:  # in order per chat
        mine = [e for e in copies if e.startswith(room + " ")]
        assert [e.endswith("one") for e in mine] == [True, False]
    refusals = [(t, after) for t, refused, after in bucket.sent if refused]
    assert refusals, "the server must have said 429 for this test to mean something"
    for t, after in refusals:  # never a request while a retry_after runs
        assert not [u for u, _r, _a in bucket.sent if t + 0.005 < u < t + after - 0.005], (t, after)
    assert len(refusals) <= len(copies) // 2, len(refusals)
    assert adapter.rate_limited == len(refusals)


async def test_send_while_not_running_is_retried_later(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path)
    content = Content(post_id=1, kind=PostKind.TEXT, channel_handle="n", channel_name="N",
                      text="hi", delivery_id=3)
    with pytest.raises(RetryLater) as caught:
        await adapter.send(Address("matrix", "!room:example.org"), content)
    assert "not running" in caught.value.reason


def test_gone_rooms_are_a_bounded_expiring_map(tmp_path: Path) -> None:
    import time

    from adapters.matrix import state as module

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
