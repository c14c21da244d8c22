"""The Telegram plug-in: the `[telegram]` section, how to build the adapter, and how Telegram
operators and mirror chats are written (registered in the `channelbridge.adapters` entry points)."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from bridge.config_checks import FROZEN, Issue, check_http_url, is_placeholder, placeholder_issue, refuse
from bridge.config_sections import split_listen
from bridge.platforms import MirrorSyntax, OperatorId, PlatformPlugin, PlatformServices, PlatformSettings
from bridge.ports import Adapter, RateLimits, WebhookSpec

#: the header Telegram sends the webhook secret in
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

__all__ = ["PLUGIN", "TelegramRateLimit", "TelegramSettings"]


class TelegramRateLimit(BaseModel):
    """[telegram.rate_limit]: Telegram's published sending limits."""

    model_config = FROZEN

    global_per_s: float = Field(default=30.0, gt=0)
    per_chat_per_s: float = Field(default=1.0, gt=0)
    group_per_min: float = Field(default=20.0, gt=0)
    paid_per_s: float = Field(default=1000.0, gt=0)

    def as_limits(self, *, paid_broadcast: bool = False) -> RateLimits:
        """These limits as the neutral `RateLimits` the rate limiter takes (with the paid
        broadcast budget only when paid broadcasts are on)."""
        paid = self.paid_per_s if paid_broadcast else None
        return RateLimits(self.global_per_s, self.per_chat_per_s, self.group_per_min, paid)


class TelegramSettings(PlatformSettings):
    """[telegram]: the Bot API connection (long polling, or a webhook when `webhook_url` is set)."""

    enabled: bool = False
    token: SecretStr | None = None
    api_base_url: str = "https://api.telegram.org/bot"
    file_base_url: str = "https://api.telegram.org/file/bot"
    poll_interval: float = Field(default=0.0, ge=0)
    poll_timeout: int = Field(default=30, ge=0)
    #: fan-out copies carry allow_paid_broadcast and may go up to rate_limit.paid_per_s
    paid_broadcast: bool = False
    rate_limit: TelegramRateLimit = Field(default_factory=TelegramRateLimit)
    #: webhook mode: the public https URL Telegram posts updates to (empty: long polling)
    webhook_url: str = ""
    #: where this process listens for them (behind the reverse proxy that terminates TLS)
    webhook_listen: str = "127.0.0.1:8443"
    #: the path served there
    webhook_path: str = "/telegram/webhook"
    #: the secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (1-256 of A-Z a-z 0-9 _ -)
    webhook_secret: SecretStr | None = None

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        return check_http_url(value, "https://bot.example.org/telegram/webhook") if value else value

    @field_validator("webhook_listen")
    @classmethod
    def _webhook_listen(cls, value: str) -> str:
        try:
            split_listen(value)
        except ValueError as exc:
            raise refuse("not a listen address", 'use "127.0.0.1:8443" (the proxy forwards to it)') from exc
        return value

    @field_validator("webhook_path")
    @classmethod
    def _webhook_path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise refuse("must be a path starting with /", 'e.g. "/telegram/webhook"')
        return value

    @property
    def webhook_address(self) -> tuple[str, int]:
        """(host, port) the webhook receiver binds."""
        return split_listen(self.webhook_listen)

    @field_validator("api_base_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return check_http_url(value, "https://api.telegram.org/bot")

    @field_validator("file_base_url")
    @classmethod
    def _file_url(cls, value: str) -> str:
        return check_http_url(value, "https://api.telegram.org/file/bot")

    @model_validator(mode="after")
    def _usable_when_enabled(self) -> TelegramSettings:
        if not self.enabled:
            return self
        issue: Issue | None = None
        if self.token is None or not self.token.get_secret_value().strip():
            issue = (
                "token",
                "required when telegram is enabled",
                "set it in the environment as CHANNELBRIDGE_TELEGRAM__TOKEN (from @BotFather)",
            )
        elif is_placeholder(self.token):
            issue = placeholder_issue("token", "CHANNELBRIDGE_TELEGRAM__TOKEN")
        elif self.webhook_url:
            issue = _webhook_secret_issue(self.webhook_secret)
        if issue is not None:
            raise refuse(issue[1], issue[2], issues=(issue,))
        return self


_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _webhook_secret_issue(secret: SecretStr | None) -> Issue | None:
    """What is wrong with the webhook secret in webhook mode, if anything."""
    fix = (
        "set CHANNELBRIDGE_TELEGRAM__WEBHOOK_SECRET to a random string of letters, digits, _ and -"
        " (e.g. from `openssl rand -hex 32`), or remove webhook_url to use long polling"
    )
    if secret is None or not secret.get_secret_value():
        return ("webhook_secret", "required when webhook_url is set", fix)
    if is_placeholder(secret):
        return placeholder_issue("webhook_secret", "CHANNELBRIDGE_TELEGRAM__WEBHOOK_SECRET")
    if not _SECRET_TOKEN.fullmatch(secret.get_secret_value()):
        return ("webhook_secret", "must be 1-256 characters of A-Z, a-z, 0-9, _ and -", fix)
    return None


def build(section: TelegramSettings, services: PlatformServices) -> Adapter:
    """The Telegram adapter for `section`, with the command menus it publishes."""
    from adapters.telegram.adapter import TelegramAdapter

    return TelegramAdapter(
        section.token.get_secret_value() if section.token else "",
        api_base_url=section.api_base_url,
        file_base_url=section.file_base_url,
        poll_interval=section.poll_interval,
        poll_timeout=section.poll_timeout,
        commands=[(name.replace("-", "_"), summary) for name, summary in services.follower_commands],
        admin_commands=[(name.replace("-", "_"), summary) for name, summary in services.admin_commands],
        localized_commands={
            language: (
                [(name.replace("-", "_"), summary) for name, summary in follower],
                [(name.replace("-", "_"), summary) for name, summary in admin],
            )
            for language, follower, admin in services.localized_commands
        },
        limits=section.rate_limit.as_limits(paid_broadcast=section.paid_broadcast),
        paid_broadcast=section.paid_broadcast,
        webhook=_webhook_spec(section),
        webhook_url=section.webhook_url,
    )


def _webhook_spec(section: TelegramSettings) -> WebhookSpec | None:
    """The webhook the adapter registers and the app serves, None for long polling."""
    if not section.webhook_url or section.webhook_secret is None:
        return None
    host, port = section.webhook_address
    return WebhookSpec(
        host, port, section.webhook_path, section.webhook_secret.get_secret_value(), SECRET_HEADER
    )


def describe(section: TelegramSettings) -> str:
    """The `check-config` line."""
    if section.webhook_url:
        return (
            f"webhook {section.webhook_url} (listening on {section.webhook_listen}), {section.api_base_url}"
        )
    return f"long polling, {section.api_base_url}"


PLUGIN = PlatformPlugin(
    name="telegram",
    settings_model=TelegramSettings,
    factory=build,
    rank=10,
    sells_stars=True,
    paid_media=True,
    native_quiz=True,
    operator=OperatorId(int, "<numeric user id>"),
    mirror=MirrorSyntax(
        pattern=re.compile(r"-?[0-9]{1,20}|@[A-Za-z0-9_]{5,32}"),
        config_pattern=re.compile(r"-?\d+|@[A-Za-z0-9_]{5,32}"),
        noun="a Telegram chat id",
        placeholder="<chat id>",
        example="-1001234567890",
        hint="a number like -1001234567890",
    ),
    # the Bot API URL holds the token
    loggers=("telegram", "httpx", "httpcore"),
    describe=describe,
)
