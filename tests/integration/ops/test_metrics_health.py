"""Metrics and health probes of a running App (SQLite, a fake adapter, the real HTTP server):
a post's deliveries move the right counters, 429s are counted by inferred scope, commands by
registry name, `/readyz` follows the database, and no label or value names a person."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.app import App
from bridge.ports import RetryLater
from tests.integration.ops.support import fake, get, make_app, samples, say
from tests.support import OPERATOR, person

FOLLOWERS = 20


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    """A started App with metrics on an ephemeral port."""
    application = make_app(tmp_path)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


async def _channel_with_followers(app: App, n: int = FOLLOWERS) -> None:
    await say(app, OPERATOR, "/newchannel news Daily News")
    for i in range(n):
        await say(app, person(i), "/follow news")
    await app.sync()


async def test_a_posts_deliveries_move_the_delivery_counters_and_histograms(app: App) -> None:
    await _channel_with_followers(app)
    before = samples((await get(app, "/metrics"))[1])
    await say(app, OPERATOR, "/post news Hello, followers!")
    await app.sync()
    status, text = await get(app, "/metrics")
    assert status == 200
    after = samples(text)
    key = 'channelbridge_deliveries_total{lane="copy",outcome="delivered",platform="fake"}'
    assert after[key] - before.get(key, 0) == FOLLOWERS
    assert after["channelbridge_publish_to_first_send_seconds_count"] == 1
    assert after['channelbridge_send_seconds_count{platform="fake"}'] >= FOLLOWERS
    assert after['channelbridge_followers{platform="fake"}'] == FOLLOWERS
    # the follow answers went through the reply lane
    replies = 'channelbridge_deliveries_total{lane="reply",outcome="delivered",platform="fake"}'
    assert after[replies] >= FOLLOWERS
    assert after['channelbridge_commands_total{command="follow",outcome="ok"}'] == FOLLOWERS
    assert after['channelbridge_commands_total{command="post",outcome="ok"}'] == 1
    assert after["channelbridge_gauges_ok"] == 1
    assert after['channelbridge_send_rate{platform="fake"}'] > 0
    assert not any(k.startswith("channelbridge_queue_depth{") and v for k, v in after.items())


async def test_a_429_is_counted_by_platform_and_inferred_scope(app: App) -> None:
    await _channel_with_followers(app, 3)
    target = person(1).id
    fake(app).script[target] = [RetryLater(0.2, scope="chat", reason="429 Too Many Requests")]
    await say(app, OPERATOR, "/post news one")
    await app.sync()
    found = samples((await get(app, "/metrics"))[1])
    assert found['channelbridge_rate_limited_total{platform="fake",scope="chat"}'] == 1
    assert found['channelbridge_deliveries_total{lane="copy",outcome="retried",platform="fake"}'] == 1
    assert found['channelbridge_deliveries_total{lane="copy",outcome="delivered",platform="fake"}'] == 3


async def test_commands_are_named_from_the_registry_never_from_what_was_typed(app: App) -> None:
    await _channel_with_followers(app, 2)
    await say(app, person(1), "/follow_700000123 news")
    await say(app, person(1), "/post news not an admin")
    await say(app, person(1), "/follow")
    await say(app, person(1), "!INVITE_ADMIN news")
    await app.sync()
    text = (await get(app, "/metrics"))[1]
    found = samples(text)
    assert found['channelbridge_commands_total{command="unknown",outcome="malformed"}'] == 1
    assert found['channelbridge_commands_total{command="post",outcome="refused"}'] == 1
    assert found['channelbridge_commands_total{command="follow",outcome="malformed"}'] == 1
    assert found['channelbridge_commands_total{command="invite-admin",outcome="refused"}'] == 1
    assert "700000123" not in text and "follow_" not in text


async def test_metrics_hold_no_identity(app: App) -> None:
    await _channel_with_followers(app, 5)
    await say(app, OPERATOR, "/post news Hello")
    await say(app, person(2), "/unknowncommand 700000002 @alice:example.org")
    await app.sync()
    text = (await get(app, "/metrics"))[1]
    for needle in ("700000", OPERATOR.id, "1000001", "alice", "Hello", "news", "Daily"):
        assert needle not in text, needle
    labels = {
        part.split("=")[0]
        for line in text.splitlines()
        if "{" in line and not line.startswith("#")
        for part in line[line.index("{") + 1 : line.index("}")].split(",")
    }
    assert labels <= {"platform", "lane", "outcome", "scope", "command", "le"}


async def test_livez_answers_while_the_loop_runs(app: App) -> None:
    status, body = await get(app, "/livez")
    assert status == 200 and '"alive": true' in body


async def test_readyz_turns_unready_when_the_sqlite_file_goes_away_and_ready_after(
    app: App, tmp_path: Path
) -> None:
    status, body = await get(app, "/readyz")
    assert status == 200, body
    assert '"fake": "connected"' in body
    db = tmp_path / "channelbridge.db"
    moved = tmp_path / "elsewhere.db"
    os.rename(db, moved)
    try:
        status, body = await get(app, "/readyz")
        assert status == 503, body
        assert '"database": "error: OperationalError"' in body
        assert str(tmp_path) not in body
    finally:
        os.rename(moved, db)
    status, body = await get(app, "/readyz")
    assert status == 200, body


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes: the rename test covers it")
async def test_readyz_turns_unready_when_the_sqlite_file_is_read_only(app: App, tmp_path: Path) -> None:
    db = tmp_path / "channelbridge.db"
    db.chmod(0o400)
    try:
        assert (await get(app, "/readyz"))[0] == 503
    finally:
        db.chmod(0o600)
    assert (await get(app, "/readyz"))[0] == 200


async def test_readyz_is_unready_when_an_adapter_is_not_connected(app: App) -> None:
    adapter = fake(app)
    adapter.is_connected = lambda: False  # type: ignore[attr-defined]
    status, body = await get(app, "/readyz")
    assert status == 503 and '"fake": "down"' in body


async def test_the_metrics_server_is_off_by_default(tmp_path: Path) -> None:
    application = make_app(tmp_path, metrics=False)
    await application.start()
    try:
        assert application.http is None
    finally:
        await application.stop()
