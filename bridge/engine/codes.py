"""Access codes: `/codes` (owner mints) and `/redeem` (anyone). PLACEHOLDER: being built."""

from __future__ import annotations

from bridge.commands import CodesArgs, RedeemArgs
from bridge.engine.context import Context
from bridge.engine.core import Refusal
from bridge.ports import Reply


def cmd_codes(ctx: Context, cmd: CodesArgs) -> list[Reply]:
    """`/codes <handle> <count> <days>`."""
    raise Refusal("Not available yet.")


def cmd_redeem(ctx: Context, cmd: RedeemArgs) -> list[Reply]:
    """`/redeem <code>`."""
    raise Refusal("Not available yet.")
