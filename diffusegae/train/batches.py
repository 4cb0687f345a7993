"""The image stream of a training stage, rendered inline or by a pool of worker processes ahead of the loop.

Each batch is planned (values and nuisance seeds: a few random draws, in step order, in this process) and
then rendered (the procedural renderer: ~1.4 ms per 64×64 image on one EPYC core, more than a GPU step takes
per image). With `workers` > 0, batches are rendered by that many processes, `2 × workers` steps ahead, so
the GPU does not wait on numpy. Planning stays here and in order, so the stream is the same image for image
whatever the number of workers (the stage docstring's reproducibility holds).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from diffusegae.data import AttributeDataset, GroupSampler
from diffusegae.data.groups import render_groups
from diffusegae.train.stages import StageSpec, derive_seed

_worker_dataset: AttributeDataset | None = None  # one per worker process (its background cache stays warm)


def _init_worker(resolution: int, seed: int) -> None:
    global _worker_dataset
    _worker_dataset = AttributeDataset(resolution, seed)


def _render_in_worker(values: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    assert _worker_dataset is not None
    return render_groups(_worker_dataset, values, seeds)


def default_workers(device_type: str) -> int:
    """Render inline on CPU (the training already uses every core); on a GPU, half the cores, at most 8."""
    return 0 if device_type == "cpu" else max(1, min(8, (os.cpu_count() or 2) // 2))


class Batches:
    """uint8 [B, H, W, 3] (stage 1) or [B, 1+K, H, W, 3] (groups) for consecutive steps.

    Stage 1's batch n is drawn from a generator seeded with (seed, stage, n); groups come from one
    GroupSampler per run segment. Call `images` with consecutive steps; `close` stops the workers.
    """

    def __init__(
        self,
        dataset: AttributeDataset,
        spec: StageSpec,
        seed: int,
        segment_start: int,
        batch_size: int,
        workers: int = 0,
    ) -> None:
        if workers < 0:
            raise ValueError(f"data workers must be >= 0, got {workers}")
        self.dataset, self.spec, self.seed, self.batch_size = dataset, spec, seed, batch_size
        self.sampler = (
            GroupSampler(dataset, "train", seed=derive_seed(seed, spec.number, segment_start))
            if spec.groups
            else None
        )
        self.depth = 2 * workers
        self._pool: ProcessPoolExecutor | None = None
        if workers:
            # spawn, not fork: the training process has torch's thread pools running
            context = multiprocessing.get_context("spawn")
            args = (dataset.resolution, dataset.seed)
            self._pool = ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=args)
        self._pending: deque[tuple[int, Future[np.ndarray]]] = deque()
        self._next_step: int | None = None  # the next step to plan

    def plan(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Values [..., K] and seeds [...] of a step's batch (groups: in step order, one sampler stream)."""
        if self.sampler is not None:
            return self.sampler.plan_batch(self.batch_size)
        rng = np.random.default_rng([self.seed, self.spec.number, step])
        return self.dataset.plan(rng, "train", self.batch_size)

    def images(self, step: int) -> np.ndarray:
        if self._pool is None:
            return render_groups(self.dataset, *self.plan(step))
        if self._next_step is None:
            self._next_step = step
        expected = self._pending[0][0] if self._pending else self._next_step
        if step != expected:
            raise ValueError(f"batches are drawn for consecutive steps: expected step {expected}, got {step}")
        while len(self._pending) <= self.depth:
            planned = self._next_step
            self._pending.append((planned, self._pool.submit(_render_in_worker, *self.plan(planned))))
            self._next_step = planned + 1
        return self._pending.popleft()[1].result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._pending.clear()
