"""The DDIM loop driver: the one place that calls the network step by step (Pipeline and the server's loop
models both run it), over a batch whose samples may each ask for a different number of steps.

The server stacks every queued request into one batch, so the batch can mix step counts. Each sample i
follows its own S_i-step schedule (per-sample [B] coefficients, diffusion.py supports them), and iteration k
advances every sample that still has a step to take: a batch mixing S=5 and S=20 costs 20 eps calls, the
first 5 at the full batch.
"""

from __future__ import annotations

import numpy as np

from diffusegae import diffusion
from diffusegae.engines.base import Engine


def _schedule_at(
    schedules: dict[int, diffusion.DDIMSchedule], steps: np.ndarray, index: np.ndarray, inverse: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: timestep t, ᾱ_t and the ᾱ it moves to (ᾱ_next when inverting, ᾱ_prev when sampling)."""
    picked = [(schedules[int(s)], int(i)) for s, i in zip(steps, index, strict=True)]
    t = np.array([sched.timesteps[i] for sched, i in picked], dtype=np.int64)
    alpha_bar = np.array([sched.alpha_bar[i] for sched, i in picked])
    target = np.array([(sched.alpha_bar_next if inverse else sched.alpha_bar_prev)[i] for sched, i in picked])
    return t, alpha_bar, target


def run(engine: Engine, x: np.ndarray, z_sem: np.ndarray, steps: np.ndarray, inverse: bool) -> np.ndarray:
    """Invert x0 → x_T (inverse=True, Diff-AE Eq. 7) or sample x_T → x0, each sample with steps[i] steps.

    Inversion walks schedule index 0, 1, …, S_i−1 (toward noise); sampling walks S_i−1, …, 0.
    """
    schedule = diffusion.schedule_args(engine.config.diffusion)  # the checkpoint's own betas
    steps = np.asarray(steps, dtype=np.int64)
    schedules = {int(s): diffusion.ddim_schedule(int(s), *schedule) for s in np.unique(steps)}
    update = diffusion.ddim_inverse_step if inverse else diffusion.ddim_step
    x = np.array(x, dtype=np.float32)  # a copy: finished samples are written in place
    for k in range(int(steps.max(initial=0))):
        active = np.flatnonzero(steps > k)
        index = np.full(len(active), k) if inverse else steps[active] - 1 - k
        t, alpha_bar, target = _schedule_at(schedules, steps[active], index, inverse)
        x_k = x[active]
        eps = engine.eps(x_k, t, z_sem[active])
        x[active] = update(x_k, eps, alpha_bar, target)
    return x
