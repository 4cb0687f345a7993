"""The load generators against a fake send() with known latencies (no server)."""

import asyncio
import itertools
import random

import pytest

from diffusegae.benchmark.load import STABLE_WINDOWS, Window, arrival_offsets, closed_loop, open_loop
from diffusegae.benchmark.stats import Level
from diffusegae.client.errors import ServerError


class FakeServer:
    """Answers after `latency` s with at most `slots` requests at a time; every `fail_every`-th fails."""

    def __init__(self, latency: float = 0.01, slots: int = 100, fail_every: int = 0) -> None:
        self.latency, self.fail_every = latency, fail_every
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._slots = asyncio.Semaphore(slots)

    async def send(self) -> None:
        self.calls += 1
        n = self.calls
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            async with self._slots:
                await asyncio.sleep(self.latency)
            if self.fail_every and n % self.fail_every == 0:
                raise ServerError("steps must be in 1..1000", "INVALID_ARGUMENT")
        finally:
            self.in_flight -= 1


def test_closed_loop_request_window_counts_exactly():
    async def run():
        fake = FakeServer(0.005, fail_every=4)
        marks = []

        async def mark():
            marks.append(fake.calls)
            return len(marks)

        measured = await closed_loop(fake.send, 3, Window(requests=20, warmup=5), mark)
        return fake, measured

    fake, m = asyncio.run(run())
    assert len(m.samples) == 20 and m.windows == 1 and m.stable is None
    assert m.issued == fake.calls >= 25  # warm-up, the window, and the requests in flight at its end
    assert fake.max_in_flight == 3
    errors = [s for s in m.samples if s.error]
    assert errors and all("INVALID_ARGUMENT" in s.error for s in errors)
    assert m.marks == (1, 2)
    assert m.duration_s == pytest.approx(m.samples[-1].end - m.samples[0].end, abs=0.05)


def test_closed_loop_duration_window_and_throughput():
    fake = FakeServer(0.01, slots=1)  # a server that serves one request at a time: ~100 requests/s
    m = asyncio.run(closed_loop(fake.send, 2, Window(duration=0.3, warmup=2)))
    assert m.duration_s == pytest.approx(0.3, abs=0.05)
    assert 10 <= len(m.samples) / m.duration_s <= 110
    assert all(s.error is None for s in m.samples)


def test_stability_pools_the_last_three_windows():
    fake = FakeServer(0.004)
    m = asyncio.run(closed_loop(fake.send, 2, Window(duration=0.1, stability=50, max_windows=6)))
    assert STABLE_WINDOWS <= m.windows <= 6
    assert m.stable in (True, False)
    assert m.duration_s == pytest.approx(0.3, abs=0.06)


def test_open_loop_sends_on_schedule_and_waits_for_every_answer():
    fake = FakeServer(0.02, slots=1)  # 50 requests/s at most
    level = Level("rate", 40.0)
    m = asyncio.run(open_loop(fake.send, level, Window(requests=12, warmup=2)))
    assert len(m.samples) == 12 and m.issued == 14 == fake.calls
    assert m.send_lag_ms is not None and m.send_lag_ms < 50
    starts = [s.start for s in m.samples]
    assert starts[-1] - starts[0] == pytest.approx(11 / 40, abs=0.03)
    assert m.duration_s >= starts[-1] - starts[0]


def test_open_loop_refuses_a_stability_check():
    with pytest.raises(ValueError, match="closed-loop"):
        asyncio.run(open_loop(FakeServer().send, Level("rate", 1.0), Window(duration=1, stability=10)))


def test_arrival_offsets():
    constant = arrival_offsets(4.0, "constant", random.Random(0), count=5)
    assert constant == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert len(arrival_offsets(4.0, "constant", random.Random(0), until=1.0)) == 4
    poisson = arrival_offsets(10.0, "poisson", random.Random(0), count=4001)
    gaps = [b - a for a, b in itertools.pairwise(poisson)]
    assert sum(gaps) / len(gaps) == pytest.approx(0.1, rel=0.06)
    assert poisson == arrival_offsets(10.0, "poisson", random.Random(0), count=4001)  # seeded


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"duration": 1, "requests": 2}, {"duration": 0}, {"requests": 0}, {"duration": 1, "warmup": -1},
     {"duration": 1, "stability": 0}, {"duration": 1, "stability": 5, "max_windows": 2}],
)  # fmt: skip
def test_bad_windows_are_refused(kwargs):
    with pytest.raises(ValueError):
        Window(**kwargs)
