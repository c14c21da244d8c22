"""One channel, two platforms: a Telegram follower (local Bot API server) and a Matrix follower
(real Synapse) receive the same posts, and their votes and reactions land in one tally."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from adapters.matrix.adapter import MatrixAdapter
from adapters.telegram.adapter import TelegramAdapter
from bridge.app import App
from bridge.config import load_settings
from tests.telegram_api import FakeBotApi

from .conftest import Follower
from .synapse import RegisteredUser, SynapseServer
from .test_matrix_app import ask, ask_until, copy_of, numbered

pytestmark = [
    pytest.mark.matrix,
    pytest.mark.telegram,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]


async def test_votes_and_reactions_from_telegram_and_matrix_aggregate_in_one_tally(
    synapse: SynapseServer,
    bot_user: RegisteredUser,
    follower_factory: Callable[[], Awaitable[Follower]],
    tmp_path: Path,
) -> None:
    async with FakeBotApi() as api:
        tg_op, tg_fan = api.add_user("Olga"), api.add_user("Tom")
        mx_fan = await follower_factory()
        settings = load_settings(None, env={
            "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
            "CHANNELBRIDGE_OPERATORS": json.dumps([{"telegram": tg_op.id}]),
        })
        telegram = TelegramAdapter(api.token, api_base_url=api.base_url,
                                   file_base_url=api.file_base_url, poll_timeout=1)
        matrix = MatrixAdapter(synapse.url, bot_user.user_id, access_token=bot_user.access_token,
                               device_id=bot_user.device_id, store_dir=tmp_path / "bot-store")
        app = App(settings, adapters=[telegram, matrix])
        await app.start()
        try:
            async def telegram_says(user_id: int, text: str, expect: str) -> str:
                before = len(api.bot_messages(user_id))
                api.user_sends_text(user_id, text)

                def answer() -> str | None:
                    for msg in api.bot_messages(user_id)[before:]:
                        if expect in (msg.text or ""):
                            return msg.text
                    return None

                found = await api.wait_for(answer, timeout=15, what=expect)
                assert found is not None
                return found

            await telegram_says(tg_op.id, "/newchannel news Daily News", "created")
            await telegram_says(tg_fan.id, "/start news", "You now follow Daily News")
            room = await mx_fan.open_dm(bot_user.user_id, encrypted=True)
            await ask(mx_fan, room, "!follow news", bot_user.user_id, "You now follow Daily News")

            await telegram_says(tg_op.id, "/post news Both platforms", "Post #1 is on its way to 2")
            await telegram_says(tg_op.id, '/poll news "Tea or coffee?" "Tea" "Coffee"', "Post #2")

            def tg_copy(post_id: int):  # type: ignore[no-untyped-def]
                for msg in api.bot_messages(tg_fan.id):
                    shown = msg.text or (msg.poll.question if msg.poll else "")
                    if shown.startswith(f"Daily News (#{post_id})"):
                        return msg
                return None

            await api.wait_for(lambda: tg_copy(2), timeout=15, what="the Telegram poll copy")
            mx_text = await copy_of(mx_fan, room, bot_user.user_id, numbered(1))
            mx_poll = await copy_of(mx_fan, room, bot_user.user_id, numbered(2))
            assert mx_text.decrypted and mx_poll.decrypted

            tg_poll = tg_copy(2)
            assert tg_poll is not None and tg_poll.poll is not None
            api.answer_poll(tg_fan.id, tg_poll.poll.id, [1])
            api.react(tg_fan.id, tg_copy(1).message_id, "👍")
            await mx_fan.send(room, "org.matrix.msc3381.poll.response", {
                "m.relates_to": {"rel_type": "m.reference", "event_id": mx_poll.source["event_id"]},
                "org.matrix.msc3381.poll.response": {"answers": ["1"]}})
            await mx_fan.send(room, "m.reaction", {"m.relates_to": {
                "rel_type": "m.annotation", "event_id": mx_text.source["event_id"], "key": "👍"}})

            async def tally() -> str:
                for _ in range(80):  # votes from two platforms arrive asynchronously
                    text = await telegram_says(tg_op.id, "/results 2", "Poll #2")
                    if "2 voters" in text:
                        return text
                    await asyncio.sleep(0.25)
                raise AssertionError("the votes never added up")

            results = await tally()
            assert "2. Coffee — 2 (100%)" in results and "1. Tea — 0 (0%)" in results
            stats = await telegram_says(tg_op.id, "/stats news", "Stats for")
            assert "Followers: 2 (matrix 1, telegram 1)" in stats
            assert "#1 text: delivered 2, pending 0, failed 0; reactions 👍 2" in stats
            assert mx_fan.user_id not in stats and str(tg_fan.id) not in stats
            mx_results = await ask_until(mx_fan, room, "/results 2", bot_user.user_id, "Poll #2",
                                         lambda text: "2 voters" in text)
            assert mx_results == results
        finally:
            await app.stop()
