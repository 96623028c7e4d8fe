"""Canary analysis: pure functions that turn evidence into verdicts (no I/O)."""
