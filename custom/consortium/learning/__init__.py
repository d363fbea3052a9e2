"""Local training loops."""
