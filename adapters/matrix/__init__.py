"""Matrix adapter (matrix-nio): DMs and read-only mirror rooms, end-to-end encrypted by default."""

from .adapter import MatrixAdapter

__all__ = ["MatrixAdapter"]
