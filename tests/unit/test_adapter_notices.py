"""An adapter's own notices (the Matrix adapter telling a shared room why it leaves) take the one
road out: queued in the reply lane, paced and retried by the delivery worker, never sent once
and dropped on a 429."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.app import App
from bridge.config import load_settings
from bridge.ports import Address, NoticingAdapter, OutboxSend, RetryLater
from tests.support import FakeAdapter


class NoticingFake(FakeAdapter):
    """A fake adapter with notices of its own, sent through what the app installs."""

    def __init__(self) -> None:
        super().__init__()
        self.outbox: OutboxSend | None = None

    def use_outbox(self, send: OutboxSend) -> None:
        self.outbox = send


async def test_an_adapters_own_notice_is_retried_after_a_429_and_waited_for(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        env={
            "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
            "CHANNELBRIDGE_DELIVERY__BACKOFF_BASE_S": "0.05",
        },
    )
    fake = NoticingFake()
    app = App(settings, adapters=[fake])
    assert isinstance(fake, NoticingAdapter)
    assert fake.outbox is not None, "the app hands the reply lane to an adapter with notices"
    await app.start()
    try:
        fake.reply_script = [RetryLater(0.2)]  # the platform answers the first try with a 429
        room = Address("fake", "shared-room")
        await asyncio.wait_for(fake.outbox(room, "I only take commands in a direct chat.", True), 15)
        assert fake.replies == [("shared-room", "I only take commands in a direct chat.")]
        assert not app.notices.open_for(room)
    finally:
        await app.stop()
