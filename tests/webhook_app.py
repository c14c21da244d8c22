"""The whole App in webhook mode as a process of its own, for the SIGKILL tests; configured by
the `CHANNELBRIDGE_*` environment. Run as `python -m tests.webhook_app MODE`, MODE one of
`normal`, `slow-record` (an update is received but never recorded: the request hangs) or
`slow-process` (recorded and acknowledged, never processed)."""

from __future__ import annotations

import asyncio
import sys
import time

from adapters.telegram.adapter import TelegramAdapter
from bridge.app import App, run_app
from bridge.config import load_settings
from bridge.inbox import WebhookInbox


def _hang_recording() -> None:
    original = WebhookInbox._record

    def record(self: WebhookInbox, updates: list[tuple[int, bytes]]) -> list[bool]:
        time.sleep(3600)  # killed here, between receipt and acknowledgement
        return original(self, updates)

    WebhookInbox._record = record  # type: ignore[method-assign]


def _hang_processing() -> None:
    async def process(self: TelegramAdapter, update: dict[str, object]) -> None:
        await asyncio.sleep(3600)  # killed here, after the acknowledgement

    TelegramAdapter.process_update = process  # type: ignore[method-assign]


async def main(mode: str) -> None:
    if mode == "slow-record":
        _hang_recording()
    elif mode == "slow-process":
        _hang_processing()
    await run_app(App(load_settings(None)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
