"""Settings: one TOML file plus `CHANNELBRIDGE_<SECTION>__<KEY>` environment overrides.

`load_settings()` is the one way in: it reads the file (explicit path or `CHANNELBRIDGE_CONFIG`),
layers the environment on top (init kwargs > env > TOML > defaults), validates everything once and
turns every problem into a `ConfigProblem(key, message, fix)` named by its dotted key. Unknown keys
and placeholder secrets copied from `config.example.toml` are refused.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import os
import re
import stat
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from bridge.ports import PostKind, RateLimits

__all__ = [
    "ENV_CONFIG_PATH",
    "ENV_PREFIX",
    "PLACEHOLDER",
    "ChannelEntry",
    "ConfigError",
    "ConfigProblem",
    "ConsoleSettings",
    "DatabaseSettings",
    "DeliverySettings",
    "GeneralSettings",
    "MatrixRateLimit",
    "MatrixSettings",
    "OperatorEntry",
    "PrivacySettings",
    "SchedulerSettings",
    "Settings",
    "TelegramRateLimit",
    "TelegramSettings",
    "check_config",
    "load_settings",
]

#: prefix of every environment override
ENV_PREFIX = "CHANNELBRIDGE_"
#: environment variable naming the TOML file when no path is given
ENV_CONFIG_PATH = "CHANNELBRIDGE_CONFIG"
#: the marker used by `config.example.toml` for secrets the operator must supply
PLACEHOLDER = "REPLACE-ME"

_EXAMPLE = "see config.example.toml"
_HANDLE_RE = re.compile(r"[a-z0-9_]{3,32}")
_MXID_RE = re.compile(r"@[^:\s]+:\S+")
_TELEGRAM_MIRROR_RE = re.compile(r"telegram:(-?\d+|@[A-Za-z0-9_]{5,32})")
_MATRIX_MIRROR_RE = re.compile(r"matrix:![^\s]+")
_DB_SCHEMES = ("sqlite://", "postgresql+psycopg://")


def mask_url(url: str) -> str:
    """A URL with its password (if any) replaced by `***`: safe for repr, logs and errors."""
    parts = urllib.parse.urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":***"
    return urllib.parse.urlunsplit(parts._replace(netloc=userinfo + "@" + netloc[1]))


def _check_http_url(value: str, example: str) -> str:
    """An http(s) URL with a host, else a refusal naming the fix."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refuse(
            "must be an http:// or https:// URL with a host", f'write the whole URL, e.g. "{example}"'
        )
    return value


# --------------------------------------------------------------------------- problems


class ConfigProblem(NamedTuple):
    """One thing wrong with the configuration, named by its dotted key."""

    key: str  #: dotted key, e.g. "telegram.token" or "channels.0.handle"; "config" for the file
    message: str  #: what is wrong (never the offending value: it may be a secret)
    fix: str  #: what to do about it

    def __str__(self) -> str:
        return f"{self.key}: {self.message} — fix: {self.fix}"


class ConfigError(Exception):
    """The configuration is unusable; `problems` lists every reason, one per key."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def _refuse(message: str, fix: str, *, issues: tuple[tuple[str, str, str], ...] = ()) -> Exception:
    """A validation error carrying its own fix hint (and, for cross-field checks, sub-keys)."""
    return PydanticCustomError("config", message, {"fix": fix, "issues": issues})


def _is_placeholder(secret: SecretStr | None) -> bool:
    return secret is not None and PLACEHOLDER.lower() in secret.get_secret_value().lower()


def _placeholder_issue(key: str, env_name: str) -> tuple[str, str, str]:
    return (
        key,
        f"still the placeholder from config.example.toml ({PLACEHOLDER})",
        f"put the real value in the file or in the environment as {env_name}",
    )


# --------------------------------------------------------------------------- value checks


def _check_handle(value: str) -> str:
    if not _HANDLE_RE.fullmatch(value):
        raise _refuse(
            "a channel handle is 3-32 characters of a-z, 0-9 and _",
            'use lower-case letters, digits and underscores, e.g. "city_news"',
        )
    return value


def _check_mxid(value: str) -> str:
    if not _MXID_RE.fullmatch(value):
        raise _refuse("not a Matrix user id", 'write it as "@user:server", e.g. "@alice:example.org"')
    return value


def _check_mirror(value: str) -> str:
    if not (_TELEGRAM_MIRROR_RE.fullmatch(value) or _MATRIX_MIRROR_RE.fullmatch(value)):
        raise _refuse(
            "a mirror is a Telegram chat id or a Matrix room id",
            'use "telegram:<chat id>" (e.g. "telegram:-1001234567890") or '
            '"matrix:<room id>" (e.g. "matrix:!abcdef:example.org")',
        )
    return value


Handle = Annotated[str, AfterValidator(_check_handle)]
MatrixUserId = Annotated[str, AfterValidator(_check_mxid)]
MirrorSpec = Annotated[str, AfterValidator(_check_mirror)]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- sections


class GeneralSettings(BaseModel):
    """[general]: where data lives, the operator's timezone and the log level."""

    model_config = _FROZEN

    data_dir: Path = Path("data")
    timezone: str = "UTC"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("timezone")
    @classmethod
    def _iana_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise _refuse(
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
            raise _refuse(
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
        if _is_placeholder(value):
            raise _refuse(
                f"still the placeholder from config.example.toml ({PLACEHOLDER})",
                "remove the key to have one generated into data_dir, or set "
                "CHANNELBRIDGE_PRIVACY__KEY to urlsafe base64 of 32 random bytes",
            )
        text = value.get_secret_value().strip()
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError) as exc:
            raise _refuse("not urlsafe base64", _KEY_FIX) from exc
        if len(raw) != 32:
            raise _refuse("must decode to exactly 32 bytes", _KEY_FIX)
        return value


class OperatorEntry(BaseModel):
    """[[operators]]: one person who may create channels and manage all of them."""

    model_config = _FROZEN

    telegram: int | None = None
    matrix: MatrixUserId | None = None
    console: str | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> OperatorEntry:
        if self.telegram is None and self.matrix is None and self.console is None:
            raise _refuse(
                "an operator needs at least one identity",
                'set telegram = <numeric user id>, matrix = "@user:server" or console = "<name>"',
            )
        return self


class TelegramRateLimit(BaseModel):
    """[telegram.rate_limit]: Telegram's published sending limits."""

    model_config = _FROZEN

    global_per_s: float = Field(default=30.0, gt=0)
    per_chat_per_s: float = Field(default=1.0, gt=0)
    group_per_min: float = Field(default=20.0, gt=0)
    paid_per_s: float = Field(default=1000.0, gt=0)

    def as_limits(self, *, paid_broadcast: bool = False) -> RateLimits:
        """These limits as the neutral `RateLimits` the rate limiter takes (with the paid
        broadcast budget only when paid broadcasts are on)."""
        paid = self.paid_per_s if paid_broadcast else None
        return RateLimits(self.global_per_s, self.per_chat_per_s, self.group_per_min, paid)


class TelegramSettings(BaseModel):
    """[telegram]: the Bot API connection (long polling)."""

    model_config = _FROZEN

    enabled: bool = False
    token: SecretStr | None = None
    api_base_url: str = "https://api.telegram.org/bot"
    file_base_url: str = "https://api.telegram.org/file/bot"
    poll_interval: float = Field(default=0.0, ge=0)
    poll_timeout: int = Field(default=30, ge=0)
    #: fan-out copies carry allow_paid_broadcast and may go up to rate_limit.paid_per_s
    paid_broadcast: bool = False
    rate_limit: TelegramRateLimit = Field(default_factory=TelegramRateLimit)

    @field_validator("api_base_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return _check_http_url(value, "https://api.telegram.org/bot")

    @field_validator("file_base_url")
    @classmethod
    def _file_url(cls, value: str) -> str:
        return _check_http_url(value, "https://api.telegram.org/file/bot")

    @model_validator(mode="after")
    def _usable_when_enabled(self) -> TelegramSettings:
        if not self.enabled:
            return self
        issue: tuple[str, str, str] | None = None
        if self.token is None or not self.token.get_secret_value().strip():
            issue = (
                "token",
                "required when telegram is enabled",
                "set it in the environment as CHANNELBRIDGE_TELEGRAM__TOKEN (from @BotFather)",
            )
        elif _is_placeholder(self.token):
            issue = _placeholder_issue("token", "CHANNELBRIDGE_TELEGRAM__TOKEN")
        if issue is not None:
            raise _refuse(issue[1], issue[2], issues=(issue,))
        return self


class MatrixRateLimit(BaseModel):
    """[matrix.rate_limit]: our own pacing towards the homeserver."""

    model_config = _FROZEN

    per_s: float = Field(default=10.0, gt=0)
    per_room_per_s: float = Field(default=5.0, gt=0)

    def as_limits(self) -> RateLimits:
        """These limits as the neutral `RateLimits` (a room counts as a chat, never a group)."""
        return RateLimits(self.per_s, self.per_room_per_s, self.per_room_per_s * 60.0)


class MatrixSettings(BaseModel):
    """[matrix]: the bot account on a homeserver."""

    model_config = _FROZEN

    enabled: bool = False
    homeserver: str = ""
    user_id: str = ""
    access_token: SecretStr | None = None
    password: SecretStr | None = None
    device_id: str | None = None
    store_dir: Path | None = None
    encryption: bool = True
    rate_limit: MatrixRateLimit = Field(default_factory=MatrixRateLimit)

    @field_validator("homeserver")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value, "https://matrix.example.org") if value else value

    @field_validator("user_id")
    @classmethod
    def _mxid_or_empty(cls, value: str) -> str:
        return _check_mxid(value) if value else value

    @model_validator(mode="after")
    def _usable_when_enabled(self) -> MatrixSettings:
        if not self.enabled:
            return self
        issues: list[tuple[str, str, str]] = []
        needed = "required when matrix is enabled"
        if not self.homeserver:
            issues.append(("homeserver", needed, 'e.g. homeserver = "https://matrix.example.org"'))
        if not self.user_id:
            issues.append(("user_id", needed, 'the bot account, e.g. "@channelbridge:example.org"'))
        if self.access_token is None and self.password is None:
            issues.append(
                (
                    "access_token",
                    "one of access_token or password is required when matrix is enabled",
                    "set CHANNELBRIDGE_MATRIX__ACCESS_TOKEN or CHANNELBRIDGE_MATRIX__PASSWORD",
                )
            )
        if _is_placeholder(self.access_token):
            issues.append(_placeholder_issue("access_token", "CHANNELBRIDGE_MATRIX__ACCESS_TOKEN"))
        if _is_placeholder(self.password):
            issues.append(_placeholder_issue("password", "CHANNELBRIDGE_MATRIX__PASSWORD"))
        if issues:
            raise _refuse(issues[0][1], issues[0][2], issues=tuple(issues))
        return self


class ConsoleSettings(BaseModel):
    """[console]: the local terminal adapter; None means on when no platform is enabled."""

    model_config = _FROZEN

    enabled: bool | None = None


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
            raise _refuse(issue[1], issue[2], issues=(issue,))
        return self


class SchedulerSettings(BaseModel):
    """[scheduler]: the periodic sweep and what to do with posts missed while down."""

    model_config = _FROZEN

    sweep_interval_s: float = Field(default=30.0, gt=0)
    misfire_grace_s: float = Field(default=300.0, ge=0)
    late_policy: Literal["publish", "skip"] = "publish"


class MediaSettings(BaseModel):
    """[media]: the largest photo, video and sticker an admin may post (checked before the
    download where the platform announces the size, and on the bytes)."""

    model_config = _FROZEN

    max_photo_mb: float = Field(default=10.0, gt=0)
    max_video_mb: float = Field(default=50.0, gt=0)
    max_sticker_mb: float = Field(default=1.0, gt=0)

    def limits(self) -> dict[PostKind, int]:
        """The caps in bytes, per kind (`EngineOptions.media_limits`)."""
        mb = 1024 * 1024
        return {
            PostKind.PHOTO: int(self.max_photo_mb * mb),
            PostKind.VIDEO: int(self.max_video_mb * mb),
            PostKind.STICKER: int(self.max_sticker_mb * mb),
        }


class ChannelEntry(BaseModel):
    """[[channels]]: a channel declared by the operator, optionally mirrored into rooms."""

    model_config = _FROZEN

    handle: Handle
    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    public: bool = True
    mirrors: list[MirrorSpec] = Field(default_factory=list)


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class _LoadContext:
    """What `load_settings` asks the sources to read: a TOML file and an environment."""

    toml_path: Path | None
    env: Mapping[str, str]


_LOAD_CONTEXT: ContextVar[_LoadContext | None] = ContextVar("channelbridge_config", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """`EnvSettingsSource` reading an explicit mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]):
        self._explicit_env = dict(env)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._explicit_env,
            bool(self.case_sensitive),
            bool(self.env_ignore_empty),
            self.env_parse_none_str,
        )


# --------------------------------------------------------------------------- settings


class Settings(BaseSettings):
    """Every setting of one process. Build it with `load_settings()`.

    Constructed directly, it reads init kwargs and `os.environ` only (no TOML file).
    """

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_ignore_empty=True,
        case_sensitive=False,
    )

    general: GeneralSettings = Field(default_factory=GeneralSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    operators: list[OperatorEntry] = Field(default_factory=list)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    matrix: MatrixSettings = Field(default_factory=MatrixSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    channels: list[ChannelEntry] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Priority: init kwargs > environment > TOML file > defaults (no .env, no secrets dir)."""
        context = _LOAD_CONTEXT.get()
        if context is None:
            return (init_settings, env_settings)
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _MappingEnvSource(settings_cls, context.env),
        ]
        if context.toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=context.toml_path))
        return tuple(sources)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        issues: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        for index, channel in enumerate(self.channels):
            if channel.handle in seen:
                issues.append(
                    (
                        f"channels.{index}.handle",
                        "declared twice",
                        "give each [[channels]] entry its own handle",
                    )
                )
            seen.add(channel.handle)
            for position, mirror in enumerate(channel.mirrors):
                platform = mirror.split(":", 1)[0]
                section: TelegramSettings | MatrixSettings = getattr(self, platform)
                if not section.enabled:
                    issues.append(
                        (
                            f"channels.{index}.mirrors.{position}",
                            f"mirrors into {platform} but [{platform}] is not enabled",
                            f"set {platform}.enabled = true or remove this mirror",
                        )
                    )
        if issues:
            raise _refuse(issues[0][1], issues[0][2], issues=tuple(issues))
        return self

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL to use: the configured one, else `<data_dir>/channelbridge.db`."""
        if self.database.url is not None:
            return self.database.url
        return f"sqlite:///{(self.general.data_dir / 'channelbridge.db').as_posix()}"

    @property
    def console_enabled(self) -> bool:
        """Whether the console adapter runs: as configured, else when no platform is enabled."""
        if self.console.enabled is not None:
            return self.console.enabled
        return not (self.telegram.enabled or self.matrix.enabled)

    @property
    def matrix_store_dir(self) -> Path:
        """Where matrix-nio keeps its encryption store."""
        return self.matrix.store_dir or self.general.data_dir / "matrix-store"


# --------------------------------------------------------------------------- loading


def load_settings(path: Path | None = None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the configuration; raise `ConfigError` listing every problem.

    `path` None falls back to `CHANNELBRIDGE_CONFIG`, else no file (defaults + environment).
    `env` replaces `os.environ` (tests pass an explicit mapping; nothing else is read then).
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if path is None:
        named = _env_lookup(environ, ENV_CONFIG_PATH)
        path = Path(named) if named else None
    problems = _env_name_problems(environ)
    file_problems = _toml_problems(path) if path is not None else []
    if file_problems:
        raise ConfigError(problems + file_problems)
    token = _LOAD_CONTEXT.set(_LoadContext(path, environ))
    try:
        settings = Settings()
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, environ))
        raise ConfigError(problems) from None
    except SettingsError as exc:
        problems.append(_settings_error_problem(exc))
        raise ConfigError(problems) from None
    finally:
        _LOAD_CONTEXT.reset(token)
    if problems:
        raise ConfigError(problems)
    return settings


_SECRET_KEYS = (("telegram", "token"), ("matrix", "access_token"), ("matrix", "password"), ("privacy", "key"))


def config_file_warnings(path: Path | None) -> list[str]:
    """Warnings about a config file holding a secret (a token, a password, the privacy key, a
    database password) that other users of the machine can read."""
    if path is None or not path.is_file():
        return []
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return []
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return []
    held = [f"{section}.{key}" for section, key in _SECRET_KEYS if data.get(section, {}).get(key)]
    url = data.get("database", {}).get("url")
    if isinstance(url, str) and urllib.parse.urlsplit(url).password:
        held.append("database.url (its password)")
    if not held:
        return []
    return [
        f"warning: the config file {path} has mode {mode:04o} and holds {', '.join(held)}: other users of "
        f"this machine can read it; fix: chmod 600 {path} (or move the secrets to CHANNELBRIDGE_* "
        "environment variables)"
    ]


def check_config(path: Path | None = None, *, env: Mapping[str, str] | None = None) -> tuple[int, list[str]]:
    """`channelbridge check-config`: (0, summary lines) or (1, one line per problem).

    The summary names no secret and no operator identity (it gives counts).
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    try:
        settings = load_settings(path, env=environ)
    except ConfigError as exc:
        return 1, [str(problem) for problem in exc.problems]
    source = path if path is not None else _env_lookup(environ, ENV_CONFIG_PATH)
    return 0, _summary(settings, source) + config_file_warnings(Path(source) if source else None)


def _summary(settings: Settings, source: Path | str | None) -> list[str]:
    adapters = [
        name
        for name, on in (
            ("telegram", settings.telegram.enabled),
            ("matrix", settings.matrix.enabled),
            ("console", settings.console_enabled),
        )
        if on
    ]
    if settings.database.url is None:
        database = f"sqlite (default file {settings.database_url.removeprefix('sqlite:///')})"
    elif settings.database.url.startswith("sqlite"):
        database = "sqlite"
    else:
        database = "postgresql"
    channels = settings.channels
    mirrors = sum(len(channel.mirrors) for channel in channels)
    handles = ", ".join(channel.handle for channel in channels)
    lines = [
        f"config: {source if source else 'no file (defaults and environment)'}",
        f"database: {database}",
        f"adapters: {', '.join(adapters) if adapters else 'none'}",
        f"operators: {len(settings.operators)}",
        f"channels: {len(channels)}" + (f" ({handles}; {mirrors} mirror rooms)" if channels else ""),
        f"timezone: {settings.general.timezone}",
        f"data_dir: {settings.general.data_dir}",
        "privacy key: " + ("configured" if settings.privacy.key else "generated into data_dir on first run"),
    ]
    if settings.telegram.enabled:
        lines.append(f"telegram: long polling, {settings.telegram.api_base_url}")
    if settings.matrix.enabled:
        encrypted = "encrypted" if settings.matrix.encryption else "unencrypted"
        lines.append(f"matrix: {settings.matrix.homeserver} ({encrypted})")
    return lines


def _env_lookup(environ: Mapping[str, str], name: str) -> str | None:
    for key, value in environ.items():
        if key.upper() == name:
            return value
    return None


def _env_name_problems(environ: Mapping[str, str]) -> list[ConfigProblem]:
    """Catch `CHANNELBRIDGE_TELEGRAM_TOKEN` (one underscore): it would be silently ignored."""
    problems = []
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper == ENV_CONFIG_PATH:
            continue
        rest = upper[len(ENV_PREFIX) :]
        section = rest.split("__", 1)[0].lower()
        if section in Settings.model_fields:
            continue
        for known in Settings.model_fields:
            if section.startswith(known + "_"):
                key = section[len(known) + 1 :]
                problems.append(
                    ConfigProblem(
                        upper,
                        "environment variable is not read (one underscore after the section)",
                        f"rename it to {ENV_PREFIX}{known.upper()}__{key.upper()}",
                    )
                )
                break
    return problems


def _toml_problems(path: Path) -> list[ConfigProblem]:
    """The file must exist and parse; syntax errors are reported with line and column."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [
            ConfigProblem(
                "config",
                f"file not found: {path}",
                "check the --config path or CHANNELBRIDGE_CONFIG; start from config.example.toml",
            )
        ]
    except OSError as exc:
        return [ConfigProblem("config", f"cannot read {path}: {exc.strerror}", "check the path")]
    try:
        tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return [ConfigProblem("config", f"{path} is not UTF-8 text", "save the file as UTF-8")]
    except tomllib.TOMLDecodeError as exc:
        return [
            ConfigProblem(
                "config",
                f"TOML syntax error in {path}: {exc}",
                "fix the TOML at that line and column (quote strings, one key per line)",
            )
        ]
    return []


def _settings_error_problem(exc: SettingsError) -> ConfigProblem:
    """pydantic-settings fails this way when an environment value is not valid JSON."""
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1) if match else "environment"
    return ConfigProblem(
        field,
        "environment value could not be parsed",
        f"give {ENV_PREFIX}{field.upper()} as JSON, or set single keys as {ENV_PREFIX}{field.upper()}__<KEY>",
    )


def _validation_problems(exc: ValidationError, environ: Mapping[str, str]) -> Iterator[ConfigProblem]:
    """One problem per pydantic error, keyed by dotted location; names the env var if it set it."""
    env_names = {name.upper() for name in environ}
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        ctx = error.get("ctx") or {}
        issues = ctx.get("issues") or ()
        if error["type"] == "config" and issues:
            for sub_key, message, fix in issues:
                key_loc = (*loc, *sub_key.split("."))
                yield ConfigProblem(_dotted(key_loc), message + _env_origin(key_loc, env_names), fix)
            continue
        message = _message(error) + _env_origin(loc, env_names)
        yield ConfigProblem(_dotted(loc) or "config", message, _fix(error, loc))


def _env_origin(loc: tuple[Any, ...], env_names: set[str]) -> str:
    name = ENV_PREFIX + "__".join(str(part) for part in loc).upper()
    return f" (set by {name})" if loc and name in env_names else ""


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


_TYPE_FIXES = {
    "int_type": "use a whole number",
    "int_parsing": "use a whole number",
    "int_from_float": "use a whole number",
    "float_type": "use a number",
    "float_parsing": "use a number",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "string_type": 'use a quoted string, e.g. "text"',
    "list_type": "use a list, e.g. [...] or repeated [[table]] entries",
    "model_type": "use a table: [section] or { key = value }",
    "model_attributes_type": "use a table: [section] or { key = value }",
    "dict_type": "use a table: [section] or { key = value }",
    "path_type": "use a quoted path",
    "missing": f"add this key ({_EXAMPLE})",
}


_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def _fix(error: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "config":
        return str(ctx.get("fix") or _EXAMPLE)
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{hint}remove it or correct the spelling (config.example.toml lists every key)"
    if kind == "literal_error":
        return f"use one of {ctx.get('expected', '')}"
    if kind in _BOUNDS:
        operator, name = _BOUNDS[kind]
        limit = ctx.get(name, "")
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"use a value {operator} {limit}"
    if kind in ("string_too_short", "too_short"):
        return "give a non-empty value"
    if kind in ("string_too_long", "too_long"):
        return "shorten it"
    return _TYPE_FIXES.get(kind, _EXAMPLE)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found at `loc` (for "did you mean" hints)."""
    annotation: Any = Settings
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(part, int):
            args = typing.get_args(annotation)
            annotation = args[0] if args else None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field else None
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation
