"""Telegram adapter (python-telegram-bot 22.x)."""
