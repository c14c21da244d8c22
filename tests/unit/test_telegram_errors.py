"""Telegram SDK errors become exactly one of the core's three failure types."""

from __future__ import annotations

import pytest
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut

from adapters.base import PermanentFailure, RecipientGone, RetryLater
from adapters.telegram.errors import ExactBadRequest, translate, translated


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_retry_after_keeps_telegrams_delay() -> None:
    err = translate(RetryAfter(12))
    assert isinstance(err, RetryLater) and err.after_s == 12.0


def test_each_sdk_error_maps_to_one_failure_type() -> None:
    assert isinstance(translate(Forbidden("Forbidden: bot was blocked by the user")), RecipientGone)
    bad = translate(ExactBadRequest("Bad Request: PHOTO_INVALID_DIMENSIONS"))
    assert isinstance(bad, PermanentFailure) and bad.reason == "Bad Request: PHOTO_INVALID_DIMENSIONS"
    assert isinstance(translate(BadRequest("Bad Request: chat not found")), PermanentFailure)
    for transient in (TimedOut(), NetworkError("Bad Gateway (502)")):
        err = translate(transient)
        assert isinstance(err, RetryLater) and err.after_s is None
    token = translate(InvalidToken())
    assert isinstance(token, RetryLater) and token.scope == "global"


def test_translated_keeps_the_sdk_error_as_cause() -> None:
    original = Forbidden("Forbidden: user is deactivated")
    with pytest.raises(RecipientGone) as caught, translated():
        raise original
    assert caught.value.__cause__ is original
