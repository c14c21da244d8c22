"""The `[telegram]` webhook keys: long polling by default, the secret required with a URL, and
errors that name the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.telegram.plugin import PLUGIN, SECRET_HEADER, build
from bridge.config import ConfigError, load_settings
from bridge.platforms import PlatformServices

ENABLED = {"CHANNELBRIDGE_TELEGRAM__ENABLED": "true", "CHANNELBRIDGE_TELEGRAM__TOKEN": "123456:realtoken"}


def problems(env: dict[str, str]) -> list[Any]:
    """The problems load_settings reports for `env`."""
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env=env)
    return list(caught.value.problems)


def test_long_polling_stays_the_default() -> None:
    section: Any = load_settings(None, env=ENABLED).platform_sections()["telegram"]
    assert section.webhook_url == "" and section.webhook_listen == "127.0.0.1:8443"
    assert "long polling" in (PLUGIN.describe(section) if PLUGIN.describe else "")


def test_a_webhook_url_without_a_secret_is_refused_naming_the_field_and_the_fix() -> None:
    found = problems({**ENABLED, "CHANNELBRIDGE_TELEGRAM__WEBHOOK_URL": "https://bot.example.org/tg"})
    assert [p.key for p in found] == ["telegram.webhook_secret"]
    assert "required when webhook_url is set" in found[0].message
    assert "CHANNELBRIDGE_TELEGRAM__WEBHOOK_SECRET" in found[0].fix and "long polling" in found[0].fix


@pytest.mark.parametrize("secret", ["has spaces", "x" * 257, "semi;colon"])
def test_a_secret_telegram_would_refuse_is_refused_at_start(secret: str) -> None:
    found = problems(
        {
            **ENABLED,
            "CHANNELBRIDGE_TELEGRAM__WEBHOOK_URL": "https://bot.example.org/tg",
            "CHANNELBRIDGE_TELEGRAM__WEBHOOK_SECRET": secret,
        }
    )
    assert [p.key for p in found] == ["telegram.webhook_secret"]
    assert secret not in str(found[0])


@pytest.mark.parametrize(
    ("key", "value"),
    [("WEBHOOK_URL", "bot.example.org/tg"), ("WEBHOOK_LISTEN", "nowhere:port"), ("WEBHOOK_PATH", "tg")],
)
def test_malformed_webhook_keys_are_refused(key: str, value: str) -> None:
    env = {
        **ENABLED,
        "CHANNELBRIDGE_TELEGRAM__WEBHOOK_SECRET": "abc",
        f"CHANNELBRIDGE_TELEGRAM__{key}": value,
    }
    found = problems(env)
    assert [p.key for p in found] == [f"telegram.{key.lower()}"]


def test_webhook_mode_builds_an_adapter_with_its_webhook(tmp_path: Any) -> None:
    env = {
        **ENABLED,
        "CHANNELBRIDGE_TELEGRAM__WEBHOOK_URL": "https://bot.example.org/tg",
        "CHANNELBRIDGE_TELEGRAM__WEBHOOK_SECRET": "abc_DEF-123",
        "CHANNELBRIDGE_TELEGRAM__WEBHOOK_LISTEN": ":9000",
        "CHANNELBRIDGE_TELEGRAM__WEBHOOK_PATH": "/tg",
    }
    settings = load_settings(None, env=env)
    section: Any = settings.platform_sections()["telegram"]
    adapter: Any = build(section, PlatformServices(data_dir=tmp_path))
    spec = adapter.webhook_spec()
    assert (spec.host, spec.port, spec.path, spec.header) == ("127.0.0.1", 9000, "/tg", SECRET_HEADER)
    assert "abc_DEF-123" not in repr(spec) and "abc_DEF-123" not in repr(settings)
    assert "webhook https://bot.example.org/tg" in (PLUGIN.describe(section) if PLUGIN.describe else "")
