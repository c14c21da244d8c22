"""Two `channelbridge` processes on one PostgreSQL database handed the same polled update (an
inbound lease holder that stalled past its lease, and the process that took the lease over and
fetched the still unconfirmed update again): it is handled, and answered, once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge import migrate
from bridge.app import App
from bridge.config import load_settings
from bridge.ports import Address, Message
from bridge.privacy import Sealer, decode_key, generate_key
from bridge.store import Store
from tests.pg_node import SpoolAdapter

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

NEWCOMER = Address("spool", "newcomer")


@pytest.fixture
async def two_processes(pg_url: str, tmp_path: Path) -> AsyncIterator[tuple[App, App, Path]]:
    """Two apps on one database, sharing one spool folder, the channel `news` made."""
    key = generate_key()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[general]\ndata_dir = "{tmp_path / "data"}"\nlog_level = "WARNING"\n'
        f'[database]\nurl = "{pg_url}"\n[privacy]\nkey = "{key}"\n[console]\nenabled = false\n'
    )
    store = Store(pg_url)
    migrate.upgrade(store.engine, sealer=Sealer(decode_key(key)))  # `channelbridge db upgrade`
    store.dispose()
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "inbox.txt").write_text("")
    apps = [App(load_settings(config), adapters=[SpoolAdapter(spool, tag)]) for tag in ("a", "b")]
    started: list[App] = []
    try:
        for app in apps:
            await app.start()
            started.append(app)
        apps[0].engine.add_operator(Address("spool", "operator"))
        await apps[0].handle(Message(Address("spool", "operator"), "/newchannel news News"))
        yield apps[0], apps[1], spool
    finally:
        for app in started:
            await app.stop()


async def _answers(spool: Path, to: Address, wanted: int) -> list[str]:
    """The answers sent to `to`, once `wanted` went out (or 10 s passed), plus 1 s for more."""
    replies = spool / "replies.log"

    def sent() -> list[str]:
        lines = replies.read_text().splitlines() if replies.exists() else []
        return [" ".join(line.split()[3:]) for line in lines if line.split()[1] == to.id]

    deadline = time.monotonic() + 10
    while len(sent()) < wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # a second answer, if one were coming
    return sent()


async def test_an_update_two_processes_fetched_is_answered_once(
    two_processes: tuple[App, App, Path],
) -> None:
    a, b, spool = two_processes
    follow = Message(NEWCOMER, "/follow news", update=17)
    await asyncio.gather(a.handle(follow), b.handle(follow))
    answers = await _answers(spool, NEWCOMER, 1)
    assert len(answers) == 1 and answers[0].startswith("You now follow"), answers


async def test_two_updates_with_the_same_text_are_both_answered(two_processes: tuple[App, App, Path]) -> None:
    a, b, spool = two_processes
    await a.handle(Message(NEWCOMER, "/follow news", update=18))
    await b.handle(Message(NEWCOMER, "/follow news", update=19))  # sent twice by the person
    answers = await _answers(spool, NEWCOMER, 2)
    assert len(answers) == 2
    assert answers[0].startswith("You now follow") and answers[1].startswith("You already follow")
