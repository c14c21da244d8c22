"""Subscribing with a platform's payments (Telegram Stars): `/subscribe`, `/unsubscribe`,
`/refund`. PLACEHOLDER: being built."""

from __future__ import annotations

from bridge.commands import RefundArgs, SubscribeArgs, UnsubscribeArgs
from bridge.engine.context import Context
from bridge.engine.core import Refusal
from bridge.ports import Reply


def cmd_subscribe(ctx: Context, cmd: SubscribeArgs) -> list[Reply]:
    """`/subscribe <handle>`."""
    raise Refusal("Not available yet.")


def cmd_unsubscribe(ctx: Context, cmd: UnsubscribeArgs) -> list[Reply]:
    """`/unsubscribe <handle>`."""
    raise Refusal("Not available yet.")


def cmd_refund(ctx: Context, cmd: RefundArgs) -> list[Reply]:
    """`/refund <handle> <charge-id>`."""
    raise Refusal("Not available yet.")
