"""Money events from a platform: a pre-checkout to accept or refuse, a payment received (a
charge or a renewal), a refund. PLACEHOLDER: being built."""

from __future__ import annotations

from bridge.engine.core import Actor, EngineCore
from bridge.ports import PaymentReceived, PaymentRefunded, PreCheckout, Reply


async def handle(
    core: EngineCore, actor: Actor, event: PreCheckout | PaymentReceived | PaymentRefunded
) -> list[Reply]:
    """Apply one money event; returns what to tell the payer."""
    if isinstance(event, PreCheckout):
        await event.answer("Payments are not available yet.")
    return []
