"""The one place where python-telegram-bot exceptions become the core's three failure types.

`RetryAfter` -> `RetryLater(seconds)`; `Forbidden` (blocked, deactivated, never started) ->
`RecipientGone`; `BadRequest` -> `PermanentFailure(description)`; network trouble, time-outs
and 5xx -> `RetryLater(None)`. Every translation keeps the SDK error as `__cause__`.
"""

from __future__ import annotations

import datetime as dtm
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from adapters.base import DeliveryError, PermanentFailure, RecipientGone, RetryLater

#: Telegram descriptions the adapter reacts to (matched case-insensitively; PTB capitalizes)
NOT_MODIFIED = "message is not modified"
CANT_DELETE = "message can't be deleted"
DELETE_NOT_FOUND = "message to delete not found"
POLL_ALREADY_CLOSED = "poll has already been closed"
NO_TEXT_TO_EDIT = "there is no text in the message to edit"
BAD_FILE_ID = ("wrong file identifier", "can't use file of type", "wrong remote file")
#: a channel (not a group) refuses polls that show who voted
POLL_MUST_BE_ANONYMOUS = "non-anonymous polls can't be sent to channel"


class ExactBadRequest(BadRequest):
    """A 400 answer that keeps Telegram's description verbatim (PTB strips "Bad Request: "
    and re-capitalizes the rest, which mangles codes such as PHOTO_INVALID_DIMENSIONS)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def raise_exact_400(code: int, payload: bytes) -> None:
    """Raise `ExactBadRequest` for a 400 answer without `parameters` (the transport calls this;
    a group migrated to a supergroup carries `parameters`, which PTB turns into `ChatMigrated`)."""
    if code != 400:
        return
    try:
        body = json.loads(payload)
    except ValueError:
        return
    if isinstance(body, dict) and body.get("description") and not body.get("parameters"):
        raise ExactBadRequest(str(body["description"]))


def retry_after_seconds(exc: RetryAfter) -> float:
    """The wait Telegram asked for, in seconds, whatever PTB's timedelta migration setting."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: int | float | dtm.timedelta = exc.retry_after
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    return float(value)


def translate(exc: TelegramError) -> DeliveryError:
    """Map one python-telegram-bot exception to `RetryLater`, `RecipientGone` or
    `PermanentFailure` (the caller raises it `from exc`)."""
    if isinstance(exc, RetryAfter):
        return RetryLater(retry_after_seconds(exc), reason="Telegram flood control")
    if isinstance(exc, Forbidden):
        return RecipientGone(exc.message)
    if isinstance(exc, ChatMigrated):
        return PermanentFailure("the group was upgraded to a supergroup; its chat id changed")
    if isinstance(exc, ExactBadRequest):
        return PermanentFailure(exc.description)
    if isinstance(exc, BadRequest):
        return PermanentFailure(exc.message)
    if isinstance(exc, InvalidToken):
        return RetryLater(None, scope="global", reason="Telegram rejected the bot token")
    if isinstance(exc, NetworkError | Conflict):  # TimedOut and 5xx are NetworkErrors in PTB
        return RetryLater(None, reason=f"Telegram unavailable: {exc.message}")
    return PermanentFailure(exc.message)


@contextmanager
def translated() -> Iterator[None]:
    """Run a block of SDK calls; any `TelegramError` leaves it as one of our failure types."""
    try:
        yield
    except TelegramError as exc:
        raise translate(exc) from exc


def refused_because(error: PermanentFailure, *markers: str) -> bool:
    """Whether a permanent failure carries one of Telegram's descriptions in `markers`."""
    reason = error.reason.lower()
    return any(marker in reason for marker in markers)
