"""The whole product over real HTTP: App (engine + delivery worker) + TelegramAdapter against the
local Bot API server.

People are FakeBotApi users typing into their private chats with the bot: an operator, an
invited admin, followers who join by deep link, and a mirror group. Posts of every kind, votes,
reactions, edits, deletes, muting, blocking and flood control are driven as a person (or
Telegram) would, and what lands in each chat is checked — including what must not happen.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.base import Address, InboundMedia, Message, PostKind, RateLimits
from adapters.telegram.adapter import TelegramAdapter
from bridge.app import App
from bridge.config import load_settings
from tests.telegram_api import ChatMessage, FakeBotApi, FakeUser

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    # PTB warns from inside RetryAfter.__init__ about its own timedelta migration
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

#: a 1280 x 960 PNG header (larger than the 90 x 90 thumbnail Telegram adds to a user's photo)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x05\x00\x00\x00\x03\xc0" + bytes(range(48))
CLIP = b"\x00\x00\x00\x18ftypmp42" + b"\x02" * 700
STICKER = b"RIFF\x00\x00\x00\x00WEBPVP8 sticker"
CHANNEL = "Daily News"
#: the console operator used to post media that carries no Telegram file_id yet
CONSOLE_OPERATOR = Address("console", "desk")
#: long-poll timeout: short, so stop() stays fast
POLL_TIMEOUT_S = 1
#: Telegram's global rate, but faster chats and groups than Telegram's 1/s and 20/min, so that a
#: test sending five posts to one chat does not wait four seconds (the pacing itself is what the
#: mirror test checks, and what bench/telegram_send.py measures at the real limits)
TEST_LIMITS = RateLimits(global_per_s=30, per_chat_per_s=5, group_per_min=240)


class Bridge:
    """A started App with its TelegramAdapter, the operator's Telegram account and helpers."""

    def __init__(self, app: App, api: FakeBotApi, operator: FakeUser) -> None:
        self.app = app
        self.api = api
        self.operator = operator

    async def ask(self, user: FakeUser, text: str, expect: str, *, timeout: float = 10.0) -> str:
        """`user` writes `text`; returns the bot's answer containing `expect`."""
        before = len(self.api.messages(user.id, include_deleted=True))
        self.api.user_sends_text(user.id, text)
        return await self.answer(user, before, expect, timeout=timeout)

    async def answer(self, user: FakeUser, before: int, expect: str, *, timeout: float = 10.0) -> str:
        """The first bot text in `user`'s chat after message number `before` containing `expect`."""

        def found() -> str | None:
            for msg in self.api.messages(user.id, include_deleted=True)[before:]:
                if msg.from_bot and msg.kind == "text" and expect in (msg.text or ""):
                    return msg.text
            return None

        text = await self.api.wait_for(found, timeout=timeout, what=f"a reply containing {expect!r}")
        assert text is not None
        return text

    async def follower(self, name: str, handle: str = "news") -> FakeUser:
        """A new user who opens the deep link t.me/<bot>?start=<handle> (Telegram sends
        `/start <handle>`)."""
        user = self.api.add_user(name)
        await self.ask(user, f"/start {handle}", "You now follow")
        return user

    async def post(self, user: FakeUser, text: str) -> str:
        """An admin command that publishes; waits for its answer and for every copy to go out."""
        answer = await self.ask(user, text, "is on its way")
        await self.app.sync()
        return answer


Start = Callable[..., Awaitable[Bridge]]


@pytest.fixture
async def start_bridge(api: FakeBotApi, tmp_path: Path) -> AsyncIterator[Start]:
    """Start an App wired to a TelegramAdapter on the local server; stopped after the test."""
    apps: list[App] = []

    async def make(*, env: dict[str, str] | None = None, limits: RateLimits = TEST_LIMITS) -> Bridge:
        operator = api.add_user("Olga")
        settings = load_settings(
            None,
            env={
                "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
                "CHANNELBRIDGE_OPERATORS": json.dumps(
                    [{"telegram": operator.id}, {"console": CONSOLE_OPERATOR.id}]
                ),
                "CHANNELBRIDGE_DELIVERY__BACKOFF_BASE_S": "0.2",
                "CHANNELBRIDGE_DELIVERY__BACKOFF_MAX_S": "1",
                **(env or {}),
            },
        )
        adapter = TelegramAdapter(
            api.token,
            api_base_url=api.base_url,
            file_base_url=api.file_base_url,
            poll_timeout=POLL_TIMEOUT_S,
            limits=limits,
        )
        app = App(settings, adapters=[adapter])
        await app.start()
        apps.append(app)
        bridge = Bridge(app, api, operator)
        await bridge.ask(operator, f"/newchannel news {CHANNEL}", "created")
        return bridge

    yield make
    for app in apps:
        if not app.stopped.is_set():
            await app.stop()


@pytest.fixture(autouse=True)
def adapter_logs_name_nobody(api: FakeBotApi, caplog: pytest.LogCaptureFixture) -> Any:
    """Every test here also proves the adapter's and the core's log lines carry no user id."""
    caplog.set_level(logging.DEBUG)
    yield
    ids = [str(user_id) for user_id in api.users] + [str(group_id) for group_id in api.groups]
    for record in caplog.records:
        if record.name.startswith(("adapters", "bridge")):
            line = record.getMessage() + (record.exc_text or "")
            assert not any(re.search(rf"(?<!\d){re.escape(i)}(?!\d)", line) for i in ids), (
                f"a {record.levelname} line from {record.name} names someone"
            )


def copies(api: FakeBotApi, chat_id: int, *, include_deleted: bool = False) -> list[ChatMessage]:
    """The post copies the bot delivered into a chat (not its command answers), oldest first."""
    return [
        msg
        for msg in api.bot_messages(chat_id, include_deleted=include_deleted)
        if msg.kind != "text" or (msg.text or "").startswith(f"{CHANNEL} (#")
    ]


def copy_of(api: FakeBotApi, chat_id: int, post_id: int) -> ChatMessage:
    """The (first message of the) copy of post #post_id in a chat."""
    header = f"{CHANNEL} (#{post_id})"
    for msg in copies(api, chat_id, include_deleted=True):
        shown = msg.text or msg.caption or (msg.poll.question if msg.poll else "")
        if shown.startswith(header):
            return msg
    raise AssertionError(f"no copy of #{post_id} in that chat")


def attempts_to(api: FakeBotApi, chat_id: int, method: str = "sendMessage") -> list[Any]:
    """Every call of `method` aimed at one chat (whatever the answer)."""
    return [call for call in api.calls_to(method) if call.chat_id == chat_id]


# -- followers receive every kind of post -----------------------------------------------------------


async def test_deep_link_follower_receives_text_photo_video_sticker_and_poll(
    start_bridge: Start, api: FakeBotApi
) -> None:
    bridge = await start_bridge()
    op = bridge.operator
    followers = [await bridge.follower(name) for name in ("Ann", "Ben", "Cem")]

    await bridge.post(op, "/post news Good morning <everyone> & welcome")
    photo_msg = api.user_sends_photo(op.id, PNG, caption="/post news Sunrise over the bay")
    await bridge.answer(op, photo_msg.message_id, "is on its way")
    video_msg = api.user_sends_video(op.id, CLIP, caption="/post news The clip", duration=4)
    await bridge.answer(op, video_msg.message_id, "is on its way")
    sticker_msg = api.user_sends_sticker(op.id, STICKER)  # a sticker has no caption…
    assert "Nothing to post" in await bridge.ask(op, "/post news", "Nothing to post")
    before = len(api.messages(op.id, include_deleted=True))
    api.user_sends_text(op.id, "/post news", reply_to=sticker_msg.message_id)  # …so reply to it
    await bridge.answer(op, before, "is on its way")
    await bridge.post(op, '/poll news "Lunch?" "Pizza" "Soup" "Salad"')

    for user in followers:
        got = copies(api, user.id)
        assert [msg.kind for msg in got] == ["text", "photo", "video", "sticker", "poll"]
        text, photo, video, sticker, poll = got
        assert text.text == f"{CHANNEL} (#1)\nGood morning <everyone> & welcome"
        assert photo.caption == f"{CHANNEL} (#2)\nSunrise over the bay" and photo.file is not None
        assert photo.file.data == PNG
        assert video.caption == f"{CHANNEL} (#3)\nThe clip" and video.file is not None
        assert video.file.data == CLIP
        assert sticker.file is not None and sticker.file.data == STICKER
        assert poll.poll is not None and poll.poll.question == f"{CHANNEL} (#5): Lunch?"
        assert poll.poll.options == ["Pizza", "Soup", "Salad"] and not poll.poll.is_anonymous
    # media the admin sent from Telegram already has a file_id this bot may use: nothing is
    # uploaded again, every copy reuses the admin's own file
    assert api.uploads == []
    assert {copy_of(api, u.id, 2).file.file_id for u in followers} == {  # type: ignore[union-attr]
        photo_msg.file.file_id  # type: ignore[union-attr]
    }
    # the bare "/post news" without media was refused, and posted nothing
    assert not any(m.poll and "(#6)" in m.poll.question for u in followers for m in copies(api, u.id))


async def test_media_without_a_telegram_file_id_is_uploaded_once_and_reused(
    start_bridge: Start, api: FakeBotApi
) -> None:
    bridge = await start_bridge()
    followers = [await bridge.follower(f"F{n}") for n in range(6)]
    # an admin on another platform posts a photo: the bytes are all Telegram can get
    replies = await bridge.app.engine.handle(
        Message(
            CONSOLE_OPERATOR,
            "/post news From the desk",
            InboundMedia(PostKind.PHOTO, data=PNG, mime="image/png", filename="desk.png"),
        )
    )
    assert "is on its way to 6 followers" in replies[0].text
    await bridge.app.sync()

    assert len(api.uploads) == 1 and api.uploads[0].data == PNG
    sends = api.calls_to("sendPhoto")
    assert len(sends) == 6 and sum(1 for call in sends if call.files) == 1
    file_id = api.uploads[0].file_id
    assert sorted(call.params["photo"] for call in sends if not call.files) == [file_id] * 5
    for user in followers:
        [photo] = copies(api, user.id)
        assert photo.caption == f"{CHANNEL} (#1)\nFrom the desk" and photo.file is not None
        assert photo.file.file_id == file_id


# -- votes and reactions ------------------------------------------------------------------------------


async def test_votes_and_reactions_from_every_copy_aggregate_in_results_and_stats(
    start_bridge: Start, api: FakeBotApi
) -> None:
    bridge = await start_bridge()
    op = bridge.operator
    ann, ben, cem, dan = [await bridge.follower(name) for name in ("Ann", "Ben", "Cem", "Dan")]
    await bridge.post(op, "/post news Vote below, react here")
    await bridge.post(op, '/poll news "Lunch?" "Pizza" "Soup" "Salad"')

    def poll_id(user: FakeUser) -> str:
        poll = copy_of(api, user.id, 2).poll
        assert poll is not None
        return poll.id

    api.answer_poll(ann.id, poll_id(ann), [0])
    api.answer_poll(ben.id, poll_id(ben), [1])
    api.answer_poll(cem.id, poll_id(cem), [1])
    api.answer_poll(dan.id, poll_id(dan), [2])
    api.answer_poll(dan.id, poll_id(dan), [])  # Dan retracts
    api.answer_poll(ann.id, poll_id(ann), [1])  # Ann changes her mind
    api.react(ann.id, copy_of(api, ann.id, 1).message_id, "👍")
    api.react(ben.id, copy_of(api, ben.id, 1).message_id, "👍")
    api.react(cem.id, copy_of(api, cem.id, 1).message_id, "❤")
    api.react(dan.id, copy_of(api, dan.id, 1).message_id, "🔥")
    api.react(dan.id, copy_of(api, dan.id, 1).message_id, None)  # Dan takes his back
    api.react(cem.id, copy_of(api, cem.id, 2).message_id, "🎉")  # a reaction on the poll copy

    # updates are handled in order: the answers below already count everything above
    results = await bridge.ask(op, "/results 2", "Poll #2")
    assert results.splitlines() == [
        "Poll #2: Lunch? (open, 3 voters)",
        "1. Pizza — 0 (0%)",
        "2. Soup — 3 (100%)",
        "3. Salad — 0 (0%)",
    ]
    # a follower may see the same aggregate, and nobody's identity
    assert await bridge.ask(ben, "/results 2", "Poll #2") == results
    stats = await bridge.ask(op, "/stats news", "Stats for")
    assert "Followers: 4 (telegram 4); muted 0" in stats
    assert "#1 text: delivered 4, pending 0, failed 0; reactions 👍 2 ❤ 1" in stats
    assert "#2 poll: delivered 4, pending 0, failed 0; reactions 🎉 1; votes (3 voters): " in stats
    assert "Pizza 0, Soup 3, Salad 0" in stats
    assert not any(str(u.id) in stats + results for u in (ann, ben, cem, dan))


# -- edit and delete ----------------------------------------------------------------------------------


async def test_edit_and_delete_reach_every_copy(start_bridge: Start, api: FakeBotApi) -> None:
    bridge = await start_bridge()
    op = bridge.operator
    followers = [await bridge.follower(name) for name in ("Ann", "Ben", "Cem")]
    await bridge.post(op, "/post news Meeting at 10")
    photo_msg = api.user_sends_photo(op.id, PNG, caption="/post news Old caption")
    await bridge.answer(op, photo_msg.message_id, "is on its way")
    await bridge.app.sync()

    assert "3 delivered copies will be updated" in await bridge.ask(op, "/edit 1 Meeting at 11", "edited")
    await bridge.ask(op, "/edit 2 New caption", "edited")
    await bridge.app.sync()
    for user in followers:
        text, photo = copies(api, user.id)
        assert text.text == f"{CHANNEL} (#1)\nMeeting at 11"
        assert text.history == [f"{CHANNEL} (#1)\nMeeting at 10"]
        assert photo.caption == f"{CHANNEL} (#2)\nNew caption"

    assert "3 delivered copies will be removed" in await bridge.ask(op, "/delete 1", "deleted")
    await bridge.app.sync()
    for user in followers:
        assert copy_of(api, user.id, 1).deleted
        assert [msg.kind for msg in copies(api, user.id)] == ["photo"]
    assert len(api.calls_to("deleteMessage")) == 3


# -- failures over HTTP ---------------------------------------------------------------------------------


async def test_blocked_follower_is_paused_and_never_retried(start_bridge: Start, api: FakeBotApi) -> None:
    bridge = await start_bridge()
    op = bridge.operator
    ann, ben, cem = [await bridge.follower(name) for name in ("Ann", "Ben", "Cem")]
    api.block(ben.id)

    await bridge.post(op, "/post news First")
    assert len(attempts_to(api, ben.id)) == 3  # welcome, follow answer, then the one post attempt
    assert [call.status for call in attempts_to(api, ben.id)][-1] == 403
    await bridge.post(op, "/post news Second")
    assert len(attempts_to(api, ben.id)) == 3  # paused: the second post is not even tried
    for user in (ann, cem):
        assert [msg.text for msg in copies(api, user.id)] == [
            f"{CHANNEL} (#1)\nFirst",
            f"{CHANNEL} (#2)\nSecond",
        ]
    stats = await bridge.ask(op, "/stats news", "Stats for")
    assert "Paused (blocked the bot or left): 1" in stats
    assert "#1 text: delivered 2, pending 0, failed 1 [recipient gone: " in stats
    assert "#2 text: delivered 2, pending 0, failed 0" in stats

    # unblocking and following again resumes delivery of new posts
    api.block(ben.id, blocked=False)
    await bridge.ask(ben, "/follow news", "You now follow")
    await bridge.post(op, "/post news Third")
    assert [msg.text for msg in copies(api, ben.id)] == [f"{CHANNEL} (#3)\nThird"]


async def test_flood_control_429s_delay_but_lose_nothing(start_bridge: Start, api: FakeBotApi) -> None:
    bridge = await start_bridge()
    op = bridge.operator
    followers = [await bridge.follower(f"F{n}") for n in range(6)]
    # a storm on every follower chat: each answers 429 (retry after 1 s) twice before accepting
    for user in followers:
        api.fail("sendMessage", chat_id=user.id, status=429, retry_after=1, times=2)

    started = time.monotonic()
    await bridge.post(op, "/post news Despite the flood")
    elapsed = time.monotonic() - started

    assert sum(1 for call in api.calls_to("sendMessage") if call.status == 429) == 12
    for user in followers:
        assert [msg.text for msg in copies(api, user.id)] == [f"{CHANNEL} (#1)\nDespite the flood"]
        tries = [call for call in attempts_to(api, user.id) if "Despite" in str(call.params.get("text"))]
        assert [call.status for call in tries] == [429, 429, 200]
        # retry_after is honoured: no retry comes sooner than the second Telegram asked for
        assert all(later.at - earlier.at >= 0.95 for earlier, later in itertools.pairwise(tries))
    assert elapsed >= 2.0
    stats = await bridge.ask(op, "/stats news", "Stats for")
    assert "#1 text: delivered 6, pending 0, failed 0" in stats


async def test_global_429_storm_on_send_message_loses_nothing(start_bridge: Start, api: FakeBotApi) -> None:
    bridge = await start_bridge()
    followers = [await bridge.follower(f"F{n}") for n in range(5)]
    api.fail("sendMessage", status=429, retry_after=1, times=7)  # whoever sends next is refused

    replies = await bridge.app.engine.handle(Message(CONSOLE_OPERATOR, "/post news Storm"))
    assert "is on its way" in replies[0].text
    await bridge.app.sync()

    assert sum(1 for call in api.calls_to("sendMessage") if call.status == 429) == 7
    for user in followers:
        assert [msg.text for msg in copies(api, user.id)] == [f"{CHANNEL} (#1)\nStorm"]


# -- admins and refusals ----------------------------------------------------------------------------------


async def test_invited_admin_posts_media_with_a_caption_command(start_bridge: Start, api: FakeBotApi) -> None:
    bridge = await start_bridge()
    invite = await bridge.ask(bridge.operator, "/invite-admin news", "One-time admin code")
    code = re.search(r"/accept ([0-9a-f]+)", invite)
    assert code is not None
    editor = api.add_user("Eve")
    assert "admin #2 of Daily News" in await bridge.ask(editor, f"/accept {code[1]}", "You are now admin")
    ann = await bridge.follower("Ann")

    photo_msg = api.user_sends_photo(editor.id, PNG, caption="/post news Fresh from the editor")
    await bridge.answer(editor, photo_msg.message_id, "is on its way to 1 follower")
    video_msg = api.user_sends_video(editor.id, CLIP, caption="/post news")
    await bridge.answer(editor, video_msg.message_id, "is on its way")
    await bridge.app.sync()

    photo, video = copies(api, ann.id)
    assert photo.kind == "photo" and photo.caption == f"{CHANNEL} (#1)\nFresh from the editor"
    assert video.kind == "video" and video.caption == f"{CHANNEL} (#2)"
    assert "#1 photo: delivered 1" in await bridge.ask(editor, "/stats news", "Stats for")


async def test_non_admin_admin_command_is_refused_and_nothing_is_posted(
    start_bridge: Start, api: FakeBotApi
) -> None:
    bridge = await start_bridge()
    ann, ben = await bridge.follower("Ann"), await bridge.follower("Ben")

    refusal = await bridge.ask(ann, "/post news I am not an admin", "Only admins")
    assert refusal == "Only admins of 'news' can do that."
    photo_msg = api.user_sends_photo(ann.id, PNG, caption="/post news sneaky photo")
    assert await bridge.answer(ann, photo_msg.message_id, "Only admins") == refusal
    assert "Only admins" in await bridge.ask(ann, '/poll news "Q?" "a" "b"', "Only admins")
    assert "Only admins" in await bridge.ask(ann, "/stats news", "Only admins")
    assert "Only operators" in await bridge.ask(ann, "/newchannel mine Mine", "Only operators")
    await bridge.app.sync()

    assert copies(api, ann.id) == [] and copies(api, ben.id) == []
    assert api.calls_to("sendPhoto") == [] and api.calls_to("sendPoll") == []
    stats = await bridge.ask(bridge.operator, "/stats news", "Stats for")
    assert "#" not in stats.split("muted", 1)[1]  # no post line at all


async def test_muted_follower_copy_is_sent_without_notification(start_bridge: Start, api: FakeBotApi) -> None:
    bridge = await start_bridge()
    loud, quiet = await bridge.follower("Loud"), await bridge.follower("Quiet")
    assert "muted" in await bridge.ask(quiet, "/mute news", "muted")

    await bridge.post(bridge.operator, "/post news Shh")
    photo_msg = api.user_sends_photo(bridge.operator.id, PNG, caption="/post news Shh photo")
    await bridge.answer(bridge.operator, photo_msg.message_id, "is on its way")
    await bridge.app.sync()

    assert [msg.disable_notification for msg in copies(api, quiet.id)] == [True, True]
    assert [msg.disable_notification for msg in copies(api, loud.id)] == [False, False]
    assert "muted 1" in await bridge.ask(bridge.operator, "/stats news", "Stats for")


async def test_mirror_group_and_channel_get_every_post(start_bridge: Start, api: FakeBotApi) -> None:
    bridge = await start_bridge()
    group = api.add_group("Daily News mirror")
    channel = api.add_group("Daily News channel", chat_type="channel")
    mirrors = [("telegram", str(group.id)), ("telegram", str(channel.id))]
    bridge.app.engine.ensure_channel("news", CHANNEL, "", True, mirrors)
    ann = await bridge.follower("Ann")

    answer = await bridge.ask(bridge.operator, "/post news To everyone", "is on its way")
    assert "1 follower and 2 mirror room(s)" in answer
    photo_msg = api.user_sends_photo(bridge.operator.id, PNG, caption="/post news Group photo")
    await bridge.answer(bridge.operator, photo_msg.message_id, "is on its way")
    await bridge.post(bridge.operator, '/poll news "Best day?" "Mon" "Fri"')
    await bridge.ask(bridge.operator, "/edit 1 To everyone, edited", "edited")
    await bridge.app.sync()

    for chat_id in (group.id, channel.id, ann.id):
        got = copies(api, chat_id)
        assert [msg.kind for msg in got] == ["text", "photo", "poll"]
        assert got[0].text == f"{CHANNEL} (#1)\nTo everyone, edited"
        assert got[1].caption == f"{CHANNEL} (#2)\nGroup photo"
        assert api.messages(chat_id) == got or chat_id == ann.id  # nothing but posts in a mirror
    # a channel refuses polls that show voters: its copy is anonymous, the others are not
    polls = {chat_id: copies(api, chat_id)[2].poll for chat_id in (group.id, channel.id, ann.id)}
    assert {chat_id: p.is_anonymous for chat_id, p in polls.items() if p} == {
        group.id: False,
        channel.id: True,
        ann.id: False,
    }
    # a group is paced at the group rate (240/min here: 0.25 s apart), not the private-chat rate
    group_calls = [call for call in api.calls if call.chat_id == group.id and call.method != "getUpdates"]
    assert len(group_calls) == 4
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(group_calls)]
    assert min(gaps) >= 0.24
    stats = await bridge.ask(bridge.operator, "/stats news", "Stats for")
    assert "Mirror rooms: 2" in stats and "#1 text: delivered 3" in stats and "#3 poll: delivered 3" in stats


async def test_strangers_media_is_never_downloaded_and_oversize_media_is_refused(
    start_bridge: Start, api: FakeBotApi
) -> None:
    bridge = await start_bridge(env={"CHANNELBRIDGE_MEDIA__MAX_PHOTO_MB": "0.001"})  # 1,048 bytes
    ann = await bridge.follower("Ann")
    big = PNG + bytes(2000)

    help_msg = api.user_sends_photo(ann.id, big, caption="/help")
    await bridge.answer(ann, help_msg.message_id, "/follow")
    post_msg = api.user_sends_photo(ann.id, big, caption="/post news x")
    assert "Only admins" in await bridge.answer(ann, post_msg.message_id, "Only admins")
    assert api.calls_to("getFile") == []  # neither photo was fetched

    too_big = api.user_sends_photo(bridge.operator.id, big, caption="/post news Too big")
    refusal = await bridge.answer(bridge.operator, too_big.message_id, "larger than")
    assert refusal.startswith("This photo is larger than the 0.001 MB allowed for a photo")
    assert api.calls_to("getFile") == []  # Telegram announced the size: nothing was fetched

    fine = api.user_sends_photo(bridge.operator.id, PNG, caption="/post news Small enough")
    await bridge.answer(bridge.operator, fine.message_id, "is on its way to 1 follower")
    await bridge.app.sync()
    [photo] = copies(api, ann.id)
    assert photo.kind == "photo" and photo.caption == f"{CHANNEL} (#1)\nSmall enough"
    assert len(api.calls_to("getFile")) == 1
