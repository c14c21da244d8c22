"""Issue 11, finding 4: at DEBUG, with sends failing on purpose (400, 500) and a traceback
logged, the complete log output holds neither the bot token nor any user's id or name."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from adapters.telegram.adapter import TelegramAdapter
from bridge.app import App, configure_logging
from bridge.config import load_settings
from tests.telegram_api import FakeBotApi

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw9"


async def test_a_failing_send_at_debug_logs_no_token_and_no_id(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream)
    try:
        async with FakeBotApi(token=TOKEN) as api:
            operator = api.add_user("Olga", username="olga_op")
            settings = load_settings(
                None,
                env={
                    "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
                    "CHANNELBRIDGE_OPERATORS": json.dumps([{"telegram": operator.id}]),
                    "CHANNELBRIDGE_DELIVERY__BACKOFF_BASE_S": "0.05",
                    "CHANNELBRIDGE_DELIVERY__BACKOFF_MAX_S": "0.1",
                    "CHANNELBRIDGE_DELIVERY__MAX_ATTEMPTS": "2",
                },
            )
            adapter = TelegramAdapter(
                TOKEN, api_base_url=api.base_url, file_base_url=api.file_base_url, poll_timeout=1
            )
            app = App(settings, adapters=[adapter])
            await app.start()
            try:
                users = [operator] + [
                    api.add_user(n, username=f"{n.lower()}_u") for n in ("Ann", "Ben", "Cem")
                ]
                api.user_sends_text(operator.id, "/newchannel news Daily News")
                await api.wait_for(
                    lambda: len(api.bot_messages(operator.id)) >= 1, timeout=10, what="created"
                )
                for user in users[1:]:
                    api.user_sends_text(user.id, "/start news")
                    await api.wait_for(lambda u=user: api.bot_messages(u.id), timeout=10, what="followed")
                api.fail("sendMessage", chat_id=users[1].id, status=400, times=None)
                api.fail("sendMessage", chat_id=users[2].id, status=500, times=None)
                api.user_sends_text(operator.id, "/post news hello there")
                await api.wait_for(
                    lambda: len(api.bot_messages(users[3].id)) >= 2, timeout=15, what="the copy"
                )
                await app.sync(timeout=20)
                try:  # a traceback that carries ids and the token, as SQL errors and URLs do
                    raise RuntimeError(f"POST {api.base_url}{TOKEN}/sendMessage chat_id={users[1].id}")
                except RuntimeError:
                    logging.getLogger("bridge.delivery").exception("recording delivery outcomes failed")
            finally:
                await app.stop()
    finally:
        logging.getLogger().removeHandler(handler)
    output = stream.getvalue()
    assert "recording delivery outcomes failed" in output and "Traceback" in output
    assert "[redacted]" in output
    secret = TOKEN.split(":", 1)[1]
    assert secret not in output and TOKEN.split(":")[0] not in output
    for user in users:
        assert not re.search(rf"(?<!\d){user.id}(?!\d)", output), f"id of {user.first_name} logged"
        assert user.username and user.username not in output
