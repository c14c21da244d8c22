"""A local Telegram Bot API server for tests, with a Python control API (see `FakeBotApi`)."""

from .limits import FloodControl, FloodRefused, Limits
from .payments import Charge, CheckoutOutcome, Invoice, Payments, StarTx
from .server import LIMITED_METHODS, ApiError, FakeBotApi
from .state import Call, ChatMessage, FailureRule, FakeGroup, FakeUser, PollRecord, StoredFile
from .webhook import SECRET_HEADER, Webhooks

__all__ = [
    "LIMITED_METHODS",
    "SECRET_HEADER",
    "ApiError",
    "Call",
    "Charge",
    "ChatMessage",
    "CheckoutOutcome",
    "FailureRule",
    "FakeBotApi",
    "FakeGroup",
    "FakeUser",
    "FloodControl",
    "FloodRefused",
    "Invoice",
    "Limits",
    "Payments",
    "PollRecord",
    "StarTx",
    "StoredFile",
    "Webhooks",
]
