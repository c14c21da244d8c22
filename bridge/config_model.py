"""The shape of the settings: the core model, the `[[operators]]` and `[[channels]]` entries, and
`settings_model(platforms)`, which adds one section per platform plug-in (validated by the
plug-in's own model). `bridge.config` reads a file and the environment into it."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, cast

from pydantic import AfterValidator, BaseModel, Field, create_model, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from bridge.config_checks import ENV_PREFIX, FROZEN, Issue, refuse
from bridge.config_sections import (
    DatabaseSettings,
    DeliverySettings,
    GeneralSettings,
    MediaSettings,
    MetricsSettings,
    PaymentsSettings,
    PrivacySettings,
    SchedulerSettings,
)
from bridge.platforms import Platforms, PlatformSettings, either

__all__ = ["ChannelEntry", "CoreSettings", "LoadContext", "OperatorEntry", "load_context", "settings_model"]

_HANDLE_RE = re.compile(r"[a-z0-9_]{3,32}")


def _check_handle(value: str) -> str:
    if not _HANDLE_RE.fullmatch(value):
        raise refuse(
            "a channel handle is 3-32 characters of a-z, 0-9 and _",
            'use lower-case letters, digits and underscores, e.g. "city_news"',
        )
    return value


Handle = Annotated[str, AfterValidator(_check_handle)]


# --------------------------------------------------------------------------- entries


class OperatorEntry(BaseModel):
    """[[operators]]: one person who may create channels and manage all of them. The model for
    a set of plug-ins (`settings_model`) has one optional key per platform: their identity there."""

    model_config = FROZEN

    #: the fix shown for an entry without any identity (set per plug-in set)
    identity_fix: ClassVar[str] = "give at least one platform identity"

    @model_validator(mode="after")
    def _at_least_one(self) -> OperatorEntry:
        if all(value is None for _, value in self):
            raise refuse("an operator needs at least one identity", self.identity_fix)
        return self

    def identities(self) -> list[tuple[str, str]]:
        """(platform, identity) for every platform this operator is named on."""
        return [(name, str(value)) for name, value in self if value is not None and value != ""]


class ChannelEntry(BaseModel):
    """[[channels]]: a channel declared by the operator, optionally mirrored into rooms
    (`"<platform>:<address>"`, checked against the plug-ins' mirror syntax)."""

    model_config = FROZEN

    handle: Handle
    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    public: bool = True
    mirrors: list[str] = Field(default_factory=list)

    def mirror_pairs(self) -> list[tuple[str, str]]:
        """The mirrors as (platform, address)."""
        return [(platform, chat) for platform, _, chat in (m.partition(":") for m in self.mirrors)]


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class LoadContext:
    """What `load_settings` asks the sources to read: a TOML file and an environment."""

    toml_path: Path | None
    env: Mapping[str, str]


#: what the sources of a `CoreSettings()` being built read (set by `bridge.config.load_settings`)
load_context: ContextVar[LoadContext | None] = ContextVar("channelbridge_config", default=None)


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


class CoreSettings(BaseSettings):
    """Every setting of one process: the core sections here, one section per platform plug-in
    added by `settings_model(platforms)`. Build it with `load_settings()`."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_ignore_empty=True,
        case_sensitive=False,
    )

    #: the platform plug-ins this model was built for
    platforms: ClassVar[Platforms] = Platforms()

    general: GeneralSettings = Field(default_factory=GeneralSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    operators: list[OperatorEntry] = Field(default_factory=list)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    payments: PaymentsSettings = Field(default_factory=PaymentsSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
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
        context = load_context.get()
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
    def _consistent(self) -> CoreSettings:
        issues: list[Issue] = []
        seen: set[str] = set()
        enabled = self.enabled_platforms()
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
            for position, (platform, _) in enumerate(channel.mirror_pairs()):
                if platform not in enabled:
                    issues.append(
                        (
                            f"channels.{index}.mirrors.{position}",
                            f"mirrors into {platform} but [{platform}] is not enabled",
                            f"set {platform}.enabled = true or remove this mirror",
                        )
                    )
        if issues:
            raise refuse(issues[0][1], issues[0][2], issues=tuple(issues))
        return self

    def platform_sections(self) -> dict[str, PlatformSettings]:
        """Each installed platform's section, by platform name."""
        names = set(self.platforms.names())
        return {name: value for name, value in self if name in names and isinstance(value, PlatformSettings)}

    def enabled_platforms(self) -> tuple[str, ...]:
        """The platforms that run: those enabled, and a fallback platform (the console) unless
        it is switched off or another platform is enabled."""
        sections = self.platform_sections()
        fallback = {plugin.name for plugin in self.platforms if plugin.fallback}
        others_on = any(section.enabled for name, section in sections.items() if name not in fallback)
        return tuple(
            name
            for name, section in sections.items()
            if section.enabled or (section.enabled is None and name in fallback and not others_on)
        )

    def mirror_chats(self, platform: str) -> tuple[str, ...]:
        """The configured mirror rooms on `platform` (addresses without the prefix)."""
        return tuple(chat for c in self.channels for p, chat in c.mirror_pairs() if p == platform)

    def sealed_dirs(self) -> list[Path]:
        """Directories of sealed files kept by the platforms (re-sealed by `rotate-key`)."""
        data_dir = self.general.data_dir
        sections = self.platform_sections()
        found: list[Path] = []
        for plugin in self.platforms:
            if plugin.name in sections:
                found += plugin.sealed_dirs(sections[plugin.name], data_dir)
        return found

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL to use: the configured one, else `<data_dir>/channelbridge.db`."""
        if self.database.url is not None:
            return self.database.url
        return f"sqlite:///{(self.general.data_dir / 'channelbridge.db').as_posix()}"


# --------------------------------------------------------------------------- one model per plug-in set


def _mirror_checker(platforms: Platforms) -> AfterValidator:
    takers = [platforms.plugin(name) for name in platforms.mirror_platforms()]
    message = "a mirror is " + either(p.mirror.noun for p in takers if p.mirror is not None)
    fix = "use " + " or ".join(
        f'"{p.name}:{p.mirror.placeholder}" (e.g. "{p.name}:{p.mirror.example}")'
        for p in takers
        if p.mirror is not None
    )
    if not takers:
        message, fix = "no installed platform takes mirror rooms", "remove the mirrors"

    def check(value: str) -> str:
        if not platforms.valid_config_mirror(value):
            raise refuse(message, fix)
        return value

    return AfterValidator(check)


@functools.cache
def settings_model(platforms: Platforms) -> type[CoreSettings]:
    """The settings model for a set of plug-ins: the core sections plus `[<platform>]` for each
    (validated by its plug-in's model), `[[operators]]` with one identity key per platform, and
    `[[channels]] mirrors` checked against their mirror syntax. Cached: equal plug-in sets share
    one model, so their settings compare equal."""
    clash = set(platforms.names()) & set(CoreSettings.model_fields)
    if clash:
        raise ValueError(f"a platform plug-in may not be named like a core section: {sorted(clash)}")
    identities: dict[str, Any] = {p.name: (p.operator.annotation | None, None) for p in platforms}
    operator_model = create_model("OperatorEntry", __base__=OperatorEntry, **identities)
    operator_model.identity_fix = "set " + either(f"{p.name} = {p.operator.example}" for p in platforms)
    channel_model = create_model(
        "ChannelEntry",
        __base__=ChannelEntry,
        mirrors=(list[Annotated[str, _mirror_checker(platforms)]], Field(default_factory=list)),
    )
    mixins = tuple(p.settings_mixin for p in platforms if p.settings_mixin is not None)
    sections: dict[str, Any] = {
        p.name: (p.settings_model, Field(default_factory=p.settings_model)) for p in platforms
    }
    sections["operators"] = (list[operator_model], Field(default_factory=list))
    sections["channels"] = (list[channel_model], Field(default_factory=list))
    model = _subclass("Settings", (CoreSettings, *mixins), sections)
    model.platforms = platforms
    return model


def _subclass(name: str, bases: tuple[type, ...], fields: dict[str, Any]) -> type[CoreSettings]:
    """`create_model` typed for what it makes here (the pydantic mypy plug-in cannot know)."""
    made: type[BaseModel] = create_model(name, __base__=bases, __doc__=CoreSettings.__doc__, **fields)
    return cast(type[CoreSettings], made)
