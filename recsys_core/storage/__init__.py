"""Storage primitives every layer may use: atomic writes and the run-directory layout (no dependencies above)."""
