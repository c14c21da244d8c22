"""The engine layer: `ChannelEngine` and the command handlers it applies.

Layout: `core` (options, hooks and the rules shared by handlers and timed actions),
`context` (what a handler is given, and the authorization checks), `followers`,
`admin_posts` and `admin_channels` (one plain function per command), `registry` (every
command bound to its handler, in one list), `inbound` (media, native votes, reactions) and
`channel_engine` (`ChannelEngine`: handle, publish, timed actions, planning).
"""

from bridge.engine.channel_engine import ChannelEngine
from bridge.engine.context import Context
from bridge.engine.core import (
    INVITE_TTL_S,
    MAX_TEXT,
    Actor,
    EngineCore,
    EngineOptions,
    Hooks,
    MirrorFactory,
    Notify,
    Refusal,
)

__all__ = [
    "INVITE_TTL_S",
    "MAX_TEXT",
    "Actor",
    "ChannelEngine",
    "Context",
    "EngineCore",
    "EngineOptions",
    "Hooks",
    "MirrorFactory",
    "Notify",
    "Refusal",
]
