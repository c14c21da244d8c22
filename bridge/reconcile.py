"""`channelbridge payments reconcile`: the ledger against the platform's own list of Stars
transactions.

Pages through the transactions of every enabled platform whose adapter is a `StarsGateway`
(Telegram's `getStarTransactions`) and compares them with the ledger by charge id: invoice
payments with the charges and renewals, refunds with the refunds. Every difference is one line:

- `missing`: the platform has it, the ledger does not;
- `extra`: the ledger has it, the platform does not;
- `amount`: both have it, with different amounts.

A line names the charge id, the channel, amounts and dates, never a person. The exit code is 1
when there is a difference, else 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bridge import migrate
from bridge.app import build_adapters
from bridge.config import Settings
from bridge.engine.access import InvoicePayload
from bridge.models import LedgerKind
from bridge.ports import StarsGateway, StarTransaction
from bridge.store import LedgerCharge, Store

#: transactions per getStarTransactions page (Telegram's largest)
PAGE = 100
_PAYMENTS = (LedgerKind.CHARGE, LedgerKind.RENEWAL)


@dataclass(frozen=True)
class Difference:
    """One way the platform and the ledger disagree about one money event."""

    kind: str  #: "missing", "extra" or "amount"
    what: str  #: "payment" or "refund"
    charge_id: str
    channel: str  #: the channel's handle, "?" when nothing names it
    platform_amount: int | None
    ledger_amount: int | None
    date: float

    def line(self) -> str:
        """The difference as one printed line."""
        day = datetime.fromtimestamp(self.date, UTC).strftime("%Y-%m-%d %H:%M UTC")
        amounts = f"platform {_stars(self.platform_amount)}, ledger {_stars(self.ledger_amount)}"
        return f"{self.kind:<7} {self.what:<7} {self.charge_id}  {self.channel}  {amounts}  {day}"


def _stars(amount: int | None) -> str:
    return "-" if amount is None else f"{amount} Stars"


def compare(
    transactions: list[StarTransaction], ledger: list[LedgerCharge], channel_of: Callable[[str | None], str]
) -> list[Difference]:
    """Every difference between the platform's invoice payments and refunds and the ledger's
    charges, renewals and refunds (`channel_of` names a payload's channel)."""
    differences: list[Difference] = []
    for what, platform_side, ledger_side in (
        ("payment", [t for t in transactions if t.incoming], [e for e in ledger if e.kind in _PAYMENTS]),
        (
            "refund",
            [t for t in transactions if not t.incoming],
            [e for e in ledger if e.kind is LedgerKind.REFUND],
        ),
    ):
        theirs = {t.id: t for t in platform_side if t.payload is not None}
        ours = {e.charge_id: e for e in ledger_side}
        for charge_id, tx in theirs.items():
            entry = ours.get(charge_id)
            if entry is None:
                differences.append(
                    Difference("missing", what, charge_id, channel_of(tx.payload), tx.amount, None, tx.date)
                )
            elif entry.amount != tx.amount:
                differences.append(
                    Difference("amount", what, charge_id, entry.handle, tx.amount, entry.amount, tx.date)
                )
        for charge_id, entry in ours.items():
            if charge_id not in theirs:
                differences.append(
                    Difference("extra", what, charge_id, entry.handle, None, entry.amount, entry.created_at)
                )
    return sorted(differences, key=lambda d: d.date)


async def all_transactions(gateway: StarsGateway, page: int = PAGE) -> list[StarTransaction]:
    """Every transaction, page by page (offset and limit) until a short page."""
    out: list[StarTransaction] = []
    while True:
        batch = await gateway.star_transactions(len(out), page)
        out.extend(batch)
        if len(batch) < page:
            return out


def _channel_namer(store: Store) -> Callable[[str | None], str]:
    def channel_of(payload: str | None) -> str:
        decoded = InvoicePayload.decode(payload or "")
        if decoded is None:
            return "?"
        with store.unit_of_work() as s:
            tier = store.payments.tier_by_id(s, decoded.tier_id)
            channel = store.channels.by_id(s, tier.channel_id) if tier is not None else None
            return channel.handle if channel is not None else "?"

    return channel_of


async def reconcile(settings: Settings, out: Callable[[str], None]) -> int:
    """Compare the ledger with every Stars-selling platform's transactions; print each
    difference and a summary with `out`; 1 when they differ, 0 when they agree, 2 when no
    enabled platform lists Stars transactions."""
    adapters = build_adapters(settings, only=lambda name: settings.platforms.plugin(name).sells_stars)
    gateways = {a.platform: a for a in adapters if isinstance(a, StarsGateway)}
    if not gateways:
        out("reconcile: no enabled platform lists Stars transactions (enable [telegram])")
        return 2
    store = Store(settings.database_url)
    found = 0
    try:
        migrate.require_head(store.engine)
        for platform, gateway in gateways.items():
            transactions = await all_transactions(gateway)
            with store.unit_of_work() as s:
                ledger = store.payments.charges_on(s, platform)
            differences = compare(transactions, ledger, _channel_namer(store))
            for difference in differences:
                out(difference.line())
            counts = {k: sum(d.kind == k for d in differences) for k in ("missing", "extra", "amount")}
            out(
                f"reconcile {platform}: {len(transactions)} transactions, {len(ledger)} ledger rows;"
                f" {counts['missing']} missing, {counts['extra']} extra, {counts['amount']} amount"
            )
            found += len(differences)
    finally:
        store.dispose()
        await asyncio.gather(*(a.stop() for a in adapters), return_exceptions=True)
    return 1 if found else 0


__all__ = ["Difference", "all_transactions", "compare", "reconcile"]
