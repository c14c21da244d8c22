"""Alembic migrations of the channelbridge schema (`channelbridge db upgrade`)."""
