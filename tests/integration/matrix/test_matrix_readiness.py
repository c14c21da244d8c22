"""`/readyz` asks the Matrix adapter whether its sync loop reaches the homeserver."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.matrix.adapter import MatrixAdapter
from bridge.app import App
from bridge.config import load_settings
from tests.integration.ops.support import KEY, get

from .synapse import RegisteredUser, SynapseServer

pytestmark = [pytest.mark.matrix, pytest.mark.integration]


async def test_readyz_reports_the_matrix_sync_loop(
    synapse: SynapseServer, bot_user: RegisteredUser, tmp_path: Path
) -> None:
    settings = load_settings(
        None,
        env={
            "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
            "CHANNELBRIDGE_PRIVACY__KEY": KEY,
            "CHANNELBRIDGE_METRICS__ENABLED": "true",
            "CHANNELBRIDGE_METRICS__LISTEN": "127.0.0.1:0",
        },
    )
    adapter = MatrixAdapter(
        synapse.url,
        bot_user.user_id,
        access_token=bot_user.access_token,
        device_id=bot_user.device_id,
        store_dir=tmp_path / "bot-store",
    )
    app = App(settings, adapters=[adapter])
    assert not adapter.is_connected()
    await app.start()
    try:
        assert adapter.is_connected()
        status, body = await get(app, "/readyz")
        assert status == 200 and '"matrix": "connected"' in body, body
        assert adapter._sync is not None
        adapter._sync.failures = 3  # what three failed syncs in a row leave behind
        status, body = await get(app, "/readyz")
        assert status == 503 and '"matrix": "down"' in body, body
        assert bot_user.user_id not in body and synapse.url not in body
    finally:
        await app.stop()
    assert not adapter.is_connected()
