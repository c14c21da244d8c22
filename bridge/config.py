"""Settings: one TOML file plus `CHANNELBRIDGE_<SECTION>__<KEY>` environment overrides.

`load_settings()` is the one way in: it finds the platform plug-ins (`bridge.platforms`), builds
the settings model for them (the core sections plus one section per platform, each validated by
its plug-in's own model), reads the file (explicit path or `CHANNELBRIDGE_CONFIG`), layers the
environment on top (init kwargs > env > TOML > defaults), validates everything once and turns
every problem into a `ConfigProblem(key, message, fix)` named by its dotted key. Unknown keys,
unknown sections and placeholder secrets copied from `config.example.toml` are refused.
"""

from __future__ import annotations

import functools
import os
import stat
import tomllib
import typing
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import SettingsError

from bridge.config_checks import ENV_PREFIX, PLACEHOLDER, mask_url
from bridge.config_model import (
    ChannelEntry,
    CoreSettings,
    LoadContext,
    OperatorEntry,
    load_context,
    settings_model,
)
from bridge.config_problems import (
    ConfigError,
    ConfigProblem,
    env_name_problems,
    settings_error_problem,
    toml_problems,
    validation_problems,
)
from bridge.config_sections import (
    DatabaseSettings,
    DeliverySettings,
    GeneralSettings,
    MediaSettings,
    PaymentsSettings,
    PrivacySettings,
    SchedulerSettings,
)
from bridge.platforms import Platforms

__all__ = [
    "ENV_CONFIG_PATH",
    "ENV_PREFIX",
    "PLACEHOLDER",
    "ChannelEntry",
    "ConfigError",
    "ConfigProblem",
    "CoreSettings",
    "DatabaseSettings",
    "DeliverySettings",
    "GeneralSettings",
    "MediaSettings",
    "OperatorEntry",
    "PaymentsSettings",
    "PrivacySettings",
    "SchedulerSettings",
    "Settings",
    "check_config",
    "config_file_warnings",
    "load_settings",
    "mask_url",
    "settings_model",
]

#: environment variable naming the TOML file when no path is given
ENV_CONFIG_PATH = "CHANNELBRIDGE_CONFIG"

if TYPE_CHECKING:
    Settings = CoreSettings
else:
    #: the settings model for the plug-ins installed in this environment
    Settings = settings_model(Platforms.discover())


# --------------------------------------------------------------------------- loading


def load_settings(
    path: Path | None = None, *, env: Mapping[str, str] | None = None, platforms: Platforms | None = None
) -> CoreSettings:
    """Read, merge and validate the configuration; raise `ConfigError` listing every problem.

    `path` None falls back to `CHANNELBRIDGE_CONFIG`, else no file (defaults + environment).
    `env` replaces `os.environ` (tests pass an explicit mapping; nothing else is read then).
    `platforms` None discovers the plug-ins registered in the entry points now.
    """
    model = settings_model(platforms if platforms is not None else Platforms.discover())
    environ: Mapping[str, str] = os.environ if env is None else env
    if path is None:
        named = _env_lookup(environ, ENV_CONFIG_PATH)
        path = Path(named) if named else None
    problems = env_name_problems(environ, list(model.model_fields), ENV_CONFIG_PATH)
    file_problems = toml_problems(path) if path is not None else []
    if file_problems:
        raise ConfigError(problems + file_problems)
    token = load_context.set(LoadContext(path, environ))
    try:
        settings = model()
    except ValidationError as exc:
        found = validation_problems(exc, environ, model, model.platforms.names())
        problems.extend(sorted(found, key=functools.partial(_section_rank, model)))
        raise ConfigError(problems) from None
    except SettingsError as exc:
        problems.append(settings_error_problem(exc))
        raise ConfigError(problems) from None
    finally:
        load_context.reset(token)
    if problems:
        raise ConfigError(problems)
    return settings


def _section_rank(model: type[CoreSettings], problem: ConfigProblem) -> int:
    """Problems are listed in the order of the file: core sections, with the platform sections
    right after `[[operators]]`; anything else last."""
    core = list(CoreSettings.model_fields)
    split = core.index("operators") + 1
    order = [*core[:split], *model.platforms.names(), *core[split:]]
    section = problem.key.split(".", 1)[0]
    return order.index(section) if section in order else len(order)


def _secret_keys(model: type[BaseModel]) -> list[str]:
    """Dotted names of every secret key one level inside a section."""
    found = []
    for section, info in model.model_fields.items():
        inner = info.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            found += [f"{section}.{k}" for k, f in inner.model_fields.items() if _is_secret(f.annotation)]
    return found


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


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
    secrets = _secret_keys(settings_model(Platforms.discover()))
    held = [dotted for dotted in secrets if data.get(dotted.split(".")[0], {}).get(dotted.split(".")[1])]
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


def _summary(settings: CoreSettings, source: Path | str | None) -> list[str]:
    adapters = settings.enabled_platforms()
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
    sections = settings.platform_sections()
    for name in adapters:
        line = settings.platforms.plugin(name).describe(sections[name])
        if line is not None:
            lines.append(f"{name}: {line}")
    return lines


def _env_lookup(environ: Mapping[str, str], name: str) -> str | None:
    for key, value in environ.items():
        if key.upper() == name:
            return value
    return None
