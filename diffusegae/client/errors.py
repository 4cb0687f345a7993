"""One exception type for every failed call, and the retry policy both clients share."""

from __future__ import annotations

from dataclasses import dataclass

from tritonclient.utils import InferenceServerException

RETRYABLE = frozenset({"UNAVAILABLE"})  # the server is starting, restarting or unreachable: try again


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
        return cls(err.message() or str(err), status)

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE


@dataclass(frozen=True)
class Retry:
    """Retry UNAVAILABLE up to `retries` times, waiting backoff·2^attempt seconds (at most max_delay)."""

    retries: int = 3
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
