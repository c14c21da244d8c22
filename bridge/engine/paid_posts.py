"""Paid posts: pay-per-post purchases. PLACEHOLDER: being built."""

from __future__ import annotations

from bridge.engine.core import Actor, EngineCore
from bridge.ports import PaidMediaPurchased, Reply


def purchased(core: EngineCore, actor: Actor, event: PaidMediaPurchased) -> list[Reply]:
    """Count one purchase of a pay-per-post copy (nothing is said to the buyer)."""
    return []
