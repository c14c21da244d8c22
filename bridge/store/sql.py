"""SQL helpers shared by the store and the notice queue: status values bound, never spelled."""

from __future__ import annotations

from sqlalchemy import TextClause, text

from bridge.models import DeliveryStatus

#: status values by bind name (`:pending` -> DeliveryStatus.PENDING), for outbox-like tables
STATUS_PARAMS = {status.name.lower(): status.value for status in DeliveryStatus}


def open_predicate(alias: str) -> str:
    """The open-rows partial indexes' predicate (`_OPEN` in bridge.models) on `alias`, spelled
    from the enum but inline: a planner uses a partial index only when the query repeats its
    predicate literally, which a bound parameter does not."""
    return f"{alias}.status IN ('{DeliveryStatus.PENDING.value}', '{DeliveryStatus.LEASED.value}')"


def status_text(statement: str) -> TextClause:
    """`text(statement)` with the status values it names (`:pending`, `:leased`, ...) bound."""
    named = {k: v for k, v in STATUS_PARAMS.items() if f":{k}" in statement}
    return text(statement).bindparams(**named)


__all__ = ["STATUS_PARAMS", "open_predicate", "status_text"]
