"""The sampling loop driver: the one place that calls the network step by step (Pipeline and the server's
loop models both run it), over a batch whose samples may each ask for a different number of steps and a
different sampler.

The server stacks every queued request into one batch, so the batch can mix step counts and samplers. Each
sample i follows its own S_i-step schedule (per-sample [B] coefficients, diffusion.py supports them), and
iteration k advances every sample that still has a step to take: a batch mixing S=5 and S=20 costs 20 eps
calls, the first 5 at the full batch. "ddim" samples take diffusion.py's DDIM step; "dpmpp2m" samples take
dpm_solver.py's step with their own history (the x0 of their previous step).
"""

from __future__ import annotations

import numpy as np

from diffusegae import diffusion
from diffusegae.dpm_solver import ORDER, SAMPLERS, dpmpp_step
from diffusegae.engines.base import Engine


def _schedule_at(
    schedules: dict[int, diffusion.DDIMSchedule], steps: np.ndarray, index: np.ndarray, inverse: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: timestep t, ᾱ_t, the ᾱ it moves to (ᾱ_next when inverting, ᾱ_prev when sampling) and the
    ᾱ of the step it came from (the other neighbour: what a multistep solver's history was made at)."""
    picked = [(schedules[int(s)], int(i)) for s, i in zip(steps, index, strict=True)]
    t = np.array([sched.timesteps[i] for sched, i in picked], dtype=np.int64)
    alpha_bar = np.array([sched.alpha_bar[i] for sched, i in picked])
    prev, nxt = (
        np.array([sched.alpha_bar_prev[i] for sched, i in picked]),
        np.array([sched.alpha_bar_next[i] for sched, i in picked]),
    )
    return (t, alpha_bar, nxt, prev) if inverse else (t, alpha_bar, prev, nxt)


def sampler_orders(samplers: np.ndarray | list[str] | None, batch: int) -> np.ndarray:
    """The solver order of each sample (1: DDIM) from sampler names; None: DDIM for all."""
    if samplers is None:
        return np.ones(batch, np.int64)
    names = list(samplers)
    unknown = sorted({s for s in names if s not in ORDER})
    if unknown:
        raise ValueError(f"unknown sampler {unknown[0]!r}; choose from {', '.join(SAMPLERS)}")
    if len(names) != batch:
        raise ValueError(f"got {len(names)} samplers for {batch} samples")
    return np.array([ORDER[s] for s in names], np.int64)


def run(
    engine: Engine,
    x: np.ndarray,
    z_sem: np.ndarray,
    steps: np.ndarray,
    inverse: bool,
    samplers: np.ndarray | list[str] | None = None,
) -> np.ndarray:
    """Invert x0 → x_T (inverse=True, Diff-AE Eq. 7) or sample x_T → x0, each sample with steps[i] steps of
    its sampler (samplers[i]: "ddim", the default, or "dpmpp2m").

    Inversion walks schedule index 0, 1, …, S_i−1 (toward noise); sampling walks S_i−1, …, 0.
    """
    schedule = diffusion.schedule_args(engine.config.diffusion)  # the checkpoint's own betas
    steps = np.asarray(steps, dtype=np.int64)
    order = sampler_orders(samplers, len(steps))
    schedules = {int(s): diffusion.ddim_schedule(int(s), *schedule) for s in np.unique(steps)}
    update = diffusion.ddim_inverse_step if inverse else diffusion.ddim_step
    x = np.array(x, dtype=np.float32)  # a copy: finished samples are written in place
    history = np.zeros_like(x) if (order > 1).any() else None  # each multistep sample's last x0
    for k in range(int(steps.max(initial=0))):
        active = np.flatnonzero(steps > k)
        index = np.full(len(active), k) if inverse else steps[active] - 1 - k
        t, alpha_bar, target, came_from = _schedule_at(schedules, steps[active], index, inverse)
        x_k = x[active]
        eps = engine.eps(x_k, t, z_sem[active])
        ddim = order[active] == 1
        out = np.empty_like(x_k)
        if ddim.any():
            out[ddim] = update(x_k[ddim], eps[ddim], alpha_bar[ddim], target[ddim])
        if not ddim.all():
            multi, rows = ~ddim, active[~ddim]
            # order 2 from a sample's second step on, except onto the clean image or pure noise
            second = (k > 0) & (target[multi] > 0.0) & (target[multi] < 1.0)
            out[multi], history[rows] = dpmpp_step(
                x_k[multi],
                eps[multi],
                alpha_bar[multi],
                target[multi],
                history[rows],
                came_from[multi],
                second,
            )
        x[active] = out
    return x
