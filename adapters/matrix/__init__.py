"""Matrix adapter (matrix-nio)."""
