"""Metric labels never carry what a person typed, the `[metrics]` listen address is parsed
strictly, and the JSON log formatter keeps only known event fields, redacted."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from bridge.config import ConfigError, load_settings
from bridge.config_sections import split_listen
from bridge.logjson import JsonFormatter
from bridge.metrics import CommandOutcome, Metrics, command_label


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("/follow news", "follow"),
        ("!FOLLOW news", "follow"),
        ("/invite_admin news", "invite-admin"),
        ("/follow@citynews_bot news", "follow"),
        ("/700000123", "unknown"),
        ("/follow_700000123", "unknown"),
        ("/", "unknown"),
        ("hello 700000123", "unknown"),
        ("  /post news x", "post"),
    ],
)
def test_command_labels_come_from_the_registry(text: str, label: str) -> None:
    assert command_label(text) == label


def test_a_flood_of_made_up_commands_adds_one_label() -> None:
    metrics = Metrics()
    for n in range(500):
        metrics.command(f"/cmd{n} @user{n}:example.org", CommandOutcome.MALFORMED)
    text = metrics.render().decode()
    assert text.count("channelbridge_commands_total{") == 1
    assert "example.org" not in text and "cmd1" not in text


def test_gauges_report_a_failed_source_without_failing_the_scrape() -> None:
    metrics = Metrics()

    def broken() -> object:
        raise RuntimeError("database is away: postgresql://user:secret@db/x")

    metrics.gauge_source = broken  # type: ignore[assignment]
    text = metrics.render().decode()
    assert "channelbridge_gauges_ok 0.0" in text and "secret" not in text


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        (":9464", ("127.0.0.1", 9464)),
        ("9464", ("127.0.0.1", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_listen_addresses(value: str, address: tuple[str, int]) -> None:
    assert split_listen(value) == address


@pytest.mark.parametrize("value", ["localhost:http", "127.0.0.1:70000", "nope", "a:b:c"])
def test_bad_listen_addresses_are_refused_by_name(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, env={"CHANNELBRIDGE_METRICS__LISTEN": value})
    assert "metrics.listen" in str(refused.value)


def test_metrics_are_off_by_default_and_logs_are_text() -> None:
    settings = load_settings(None, env={})
    assert settings.metrics.enabled is False
    assert settings.metrics.address == ("127.0.0.1", 9464)
    assert settings.general.log_format == "text"


def test_the_json_formatter_keeps_known_fields_and_redacts_them() -> None:
    record = logging.LogRecord("bridge.x", logging.WARNING, __file__, 1, "sent to %s", ("700000123",), None)
    record.__dict__.update(
        {"post_id": 12, "platform": "telegram", "outcome": "chat 700000123 gone", "chat_id": 700000123}
    )
    try:
        raise ValueError("user_id=42 failed")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["post_id"] == 12 and line["platform"] == "telegram"
    assert "chat_id" not in line
    assert "700000123" not in json.dumps(line) and "user_id=42" not in line["exc"]
    assert line["level"] == "WARNING" and line["logger"] == "bridge.x" and line["time"].endswith("+00:00")
