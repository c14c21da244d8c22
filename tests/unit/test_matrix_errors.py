"""Translating matrix-nio failures into the core's three failure types (pure logic)."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import pytest
from nio import RoomSendError
from nio.exceptions import LocalProtocolError, SendRetryError

from adapters.base import PermanentFailure, RecipientGone, RetryLater
from adapters.matrix.errors import check, error_for_exception, translated


def _error(errcode: str, message: str = "", status: int | None = None,
           retry_after_ms: int | None = None) -> RoomSendError:
    resp = RoomSendError(message, errcode, retry_after_ms, room_id="!r:s")
    resp.transport_response = SimpleNamespace(status=status)
    return resp


def test_limit_exceeded_becomes_retry_later_with_server_delay():
    with pytest.raises(RetryLater) as caught:
        check(_error("M_LIMIT_EXCEEDED", "slow", 429, retry_after_ms=4500), "send")
    assert caught.value.after_s == 4.5


def test_bot_not_in_room_is_recipient_gone():
    with pytest.raises(RecipientGone):
        check(_error("M_FORBIDDEN", "User @b:s not in room !r:s (leave)", 403), "send")


def test_deactivated_user_is_recipient_gone():
    with pytest.raises(RecipientGone):
        check(_error("M_USER_DEACTIVATED", "gone", 403), "send")


@pytest.mark.parametrize(("code", "status"), [("M_FORBIDDEN", 403), ("M_TOO_LARGE", 413),
                                              ("M_UNKNOWN", 400)])
def test_other_client_errors_are_permanent(code, status):
    with pytest.raises(PermanentFailure):
        check(_error(code, "no", status), "send")


def test_server_errors_are_retried_with_backoff():
    with pytest.raises(RetryLater) as caught:
        check(_error("M_UNKNOWN", "boom", 502), "send")
    assert caught.value.after_s is None


def test_success_is_not_an_error():
    assert check(SimpleNamespace(event_id="$e"), "send") is None


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (aiohttp.ClientConnectionError(), RetryLater),
        (TimeoutError(), RetryLater),
        (SendRetryError("keys"), RetryLater),
        (LocalProtocolError("bad"), PermanentFailure),
    ],
)
def test_exceptions_are_translated_with_cause(exc, expected):
    with pytest.raises(expected) as caught, translated("send"):
        raise exc
    assert caught.value.__cause__ is exc


def test_local_error_reason_names_no_room_or_user():
    exc = LocalProtocolError("No such room with id !abc:example.org found for @al:example.org")
    failure = error_for_exception(exc, "send")
    assert isinstance(failure, PermanentFailure)
    assert "example.org" not in failure.reason and "<id>" in failure.reason
