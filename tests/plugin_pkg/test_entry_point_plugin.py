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


def test_a_broken_plug_in_is_left_out_with_the_fix_and_the_others_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    info = site / "halfinstalled-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: halfinstalled\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[channelbridge.adapters]\nhalf = halfinstalled_mod:PLUGIN\n")
    (site / "halfinstalled_mod.py").write_text("import fancy_sdk_that_is_not_installed  # noqa\n")
    monkeypatch.syspath_prepend(str(site))
    from bridge import cli, platforms
    from bridge.platforms import Platforms, load_problems

    monkeypatch.setattr(platforms, "_PROBLEMS", {})  # this process's record, restored afterwards

    found = Platforms.discover()
    assert "half" not in found and {"telegram", "matrix", "console"} <= set(found.names())
    assert any("halfinstalled_mod:PLUGIN" in p and "ModuleNotFoundError" in p for p in load_problems())
    assert cli.main(["keygen"]) == 0
    err = capsys.readouterr().err
    assert "a platform plug-in was left out: entry point half = halfinstalled_mod:PLUGIN" in err
    assert "repair or uninstall the distribution" in err
