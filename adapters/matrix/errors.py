"""The one place where matrix-nio outcomes become the core's three failure types.

nio reports remote failures as values (`ErrorResponse` subclasses) and local/transport problems as
exceptions; both are translated here, with `raise ... from` so the cause stays visible.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from nio import ErrorResponse
from nio.exceptions import LocalProtocolError, SendRetryError

from bridge.ports import DeliveryError, PermanentFailure, RecipientGone, RetryLater

#: errcodes that mean the person at the other end no longer exists for us
_GONE_CODES = frozenset({"M_USER_DEACTIVATED", "M_USER_IN_USE_DEACTIVATED"})
#: message fragments Synapse uses when the bot is not (or no longer) in the room
_NOT_IN_ROOM = ("not in room", "not joined", "is not in the room", "deactivated")


#: user (@), room (!), alias (#) and event ($) ids, and device ids named as such
_MATRIX_ID = re.compile(r"[@!#$][^\s:'\"]+:[A-Za-z0-9.\-\[\]]+(?::\d+)?")


def scrub(text: str) -> str:
    """`text` with every Matrix id replaced by a placeholder: reasons end up in logs and in
    the delivery records that /stats summarises, and must never name anyone."""
    return _MATRIX_ID.sub("<id>", text)


def http_status(resp: ErrorResponse) -> int | None:
    """The HTTP status of an error response, when nio kept it."""
    transport = getattr(resp, "transport_response", None)
    status = getattr(transport, "status", None)
    return status if isinstance(status, int) else None


def is_rate_limited(resp: ErrorResponse) -> bool:
    """True when the homeserver refused the request for its rate limit (HTTP 429)."""
    return str(resp.status_code or "") == "M_LIMIT_EXCEEDED" or http_status(resp) == 429


def error_for_response(resp: ErrorResponse, what: str) -> DeliveryError:
    """Map one nio error response to `RetryLater`, `RecipientGone` or `PermanentFailure`.

    `what` names the operation for the reason text; it must never contain a user id.
    """
    code = str(resp.status_code or "")
    message = str(resp.message or "").lower()
    status = http_status(resp)
    if is_rate_limited(resp):
        retry_ms = getattr(resp, "retry_after_ms", None)
        after = retry_ms / 1000 if isinstance(retry_ms, int | float) else None
        return RetryLater(after, scope="global", reason=f"{what}: rate limited")
    if code in _GONE_CODES:
        return RecipientGone(f"{what}: user deactivated")
    if code == "M_FORBIDDEN" and any(fragment in message for fragment in _NOT_IN_ROOM):
        return RecipientGone(f"{what}: not in the room")
    if status is not None and status >= 500:
        return RetryLater(None, reason=f"{what}: server error {status}")
    if status is None and not code:
        return RetryLater(None, reason=f"{what}: no usable response")
    return PermanentFailure(f"{what}: {code or status}")


def check(resp: Any, what: str) -> None:
    """Raise the translated failure if `resp` is a nio error response; else do nothing."""
    if isinstance(resp, ErrorResponse):
        raise error_for_response(resp, what)


def error_for_exception(exc: BaseException, what: str) -> DeliveryError:
    """Map a transport or nio-local exception to a failure type."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, aiohttp.ClientResponseError) and exc.status >= 500:
        return RetryLater(None, reason=f"{what}: server error {exc.status}")
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return RetryLater(None, reason=f"{what}: {type(exc).__name__}")
    if isinstance(exc, SendRetryError):
        return RetryLater(None, reason=f"{what}: encryption keys not ready")
    if isinstance(exc, LocalProtocolError):
        return PermanentFailure(scrub(f"{what}: {exc}"))
    return PermanentFailure(f"{what}: {type(exc).__name__}")


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run a block of nio calls; any transport/nio exception leaves as a failure type."""
    try:
        yield
    except DeliveryError:
        raise
    except asyncio.CancelledError:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError, SendRetryError, LocalProtocolError) as exc:
        raise error_for_exception(exc, what) from exc
