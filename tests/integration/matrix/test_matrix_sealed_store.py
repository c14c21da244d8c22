"""The Matrix adapter's olm store and state, sealed with the privacy key under the app (issue 11:
1 and 16): a plain store left by an earlier version is taken over and removed, and restarts keep
the bot's device, its identity keys and the megolm sessions of encrypted DMs."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from adapters.base import Message, PermanentFailure
from adapters.matrix.adapter import MatrixAdapter
from bridge.app import App
from bridge.config import load_settings
from bridge.privacy import Sealer, decode_key, generate_key

from .conftest import Follower, Recorder
from .synapse import RegisteredUser, SynapseServer
from .test_matrix_app import ask

pytestmark = [pytest.mark.matrix, pytest.mark.integration]


async def test_a_plain_store_is_sealed_on_first_start_and_restarts_keep_the_device(
    synapse: SynapseServer, bot_user: RegisteredUser, tmp_path: Path,
    adapter_factory: Callable[..., Awaitable[MatrixAdapter]],
    follower_factory: Callable[[], Awaitable[Follower]],
) -> None:
    store_dir, bot = tmp_path / "bot-store", bot_user.user_id
    alice = await follower_factory()
    # an earlier version: the adapter on its own, with nio's plain SQLite store and state.json
    recorder = Recorder()
    plain = await adapter_factory(bot_user, recorder)
    room = await alice.open_dm(bot, encrypted=True)
    await alice.say(room, "!help")
    assert isinstance(await recorder.next(), Message)  # decrypted with a megolm session
    identity = dict(plain.client.olm.account.identity_keys)
    await plain.stop()
    before = {p.name for p in store_dir.iterdir()}
    assert any(n.endswith(".db") for n in before) and "state.json" in before
    assert any(alice.user_id.encode() in (store_dir / n).read_bytes() for n in before)

    async def start_app() -> tuple[App, MatrixAdapter]:
        settings = load_settings(None, env={
            "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
            "CHANNELBRIDGE_OPERATORS": json.dumps([{"matrix": alice.user_id}]),
        })  # fmt: skip
        adapter = MatrixAdapter(synapse.url, bot, access_token=bot_user.access_token,
                                device_id=bot_user.device_id, store_dir=store_dir)  # fmt: skip
        app = App(settings, adapters=[adapter])
        await app.start()
        return app, adapter

    for round_ in range(2):  # the take-over, then a plain restart of the sealed store
        app, adapter = await start_app()
        try:
            assert adapter.client.olm is not None
            assert adapter.client.olm.account.identity_keys == identity  # same device, same keys
            # the bot still decrypts what alice's existing megolm session encrypts, and answers
            await ask(alice, room, "/help", bot, "/follow")
            await ask(alice, room, f"/newchannel news{round_} Daily News", bot, "created")
        finally:
            await app.stop()
        names = {p.name for p in store_dir.iterdir()}
        assert {"olm-store.sealed", "state.sealed"} <= names, names
        assert not any(n.endswith((".db", "_devices")) or n == "state.json" for n in names), names
        for name in names:
            data = (store_dir / name).read_bytes()
            assert alice.user_id.encode() not in data and room.encode() not in data, name


async def test_a_sealed_store_refuses_another_key(
    synapse: SynapseServer, bot_user: RegisteredUser, tmp_path: Path,
) -> None:
    def adapter(key: str) -> MatrixAdapter:
        made = MatrixAdapter(synapse.url, bot_user.user_id, access_token=bot_user.access_token,
                             device_id=bot_user.device_id, store_dir=tmp_path / "bot-store")  # fmt: skip
        made.use_sealer(Sealer(decode_key(key)))
        return made

    first = adapter(generate_key())
    await first.start(Recorder())
    await first.stop()
    with pytest.raises(PermanentFailure, match="does not open with this privacy key"):
        await adapter(generate_key()).start(Recorder())
