"""Configuration problems: `ConfigProblem(key, message, fix)` and how every failure becomes one.

`bridge.config.load_settings` collects them from four places: environment variable names, the
TOML file itself, pydantic's validation errors and pydantic-settings' parse errors. Each is named
by its dotted key and never shows the offending value (it may be a secret).
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from bridge.config_checks import ENV_PREFIX

__all__ = [
    "EXAMPLE_HINT",
    "ConfigError",
    "ConfigProblem",
    "env_name_problems",
    "settings_error_problem",
    "toml_problems",
    "validation_problems",
]

#: where every key is documented
EXAMPLE_HINT = "see config.example.toml"


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


def env_name_problems(
    environ: Mapping[str, str], sections: Sequence[str], config_var: str
) -> list[ConfigProblem]:
    """Catch `CHANNELBRIDGE_TELEGRAM_TOKEN` (one underscore): it would be silently ignored."""
    problems = []
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper == config_var:
            continue
        rest = upper[len(ENV_PREFIX) :]
        section = rest.split("__", 1)[0].lower()
        if section in sections:
            continue
        for known in sections:
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


def toml_problems(path: Path) -> list[ConfigProblem]:
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


def settings_error_problem(exc: SettingsError) -> ConfigProblem:
    """pydantic-settings fails this way when an environment value is not valid JSON."""
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1) if match else "environment"
    return ConfigProblem(
        field,
        "environment value could not be parsed",
        f"give {ENV_PREFIX}{field.upper()} as JSON, or set single keys as {ENV_PREFIX}{field.upper()}__<KEY>",
    )


def validation_problems(
    exc: ValidationError, environ: Mapping[str, str], model: type[BaseModel], platforms: Sequence[str]
) -> Iterator[ConfigProblem]:
    """One problem per pydantic error, keyed by dotted location; names the env var if it set it.

    `model` is the settings model (for "did you mean" hints), `platforms` the installed
    platform names (named in the fix of an unknown section)."""
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
        if error["type"] == "extra_forbidden" and len(loc) == 1:
            yield _unknown_section(str(loc[0]), model, platforms)
            continue
        message = _message(error) + _env_origin(loc, env_names)
        yield ConfigProblem(_dotted(loc) or "config", message, _fix(error, loc, model))


def _unknown_section(name: str, model: type[BaseModel], platforms: Sequence[str]) -> ConfigProblem:
    close = difflib.get_close_matches(name, list(model.model_fields), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    installed = ", ".join(platforms) if platforms else "none"
    return ConfigProblem(
        name,
        "unknown section: neither a core section nor an installed platform plug-in",
        f"{hint}remove [{name}] or correct the spelling; for a platform, install the package that "
        f"registers it in the channelbridge.adapters entry points (installed platforms: {installed})",
    )


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
    "missing": f"add this key ({EXAMPLE_HINT})",
}


_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def _fix(error: Mapping[str, Any], loc: tuple[Any, ...], model: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "config":
        return str(ctx.get("fix") or EXAMPLE_HINT)
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
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
    return _TYPE_FIXES.get(kind, EXAMPLE_HINT)


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found at `loc` (for "did you mean" hints)."""
    annotation: Any = model
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
