"""Step-level (continuous) batching of the sampling loop: pure Python, independent of Triton.

Requests (`Job`s: a batch of samples, each with its own step count, sampler and direction) wait in a FIFO
queue. Each `tick` first drops the jobs that were cancelled or ran past their deadline, then admits waiting
jobs in arrival order while their samples fit in `max_active`, then makes ONE network call over every active
sample, each at its own timestep (ddim_loop.advance: diffusion.py's DDIM or dpm_solver.py's update), and
hands back every job whose samples have all finished. A request that arrives mid-loop joins at the next
tick instead of waiting for the running batch to end, and a finished one leaves at once.

Fair: admission is strictly FIFO, so a long job at the head is admitted as soon as it fits (alone if it is
larger than `max_active`) and is never overtaken. Bounded: more than `max_waiting` waiting samples and
`submit` raises QueueFull (retryable). A network error during a tick is retried job by job, so only the
job at fault fails; nothing else is lost.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from diffusegae.engines.base import Engine
from diffusegae.engines.ddim_loop import Trajectory, advance, sampler_orders, trajectories

DEFAULT_MAX_WAITING = 1024  # samples queued for a slot before submit refuses


class QueueFull(RuntimeError):
    """The scheduler's queue is full: retry later (the message says so)."""


class ServerStopping(RuntimeError):
    """The process is shutting down: what it held was not run (retryable elsewhere)."""


class JobCancelled(RuntimeError):
    """The request was cancelled, or ran past its deadline, before its samples finished."""


@dataclass(eq=False)
class Job:
    """One request: samples x [n, ...] with codes z [n, 512], steps [n], samplers and direction.

    `done(x)` gets the finished samples, `failed(error)` the reason a job did not finish; exactly one of
    them is called, once, from the scheduler's thread. `cancelled()` is asked between ticks."""

    x: np.ndarray
    z_sem: np.ndarray
    steps: np.ndarray
    inverse: bool
    done: Callable[[np.ndarray], None]
    failed: Callable[[BaseException], None]
    samplers: Sequence[str] | None = None
    cancelled: Callable[[], bool] = lambda: False
    deadline: float | None = None  # time.monotonic() seconds
    walks: list[Trajectory] = field(default_factory=list)
    history: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def finished(self) -> bool:
        return all(w.done for w in self.walks)


@dataclass
class Stats:
    """Counters for the metrics endpoint and `diffusegae bench`."""

    ticks: int = 0
    samples_stepped: int = 0  # sum over ticks of the samples in each tick's network call
    tick_seconds: float = 0.0
    completed: int = 0
    failed: int = 0
    refused: int = 0
    active: int = 0  # samples in the running batch after the last tick
    waiting: int = 0  # samples queued

    @property
    def samples_per_tick(self) -> float:
        return self.samples_stepped / self.ticks if self.ticks else 0.0


class StepScheduler:
    def __init__(
        self,
        engine: Engine,
        max_active: int = 64,
        max_waiting: int = DEFAULT_MAX_WAITING,
        clock: Callable[[], float] = time.monotonic,
        observer: Callable[[Stats], None] | None = None,
    ) -> None:
        """`observer(stats)` is called after every tick that stepped samples (metrics exporters)."""
        if max_active < 1 or max_waiting < 1:
            raise ValueError(
                f"max_active and max_waiting must be at least 1, got {max_active}, {max_waiting}"
            )
        self.engine, self.max_active, self.max_waiting, self.clock = engine, max_active, max_waiting, clock
        self.observer = observer
        self.waiting: deque[Job] = deque()
        self.active: list[Job] = []
        self.stats = Stats()
        self._wake = threading.Condition()

    # ---- the producer side (any thread) ----

    def submit(self, job: Job) -> None:
        """Queue a job; QueueFull when its samples would not fit in the waiting room."""
        steps = np.asarray(job.steps, dtype=np.int64)
        job.walks = trajectories(
            self.engine.config.diffusion, steps, job.inverse, sampler_orders(job.samplers, len(job))
        )
        job.x = np.array(job.x, dtype=np.float32)
        job.history = np.zeros_like(job.x)
        with self._wake:
            queued = sum(len(j) for j in self.waiting)
            if queued + len(job) > self.max_waiting:
                self.stats.refused += 1
                raise QueueFull(
                    f"the sampling queue is full ({queued} samples waiting, at most {self.max_waiting}); "
                    "retry shortly"
                )
            self.waiting.append(job)
            self.stats.waiting = queued + len(job)
            self._wake.notify()

    # ---- the loop (one thread) ----

    def tick(self) -> int:
        """Drop, admit, step once, hand back; returns the samples stepped (0: nothing to do)."""
        with self._wake:
            self._drop_stopped()
            self._admit()
        if not self.active:
            return 0
        start = time.perf_counter()
        stepped = self._step(self.active)
        for job in [j for j in self.active if j.finished]:
            self.active.remove(job)
            self._finish(job, lambda j: j.done(j.x))
            self.stats.completed += 1
        self.stats.ticks += 1
        self.stats.samples_stepped += stepped
        self.stats.tick_seconds += time.perf_counter() - start
        self.stats.active = sum(len(j) for j in self.active)
        if self.observer is not None:
            with contextlib.suppress(Exception):  # metrics must never stop the loop
                self.observer(self.stats)
        return stepped

    def serve(
        self, stop: threading.Event, idle_wait_s: float = 0.05, draining: Callable[[], bool] = lambda: False
    ) -> None:
        """Tick until `stop` is set; sleeps while there is nothing to do (a submit wakes it). Once
        `draining()` says the process is going away, every job held (and every later one) fails with
        ServerStopping instead of being run."""
        while not stop.is_set():
            if draining():
                self.fail_all(ServerStopping("the server is stopping; retry on another server"))
            if self.tick() == 0:
                with self._wake:
                    if not self.waiting:
                        self._wake.wait(idle_wait_s)
        self.fail_all(JobCancelled("the server is stopping"))

    def fail_all(self, error: BaseException) -> None:
        """Fail every active and waiting job (shutdown)."""
        with self._wake:
            jobs, self.active, self.waiting = [*self.active, *self.waiting], [], deque()
        for job in jobs:
            self._fail(job, error)

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # ---- internals ----

    def _drop_stopped(self) -> None:
        now = self.clock()
        for queue in (self.active, self.waiting):
            for job in [j for j in queue if _stopped(j, now)]:
                queue.remove(job)
                late = job.deadline is not None and now > job.deadline
                self._fail(job, JobCancelled("the request ran past its deadline" if late else "cancelled"))

    def _admit(self) -> None:
        active = sum(len(j) for j in self.active)
        while self.waiting and (active + len(self.waiting[0]) <= self.max_active or not self.active):
            job = self.waiting.popleft()
            self.active.append(job)
            active += len(job)
        self.stats.waiting = sum(len(j) for j in self.waiting)

    def _step(self, jobs: list[Job]) -> int:
        """One network call over the unfinished samples of `jobs`; on an error, each job alone."""
        rows = [(job, i) for job in jobs for i, w in enumerate(job.walks) if not w.done]
        try:
            x, history = advance(
                self.engine,
                np.stack([job.x[i] for job, i in rows]),
                np.stack([job.z_sem[i] for job, i in rows]),
                [job.walks[i] for job, i in rows],
                np.stack([job.history[i] for job, i in rows]),
            )
        except Exception as error:
            if len(jobs) == 1:
                self.active.remove(jobs[0])
                self._fail(jobs[0], error)
                return 0
            return sum(self._step([job]) for job in list(jobs))
        for n, (job, i) in enumerate(rows):
            job.x[i], job.history[i] = x[n], history[n]
        return len(rows)

    def _finish(self, job: Job, callback: Callable[[Job], None]) -> None:
        with contextlib.suppress(
            Exception
        ):  # a failing callback (a closed connection) must not stop the loop
            callback(job)

    def _fail(self, job: Job, error: BaseException) -> None:
        self.stats.failed += 1
        self._finish(job, lambda j: j.failed(error))


def _stopped(job: Job, now: float) -> bool:
    if job.deadline is not None and now > job.deadline:
        return True
    try:
        return bool(job.cancelled())
    except Exception:
        return False
