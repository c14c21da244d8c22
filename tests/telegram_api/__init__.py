"""A local Telegram Bot API server for tests, with a Python control API (see `FakeBotApi`)."""

from .limits import FloodControl, FloodRefused, Limits
from .server import LIMITED_METHODS, ApiError, FakeBotApi
from .state import Call, ChatMessage, FailureRule, FakeGroup, FakeUser, PollRecord, StoredFile

__all__ = [
    "LIMITED_METHODS",
    "ApiError",
    "Call",
    "ChatMessage",
    "FailureRule",
    "FakeBotApi",
    "FakeGroup",
    "FakeUser",
    "FloodControl",
    "FloodRefused",
    "Limits",
    "PollRecord",
    "StoredFile",
]
