"""The client tests use the session's server of tests/server (one server, whichever runs first)."""

from ..server.serving import checkpoint, client, ort_cache, pipeline, server

__all__ = ["checkpoint", "client", "ort_cache", "pipeline", "server"]
