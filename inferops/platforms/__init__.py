"""Platforms: where the service runs, and how we learn that a commit is live."""
