"""Telegram adapter (python-telegram-bot 22.x): long polling in, raw Bot API calls out.

`PLUGIN` is what the core knows of it (registered in the `channelbridge.adapters` entry points).
The adapter itself is `adapters.telegram.adapter.TelegramAdapter`: loading the plug-in does not
import the SDK, which only a process that enables Telegram needs."""

from .plugin import PLUGIN, TelegramSettings

__all__ = ["PLUGIN", "TelegramSettings"]
