"""The core's settings sections: `[general]`, `[database]`, `[privacy]`, `[delivery]`,
`[scheduler]`, `[media]`, `[payments]` and `[metrics]`. Platform sections come from the plug-ins
(`bridge.platforms`); `bridge.config` assembles them into one settings model."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from bridge.config_checks import FROZEN as _FROZEN
from bridge.config_checks import PLACEHOLDER, is_placeholder, mask_url, refuse
from bridge.i18n import languages
from bridge.ports import PostKind

__all__ = [
    "DatabaseSettings",
    "DeliverySettings",
    "GeneralSettings",
    "MediaSettings",
    "MetricsSettings",
    "PaymentsSettings",
    "PrivacySettings",
    "SchedulerSettings",
]

_DB_SCHEMES = ("sqlite://", "postgresql+psycopg://")


class GeneralSettings(BaseModel):
    """[general]: where data lives, the operator's timezone, the log level and format."""

    model_config = _FROZEN

    data_dir: Path = Path("data")
    timezone: str = "UTC"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: earlier posts (of the last 30 days) a channel's new followers get; `/history` sets it per channel
    history: int = Field(default=3, ge=0, le=10)
    #: "text" (one line for people) or "json" (one object per line for a log pipeline)
    log_format: Literal["text", "json"] = "text"
    #: the language of answers to anyone whose language is not known (no `/lang` choice, no
    #: language reported by their platform), of channel-wide texts and of the default menus
    language: str = "en"

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in languages():
            raise refuse(
                f"no catalog for the language {value!r}",
                "set general.language to one of " + ", ".join(f'"{lang}"' for lang in languages()),
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _iana_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise refuse(
                "not a known IANA timezone name",
                'use a name like "UTC", "Europe/Berlin" or "America/New_York"',
            ) from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The configured timezone, used for times written without a zone."""
        return ZoneInfo(self.timezone)


class DatabaseSettings(BaseModel):
    """[database]: None means an SQLite file in data_dir; PostgreSQL to scale out."""

    model_config = _FROZEN

    url: str | None = None

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(_DB_SCHEMES):
            raise refuse(
                "unsupported database URL scheme",
                'use "sqlite:///path/to/file.db" or "postgresql+psycopg://user@host/dbname", '
                "or remove the key for the default SQLite file",
            )
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """The URL is shown with its password masked (repr, str, logs)."""
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "url" and isinstance(value, str) else value


_KEY_FIX = (
    'generate one with: python -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
)


class PrivacySettings(BaseModel):
    """[privacy]: the sealing key (urlsafe base64 of 32 bytes); generated when absent."""

    model_config = _FROZEN

    key: SecretStr | None = None

    @field_validator("key")
    @classmethod
    def _real_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        if is_placeholder(value):
            raise refuse(
                f"still the placeholder from config.example.toml ({PLACEHOLDER})",
                "remove the key to have one generated into data_dir, or set "
                "CHANNELBRIDGE_PRIVACY__KEY to urlsafe base64 of 32 random bytes",
            )
        text = value.get_secret_value().strip()
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError) as exc:
            raise refuse("not urlsafe base64", _KEY_FIX) from exc
        if len(raw) != 32:
            raise refuse("must decode to exactly 32 bytes", _KEY_FIX)
        return value


class DeliverySettings(BaseModel):
    """[delivery]: the outbox worker's parallelism and retry policy."""

    model_config = _FROZEN

    concurrency: int = Field(default=16, ge=1, le=256)
    batch_size: int = Field(default=500, ge=1, le=10000)
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_max_s: float = Field(default=600.0, gt=0)
    lease_s: float = Field(default=60.0, gt=0)
    progress_threshold: int = Field(default=50, ge=0)
    #: per-sender inbound throttle: commands one person may send at once, and refill per second
    sender_burst: int = Field(default=8, ge=1)
    sender_per_s: float = Field(default=0.5, gt=0)

    @model_validator(mode="after")
    def _backoff_order(self) -> DeliverySettings:
        if self.backoff_max_s < self.backoff_base_s:
            issue = (
                "backoff_max_s",
                "smaller than backoff_base_s",
                "make backoff_max_s at least backoff_base_s",
            )
            raise refuse(issue[1], issue[2], issues=(issue,))
        return self


class SchedulerSettings(BaseModel):
    """[scheduler]: the periodic sweep and what to do with posts missed while down."""

    model_config = _FROZEN

    sweep_interval_s: float = Field(default=30.0, gt=0)
    misfire_grace_s: float = Field(default=300.0, ge=0)
    late_policy: Literal["publish", "skip"] = "publish"


class MediaSettings(BaseModel):
    """[media]: the largest photo, video, voice note and sticker an admin may post (checked
    before the download where the platform announces the size, and on the bytes)."""

    model_config = _FROZEN

    max_photo_mb: float = Field(default=10.0, gt=0)
    max_video_mb: float = Field(default=50.0, gt=0)
    max_sticker_mb: float = Field(default=1.0, gt=0)
    max_voice_mb: float = Field(default=50.0, gt=0)  #: Telegram takes voice uploads up to 50 MB

    def limits(self) -> dict[PostKind, int]:
        """The caps in bytes, per kind (`EngineOptions.media_limits`)."""
        mb = 1024 * 1024
        return {
            PostKind.PHOTO: int(self.max_photo_mb * mb),
            PostKind.VIDEO: int(self.max_video_mb * mb),
            PostKind.STICKER: int(self.max_sticker_mb * mb),
            PostKind.VOICE: int(self.max_voice_mb * mb),
        }


class PaymentsSettings(BaseModel):
    """[payments]: paid channels (Telegram Stars), off by default; when on, the support
    contact `/paysupport` shows is required (Telegram's terms)."""

    model_config = _FROZEN

    enabled: bool = False
    teaser: bool = True  #: new tiers send free followers a one-line teaser of paid posts
    support: str = ""  #: how buyers reach the operator about a payment
    #: seconds after paid access ended before the follower is told (Telegram renews around then)
    expiry_notice_grace_s: float = Field(default=600.0, ge=0)

    @model_validator(mode="after")
    def _support_when_enabled(self) -> PaymentsSettings:
        if self.enabled and not self.support.strip():
            issue = (
                "support",
                "required when payments are enabled (Telegram requires a support contact for /paysupport)",
                'set payments.support to a contact, e.g. "@yourshop_support" or "support@example.org",'
                " or set payments.enabled = false",
            )
            raise refuse(issue[1], issue[2], issues=(issue,))
        return self


#: the host `[metrics] listen` binds when it names a port only
DEFAULT_METRICS_HOST = "127.0.0.1"


def split_listen(value: str) -> tuple[str, int]:
    """`host:port`, `:port` or `port` as (host, port); the host defaults to 127.0.0.1 and an
    IPv6 host is written in brackets (`[::1]:9464`). Raises ValueError when malformed."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]") or DEFAULT_METRICS_HOST
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError("port out of range")
    return host, port


class MetricsSettings(BaseModel):
    """[metrics]: the HTTP endpoint with Prometheus metrics (`/metrics`) and the health
    probes (`/livez`, `/readyz`); off by default, and on 127.0.0.1 when on."""

    model_config = _FROZEN

    enabled: bool = False
    listen: str = f"{DEFAULT_METRICS_HOST}:9464"  #: host:port (":9464" or "9464": 127.0.0.1)

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            split_listen(value)
        except ValueError as exc:
            raise refuse(
                "not a listen address",
                'use "127.0.0.1:9464" (or ":9464" for 127.0.0.1; "0.0.0.0:9464" only behind a firewall)',
            ) from exc
        return value

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to bind."""
        return split_listen(self.listen)
