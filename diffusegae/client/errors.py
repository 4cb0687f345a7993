"""One exception type for every failed call, and the retry policy (and its loop) every caller shares."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tritonclient.utils import InferenceServerException

T = TypeVar("T")

RETRYABLE = frozenset({"UNAVAILABLE"})  # the server is starting, restarting or unreachable: try again
# Triton's words for a request that met a dead python-backend stub (reported as INTERNAL): the server's
# supervisor replaces it within seconds, and the same request then succeeds, so it is UNAVAILABLE too.
DEAD_BACKEND = ("is not healthy", "Stub process")


class ServerError(Exception):
    """A call the server (or the connection to it) failed: `message` is its text, `status` the gRPC code name.

    INVALID_ARGUMENT means the request's values were wrong and the message says what to send instead.
    """

    def __init__(self, message: str, status: str = "UNKNOWN") -> None:
        super().__init__(f"[{status}] {message}")
        self.message = message
        self.status = status

    @classmethod
    def from_triton(cls, err: InferenceServerException) -> ServerError:
        status = str(err.status() or "UNKNOWN").removeprefix("StatusCode.")
        message = err.message() or str(err)
        if status == "INTERNAL" and all(words in message for words in DEAD_BACKEND):
            status = "UNAVAILABLE"
        return cls(message, status)

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE


@dataclass(frozen=True)
class Retry:
    """Retry UNAVAILABLE up to `retries` times, waiting backoff·2^attempt seconds (at most max_delay)."""

    retries: int = 6  # 0.25 + 0.5 + … + 8 s ≈ 16 s: covers a supervised server's restart
    backoff: float = 0.25
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0:
            raise ValueError(f"retries and backoff must not be negative, got {self}")

    def delay(self, attempt: int, error: ServerError) -> float | None:
        """Seconds to wait before trying again after failed attempt `attempt` (0-based), None to give up."""
        if not error.retryable or attempt >= self.retries:
            return None
        return min(self.backoff * 2**attempt, self.max_delay)

    def _wait(self, attempt: int, err: InferenceServerException) -> float:
        """The delay before attempt `attempt` + 1, or the ServerError to raise when it is not retried."""
        error = ServerError.from_triton(err)
        delay = self.delay(attempt, error)
        if delay is None:
            raise error from None
        return delay

    def call(self, attempt: Callable[[], T]) -> T:
        """`attempt()` until it succeeds or fails for good; a tritonclient error becomes ServerError."""
        for n in range(self.retries + 1):
            try:
                return attempt()
            except InferenceServerException as err:
                time.sleep(self._wait(n, err))
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

    async def acall(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`call` for coroutines: the waits are asyncio sleeps."""
        for n in range(self.retries + 1):
            try:
                return await attempt()
            except InferenceServerException as err:
                await asyncio.sleep(self._wait(n, err))
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover
