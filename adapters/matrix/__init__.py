"""Matrix adapter (matrix-nio): DMs and read-only mirror rooms, end-to-end encrypted by default.

`PLUGIN` is what the core knows of it (registered in the `channelbridge.adapters` entry points)."""

from .adapter import MatrixAdapter
from .plugin import PLUGIN, MatrixSettings

__all__ = ["PLUGIN", "MatrixAdapter", "MatrixSettings"]
