"""The sampling loop driver: the one place that calls the network step by step (Pipeline, the server's loop
models and the step scheduler all run it), over a batch whose samples may each ask for a different number
of steps, a different sampler and a different direction.

Each sample walks its own S_i-step schedule (a `Trajectory`: per-sample [B] coefficients, diffusion.py
supports them). One `advance` makes ONE network call for every sample it is given, each at its own
timestep, and moves each by its own update: "ddim" samples take diffusion.py's DDIM step, "dpmpp2m" samples
dpm_solver.py's step with their own history (the x0 of their previous step). `run` advances a fixed batch
until every sample has finished: a batch mixing S=5 and S=20 costs 20 eps calls, the first 5 at the full
batch. The step scheduler (engines/scheduler.py) advances a batch whose members come and go.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from diffusegae import diffusion
from diffusegae.dpm_solver import ORDER, SAMPLERS, dpmpp_step
from diffusegae.engines.base import Engine


@dataclass
class Trajectory:
    """One sample's walk: inversion walks schedule index 0, 1, …, S−1 (toward noise), sampling walks
    S−1, …, 0; `taken` counts the steps done."""

    schedule: diffusion.DDIMSchedule
    inverse: bool
    order: int = 1  # the solver order: 1 = DDIM, 2 = DPM-Solver++(2M)
    taken: int = 0

    @property
    def done(self) -> bool:
        return self.taken >= self.schedule.steps

    def position(self) -> tuple[int, float, float, float]:
        """(t, ᾱ_t, the ᾱ this step moves to, the ᾱ of the step it came from: the solver history's)."""
        s = self.schedule
        i = self.taken if self.inverse else s.steps - 1 - self.taken
        up, down = s.alpha_bar_next[i], s.alpha_bar_prev[i]
        return (
            int(s.timesteps[i]),
            float(s.alpha_bar[i]),
            up if self.inverse else down,
            down if self.inverse else up,
        )


def sampler_orders(samplers: Sequence[str] | np.ndarray | None, batch: int) -> np.ndarray:
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


def trajectories(
    config_diffusion: object, steps: np.ndarray, inverse: bool | Sequence[bool], orders: np.ndarray
) -> list[Trajectory]:
    """One Trajectory per sample, on the checkpoint's own betas."""
    schedule = diffusion.schedule_args(config_diffusion)
    directions = [inverse] * len(steps) if isinstance(inverse, bool) else list(inverse)
    return [
        Trajectory(diffusion.ddim_schedule(int(s), *schedule), bool(d), int(o))
        for s, d, o in zip(steps, directions, orders, strict=True)
    ]


def advance(
    engine: Engine,
    x: np.ndarray,
    z_sem: np.ndarray,
    walks: Sequence[Trajectory],
    history: np.ndarray | None = None,
    network: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One step of every sample given (one eps call) → (new x, history); each Trajectory moves on.

    `history` (the x0 of each sample's previous step) is needed only when a multistep sample is present;
    it is updated in place on those rows. `network(x, t, z_sem)`: what gives eps (default engine.eps)."""
    t, alpha_bar, target, came_from = (np.array(v) for v in zip(*(w.position() for w in walks), strict=True))
    ddim = np.array([w.order == 1 for w in walks])
    first = np.array([w.taken == 0 for w in walks])
    eps = (network or engine.eps)(x, t.astype(np.int64), z_sem)
    for w in walks:  # only once the network has answered: a failed call leaves every walk where it was
        w.taken += 1
    if ddim.all():
        return diffusion.ddim_step(x, eps, alpha_bar, target), history
    if history is None:
        raise ValueError("a multistep sampler needs the history of its samples")
    out = np.empty_like(x)
    if ddim.any():
        out[ddim] = diffusion.ddim_step(x[ddim], eps[ddim], alpha_bar[ddim], target[ddim])
    multi = ~ddim
    # order 2 from a sample's second step on, except onto the clean image or pure noise
    second = ~first[multi] & (target[multi] > 0.0) & (target[multi] < 1.0)
    out[multi], history[multi] = dpmpp_step(
        x[multi], eps[multi], alpha_bar[multi], target[multi], history[multi], came_from[multi], second
    )
    return out, history


def run(
    engine: Engine,
    x: np.ndarray,
    z_sem: np.ndarray,
    steps: np.ndarray,
    inverse: bool,
    samplers: Sequence[str] | np.ndarray | None = None,
    reuse: int = 1,
) -> np.ndarray:
    """Invert x0 → x_T (inverse=True, Diff-AE Eq. 7) or sample x_T → x0, each sample with steps[i] steps of
    its sampler (samplers[i]: "ddim", the default, or "dpmpp2m").

    reuse (an opt-in, lossy): run the whole UNet only every `reuse`-th step and, in between, only its
    outermost level on the deep feature of the last whole step (`FeatureReuse`); 1, the default, is exact."""
    steps = np.asarray(steps, dtype=np.int64)
    walks = trajectories(engine.config.diffusion, steps, inverse, sampler_orders(samplers, len(steps)))
    x = np.array(x, dtype=np.float32)  # a copy: finished samples are written in place
    multistep = any(w.order > 1 for w in walks)
    history = np.zeros_like(x) if multistep else None  # each multistep sample's last x0
    cache = FeatureReuse(engine, reuse, len(x))
    while True:
        active = np.array([i for i, w in enumerate(walks) if not w.done], np.int64)
        if not len(active):
            return x
        rows = [walks[i] for i in active]
        network = cache.network(active, rows[0].taken)
        if history is None:
            x[active], _ = advance(engine, x[active], z_sem[active], rows, network=network)
        else:
            x[active], history[active] = advance(
                engine, x[active], z_sem[active], rows, history[active], network
            )


def check_reuse(engine: Engine, every: int) -> None:
    """Refuse a reuse interval that is not a whole number ≥ 1, or reuse on an engine without the split."""
    if isinstance(every, bool) or not isinstance(every, int | np.integer) or every < 1:
        raise ValueError(f"reuse must be a whole number of steps ≥ 1 (1: off), got {every!r}")
    if every > 1 and not hasattr(engine, "eps_from_deep"):
        raise ValueError(f"feature reuse needs an engine with eps_and_deep / eps_from_deep, not {engine!r}")


class FeatureReuse:
    """Feature reuse across adjacent steps (training-free, in the style of DeepCache, Ma et al. 2024).

    Every `every`-th step runs the whole UNet and keeps its deep feature (what the inner levels hand the
    outermost one); the steps between run only the outermost level on it. A fixed batch steps in lockstep
    (samples only finish, never join), so the choice is the same for every active sample of a step."""

    def __init__(self, engine: Engine, every: int, batch: int) -> None:
        check_reuse(engine, every)
        self.engine, self.every, self.batch = engine, int(every), batch
        self.deep: np.ndarray | None = None  # each sample's deep feature from its last whole step

    def network(self, active: np.ndarray, taken: int) -> Callable[..., np.ndarray] | None:
        """What gives eps at this step for these rows: None (engine.eps) when reuse is off."""
        if self.every == 1:
            return None
        if taken % self.every == 0:
            return lambda x, t, z: self._whole(active, x, t, z)
        return lambda x, t, z: self.engine.eps_from_deep(x, t, z, self.deep[active])

    def _whole(self, active: np.ndarray, x: np.ndarray, t: np.ndarray, z: np.ndarray) -> np.ndarray:
        eps, deep = self.engine.eps_and_deep(x, t, z)
        if self.deep is None:
            self.deep = np.zeros((self.batch, *deep.shape[1:]), np.float32)
        self.deep[active] = deep
        return eps
