"""Load generators over any `send()` coroutine (one request): closed loop and open loop.

Closed loop (perf_analyzer's --concurrency-range): `concurrency` workers each send, wait for the answer,
send again, for the whole level. The first `warmup` answers are left out; a window then counts the requests
*answered* inside it (a request in flight at a window edge belongs to the window it ends in), over
`duration` seconds or exactly `requests` answers. With a stability threshold, windows repeat until the last
three agree on throughput and p50 within that many percent (perf_analyzer's -s), and those three are pooled.

Open loop (--request-rate-range, --request-distribution): requests leave on a schedule, constant intervals
or Poisson arrivals (exponential intervals, seeded), whether or not earlier ones were answered. `warmup`
requests go first on the same schedule and are waited for; then the window's arrivals are sent (for
`duration` seconds, or `requests` of them) and all are waited for. Its duration runs from the first
scheduled arrival to the last answer, so an overloaded server shows as latency growing and throughput
falling behind the offered rate; `send_lag_ms` (p99 of actual − scheduled send) shows whether the generator
kept to its schedule.

Errors are caught per request and counted; they never stop a level. `mark()` (if given) is awaited at the
edges of the measured span, for server-side statistics.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from diffusegae.benchmark.stats import Level, Sample, percentile, spread
from diffusegae.client.errors import ServerError

Send = Callable[[], Awaitable[object]]
Mark = Callable[[], Awaitable[Any]]
STABLE_WINDOWS = 3  # perf_analyzer: the last three measurements must agree


@dataclass(frozen=True)
class Window:
    """How long a level is measured: `duration` seconds or `requests` answers (one of them)."""

    duration: float | None = None
    requests: int | None = None
    warmup: int = 0
    stability: float | None = None  # percent; closed loop only; None: one window
    max_windows: int = 10

    def __post_init__(self) -> None:
        if (self.duration is None) == (self.requests is None):
            raise ValueError("a window is either a duration or a request count")
        if self.duration is not None and not self.duration > 0:
            raise ValueError(f"duration must be positive, got {self.duration}")
        if self.requests is not None and self.requests < 1:
            raise ValueError(f"requests must be at least 1, got {self.requests}")
        if self.warmup < 0:
            raise ValueError(f"warmup must not be negative, got {self.warmup}")
        if self.stability is not None and not self.stability > 0:
            raise ValueError(f"stability must be a positive percentage, got {self.stability}")
        if self.max_windows < STABLE_WINDOWS and self.stability is not None:
            raise ValueError(f"a stability check needs at least {STABLE_WINDOWS} windows")


@dataclass
class Measured:
    """The measured span of a level: its answered requests and what the windows found."""

    samples: list[Sample]
    duration_s: float
    issued: int
    windows: int = 1
    stable: bool | None = None
    send_lag_ms: float | None = None
    marks: tuple[Any, Any] = (None, None)  # mark() at the start and the end of the measured span


def describe(err: BaseException) -> str:
    """An error as one line: the server's status and message, or the exception type and text."""
    if isinstance(err, ServerError):
        return f"[{err.status}] {err.message}"
    return f"{type(err).__name__}: {err}"


async def _timed(send: Send) -> Sample:
    start = time.perf_counter()
    try:
        await send()
        error = None
    except Exception as err:  # every failure is a counted result, never the end of the run
        error = describe(err)
    return Sample(start, time.perf_counter(), error)


async def _nothing() -> None:
    return None


class _Answers:
    """Samples in the order they were answered; waiters can wait for a count."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self._changed = asyncio.Condition()

    async def add(self, sample: Sample) -> None:
        async with self._changed:
            self.samples.append(sample)
            self._changed.notify_all()

    async def wait_count(self, n: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.samples) >= n)


def _is_stable(windows: list[list[Sample]], durations: list[float], percent: float) -> bool:
    if len(windows) < STABLE_WINDOWS:
        return False
    throughputs, medians = [], []
    for samples, duration in zip(windows[-STABLE_WINDOWS:], durations[-STABLE_WINDOWS:], strict=True):
        ok = sorted(s.latency for s in samples if s.error is None)
        if not ok:
            return False
        throughputs.append(len(ok) / duration)
        medians.append(percentile(ok, 50))
    return max(spread(throughputs), spread(medians)) <= percent / 100


async def closed_loop(send: Send, concurrency: int, window: Window, mark: Mark | None = None) -> Measured:
    """`concurrency` requests in flight all the time; measure the window(s) after `window.warmup` answers."""
    mark = mark or _nothing
    answers = _Answers()
    stopping = False
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while not stopping:
            issued += 1
            await answers.add(await _timed(send))

    started = time.perf_counter()
    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        await answers.wait_count(window.warmup)
        if window.requests is not None:  # windows cut at exact answer counts
            edges = [(window.warmup, answers.samples[window.warmup - 1].end if window.warmup else started)]
        else:
            edges = [(len(answers.samples), time.perf_counter())]
        marks = [await mark()]
        chunks: list[list[Sample]] = []
        durations: list[float] = []
        stable: bool | None = None
        while True:
            if window.requests is not None:
                end = edges[-1][0] + window.requests
                await answers.wait_count(end)
                edges.append((end, answers.samples[end - 1].end))
            else:
                await asyncio.sleep(window.duration)
                edges.append((len(answers.samples), time.perf_counter()))
            marks.append(await mark())
            chunks.append(answers.samples[edges[-2][0] : edges[-1][0]])
            durations.append(edges[-1][1] - edges[-2][1])
            if window.stability is None:
                break
            stable = _is_stable(chunks, durations, window.stability)
            if stable or len(chunks) >= window.max_windows:
                break
    finally:
        stopping = True
        await asyncio.gather(*workers, return_exceptions=True)  # the in-flight requests finish first
    pooled = min(len(chunks), STABLE_WINDOWS) if window.stability is not None else 1
    return Measured(
        samples=[s for chunk in chunks[-pooled:] for s in chunk],
        duration_s=sum(durations[-pooled:]),
        issued=issued,
        windows=len(chunks),
        stable=stable,
        marks=(marks[-pooled - 1], marks[-1]),
    )


def arrival_offsets(
    rate: float,
    distribution: str,
    rng: random.Random,
    *,
    count: int | None = None,
    until: float | None = None,
) -> list[float]:
    """Send times (seconds from the start): `count` of them, or all before `until`. The first is at 0."""
    offsets: list[float] = []
    t = 0.0
    while (count is None or len(offsets) < count) and (until is None or t < until):
        offsets.append(t)
        t += rng.expovariate(rate) if distribution == "poisson" else 1.0 / rate
    return offsets


async def _scheduled(send: Send, offsets: list[float]) -> tuple[list[Sample], list[float], float]:
    """Send at start + each offset; wait for every answer. Returns samples, send lags, start time."""
    lags: list[float] = []
    tasks = []
    start = time.perf_counter()
    for offset in offsets:
        delay = start + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(time.perf_counter() - start - offset)
        tasks.append(asyncio.create_task(_timed(send)))
    return list(await asyncio.gather(*tasks)), lags, start


async def open_loop(
    send: Send, level: Level, window: Window, mark: Mark | None = None, seed: int = 0
) -> Measured:
    """Requests at `level.value` per second (constant or Poisson intervals), answered or not."""
    if window.stability is not None:
        raise ValueError("the stability check is for closed-loop levels (an open loop offers a fixed load)")
    mark = mark or _nothing
    rng = random.Random(seed)
    rate, distribution = level.value, level.distribution
    if window.warmup:
        await _scheduled(send, arrival_offsets(rate, distribution, rng, count=window.warmup))
    offsets = arrival_offsets(rate, distribution, rng, count=window.requests, until=window.duration)
    first = await mark()
    samples, lags, start = await _scheduled(send, offsets)
    last = await mark()
    return Measured(
        samples=samples,
        duration_s=max(s.end for s in samples) - start,
        issued=window.warmup + len(samples),
        send_lag_ms=percentile(sorted(lags), 99) * 1e3,
        marks=(first, last),
    )


async def run_level(
    send: Send, level: Level, window: Window, mark: Mark | None = None, seed: int = 0
) -> Measured:
    if level.mode == "concurrency":
        return await closed_loop(send, int(level.value), window, mark)
    return await open_loop(send, level, window, mark, seed)
