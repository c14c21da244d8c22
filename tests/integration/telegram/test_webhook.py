"""Webhook mode against the local Bot API server: the App registers its webhook, Telegram (the
fake) POSTs updates with the secret header, and each is recorded before it is acknowledged,
run once, and never lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from adapters.telegram.adapter import TelegramAdapter
from bridge.app import App
from bridge.config import load_settings
from bridge.ports import WebhookSpec
from bridge.store import Store
from bridge.store.database import sqlite_url
from tests.telegram_api import SECRET_HEADER, FakeBotApi, FakeUser

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

SECRET = "s3cret-webhook_token"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CountingAdapter(TelegramAdapter):
    """The Telegram adapter, counting how often each update_id is processed."""

    processed: Counter[int]

    async def process_update(self, update: dict[str, object]) -> None:
        """Count, then process as usual."""
        self.processed[int(str(update["update_id"]))] += 1
        await super().process_update(update)


def webhook_env(api: FakeBotApi, data_dir: Path, port: int, operator: int) -> dict[str, str]:
    """The environment of an App on the local server in webhook mode (the whole config path)."""
    return {
        "CHANNELBRIDGE_GENERAL__DATA_DIR": str(data_dir),
        "CHANNELBRIDGE_OPERATORS": json.dumps([{"telegram": operator}]),
        "CHANNELBRIDGE_TELEGRAM__ENABLED": "true",
        "CHANNELBRIDGE_TELEGRAM__TOKEN": api.token,
        "CHANNELBRIDGE_TELEGRAM__API_BASE_URL": api.base_url,
        "CHANNELBRIDGE_TELEGRAM__FILE_BASE_URL": api.file_base_url,
        "CHANNELBRIDGE_TELEGRAM__WEBHOOK_URL": f"http://127.0.0.1:{port}/tg/hook",
        "CHANNELBRIDGE_TELEGRAM__WEBHOOK_LISTEN": f"127.0.0.1:{port}",
        "CHANNELBRIDGE_TELEGRAM__WEBHOOK_PATH": "/tg/hook",
        "CHANNELBRIDGE_TELEGRAM__WEBHOOK_SECRET": SECRET,
    }


class Running:
    """A started App in webhook mode, its adapter and the URL it listens on."""

    def __init__(self, app: App, adapter: CountingAdapter, url: str, operator: FakeUser) -> None:
        self.app = app
        self.adapter = adapter
        self.url = url
        self.operator = operator

    def rows(self) -> list[tuple[int, bool, bool]]:
        """(update_id, done, has a body) of every recorded update."""
        with self.app.store.connection() as conn:
            found = conn.execute(
                text("SELECT update_id, done, body IS NOT NULL FROM received_update ORDER BY id")
            ).all()
        return [(int(r[0]), bool(r[1]), bool(r[2])) for r in found]


@pytest.fixture
async def webhook_app(api: FakeBotApi, tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[Running]]]:
    """Start an App in webhook mode (the config builds the spec); stopped afterwards."""
    apps: list[App] = []

    async def make() -> Running:
        operator = api.add_user("Olga")
        port = free_port()
        settings = load_settings(None, env=webhook_env(api, tmp_path / "data", port, operator.id))
        section: Any = settings.platform_sections()["telegram"]
        from adapters.telegram.plugin import build

        built = build(section, _services(tmp_path))
        assert isinstance(built, TelegramAdapter)
        spec = built.webhook_spec()
        assert spec is not None and spec.port == port
        adapter = CountingAdapter(
            api.token,
            api_base_url=api.base_url,
            file_base_url=api.file_base_url,
            poll_timeout=1,
            webhook=spec,
            webhook_url=section.webhook_url,
        )
        adapter.processed = Counter()
        app = App(settings, adapters=[adapter])
        await app.start()
        apps.append(app)
        return Running(app, adapter, f"http://127.0.0.1:{port}/tg/hook", operator)

    yield make
    for app in apps:
        if not app.stopped.is_set():
            await app.stop()


def _services(tmp_path: Path) -> Any:
    from bridge.platforms import PlatformServices

    return PlatformServices(data_dir=tmp_path, mirror_chats=(), follower_commands=(), admin_commands=())


def update(update_id: int, user: int, text_: str) -> dict[str, Any]:
    """A private text message update as Telegram sends it."""
    who = {"id": user, "is_bot": False, "first_name": f"U{user}"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": user, "type": "private", "first_name": who["first_name"]},
            "from": who,
            "text": text_,
        },
    }


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Wait until `condition()` is truthy (AssertionError after `timeout`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_webhook_mode_sets_the_webhook_and_answers_commands_pushed_by_telegram(
    api: FakeBotApi, webhook_app: Callable[[], Awaitable[Running]]
) -> None:
    run = await webhook_app()
    assert api.webhook.url == run.url and api.webhook.secret == SECRET
    set_call = api.calls_to("setWebhook")[-1]
    assert "message" in set_call.params["allowed_updates"]
    assert not api.calls_to("getUpdates")  # no polling in webhook mode
    before = len(api.messages(run.operator.id))
    api.user_sends_text(run.operator.id, "/newchannel news Daily News")
    await api.wait_for(
        lambda: any(
            m.from_bot and "created" in (m.text or "") for m in api.messages(run.operator.id)[before:]
        ),
        timeout=15,
        what="the answer to /newchannel",
    )
    assert api.webhook.delivered()  # it came by POST, acknowledged with 200
    await until(lambda: all(done and not body for _, done, body in run.rows()), 5, "the row processed")


async def test_getupdates_is_refused_while_a_webhook_is_set(api: FakeBotApi) -> None:
    await api.dispatch("setWebhook", {"url": "https://bot.example.org/hook", "secret_token": "x"})
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{api.base_url}{api.token}/getUpdates", json={}) as response,
    ):
        assert response.status == 409
    info = await api.dispatch("getWebhookInfo", {})
    assert info["url"] == "https://bot.example.org/hook"
    await api.dispatch("deleteWebhook", {})
    assert (await api.dispatch("getWebhookInfo", {}))["url"] == ""


async def test_a_thousand_concurrent_updates_are_each_handled_exactly_once(
    webhook_app: Callable[[], Awaitable[Running]],
) -> None:
    run = await webhook_app()
    ids = list(range(5_000_000, 5_001_000))
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def post(uid: int) -> int:
            body = update(uid, 900_000 + uid % 250, "hello")
            async with http.post(run.url, json=body, headers={SECRET_HEADER: SECRET}) as response:
                return response.status

        statuses = await asyncio.gather(*(post(uid) for uid in ids))
    assert set(statuses) == {200}
    await until(lambda: sum(run.adapter.processed.values()) >= len(ids), 120, "1,000 updates processed")
    await asyncio.sleep(0.5)
    assert set(run.adapter.processed) == set(ids)
    assert set(run.adapter.processed.values()) == {1}
    rows = run.rows()
    assert len(rows) == len(ids) and all(done and not body for _, done, body in rows)


async def test_the_same_update_sent_twice_runs_once(webhook_app: Callable[[], Awaitable[Running]]) -> None:
    run = await webhook_app()
    body = update(6_000_001, 901_001, "/start")
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(run.url, json=body, headers={SECRET_HEADER: SECRET}) as response:
                assert response.status == 200
        await until(lambda: run.adapter.processed[6_000_001] == 1, 10, "the update processed")
        async with http.post(run.url, json=body, headers={SECRET_HEADER: SECRET}) as response:
            assert response.status == 200  # redelivered after processing: acknowledged again
    await asyncio.sleep(1.0)
    assert run.adapter.processed[6_000_001] == 1
    assert run.rows() == [(6_000_001, True, False)]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({SECRET_HEADER: "wrong"}, 403),
        ({SECRET_HEADER: SECRET + "x"}, 403),
        ({SECRET_HEADER: ""}, 403),
    ],
)
async def test_a_wrong_or_missing_secret_is_refused_and_nothing_recorded(
    webhook_app: Callable[[], Awaitable[Running]], headers: dict[str, str], status: int
) -> None:
    run = await webhook_app()
    async with (
        aiohttp.ClientSession() as http,
        http.post(run.url, json=update(7_000_001, 901_002, "/start"), headers=headers) as response,
    ):
        assert response.status == status
    await asyncio.sleep(0.3)
    assert run.rows() == [] and not run.adapter.processed


async def test_a_body_that_is_not_an_update_is_refused(webhook_app: Callable[[], Awaitable[Running]]) -> None:
    run = await webhook_app()
    async with aiohttp.ClientSession() as http:
        for body in (b"not json", b"[]", b'{"update_id": "7"}', b'{"message": {}}'):
            async with http.post(run.url, data=body, headers={SECRET_HEADER: SECRET}) as response:
                assert response.status == 400
    assert run.rows() == []


async def test_the_recorded_body_is_sealed(webhook_app: Callable[[], Awaitable[Running]]) -> None:
    run = await webhook_app()
    run.app.inboxes[0]._stopping = True  # hold processing: the body stays recorded
    await asyncio.sleep(0.6)
    async with aiohttp.ClientSession() as http:
        run.app.inboxes[0]._stopping = False
        processor = run.app.inboxes[0]._processor
        if processor is not None:
            processor.cancel()
        async with http.post(
            run.url, json=update(8_000_001, 987_654_321, "/start"), headers={SECRET_HEADER: SECRET}
        ) as response:
            assert response.status == 200
    with run.app.store.connection() as conn:
        stored = conn.execute(text("SELECT body FROM received_update")).scalar_one()
    assert stored is not None and b"987654321" not in bytes(stored) and b"/start" not in bytes(stored)


def test_webhook_spec_hides_the_secret_in_its_repr() -> None:
    spec = WebhookSpec("127.0.0.1", 8443, "/hook", "topsecret", SECRET_HEADER)
    assert "topsecret" not in repr(spec)


class AppProcess:
    """`tests.webhook_app` in a subprocess."""

    def __init__(self, env: dict[str, str], mode: str) -> None:
        self.env = env
        self.mode = mode
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start it."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.webhook_app", self.mode, env={**os.environ, **self.env}
        )

    async def kill(self) -> None:
        """SIGKILL, and reap it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> None:
        """SIGTERM (a clean stop), and reap it."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), 30)


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def recorded(data_dir: Path) -> list[tuple[int, bool]]:
    """(update_id, done) of what the process recorded in its SQLite database."""
    store = Store(sqlite_url(data_dir))
    try:
        with store.connection() as conn:
            return [
                (int(r[0]), bool(r[1]))
                for r in conn.execute(text("SELECT update_id, done FROM received_update"))
            ]
    finally:
        store.dispose()


@pytest.mark.parametrize("mode", ["slow-record", "slow-process"])
async def test_a_sigkill_between_receipt_and_processing_loses_nothing(
    api: FakeBotApi, tmp_path: Path, mode: str
) -> None:
    operator = api.add_user("Olga")
    data_dir = tmp_path / "data"
    port = free_port()
    env = webhook_env(api, data_dir, port, operator.id)
    env["CHANNELBRIDGE_DELIVERY__BACKOFF_BASE_S"] = "0.2"
    api.webhook.retry_delay_s = 0.5
    first = AppProcess(env, mode)
    await first.start()
    second: AppProcess | None = None
    try:
        await until(lambda: api.webhook.active and listening(port), 60, "the webhook served")
        uid = api.push_update("message", update(0, operator.id, "/newchannel news Daily News")["message"])
        if mode == "slow-record":  # the POST reached the App, which has not answered it yet
            await until(
                lambda: uid in api.webhook._in_flight and all(a[0] != uid for a in api.webhook.attempts),
                30,
                "in flight",
            )
            await asyncio.sleep(1.0)
        else:  # recorded and acknowledged, not processed
            await until(lambda: uid in api.webhook.delivered(), 30, "the 200")
        await first.kill()
        rows = recorded(data_dir)
        assert rows == ([] if mode == "slow-record" else [(uid, False)])
        second = AppProcess(env, "normal")
        await second.start()
        await api.wait_for(
            lambda: [m for m in api.messages(operator.id) if m.from_bot and "created" in (m.text or "")],
            timeout=60,
            what="the answer to /newchannel after the restart",
        )
        await asyncio.sleep(1.0)
        answers = [m for m in api.messages(operator.id) if m.from_bot and "created" in (m.text or "")]
        assert len(answers) == 1
        assert api.webhook.delivered().count(uid) == 1
        if mode == "slow-record":
            assert (uid, 0) in api.webhook.attempts  # the killed request: Telegram sent it again
    finally:
        if first.proc is not None and first.proc.returncode is None:
            await first.kill()
        if second is not None:
            await second.terminate()


async def test_an_update_the_database_could_not_record_is_refused_and_taken_on_redelivery(
    webhook_app: Callable[[], Awaitable[Running]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = await webhook_app()
    updates = run.app.store.updates
    original = updates.record
    calls = 0

    def flaky(*args: Any, **kwargs: Any) -> list[bool]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database is locked")
        return original(*args, **kwargs)

    monkeypatch.setattr(updates, "record", flaky)
    body = update(9_000_001, 987_654_321, "/start")
    async with aiohttp.ClientSession() as http:
        for expected in (500, 200):
            async with http.post(run.url, json=body, headers={SECRET_HEADER: SECRET}) as response:
                assert response.status == expected
    await until(lambda: run.adapter.processed[9_000_001] == 1, 10, "the redelivered update processed")
    assert "987654321" not in caplog.text
