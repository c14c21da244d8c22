"""The whole product over a real Synapse: App (engine + delivery worker) + MatrixAdapter.

People are plain nio clients: an operator in an encrypted DM, followers in encrypted and
unencrypted DMs, a member of a read-only mirror room. Commands, posts of every kind, votes,
reactions, edits, deletes, muting, restarts, rate limits and leaving are driven exactly as a
person would, and what each person's client receives is checked — including what they must not
see (each other).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nio import MemoryDownloadResponse, RoomSendError
from nio.crypto import decrypt_attachment, encrypt_attachment

from adapters.base import Address, Message
from adapters.matrix.adapter import MatrixAdapter
from bridge.app import App
from bridge.config import load_settings
from bridge.privacy import read_sealed_file

from .conftest import Follower
from .synapse import RegisteredUser, SynapseServer

pytestmark = [pytest.mark.matrix, pytest.mark.integration]

PICTURE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3
CLIP = b"\x00\x00\x00\x18ftypmp42" + b"\x02" * 700
STICKER = b"RIFF\x00\x00\x00\x00WEBPVP8 sticker"
TEXT_KEY = "org.matrix.msc1767.text"
POLL_START = "org.matrix.msc3381.poll.start"
MATRIX_ID = re.compile(r"[@!#$][\w.=\-/+]+:localhost")

Bridge = Callable[..., Awaitable[tuple[App, MatrixAdapter]]]


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
async def bridge(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[Bridge]:
    """Start Apps wired to a MatrixAdapter; every App still running is stopped after the test."""
    apps: list[App] = []

    async def make(
        bot: RegisteredUser, operator_id: str, *, env: dict[str, str] | None = None
    ) -> tuple[App, MatrixAdapter]:
        settings = load_settings(None, env={
            "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
            "CHANNELBRIDGE_OPERATORS": json.dumps([{"matrix": operator_id}]),
            "CHANNELBRIDGE_DELIVERY__BACKOFF_BASE_S": "0.2",
            "CHANNELBRIDGE_DELIVERY__BACKOFF_MAX_S": "2",
            **(env or {}),
        })
        adapter = MatrixAdapter(synapse.url, bot.user_id, access_token=bot.access_token,
                                device_id=bot.device_id, store_dir=tmp_path / "bot-store")
        app = App(settings, adapters=[adapter])
        await app.start()
        apps.append(app)
        return app, adapter

    yield make
    for app in apps:
        if not app.stopped.is_set():
            await app.stop()


@pytest.fixture(autouse=True)
def adapter_logs_name_nobody(caplog: pytest.LogCaptureFixture) -> Any:
    """Every test here also proves the adapter's own log lines carry no user or room id."""
    caplog.set_level(logging.DEBUG, logger="adapters.matrix")
    yield
    for record in caplog.records:
        if record.name.startswith("adapters.matrix"):
            line = record.getMessage() + (record.exc_text or "")
            assert not MATRIX_ID.search(line), f"log line names someone: {record.levelname}"


def content_of(source: dict[str, Any]) -> dict[str, Any]:
    """An event's content (empty for malformed ones)."""
    content = source.get("content")
    return content if isinstance(content, dict) else {}


def text_of(source: dict[str, Any]) -> str:
    """The readable text of an event: `body`, or the MSC1767 fallback of a poll."""
    content = content_of(source)
    return str(content.get("body") or content.get(TEXT_KEY) or "")


def is_edit(source: dict[str, Any]) -> bool:
    """True for an `m.replace` edit event."""
    relates = content_of(source).get("m.relates_to")
    return isinstance(relates, dict) and relates.get("rel_type") == "m.replace"


async def ask(person: Follower, room_id: str, text: str, bot_id: str, expect: str,
              timeout: float = 20) -> str:
    """Send a command and return the bot's `m.notice` answer containing `expect`."""
    start = len(person.timeline.get(room_id, []))
    await person.say(room_id, text)
    found: list[str] = []

    def answered() -> bool:
        for ev in person.timeline.get(room_id, [])[start:]:
            source = ev.source
            if (source.get("sender") == bot_id
                    and content_of(source).get("msgtype") == "m.notice"
                    and expect in text_of(source)):
                found.append(text_of(source))
                return True
        return False

    await person.wait_until(answered, timeout)
    return found[0]


async def ask_until(person: Follower, room_id: str, text: str, bot_id: str, expect: str,
                    done: Callable[[str], bool], timeout: float = 20) -> str:
    """Repeat a read-only command until its answer satisfies `done` (votes arrive async)."""
    async with asyncio.timeout(timeout):
        while True:
            answer = await ask(person, room_id, text, bot_id, expect)
            if done(answer):
                return answer
            await asyncio.sleep(0.3)


async def copy_of(person: Follower, room_id: str, bot_id: str,
                  match: Callable[[dict[str, Any]], bool]) -> Any:
    """Wait for a post copy the bot delivered into `room_id` (not an edit)."""
    return await person.wait_event(
        room_id, lambda s: s.get("sender") == bot_id and not is_edit(s) and match(s))


def numbered(n: int) -> Callable[[dict[str, Any]], bool]:
    """Matches the copy of post #n (its header line)."""
    return lambda s: text_of(s).startswith(f"Daily News (#{n})")


async def download(person: Follower, url: str) -> bytes:
    """Fetch media as that person."""
    resp = await person.client.download(url)
    assert isinstance(resp, MemoryDownloadResponse), resp
    return resp.body


async def media_bytes(person: Follower, content: dict[str, Any]) -> bytes:
    """The plaintext of a delivered media event: decrypt `file`, or fetch the plain `url`."""
    file = content.get("file")
    if file is None:
        return await download(person, content["url"])
    cipher = await download(person, file["url"])
    return decrypt_attachment(cipher, file["key"]["k"], file["hashes"]["sha256"], file["iv"])


async def send_encrypted_media(person: Follower, room_id: str, msgtype: str, caption: str,
                               data: bytes, mime: str, filename: str, **info: Any) -> None:
    """Upload an encrypted attachment and send it with a caption (a command) in an E2EE room."""
    cipher, keys = encrypt_attachment(data)
    upload, _ = await person.client.upload(io.BytesIO(cipher), "application/octet-stream",
                                           filesize=len(cipher))
    await person.send(room_id, "m.room.message", {
        "msgtype": msgtype, "body": caption, "filename": filename,
        "info": {"mimetype": mime, **info}, "file": {"url": upload.content_uri, **keys}})


def adapter_state(app: App, store_dir: Path) -> str:
    """The Matrix adapter's state as the app keeps it: sealed with the privacy key (the plain
    state.json of an adapter without a sealer must not exist)."""
    assert not (store_dir / "state.json").exists()
    sealed = read_sealed_file(app.sealer, store_dir / "state.sealed")
    assert sealed is not None
    return sealed.decode()


def everything_seen(person: Follower) -> str:
    """Every event of every room the person's client received, as one JSON text."""
    return json.dumps([ev.source for events in person.timeline.values() for ev in events])


# -- the walk-through -----------------------------------------------------------------------------


async def test_operator_posts_reach_both_followers_privately_and_feedback_is_counted(
    synapse: SynapseServer, synapse_admin: RegisteredUser, bridge: Bridge, bot_user: RegisteredUser,
    follower_factory: Callable[[], Awaitable[Follower]],
) -> None:
    op, alice, bob, carol = [await follower_factory() for _ in range(4)]
    app, adapter = await bridge(bot_user, op.user_id)
    bot = bot_user.user_id
    op_room = await op.open_dm(bot, encrypted=True)
    await ask(op, op_room, "/newchannel news Daily News", bot, "created")
    mirror = await adapter.create_mirror_room("Daily News", "read-only copy of news")
    app.engine.ensure_channel("news", "Daily News", "", True, [("matrix", mirror)])
    assert (await carol.client.join(mirror)).room_id == mirror

    alice_room = await alice.open_dm(bot, encrypted=True)
    bob_room = await bob.open_dm(bot, encrypted=False)
    await ask(alice, alice_room, "/follow news", bot, "You now follow Daily News")
    await ask(bob, bob_room, "!follow news", bot, "You now follow Daily News")
    readers = ((alice, alice_room), (bob, bob_room), (carol, mirror))

    # 1 text, 2 photo, 3 video, 4 sticker, 5 poll — sent the way a Matrix client sends them
    await ask(op, op_room, "/post news Hello world", bot, "Post #1 is on its way")
    await send_encrypted_media(op, op_room, "m.image", "/post news A picture", PICTURE,
                               "image/png", "cat.png", w=16, h=12)
    sticker_up, _ = await op.client.upload(io.BytesIO(STICKER), "image/webp",
                                           filesize=len(STICKER))
    await send_encrypted_media(op, op_room, "m.video", "/post news A clip", CLIP, "video/mp4",
                               "clip.mp4", duration=3000)
    await op.send(op_room, "m.sticker", {"body": "/post news", "url": sticker_up.content_uri,
                                         "info": {"mimetype": "image/webp", "w": 8, "h": 8}})
    await ask(op, op_room, '/poll news "Lunch?" "Pizza" "Sushi"', bot, "Post #5 is on its way")

    copies: dict[tuple[str, int], dict[str, Any]] = {}
    for person, room in readers:
        for n in (1, 2, 3, 5):
            ev = await copy_of(person, room, bot, numbered(n))
            assert ev.decrypted is (person is alice)  # E2EE in alice's DM, in the clear elsewhere
            copies[(person.user_id, n)] = ev.source
        sticker = await copy_of(person, room, bot, lambda s: s.get("type") == "m.sticker")
        copies[(person.user_id, 4)] = sticker.source
    for person, _room in readers:
        mine = {n: copies[(person.user_id, n)] for n in range(1, 6)}
        follow = f" · Follow: send /follow news to https://matrix.to/#/{bot}"  # every copy's follow link
        assert text_of(mine[1]) == f"Daily News (#1){follow}\nHello world"
        assert content_of(mine[1])["msgtype"] == "m.text"
        assert content_of(mine[2])["msgtype"] == "m.image"
        assert text_of(mine[2]) == f"Daily News (#2){follow}\nA picture"
        assert await media_bytes(person, content_of(mine[2])) == PICTURE
        assert content_of(mine[3])["msgtype"] == "m.video"
        assert content_of(mine[3])["info"]["duration"] == 3000
        assert await media_bytes(person, content_of(mine[3])) == CLIP
        assert await download(person, content_of(mine[4])["url"]) == STICKER
        start = content_of(mine[5])[POLL_START]
        assert mine[5]["type"] == POLL_START
        assert [a[TEXT_KEY] for a in start["answers"]] == ["Pizza", "Sushi"]
        # the encrypted DM gets encrypted media only; the others a plain reusable upload
        encrypted = person is alice
        assert ("file" in content_of(mine[2])) is encrypted
        assert ("url" in content_of(mine[2])) is not encrypted

    # the mirror room is read-only for members; their reactions count
    refused = await carol.client.room_send(mirror, "m.room.message",
                                           {"msgtype": "m.text", "body": "/follow news"})
    assert isinstance(refused, RoomSendError) and refused.transport_response.status == 403

    # votes on the native polls, reactions on the text post, from all three places
    for person, room, answer in ((alice, alice_room, "0"), (bob, bob_room, "1")):
        await person.send(room, "org.matrix.msc3381.poll.response", {
            "m.relates_to": {"rel_type": "m.reference",
                             "event_id": copies[(person.user_id, 5)]["event_id"]},
            "org.matrix.msc3381.poll.response": {"answers": [answer]}})
    for person, room, key in ((alice, alice_room, "👍"), (bob, bob_room, "👍"),
                              (carol, mirror, "🎉")):
        await person.send(room, "m.reaction", {"m.relates_to": {
            "rel_type": "m.annotation", "event_id": copies[(person.user_id, 1)]["event_id"],
            "key": key}})
    results = await ask_until(op, op_room, "/results 5", bot, "Poll #5",
                              lambda text: "2 voters" in text)
    assert "1. Pizza — 1 (50%)" in results and "2. Sushi — 1 (50%)" in results

    def counted(text: str) -> bool:
        first = next((line for line in text.splitlines() if line.startswith("#1 ")), "")
        return "👍 2" in first and "🎉 1" in first and "votes (2 voters): Pizza 1, Sushi 1" in text

    stats = await ask_until(op, op_room, "/stats news", bot, "Stats for Daily News", counted)
    assert "Followers: 2 (matrix 2); muted 0" in stats and "Mirror rooms: 1" in stats

    # edits reach every copy as m.replace; deletes redact every copy
    await ask(op, op_room, "/edit 1 Hello edited", bot, "Post #1 edited; 3 delivered copies")
    await ask(op, op_room, "/delete 2", bot, "Post #2 deleted: 3 delivered copies")
    for person, room in readers:
        first = copies[(person.user_id, 1)]["event_id"]
        edit = await person.wait_event(room, lambda s, e=first: is_edit(s)
                                       and content_of(s)["m.relates_to"]["event_id"] == e)
        assert content_of(edit.source)["m.new_content"]["body"] == f"Daily News (#1){follow}\nHello edited"
        photo = copies[(person.user_id, 2)]["event_id"]
        await person.wait_event(room, lambda s, e=photo: s.get("type") == "m.room.redaction"
                                and (s.get("redacts") or content_of(s).get("redacts")) == e)

    # a muted follower gets the next post as a notice
    await ask(bob, bob_room, "/mute news", bot, "is muted")
    await ask(op, op_room, "/post news Quietly", bot, "Post #6 is on its way")
    quiet_bob = await copy_of(bob, bob_room, bot, numbered(6))
    quiet_alice = await copy_of(alice, alice_room, bot, numbered(6))
    assert content_of(quiet_bob.source)["msgtype"] == "m.notice"
    assert content_of(quiet_alice.source)["msgtype"] == "m.text"
    await app.sync()

    # nobody can see anyone else: each DM holds the bot and that person only, and nothing the
    # bot wrote anywhere names another person
    for person, room in ((alice, alice_room), (bob, bob_room), (op, op_room)):
        assert sorted(synapse.room_members(synapse_admin.access_token, room)) == sorted(
            [bot, person.user_id])
    for person in (alice, bob, carol, op):
        seen = everything_seen(person)
        for other in {alice, bob, carol, op} - {person}:
            assert other.user_id not in seen
    stats = await ask(op, op_room, "/stats news", bot, "Stats for Daily News")
    assert not MATRIX_ID.search(stats.replace(mirror, ""))

    # the adapter's state names nobody, even unsealed; no file in store_dir names anybody
    state = adapter_state(app, Path(adapter._store_dir))
    for person in (alice, bob, carol, op):
        assert person.user_id not in state
        for path in Path(adapter._store_dir).iterdir():
            assert person.user_id.encode() not in path.read_bytes(), path.name


async def test_restart_mid_conversation_neither_replays_nor_misses_and_leaver_is_paused(
    synapse: SynapseServer, synapse_admin: RegisteredUser, bridge: Bridge,
    bot_user: RegisteredUser, follower_factory: Callable[[], Awaitable[Follower]],
) -> None:
    op, alice, bob = [await follower_factory() for _ in range(3)]
    bot = bot_user.user_id
    app, _ = await bridge(bot_user, op.user_id)
    op_room = await op.open_dm(bot, encrypted=True)
    await ask(op, op_room, "/newchannel news Daily News", bot, "created")
    alice_room = await alice.open_dm(bot, encrypted=True)
    bob_room = await bob.open_dm(bot, encrypted=False)
    await ask(alice, alice_room, "/follow news", bot, "You now follow")
    await ask(bob, bob_room, "/follow news", bot, "You now follow")
    await ask(bob, bob_room, "/mute news", bot, "is muted")

    await app.stop()
    await bob.say(bob_room, "/unmute news")  # while the bot is down
    app, _ = await bridge(bot_user, op.user_id)  # same data_dir and store_dir
    await ask(bob, bob_room, "/following", bot, "Daily News")
    await ask(op, op_room, "/post news After the restart", bot, "Post #1 is on its way")
    after = await copy_of(bob, bob_room, bot, numbered(1))
    assert content_of(after.source)["msgtype"] == "m.text"  # the unmute was not missed
    await copy_of(alice, alice_room, bot, numbered(1))

    def answers(person: Follower, room: str, text: str) -> int:
        return sum(1 for ev in person.timeline[room]
                   if ev.source.get("sender") == bot and text in text_of(ev.source))

    await bob.sync(0)
    await alice.sync(0)
    assert answers(bob, bob_room, "You now follow") == 1  # nothing was replayed
    assert answers(bob, bob_room, "is muted") == 1
    assert answers(bob, bob_room, "is unmuted") == 1  # handled once, after the restart
    assert answers(alice, alice_room, "You now follow") == 1
    assert answers(bob, bob_room, "Daily News (#1)") == 1

    # a follower who leaves their DM: the next copy fails as "recipient gone" and pauses them
    await alice.leave(alice_room)
    async with asyncio.timeout(15):  # the bot notices and leaves the empty room too
        while bot in synapse.room_members(synapse_admin.access_token, alice_room):
            await asyncio.sleep(0.1)
    await ask(op, op_room, "/post news After alice left", bot, "Post #2 is on its way")
    await copy_of(bob, bob_room, bot, numbered(2))
    await app.sync()
    stats = await ask(op, op_room, "/stats news", bot, "Stats for Daily News")
    assert "Paused (blocked the bot or left): 1" in stats
    line = next(s for s in stats.splitlines() if s.startswith("#2 "))
    assert "delivered 1" in line and "failed 1" in line and "recipient gone" in line
    assert alice.user_id not in stats and bob.user_id not in stats


async def _fanout_under_limit(
    synapse: SynapseServer, bridge: Bridge, slow_bot: RegisteredUser,
    follower_factory: Callable[[], Awaitable[Follower]], count: int,
) -> App:
    """`count` followers in plain DMs with a bot that is NOT exempt from rate limits; one post."""
    op = await follower_factory()
    app, _ = await bridge(slow_bot, op.user_id, env={"CHANNELBRIDGE_DELIVERY__BACKOFF_MAX_S": "1"})
    operator = Address("matrix", op.user_id)
    await app.engine.handle(Message(operator, "/newchannel news Daily News"))

    # the followers open DMs at once: the bot's joins already meet the limit (and are retried)
    followers = [await follower_factory() for _ in range(count)]
    room_ids = await asyncio.gather(*(
        person.open_dm(slow_bot.user_id, encrypted=False, timeout=150) for person in followers))
    rooms = {person.user_id: room for person, room in zip(followers, room_ids, strict=True)}
    for person in followers:  # the follows go straight to the engine: this test is about the
        # fan-out, and the answers would only stretch it (answers are covered above)
        await app.engine.handle(Message(
            Address("matrix", person.user_id, chat=rooms[person.user_id]), "/follow news"))

    await app.engine.handle(Message(operator, "/post news To all of you"))
    await app.engine.drain_planning()
    await app.worker.drain(timeout=150)

    for person in followers:
        room = rooms[person.user_id]
        await copy_of(person, room, slow_bot.user_id, numbered(1))
        await person.sync(0)
        got = [ev for ev in person.timeline[room] if numbered(1)(ev.source)]
        assert len(got) == 1
    assert app.worker.stats.failed == 0 and app.worker.stats.sent == count
    return app


async def test_fanout_against_homeserver_rate_limit_is_delayed_but_complete(
    synapse: SynapseServer, synapse_admin: RegisteredUser, bridge: Bridge,
    new_user: Callable[..., RegisteredUser],
    follower_factory: Callable[[], Awaitable[Follower]],
) -> None:
    slow_bot = new_user("slowbot", exempt=False)
    # Synapse's default rc_message (0.2/s, burst 10) with 20 followers would take two minutes:
    # the same limiter with the same burst at 2/s keeps this larger fan-out short.
    synapse.set_message_ratelimit(synapse_admin.access_token, slow_bot.user_id, 2, 10)
    app = await _fanout_under_limit(synapse, bridge, slow_bot, follower_factory, 20)
    adapter = app.adapters["matrix"]
    assert isinstance(adapter, MatrixAdapter)
    # the homeserver did say 429 (to the joins or the sends), and the bot waited: the adapter's
    # pacing after a 429 spaces the sends, so the worker may not even see one
    assert adapter.rate_limited > 0


async def test_synapse_default_limits_produce_429s_that_delay_but_lose_nothing(
    synapse: SynapseServer, bridge: Bridge, new_user: Callable[..., RegisteredUser],
    follower_factory: Callable[[], Awaitable[Follower]],
) -> None:
    # untouched defaults (0.2 messages/s, burst 10): 7 joins + 7 posts go past the burst
    slow_bot = new_user("defaultbot", exempt=False)
    app = await _fanout_under_limit(synapse, bridge, slow_bot, follower_factory, 7)
    assert app.worker.stats.retried > 0


async def test_operator_creates_a_read_only_mirror_room_by_command(
    bridge: Bridge, bot_user: RegisteredUser, follower_factory: Callable[[], Awaitable[Follower]],
) -> None:
    op, member = await follower_factory(), await follower_factory()
    _app, _adapter = await bridge(bot_user, op.user_id)
    bot = bot_user.user_id
    op_room = await op.open_dm(bot, encrypted=False)
    await ask(op, op_room, "/newchannel news Daily News", bot, "created")
    answer = await ask(op, op_room, "/mirror news create matrix", bot, "now mirrors")
    room = re.search(r"matrix:(![^ ]+) now mirrors", answer)
    assert room is not None and "see each other" in answer
    mirror = room.group(1)
    assert (await member.client.join(mirror)).room_id == mirror
    await ask(op, op_room, "/post news into the mirror", bot, "Post #1 is on its way")
    copy = await copy_of(member, mirror, bot, numbered(1))
    follow = f" · Follow: send /follow news to https://matrix.to/#/{bot}"  # mirror copies carry it too
    assert text_of(copy.source) == f"Daily News (#1){follow}\ninto the mirror"
    refused = await member.client.room_send(mirror, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert isinstance(refused, RoomSendError) and refused.transport_response.status == 403


async def test_forgetme_also_erases_the_adapter_state_and_leaves_the_dm(
    bridge: Bridge, bot_user: RegisteredUser, follower_factory: Callable[[], Awaitable[Follower]],
    tmp_path: Path,
) -> None:
    op, alice = [await follower_factory() for _ in range(2)]
    app, adapter = await bridge(bot_user, op.user_id)
    bot = bot_user.user_id
    op_room = await op.open_dm(bot, encrypted=False)
    await ask(op, op_room, "/newchannel news Daily News", bot, "created")
    alice_room = await alice.open_dm(bot, encrypted=True)
    await ask(alice, alice_room, "/follow news", bot, "You now follow Daily News")
    await ask(op, op_room, "/post news Hello", bot, "Post #1 is on its way")
    copy = await copy_of(alice, alice_room, bot, numbered(1))
    await alice.send(alice_room, "m.reaction", {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": copy.source["event_id"], "key": "👍"}})
    await ask_until(op, op_room, "/stats news", bot, "news", lambda text: "👍" in text)
    store_dir = tmp_path / "bot-store"
    user_hash = adapter._user_hash(alice.user_id)
    assert user_hash in adapter_state(app, store_dir) and alice_room in adapter_state(app, store_dir)

    await ask(alice, alice_room, "/forgetme", bot, "erased")

    def bot_left() -> bool:
        room = alice.client.rooms.get(alice_room)
        return room is not None and bot not in room.users

    await alice.wait_until(bot_left)
    text = adapter_state(app, store_dir)
    assert user_hash not in text and alice_room not in text
    assert copy.source["event_id"] not in text


async def test_strangers_media_is_never_downloaded_and_oversize_media_is_refused(
    bridge: Bridge, bot_user: RegisteredUser, follower_factory: Callable[[], Awaitable[Follower]],
) -> None:
    op, ann = [await follower_factory() for _ in range(2)]
    _app, adapter = await bridge(bot_user, op.user_id,
                                 env={"CHANNELBRIDGE_MEDIA__MAX_PHOTO_MB": "0.001"})  # 1,048 bytes
    bot = bot_user.user_id
    downloads: list[str] = []
    real_download = adapter._download

    async def counting(pointer: Any, limit: int | None = None) -> bytes:
        downloads.append(pointer.url)
        return await real_download(pointer, limit)

    adapter._download = counting  # type: ignore[method-assign]
    op_room = await op.open_dm(bot, encrypted=True)
    await ask(op, op_room, "/newchannel news Daily News", bot, "created")
    ann_room = await ann.open_dm(bot, encrypted=True)
    await ask(ann, ann_room, "/follow news", bot, "You now follow")
    big = PICTURE + bytes(2000)

    async def send_photo(person: Follower, room: str, caption: str, data: bytes,
                         expect: str, **info: Any) -> str:
        start = len(person.timeline.get(room, []))
        await send_encrypted_media(person, room, "m.image", caption, data, "image/png", "p.png",
                                   **info)
        found: list[str] = []

        def answered() -> bool:
            for ev in person.timeline.get(room, [])[start:]:
                if ev.source.get("sender") == bot and expect in text_of(ev.source):
                    found.append(text_of(ev.source))
                    return True
            return False

        await person.wait_until(answered)
        return found[0]

    await send_photo(ann, ann_room, "/help", big, "/follow")
    await send_photo(ann, ann_room, "/post news x", big, "Only admins")
    assert downloads == []  # a stranger's media is never fetched

    # the size the client announces is checked first; a lie is caught while downloading
    announced = await send_photo(op, op_room, "/post news Big", big, "larger than", size=len(big))
    lied = await send_photo(op, op_room, "/post news Big", big, "larger than", size=10)
    assert announced.startswith("This photo is larger than the 0.001 MB allowed for a photo")
    assert lied == announced and len(downloads) == 1

    await send_photo(op, op_room, "/post news Small", PICTURE, "is on its way to 1 follower")
    copy = await copy_of(ann, ann_room, bot, numbered(1))
    assert await media_bytes(ann, content_of(copy.source)) == PICTURE
