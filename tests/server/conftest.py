"""Fixtures of the server tests (defined in serving.py, shared with tests/client)."""

from .serving import checkpoint, client, ort_cache, pipeline, server

__all__ = ["checkpoint", "client", "ort_cache", "pipeline", "server"]
