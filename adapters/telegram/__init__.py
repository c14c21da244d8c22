"""Telegram adapter (python-telegram-bot 22.x): long polling in, raw Bot API calls out.

`PLUGIN` is what the core knows of it (registered in the `channelbridge.adapters` entry points)."""

from .adapter import ALLOWED_UPDATES, TelegramAdapter
from .plugin import PLUGIN, TelegramSettings

__all__ = ["ALLOWED_UPDATES", "PLUGIN", "TelegramAdapter", "TelegramSettings"]
