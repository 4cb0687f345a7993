"""The step scheduler in-process: joining mid-loop changes nothing, directions and step counts mix, FIFO
admission, bounds, cancellation, deadlines, and a failing job fails alone."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from diffusegae import preset
from diffusegae.engines import ddim_loop
from diffusegae.engines.scheduler import Job, JobCancelled, QueueFull, ServerStopping, StepScheduler

from ..test_dpm_solver import ToyEngine


class CountingEngine(ToyEngine):
    """ToyEngine that records the batch size of every network call (and can fail on a marked sample)."""

    config = preset("tiny32")

    def __init__(self) -> None:
        self.calls: list[int] = []

    def eps(self, x_t, t, z_sem):
        self.calls.append(len(x_t))
        if (z_sem[:, 0] == 99).any():
            raise RuntimeError("poisoned sample")
        return super().eps(x_t, t, z_sem)


def _job(results: dict, key, n=1, steps=4, inverse=False, seed=0, samplers=None, **kw) -> Job:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3, 8, 8)).astype(np.float32)
    z = rng.standard_normal((n, 512)).astype(np.float32)
    return Job(
        x,
        z,
        np.full(n, steps),
        inverse,
        done=lambda out: results.__setitem__(key, out),
        failed=lambda err: results.__setitem__(key, err),
        samplers=samplers,
        **kw,
    )


def _alone(job: Job) -> np.ndarray:
    return ddim_loop.run(ToyEngine(), job.x, job.z_sem, job.steps, job.inverse, job.samplers)


def test_a_job_that_joins_mid_loop_gets_what_it_would_get_alone():
    engine, results = CountingEngine(), {}
    sched = StepScheduler(engine)
    first = _job(results, "first", n=2, steps=10, seed=1)
    late = _job(results, "late", n=1, steps=5, seed=2, samplers=["dpmpp2m"])
    want = {"first": _alone(first), "late": _alone(late)}
    sched.submit(first)
    for _ in range(3):
        sched.tick()
    sched.submit(late)  # joins at tick 4, finishes at tick 8: before `first`
    while sched.tick():
        pass
    for key in want:
        # float32 throughout: a sample's result does not depend on its batch (the toy is elementwise)
        np.testing.assert_array_equal(results[key], want[key])
    assert engine.calls == [2, 2, 2, 3, 3, 3, 3, 3, 2, 2]
    assert sched.stats.completed == 2 and sched.stats.samples_per_tick == pytest.approx(25 / 10)


def test_directions_samplers_and_step_counts_mix_in_one_call():
    engine, results = CountingEngine(), {}
    sched = StepScheduler(engine)
    jobs = [
        _job(results, 0, steps=5, inverse=True, seed=3),
        _job(results, 1, steps=20, inverse=False, seed=4, samplers=["dpmpp2m"]),
        _job(results, 2, steps=10, inverse=True, seed=5, samplers=["dpmpp2m"]),
    ]
    for job in jobs:
        sched.submit(job)
    want = [_alone(j) for j in jobs]
    while sched.tick():
        pass
    for i, expected in enumerate(want):
        np.testing.assert_array_equal(results[i], expected)
    assert engine.calls[0] == 3 and len(engine.calls) == 20  # one call per tick for all three


def test_admission_is_fifo_and_bounded():
    engine, results = CountingEngine(), {}
    sched = StepScheduler(engine, max_active=2, max_waiting=3)
    big = _job(results, "big", n=2, steps=3)
    small = _job(results, "small", n=1, steps=1)
    sched.submit(big)
    sched.submit(small)
    with pytest.raises(QueueFull, match="retry shortly"):
        sched.submit(_job(results, "overflow", n=1))
    sched.tick()
    assert [len(j) for j in sched.active] == [2]  # small waits behind big: no overtaking
    while sched.tick():
        pass
    assert engine.calls == [2, 2, 2, 1] and set(results) == {"big", "small"}
    huge = _job(results, "huge", n=3, steps=1)  # larger than max_active: admitted alone, not starved
    sched.submit(huge)
    sched.tick()
    assert isinstance(results["huge"], np.ndarray) and engine.calls[-1] == 3


def test_cancelled_and_late_jobs_leave_at_the_next_tick():
    engine, results = CountingEngine(), {}
    now = [0.0]
    sched = StepScheduler(engine, clock=lambda: now[0])
    flag = threading.Event()
    sched.submit(_job(results, "cancelled", steps=10, cancelled=flag.is_set))
    sched.submit(_job(results, "late", steps=10, deadline=5.0))
    sched.submit(_job(results, "kept", steps=10))
    sched.tick()
    flag.set()
    sched.tick()
    now[0] = 6.0
    sched.tick()
    assert isinstance(results["cancelled"], JobCancelled) and "cancelled" in str(results["cancelled"])
    assert "deadline" in str(results["late"])
    assert engine.calls[:3] == [3, 2, 1]
    while sched.tick():
        pass
    assert isinstance(results["kept"], np.ndarray)


def test_a_failing_job_fails_alone():
    engine, results = CountingEngine(), {}
    sched = StepScheduler(engine)
    good = _job(results, "good", steps=3, seed=6)
    bad = _job(results, "bad", steps=3, seed=7)
    bad.z_sem[0, 0] = 99  # poisons every call it is in
    want = _alone(good)
    sched.submit(good)
    sched.submit(bad)
    while sched.tick():
        pass
    assert isinstance(results["bad"], RuntimeError) and "poisoned" in str(results["bad"])
    np.testing.assert_array_equal(results["good"], want)
    assert sched.stats.failed == 1 and sched.stats.completed == 1


def test_draining_gives_back_every_job_at_once():
    results, flag = {}, threading.Event()
    sched = StepScheduler(CountingEngine())
    stop = threading.Event()
    for key in ("a", "b"):
        sched.submit(_job(results, key, steps=1000))
    thread = threading.Thread(target=sched.serve, args=(stop,), kwargs={"draining": flag.is_set})
    thread.start()
    flag.set()
    deadline = time.monotonic() + 10
    while len(results) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    sched.wake()
    thread.join(10)
    assert all(isinstance(results[k], ServerStopping) for k in ("a", "b")), results


def test_serve_runs_in_a_thread_and_fails_what_is_left_when_stopped():
    results = {}
    sched = StepScheduler(CountingEngine())
    stop = threading.Event()
    thread = threading.Thread(target=sched.serve, args=(stop,))
    thread.start()
    done = threading.Event()
    job = _job(results, "served", steps=4)
    job.done = lambda out: (results.__setitem__("served", out), done.set())
    sched.submit(job)
    assert done.wait(10)
    stop.set()
    sched.wake()
    thread.join(10)
    assert not thread.is_alive() and isinstance(results["served"], np.ndarray)
