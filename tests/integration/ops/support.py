"""Helpers for the operations tests: an App with metrics on an ephemeral port, HTTP getters,
and a metrics text parser."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import aiohttp

from bridge.app import App
from bridge.config import load_settings
from bridge.ports import Address
from tests.support import OPERATOR, FakeAdapter

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.urlsafe_b64encode(bytes(range(1, 33))).decode()

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def make_app(data_dir: Path, url: str | None = None, *, metrics: bool = True) -> App:
    """An App over a fake adapter (platform `fake`), metrics on 127.0.0.1 with a free port."""
    env = {
        "CHANNELBRIDGE_GENERAL__DATA_DIR": str(data_dir),
        "CHANNELBRIDGE_PRIVACY__KEY": KEY,
        "CHANNELBRIDGE_METRICS__ENABLED": "true" if metrics else "false",
        "CHANNELBRIDGE_METRICS__LISTEN": "127.0.0.1:0",
    }
    if url is not None:
        env["CHANNELBRIDGE_DATABASE__URL"] = url
    app = App(load_settings(None, env=env), adapters=[FakeAdapter()])
    app.engine.add_operator(OPERATOR)
    return app


def fake(app: App) -> FakeAdapter:
    """The app's fake adapter."""
    adapter = app.adapters["fake"]
    assert isinstance(adapter, FakeAdapter)
    return adapter


async def say(app: App, who: Address, text: str) -> None:
    """`who` sends `text` through the App's own inbound path (throttle, metrics, reply lane)."""
    from bridge.ports import Message

    await app.handle(Message(who, text))


async def get(app: App, path: str) -> tuple[int, str]:
    """GET a path of the app's HTTP server."""
    assert app.http is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{app.http.port}{path}", timeout=aiohttp.ClientTimeout(total=15)
        ) as response,
    ):
        return response.status, await response.text()


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample of a metrics exposition."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, line
        found[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return found
