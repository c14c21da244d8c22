"""A platform added by a distribution of its own, found through the `channelbridge.adapters`
entry points: no core file names it, and a post reaches its follower through the normal path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.app import App
from bridge.config import ConfigError, load_settings

SITE = Path(__file__).resolve().parent / "site"


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[general]\ndata_dir = "{tmp_path / "data"}"\n\n'
        '[[operators]]\nmemchat = "op"\n\n'
        "[memchat]\nenabled = true\nmax_text = 1000\n"
    )
    return config


async def test_entry_point_adapter_gets_a_post_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(SITE))
    from memchat_plugin import MemChatAdapter

    settings = load_settings(_config(tmp_path), env={})
    app = App(settings)
    adapter = app.adapters["memchat"]
    assert isinstance(adapter, MemChatAdapter)
    await app.start()
    try:
        await adapter.say("op", "/newchannel news Local News")
        await adapter.say("alice", "/follow news")
        await adapter.say("op", "/post news Storm warning tonight")
        await app.sync()
    finally:
        await app.stop()

    assert list(app.adapters) == ["memchat"]  # the fallback platform stays off
    copies = [(chat, content.channel_handle, content.text) for chat, content in adapter.sent]
    assert copies == [("alice", "news", "Storm warning tonight")]
    assert any(chat == "alice" for chat, _ in adapter.answers)  # /follow was answered there too


def test_section_of_a_platform_not_installed_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_config(tmp_path), env={})

    found = {problem.key: problem for problem in caught.value.problems}
    assert list(found) == ["operators.0.memchat", "memchat"]
    assert "unknown section" in found["memchat"].message
    assert "channelbridge.adapters" in found["memchat"].fix and "telegram" in found["memchat"].fix
