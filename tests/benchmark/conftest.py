"""The live benchmark tests use the session's server of tests/server (one server, whichever runs first)."""

from ..server.serving import checkpoint, ort_cache, server

__all__ = ["checkpoint", "ort_cache", "server"]
