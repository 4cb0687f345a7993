"""What one load level measured: latency percentiles, throughput, errors (perf_analyzer's conventions).

Percentiles are nearest-rank over the successful requests of the measurement window (the value at rank
ceil(p/100 · n) of the sorted latencies), so p50 ≤ p90 ≤ p95 ≤ p99 always holds and every reported value
is a latency that was observed. Throughput counts successful requests (and their images) per second of the
window.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PERCENTILES = (50, 90, 95, 99)
MAX_MESSAGES = 5  # distinct error messages kept per level (the rest are only counted)


@dataclass(frozen=True)
class Sample:
    """One request: when it was sent and answered (seconds, perf_counter), and its error (None: ok)."""

    start: float
    end: float
    error: str | None = None

    @property
    def latency(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Level:
    """A load level: closed loop at `value` requests in flight, or open loop at `value` requests/s."""

    mode: str  # "concurrency" | "rate"
    value: float
    distribution: str = "constant"  # open loop: "constant" | "poisson" arrival intervals

    def __post_init__(self) -> None:
        if self.mode not in ("concurrency", "rate"):
            raise ValueError(f"a level is 'concurrency' or 'rate', got {self.mode!r}")
        if self.distribution not in ("constant", "poisson"):
            raise ValueError(f"arrivals are 'constant' or 'poisson', got {self.distribution!r}")
        if not self.value > 0 or (self.mode == "concurrency" and self.value != int(self.value)):
            raise ValueError(
                f"{self.mode} must be a positive {'integer' if self.mode == 'concurrency' else 'number'}"
            )

    @property
    def label(self) -> str:
        """c=4, or r=2.5/s (r~2.5/s for Poisson arrivals)."""
        if self.mode == "concurrency":
            return f"c={int(self.value)}"
        return f"r{'~' if self.distribution == 'poisson' else '='}{self.value:g}/s"


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence (not interpolated: always an observed value)."""
    if not sorted_values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class LevelSummary:
    """One level's figures. Latencies in ms over successful requests (None when none succeeded)."""

    level: Level
    batch: int
    sent: int  # requests answered inside the measurement window: ok + errors
    ok: int
    errors: int
    duration_s: float  # the window the throughput is measured over
    latency_ms: dict[str, float | None]  # p50 p90 p95 p99 mean min max
    errors_by_message: dict[str, int] = field(default_factory=dict)
    issued: int = 0  # every request the level sent, warm-up and requests outside the window included
    windows: int = 1
    stable: bool | None = None  # None: no stability check was asked for
    send_lag_ms: float | None = None  # open loop: p99 of (actual − scheduled) send time
    server: dict[str, Any] | None = None  # server_stats.summarize(...) of the window

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def images_per_s(self) -> float:
        return self.requests_per_s * self.batch

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["level"] = {**asdict(self.level), "label": self.level.label}
        data["requests_per_s"] = self.requests_per_s
        data["images_per_s"] = self.images_per_s
        return data


def summarize(
    level: Level,
    samples: Sequence[Sample],
    duration_s: float,
    batch: int,
    *,
    issued: int | None = None,
    windows: int = 1,
    stable: bool | None = None,
    send_lag_ms: float | None = None,
) -> LevelSummary:
    """The figures of the samples of one measurement window (already restricted to it)."""
    latencies = sorted(s.latency * 1e3 for s in samples if s.error is None)
    messages = Counter(s.error for s in samples if s.error is not None)
    kept = dict(messages.most_common(MAX_MESSAGES))
    if len(messages) > MAX_MESSAGES:
        kept["(other messages)"] = sum(messages.values()) - sum(kept.values())
    if latencies:
        latency: dict[str, float | None] = {f"p{p}": percentile(latencies, p) for p in PERCENTILES}
        latency |= {"mean": sum(latencies) / len(latencies), "min": latencies[0], "max": latencies[-1]}
    else:
        latency = dict.fromkeys([*(f"p{p}" for p in PERCENTILES), "mean", "min", "max"])
    return LevelSummary(
        level=level,
        batch=batch,
        sent=len(samples),
        ok=len(latencies),
        errors=len(samples) - len(latencies),
        duration_s=duration_s,
        latency_ms=latency,
        errors_by_message=kept,
        issued=len(samples) if issued is None else issued,
        windows=windows,
        stable=stable,
        send_lag_ms=send_lag_ms,
    )


def spread(values: Sequence[float]) -> float:
    """max/min − 1 of positive values (0 for one value); inf when the smallest is 0."""
    low, high = min(values), max(values)
    if low <= 0:
        return 0.0 if high == low else math.inf
    return high / low - 1
