"""Matrix adapter (matrix-nio): DMs and read-only mirror rooms, end-to-end encrypted by default.

`PLUGIN` is what the core knows of it (registered in the `channelbridge.adapters` entry points).
The adapter itself is `adapters.matrix.adapter.MatrixAdapter`: loading the plug-in does not
import the SDK, which only a process that enables Matrix needs."""

from .plugin import PLUGIN, MatrixSettings

__all__ = ["PLUGIN", "MatrixSettings"]
