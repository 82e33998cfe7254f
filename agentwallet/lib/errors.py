"""Domain errors raised by services; the API maps them to HTTP statuses."""

from __future__ import annotations


class Conflict(Exception):
    """The request is valid but conflicts with the current state (HTTP 409)."""
