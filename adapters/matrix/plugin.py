"""The Matrix plug-in: the `[matrix]` section, how to build the adapter, and how Matrix
operators and mirror rooms are written (registered in the `channelbridge.adapters` entry points)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Protocol

from pydantic import AfterValidator, BaseModel, Field, SecretStr, field_validator, model_validator

from bridge.config_checks import FROZEN, Issue, check_http_url, is_placeholder, placeholder_issue, refuse
from bridge.platforms import MirrorSyntax, OperatorId, PlatformPlugin, PlatformServices, PlatformSettings
from bridge.ports import Adapter, RateLimits

__all__ = ["PLUGIN", "MatrixRateLimit", "MatrixSettings", "MatrixUserId", "store_dir"]

_MXID_RE = re.compile(r"@[^:\s]+:\S+")
_ROOM_RE = re.compile(r"![^\s:|]{1,200}:(?:[A-Za-z0-9.\-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def _check_mxid(value: str) -> str:
    if not _MXID_RE.fullmatch(value):
        raise refuse("not a Matrix user id", 'write it as "@user:server", e.g. "@alice:example.org"')
    return value


#: a Matrix user id, `@user:server`
MatrixUserId = Annotated[str, AfterValidator(_check_mxid)]


class MatrixRateLimit(BaseModel):
    """[matrix.rate_limit]: our own pacing towards the homeserver."""

    model_config = FROZEN

    per_s: float = Field(default=10.0, gt=0)
    per_room_per_s: float = Field(default=5.0, gt=0)

    def as_limits(self) -> RateLimits:
        """These limits as the neutral `RateLimits` (a room counts as a chat, never a group)."""
        return RateLimits(self.per_s, self.per_room_per_s, self.per_room_per_s * 60.0)


class MatrixSettings(PlatformSettings):
    """[matrix]: the bot account on a homeserver."""

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
        return check_http_url(value, "https://matrix.example.org") if value else value

    @field_validator("user_id")
    @classmethod
    def _mxid_or_empty(cls, value: str) -> str:
        return _check_mxid(value) if value else value

    @model_validator(mode="after")
    def _usable_when_enabled(self) -> MatrixSettings:
        if not self.enabled:
            return self
        issues: list[Issue] = []
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
        if is_placeholder(self.access_token):
            issues.append(placeholder_issue("access_token", "CHANNELBRIDGE_MATRIX__ACCESS_TOKEN"))
        if is_placeholder(self.password):
            issues.append(placeholder_issue("password", "CHANNELBRIDGE_MATRIX__PASSWORD"))
        if issues:
            raise refuse(issues[0][1], issues[0][2], issues=tuple(issues))
        return self


def store_dir(section: MatrixSettings, data_dir: Path) -> Path:
    """Where matrix-nio keeps its encryption store: as configured, else `<data_dir>/matrix-store`."""
    return section.store_dir or data_dir / "matrix-store"


class _WithMatrix(Protocol):
    """The settings of a process with the Matrix plug-in, as `MatrixSettingsMixin` reads them."""

    @property
    def matrix(self) -> MatrixSettings: ...

    @property
    def general(self) -> _General: ...


class _General(Protocol):
    @property
    def data_dir(self) -> Path: ...


class MatrixSettingsMixin:
    """Adds `matrix_store_dir` to the whole settings object of a process with this plug-in."""

    @property
    def matrix_store_dir(self: _WithMatrix) -> Path:
        """Where matrix-nio keeps its encryption store."""
        return store_dir(self.matrix, self.general.data_dir)


def build(section: MatrixSettings, services: PlatformServices) -> Adapter:
    """The Matrix adapter for `section`, told of the mirror rooms configured on Matrix."""
    from adapters.matrix.adapter import MatrixAdapter

    return MatrixAdapter(
        section.homeserver,
        section.user_id,
        access_token=section.access_token.get_secret_value() if section.access_token else None,
        password=section.password.get_secret_value() if section.password else None,
        device_id=section.device_id,
        store_dir=store_dir(section, services.data_dir),
        encryption=section.encryption,
        mirror_rooms=list(services.mirror_chats),
        limits=section.rate_limit.as_limits(),
    )


def describe(section: MatrixSettings) -> str:
    """The `check-config` line."""
    return f"{section.homeserver} ({'encrypted' if section.encryption else 'unencrypted'})"


def sealed_dirs(section: MatrixSettings, data_dir: Path) -> list[Path]:
    """The olm store and state files are sealed with the privacy key (`rotate-key` re-seals them)."""
    return [store_dir(section, data_dir)]


PLUGIN = PlatformPlugin(
    name="matrix",
    settings_model=MatrixSettings,
    factory=build,
    rank=20,
    operator=OperatorId(MatrixUserId, '"@user:server"'),
    mirror=MirrorSyntax(
        pattern=_ROOM_RE,
        config_pattern=re.compile(r"![^\s]+"),
        noun="a Matrix room id",
        placeholder="<room id>",
        example="!abcdef:example.org",
        hint="like !abcdef:example.org",
        creatable=True,
    ),
    loggers=("nio", "aiohttp", "peewee"),
    describe=describe,
    sealed_dirs=sealed_dirs,
    settings_mixin=MatrixSettingsMixin,
)
