"""Value checks shared by the core's settings sections and the platform plug-ins' sections.

A check refuses with `refuse(message, fix)`: a pydantic error that `bridge.config` turns into a
`ConfigProblem` named by the key's dotted path. A cross-field check passes `issues`, one
`(sub-key, message, fix)` per key, so each is named on its own.
"""

from __future__ import annotations

import urllib.parse

from pydantic import ConfigDict, SecretStr
from pydantic_core import PydanticCustomError

__all__ = [
    "ENV_PREFIX",
    "FROZEN",
    "PLACEHOLDER",
    "Issue",
    "check_http_url",
    "is_placeholder",
    "mask_url",
    "placeholder_issue",
    "refuse",
]

#: prefix of every environment override
ENV_PREFIX = "CHANNELBRIDGE_"
#: the marker used by `config.example.toml` for secrets the operator must supply
PLACEHOLDER = "REPLACE-ME"
#: frozen, unknown keys refused: every settings section
FROZEN = ConfigDict(frozen=True, extra="forbid")

#: (sub-key, message, fix) of one cross-field problem
Issue = tuple[str, str, str]


def refuse(message: str, fix: str, *, issues: tuple[Issue, ...] = ()) -> Exception:
    """A validation error carrying its own fix hint (and, for cross-field checks, sub-keys)."""
    return PydanticCustomError("config", message, {"fix": fix, "issues": issues})


def is_placeholder(secret: SecretStr | None) -> bool:
    """Whether a secret still holds the example file's placeholder."""
    return secret is not None and PLACEHOLDER.lower() in secret.get_secret_value().lower()


def placeholder_issue(key: str, env_name: str) -> Issue:
    """The problem of a secret left at the example file's placeholder."""
    return (
        key,
        f"still the placeholder from config.example.toml ({PLACEHOLDER})",
        f"put the real value in the file or in the environment as {env_name}",
    )


def mask_url(url: str) -> str:
    """A URL with its password (if any) replaced by `***`: safe for repr, logs and errors."""
    parts = urllib.parse.urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":***"
    return urllib.parse.urlunsplit(parts._replace(netloc=userinfo + "@" + netloc[1]))


def check_http_url(value: str, example: str) -> str:
    """An http(s) URL with a host, else a refusal naming the fix."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refuse(
            "must be an http:// or https:// URL with a host", f'write the whole URL, e.g. "{example}"'
        )
    return value
