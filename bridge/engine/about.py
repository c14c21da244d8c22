"""`/privacy`: what the bot stores about the person asking, from `bridge.privacy_facts` (the
same facts as the README's "Privacy model" section)."""

from __future__ import annotations

from bridge.commands import PrivacyArgs
from bridge.engine.context import Context
from bridge.ports import Reply
from bridge.privacy_facts import privacy_text


def cmd_privacy(ctx: Context, cmd: PrivacyArgs) -> list[Reply]:
    """`/privacy`."""
    return [Reply(privacy_text(ctx.options.payments_enabled))]
