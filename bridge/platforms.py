"""Platforms as plug-ins: what an adapter package declares, and the registry the core asks.

An adapter package exports one `PlatformPlugin` and registers it in the
`channelbridge.adapters` entry-point group of its distribution (`pyproject.toml`):

    [project.entry-points."channelbridge.adapters"]
    telegram = "adapters.telegram.plugin:PLUGIN"

`Platforms.discover()` loads every registered plug-in (the model is opsdroid's `loader.py`:
each connector brings its own config section); the core then knows a platform only through its
plug-in: the name of its TOML section, its settings model, how to build its adapter, how its
operators and mirror rooms are written. Nothing in `bridge/` or `scheduler/` names a platform.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from bridge.ports import Adapter

__all__ = [
    "ENTRY_POINT_GROUP",
    "MirrorSyntax",
    "OperatorId",
    "PlatformError",
    "PlatformPlugin",
    "PlatformServices",
    "PlatformSettings",
    "Platforms",
    "either",
    "load_problems",
]

#: the entry-point group adapter distributions register their plug-in in
ENTRY_POINT_GROUP = "channelbridge.adapters"

_NAME_RE = re.compile(r"[a-z][a-z0-9_]{1,31}")


class PlatformError(Exception):
    """A plug-in is malformed or clashes with another one (a packaging mistake, not a config one)."""


class PlatformSettings(BaseModel):
    """Base of a platform's TOML section: frozen, unknown keys refused, and `enabled`.

    `enabled` None means "not said": off, except for a fallback platform (`PlatformPlugin.fallback`),
    which is on when no other platform is enabled (the console)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool | None = None


@dataclass(frozen=True)
class OperatorId:
    """How an operator's identity on this platform is written in `[[operators]]`.

    `annotation` is the pydantic type of the key (`int`, or an `Annotated[str, AfterValidator]`
    with the platform's own error message); `example` is the right-hand side shown in the fix of
    an operator without any identity, e.g. `<numeric user id>` or `"@user:server"`."""

    annotation: Any
    example: str


@dataclass(frozen=True)
class MirrorSyntax:
    """How a mirror room on this platform is addressed: `<platform>:<address>`.

    `pattern` is what `/mirror <handle> <platform>:<address>` accepts; `config_pattern` what a
    `[[channels]] mirrors` entry accepts (kept as lenient as configs already written need).
    `noun` names the address in messages ("a Telegram chat id"), `placeholder` and `example` show
    it in usage lines, `hint` follows a refusal ("a number like -1001234567890"), and `creatable`
    says whether `/mirror <handle> create <platform>` is supported (the adapter then also
    implements `bridge.ports.MirrorRoomCreator`)."""

    pattern: re.Pattern[str]
    config_pattern: re.Pattern[str]
    noun: str
    placeholder: str
    example: str
    hint: str
    creatable: bool = False


@dataclass(frozen=True)
class PlatformServices:
    """What the core hands a plug-in's factory besides its own section.

    `mirror_chats` are the `[[channels]]` mirrors configured on this platform (addresses without
    the `<platform>:` prefix); the command menus are (name, one-line summary) pairs; `prompt` is
    true when the process runs on an interactive terminal that wants a prompt."""

    data_dir: Path
    mirror_chats: tuple[str, ...] = ()
    follower_commands: tuple[tuple[str, str], ...] = ()
    admin_commands: tuple[tuple[str, str], ...] = ()
    prompt: bool = False
    #: the same menus per language, `(language, follower commands, admin commands)`, for a
    #: platform whose menus can follow each person's language (Telegram's `language_code`)
    localized_commands: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], ...] = ()


def _no_summary(section: Any) -> str | None:
    return None


def _no_dirs(section: Any, data_dir: Path) -> list[Path]:
    return []


@dataclass(frozen=True)
class PlatformPlugin:
    """Everything the core needs to know about one platform, exported by its adapter package.

    - `name`: the platform name (`Address.platform`) and its TOML section `[<name>]`;
    - `settings_model`: that section, a `PlatformSettings` subclass validating itself with its
      own messages;
    - `factory(section, services)`: builds the adapter (called only when the platform is enabled);
    - `operator`: how an operator's identity is written, `mirror`: the mirror-room syntax, None
      when the platform has no mirror rooms;
    - `fallback`: on by default when no other platform is enabled;
    - `loggers`: SDK loggers to quiet to WARNING (they print tokens, URLs or ids);
    - `describe(section)`: a line for `check-config` when enabled, `sealed_dirs(section, data_dir)`:
      the directories of sealed files `rotate-key` must re-seal;
    - `settings_mixin`: an optional class of read-only properties added to the whole settings
      object (derived values that need both the core and this section);
    - `rank`: where the platform comes in lists and messages (lower first; entry points come
      in no meaningful order);
    - `sells_stars`: `/subscribe` answers its people with an invoice (Telegram; the console
      simulates payments); elsewhere access comes with an access code (`/redeem`);
    - `paid_media`: a pay-per-post (`--stars`) copy goes out as paid media its people buy;
    - `native_quiz`: a quiz goes out as the platform's own quiz, which shows each voter the
      correct answer itself (Telegram); elsewhere the bot reveals it after the vote.
    """

    name: str
    settings_model: type[PlatformSettings]
    factory: Callable[[Any, PlatformServices], Adapter]
    operator: OperatorId
    mirror: MirrorSyntax | None = None
    fallback: bool = False
    loggers: tuple[str, ...] = ()
    describe: Callable[[Any], str | None] = _no_summary
    sealed_dirs: Callable[[Any, Path], list[Path]] = _no_dirs
    settings_mixin: type | None = field(default=None)
    rank: int = 100
    sells_stars: bool = False  #: takes Stars payments (or simulates them): /subscribe sends an invoice
    paid_media: bool = False  #: sends a pay-per-post copy as paid media (Telegram's sendPaidMedia)
    native_quiz: bool = False  #: sends quizzes as its own quiz polls, which reveal the answer


@dataclass(frozen=True)
class Platforms:
    """The platform plug-ins of one process, by rank (a registry, not a loader).

    Built by `discover()` from the entry points, or from a list (tests). Hashable and compared
    by its plug-ins, so models built from it can be cached."""

    plugins: tuple[PlatformPlugin, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for plugin in self.plugins:
            if not _NAME_RE.fullmatch(plugin.name):
                raise PlatformError(f"platform name {plugin.name!r} must be 2-32 of a-z, 0-9 and _")
            if plugin.name in seen:
                raise PlatformError(f"two plug-ins register the platform {plugin.name!r}")
            seen.add(plugin.name)

    @classmethod
    def discover(cls, group: str = ENTRY_POINT_GROUP) -> Platforms:
        """Load every plug-in registered in the entry-point group (on the current sys.path).

        A plug-in that cannot be loaded (its module fails to import, it is no `PlatformPlugin`,
        its name clashes) is left out and recorded, so one broken distribution does not stop
        the others: `load_problems()` says what and how to fix it (the CLI prints them).
        Read once per group and `sys.path`: finding entry points reads every installed
        distribution's metadata, and config, app and engine all ask."""
        return _discover(group, tuple(sys.path))

    def __iter__(self) -> Iterator[PlatformPlugin]:
        return iter(self.plugins)

    def __len__(self) -> int:
        return len(self.plugins)

    def __contains__(self, name: object) -> bool:
        return any(plugin.name == name for plugin in self.plugins)

    def names(self) -> tuple[str, ...]:
        """Every platform name, by rank."""
        return tuple(plugin.name for plugin in self.plugins)

    def plugin(self, name: str) -> PlatformPlugin:
        """The plug-in of platform `name` (KeyError when none is installed)."""
        for plugin in self.plugins:
            if plugin.name == name:
                return plugin
        raise KeyError(name)

    def mirror_syntax(self, name: str) -> MirrorSyntax | None:
        """How mirror rooms on `name` are addressed; None for an unknown platform or one
        without mirror rooms."""
        return self.plugin(name).mirror if name in self else None

    def mirror_platforms(self) -> tuple[str, ...]:
        """The platforms that take mirror rooms."""
        return tuple(plugin.name for plugin in self.plugins if plugin.mirror is not None)

    def valid_mirror_address(self, name: str, text: str) -> bool:
        """Whether `text` (without the `<platform>:` prefix) is a mirror address `/mirror` takes."""
        syntax = self.mirror_syntax(name)
        return syntax is not None and syntax.pattern.fullmatch(text) is not None

    def valid_config_mirror(self, spec: str) -> bool:
        """Whether `<platform>:<address>` is a mirror a `[[channels]]` entry may name."""
        name, sep, address = spec.partition(":")
        syntax = self.mirror_syntax(name)
        return bool(sep) and syntax is not None and syntax.config_pattern.fullmatch(address) is not None

    def can_create_mirror(self, name: str) -> bool:
        """Whether `/mirror <handle> create <name>` is supported."""
        syntax = self.mirror_syntax(name)
        return syntax is not None and syntax.creatable

    def creatable_mirror_platforms(self) -> tuple[str, ...]:
        """The platforms whose adapter creates mirror rooms itself."""
        return tuple(name for name in self.mirror_platforms() if self.can_create_mirror(name))

    def loggers(self) -> tuple[str, ...]:
        """Every plug-in's SDK loggers, each once."""
        return tuple(dict.fromkeys(name for plugin in self.plugins for name in plugin.loggers))


@functools.cache
def _discover(group: str, search_path: tuple[str, ...]) -> Platforms:
    """`Platforms.discover` for one group on one `sys.path` (the cache key)."""
    found: list[PlatformPlugin] = []
    for entry in entry_points(group=group):
        where = f"entry point {entry.name} = {entry.value} in {group}"
        try:
            plugin = entry.load()
        except Exception as exc:  # a broken or half-installed distribution
            _problem(f"{where} could not be loaded ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        if not isinstance(plugin, PlatformPlugin):
            _problem(f"{where} is not a PlatformPlugin")
        elif not _NAME_RE.fullmatch(plugin.name):
            _problem(f"{where}: a platform name must be 2-32 of a-z, 0-9 and _")
        elif plugin.name != entry.name:
            _problem(f"{where} names a plug-in called {plugin.name!r}")
        elif any(plugin.name == other.name and plugin is not other for other in found):
            _problem(f"{where}: another plug-in already registers the platform {plugin.name!r}")
        elif all(plugin is not other for other in found):  # a distribution seen twice on sys.path
            found.append(plugin)
    return Platforms(tuple(sorted(found, key=lambda plugin: (plugin.rank, plugin.name))))


#: what `discover()` had to leave out, each once, in the order met
_PROBLEMS: dict[str, None] = {}


def _problem(text: str) -> None:
    _PROBLEMS[text + "; repair or uninstall the distribution that provides it"] = None


def load_problems() -> list[str]:
    """The plug-ins `Platforms.discover()` left out in this process, with the fix."""
    return list(_PROBLEMS)


def either(words: Iterable[str]) -> str:
    """`a`, `a or b`, `a, b or c`: a list for an error message."""
    items = list(words)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]
