"""Telegram adapter (python-telegram-bot 22.x): long polling in, raw Bot API calls out."""

from .adapter import ALLOWED_UPDATES, TelegramAdapter

__all__ = ["ALLOWED_UPDATES", "TelegramAdapter"]
