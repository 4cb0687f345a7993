"""invert and decode: the sampling loop over every queued request, through the Engine protocol.

Two ways to batch (the repository's `batching` parameter):
- "request": the dynamic batcher's requests are stacked into one batch whatever their step counts and
  samplers (ddim_loop gives each sample its own schedule and solver history) and run to the end together.
- "step": `execute` hands each checked request to a StepScheduler (engines/scheduler.py) and returns; a
  background thread ticks it, one network call per step over every active sample, and answers each request
  through its response sender (COMPLETE_FINAL, one response per request: the model stays non-decoupled, so
  ensembles and unary gRPC are unchanged) the moment its samples finish. A cancelled request, or one past
  the deadline, leaves the batch at the next tick; a full queue answers UNAVAILABLE.
eps runs on the in-process OnnxRuntimeEngine, or over BLS on the `unet` model when the leaves are native
backends (engine parameter `bls`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from diffusegae import checks
from diffusegae.engines import ddim_loop
from diffusegae.engines.pipeline import Speedups
from diffusegae.engines.registry import DEFAULT_LOOP_ENGINE, LOOP_ENGINES, lookup
from diffusegae.engines.scheduler import (
    DEFAULT_MAX_WAITING,
    Job,
    JobCancelled,
    QueueFull,
    ServerStopping,
    StepScheduler,
)
from diffusegae.engines.xt_cache import XTCache, checkpoint_identity
from diffusegae.export.specs import X0, X_T, Z_SEM
from diffusegae.server import runtime
from diffusegae.server.models.base import Arrays, BatchedModel, error_response
from diffusegae.server.models.loop_metrics import CacheMetrics, SchedulerMetrics
from diffusegae.server.specs import (
    DEFAULT_DEADLINE_S,
    DEFAULT_XT_CACHE_MB,
    INVERT,
    LOOP_BATCHING,
    PARAM_BATCHING,
    PARAM_DEADLINE,
    PARAM_ENGINE,
    PARAM_FEATURE_REUSE,
    PARAM_INVERT_STEPS,
    PARAM_MAX_ACTIVE,
    PARAM_MAX_WAITING,
    PARAM_XT_CACHE_MB,
    SAMPLER,
    STEPS,
)


class TritonPythonModel(BatchedModel):
    def setup(self) -> None:
        self._setup_engine()
        self.cache: XTCache | None = None
        megabytes = float(self.parameters.get(PARAM_XT_CACHE_MB, DEFAULT_XT_CACHE_MB))
        if self.inverse and megabytes > 0:
            self.cache = XTCache(int(megabytes * 2**20), checkpoint_identity(self.checkpoint))
            self.cache_metrics = CacheMetrics(self.name)
        self.batching = self.parameters.get(PARAM_BATCHING, LOOP_BATCHING[0])
        if self.batching not in LOOP_BATCHING:
            raise ValueError(f"{self.name}: unknown batching {self.batching!r}; choose from {LOOP_BATCHING}")
        invert_steps = self.parameters.get(PARAM_INVERT_STEPS) if self.inverse else None
        speedups = Speedups(
            int(self.parameters.get(PARAM_FEATURE_REUSE, 1)),
            None if invert_steps is None else int(invert_steps),
        )
        speedups.check(self.engine)  # the pipeline's checks: a bad value or engine fails to load, saying why
        if speedups.feature_reuse > 1 and self.batching == "step":
            raise ValueError(f"{self.name}: feature reuse needs request batching (samples step in lockstep)")
        self.reuse, self.invert_steps = speedups.feature_reuse, speedups.invert_steps
        if self.batching == "step":
            self.deadline_s = float(self.parameters.get(PARAM_DEADLINE, DEFAULT_DEADLINE_S))
            metrics = SchedulerMetrics(self.name)
            self.scheduler = StepScheduler(
                self.engine,
                max_active=int(self.parameters.get(PARAM_MAX_ACTIVE, self.spec.max_batch)),
                max_waiting=int(self.parameters.get(PARAM_MAX_WAITING, DEFAULT_MAX_WAITING)),
                observer=metrics.update,
            )
            self.stopping = threading.Event()
            self.thread = threading.Thread(
                target=self.scheduler.serve,
                args=(self.stopping,),
                kwargs={"draining": runtime.draining},
                name=f"{self.name}-steps",
                daemon=True,
            )
            self.thread.start()

    def _setup_engine(self) -> None:
        self.inverse = self.name == INVERT
        self.source = X0 if self.inverse else X_T  # what the loop starts from
        kind = self.parameters.get(PARAM_ENGINE, DEFAULT_LOOP_ENGINE)
        self.engine = lookup(LOOP_ENGINES, kind, f"{self.name} loop engine")(self)

    def check(self, inputs: Arrays) -> Arrays:
        n = checks.same_batch(**inputs)
        names = checks.samplers(inputs[SAMPLER]) if SAMPLER in inputs else ["ddim"] * n
        return {
            self.source: checks.finite(self.source, inputs[self.source]),
            Z_SEM: checks.finite(Z_SEM, inputs[Z_SEM]),
            STEPS: self._steps(checks.steps(inputs[STEPS], self.config.diffusion.num_timesteps)),
            SAMPLER: np.array(names, dtype=object),  # every request has one, so requests stack
        }

    def execute(self, requests: list[Any]) -> list[Any] | None:
        if self.batching != "step":
            return super().execute(requests)
        for request in requests:  # answered through their senders, from the scheduler's thread
            sender = request.get_response_sender()
            inputs = self.read_checked(request, lambda response, s=sender: _final(s, response))
            if inputs is None:
                continue
            keys, found = self._cached(inputs)
            if keys and all(x is not None for x in found):  # inverted before: no loop to run
                _final(sender, self._respond({self.output: np.stack(found)}))
                continue

            def done(x: np.ndarray, s: Any = sender, keys: list[str] = keys) -> None:
                self._remember(keys, range(len(x)), x)
                _final(s, self._respond({self.output: x}))

            job = Job(
                inputs[self.source],
                inputs[Z_SEM],
                inputs[STEPS],
                self.inverse,
                done=done,
                failed=lambda err, s=sender: _final(s, self._failure(err)),
                samplers=list(inputs[SAMPLER]),
                cancelled=getattr(request, "is_cancelled", lambda: False),
                deadline=time.monotonic() + self.deadline_s,
            )
            try:
                self.scheduler.submit(job)
            except QueueFull as err:
                _final(sender, error_response(f"{self.name}: {err}", pb_utils.TritonError.UNAVAILABLE))
        return None

    def _failure(self, err: BaseException) -> Any:
        if isinstance(err, ServerStopping):
            return error_response(f"{self.name}: {err}", pb_utils.TritonError.UNAVAILABLE)
        if isinstance(err, JobCancelled):
            code = getattr(pb_utils.TritonError, "CANCELLED", pb_utils.TritonError.UNAVAILABLE)
            return error_response(f"{self.name}: {err}", code)
        return error_response(
            f"{self.name} failed: {type(err).__name__}: {err}", pb_utils.TritonError.INTERNAL
        )

    def finalize(self) -> None:
        if self.batching == "step":
            self.stopping.set()
            self.scheduler.wake()
            self.thread.join(timeout=10)

    @property
    def output(self) -> str:
        (name,) = self.spec.output_names
        return name

    def compute(self, batch: Arrays) -> Arrays:
        keys, found = self._cached(batch)
        if not keys:
            return {self.output: self._loop(batch)}
        todo = [i for i, x in enumerate(found) if x is None]
        if todo:  # only the rows not inverted before run the loop
            ran = self._loop({name: value[todo] for name, value in batch.items()})
            self._remember(keys, todo, ran)
            for i, x in zip(todo, ran, strict=True):
                found[i] = x
        return {self.output: np.stack(found)}

    def _steps(self, asked: np.ndarray) -> np.ndarray:
        """The steps a request asked for, or the fewer inversion steps of the invert_steps opt-in."""
        return asked if self.invert_steps is None else np.full_like(asked, self.invert_steps)

    def _loop(self, batch: Arrays) -> np.ndarray:
        return ddim_loop.run(
            self.engine,
            batch[self.source],
            batch[Z_SEM],
            batch[STEPS],
            self.inverse,
            list(batch[SAMPLER]),
            reuse=self.reuse,
        )

    def _cached(self, inputs: Arrays) -> tuple[list[str], list[np.ndarray | None]]:
        """Each row's cache key and cached x_T (None: not seen); ([], []) without a cache."""
        if self.cache is None:
            return [], []
        rows = zip(inputs[self.source], inputs[Z_SEM], inputs[STEPS], inputs[SAMPLER], strict=True)
        keys = [self.cache.key(x, z, int(np.ravel(s)[0]), str(name)) for x, z, s, name in rows]
        found = [self.cache.get(k) for k in keys]
        self.cache_metrics.update(self.cache)
        return keys, found

    def _remember(self, keys: list[str], rows: Any, x: np.ndarray) -> None:
        if keys:
            for i, row in zip(rows, x, strict=True):
                self.cache.put(keys[i], row)


def _final(sender: Any, response: Any) -> None:
    sender.send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
