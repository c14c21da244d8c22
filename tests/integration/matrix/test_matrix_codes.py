"""Access codes on a real Synapse, through the whole App (issue 13, part 7): the owner mints a
code in their DM, a Matrix follower redeems it, becomes a follower with paid access, receives
the paid post published before (the back catalogue) and the next paid post; the same code is
refused the second time. The code is in no file the bot keeps and in no log record."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from adapters.matrix.adapter import MatrixAdapter
from bridge.app import App
from bridge.config import load_settings
from bridge.engine.codes import parse_code

from .conftest import Follower
from .synapse import RegisteredUser, SynapseServer
from .test_matrix_app import ask, copy_of, numbered, text_of

pytestmark = [pytest.mark.matrix, pytest.mark.integration]

CODE_RE = re.compile(r"CB(?:-[0-9A-Z]{5}){6}")
OURS = ("bridge", "adapters", "scheduler")


@pytest.fixture
async def paid_app(
    synapse: SynapseServer, tmp_path: Path
) -> AsyncIterator[Callable[[RegisteredUser, str], Awaitable[App]]]:
    """An App with payments on, wired to a MatrixAdapter; stopped after the test."""
    apps: list[App] = []

    async def make(bot: RegisteredUser, operator_id: str) -> App:
        settings = load_settings(None, env={
            "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
            "CHANNELBRIDGE_GENERAL__LOG_LEVEL": "DEBUG",
            "CHANNELBRIDGE_OPERATORS": json.dumps([{"matrix": operator_id}]),
            "CHANNELBRIDGE_PAYMENTS__ENABLED": "true",
            "CHANNELBRIDGE_PAYMENTS__SUPPORT": "support@example.org",
        })
        adapter = MatrixAdapter(synapse.url, bot.user_id, access_token=bot.access_token,
                                device_id=bot.device_id, store_dir=tmp_path / "bot-store")
        app = App(settings, adapters=[adapter])
        await app.start()
        apps.append(app)
        return app

    yield make
    for app in apps:
        if not app.stopped.is_set():
            await app.stop()


async def test_a_matrix_follower_redeems_a_code_once_and_receives_paid_posts(
    paid_app: Callable[[RegisteredUser, str], Awaitable[App]], bot_user: RegisteredUser,
    follower_factory: Callable[[], Awaitable[Follower]], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in OURS:  # the bot's own loggers (the people's nio clients log what they typed)
        caplog.set_level(logging.DEBUG, logger=name)
    op, alice, bob = [await follower_factory() for _ in range(3)]
    app = await paid_app(bot_user, op.user_id)
    bot = bot_user.user_id
    op_room = await op.open_dm(bot, encrypted=True)
    await ask(op, op_room, "/newchannel news Daily News", bot, "created")
    await ask(op, op_room, "/price news 100", bot, "100 Stars")
    await ask(op, op_room, "/post news --paid Before the code", bot, "Post #1")

    minted = await ask(op, op_room, "/codes news 1 30", bot, "shown this once only")
    (code,) = CODE_RE.findall(minted)

    alice_room = await alice.open_dm(bot, encrypted=True)
    granted = await ask(alice, alice_room, f"/redeem {code.lower()}", bot, "You have access")
    assert "Daily News (news)" in granted and "last 30 days of paid posts" in granted
    before = await copy_of(alice, alice_room, bot, numbered(1))
    follow = f" · Follow: send /follow news to https://matrix.to/#/{bot}"  # every copy's follow link
    assert text_of(before.source) == f"Daily News (#1){follow}\nBefore the code"

    await ask(op, op_room, "/post news --paid After the code", bot, "Post #2")
    after = await copy_of(alice, alice_room, bot, numbered(2))
    assert text_of(after.source) == f"Daily News (#2){follow}\nAfter the code"

    bob_room = await bob.open_dm(bot, encrypted=False)
    again = await ask(bob, bob_room, f"/redeem {code}", bot, "already used")
    assert again == "This code was already used."
    await ask(alice, alice_room, f"/redeem {code}", bot, "This code was already used.")
    await app.sync()

    with app.store.unit_of_work() as s:
        alice_row = app.store.followers.by_index(s, app.sealer.blind_index("matrix", alice.user_id))
        bob_row = app.store.followers.by_index(s, app.sealer.blind_index("matrix", bob.user_id))
        assert alice_row is not None and alice_row.id is not None
        assert app.store.payments.entitled(s, alice_row.id, 1, app.engine.clock())
        assert bob_row is None  # a refused code made bob nothing
        (entry,) = app.store.payments.entries_of(s, app.sealer.blind_index("matrix", alice.user_id))
        assert (entry.kind, entry.amount, entry.telegram_payment_charge_id) == ("code", 0, None)

    # the code is nowhere in data_dir (SQLite and its WAL included) or the adapter's store_dir,
    # nor in any log record of the bot's
    raw = parse_code(code)
    assert raw is not None
    spellings = {code, code.lower(), code.replace("-", ""), code.replace("-", "").lower(),
                 code[3:], raw.hex()}
    files = [*(tmp_path / "data").rglob("*"), *(tmp_path / "bot-store").rglob("*")]
    assert any(path.name.endswith(".db") for path in files)
    for path in files:
        if path.is_file():
            data = path.read_bytes()
            for spelling in spellings:
                assert spelling.encode() not in data, path.name
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records
                       if r.name.split(".")[0] in OURS)
    for spelling in spellings:
        assert spelling not in logged and spelling.upper() not in logged
