"""`/privacy`: what the bot stores. PLACEHOLDER: being built."""

from __future__ import annotations

from bridge.commands import PrivacyArgs
from bridge.engine.context import Context
from bridge.engine.core import Refusal
from bridge.ports import Reply


def cmd_privacy(ctx: Context, cmd: PrivacyArgs) -> list[Reply]:
    """`/privacy`."""
    raise Refusal("Not available yet.")
