"""A local Telegram Bot API server for tests, with a Python control API (see `FakeBotApi`)."""

from .server import ApiError, FakeBotApi
from .state import Call, ChatMessage, FailureRule, FakeGroup, FakeUser, PollRecord, StoredFile

__all__ = [
    "ApiError",
    "Call",
    "ChatMessage",
    "FailureRule",
    "FakeBotApi",
    "FakeGroup",
    "FakeUser",
    "PollRecord",
    "StoredFile",
]
