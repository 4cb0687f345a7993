"""DDIM math with Diff-AE's exact semantics, and nothing else: no network, no loop driver.

Symbols: ᾱ_t = alphas_cumprod[t] ("alpha_bar"), x_t the noisy image, eps the network's noise prediction,
x0 the predicted clean image. Every function here works on numpy arrays and on torch tensors; the schedule
is computed in float64 and each coefficient is cast to the array's dtype at the point of use.

Per-sample coefficients are allowed (arrays of shape [B]), so one batch can mix samples at different steps.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np

Array = TypeVar("Array", np.ndarray, Any)

NUM_TIMESTEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02


@lru_cache(maxsize=8)
def _alphas_cumprod(num_timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
    # Linear schedule of Ho et al. (DDPM) as used by Diff-AE, in float64.
    betas = np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)
    out = np.cumprod(1.0 - betas)
    out.setflags(write=False)
    return out


def alphas_cumprod(
    num_timesteps: int = NUM_TIMESTEPS, beta_start: float = BETA_START, beta_end: float = BETA_END
) -> np.ndarray:
    """ᾱ_t for t = 0..num_timesteps-1 (float64, read-only)."""
    return _alphas_cumprod(num_timesteps, beta_start, beta_end)


def schedule_args(config: Any) -> tuple[int, float, float]:
    """(num_timesteps, beta_start, beta_end) of a DiffusionConfig (or anything with those fields)."""
    return int(config.num_timesteps), float(config.beta_start), float(config.beta_end)


def schedule_alphas_cumprod(config: Any) -> np.ndarray:
    """ᾱ_t of a checkpoint's schedule (its DiffusionConfig)."""
    return alphas_cumprod(*schedule_args(config))


def ddim_timesteps(steps: int, num_timesteps: int = NUM_TIMESTEPS) -> np.ndarray:
    """The original timesteps a DDIM run of `steps` steps visits, ascending (int64).

    Diff-AE's "ddimN" spacing: the smallest integer stride k with len(range(0, T, k)) == steps, so
    ddim_timesteps(10) == [0, 100, ..., 900] and ddim_timesteps(3) == [0, 334, 668].
    """
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer):
        raise TypeError(f"steps must be an int, got {type(steps).__name__}")
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in 1..{num_timesteps}, got {steps}")
    stride = math.ceil(num_timesteps / steps)  # smallest stride whose range has at most `steps` items
    if math.ceil(num_timesteps / stride) != steps:
        below = math.ceil(num_timesteps / stride)
        above = math.ceil(num_timesteps / max(stride - 1, 1))
        raise ValueError(
            f"{steps} steps cannot be spaced with an integer stride over {num_timesteps} timesteps "
            f"(Diff-AE's DDIM spacing); use {below} or {above} instead"
        )
    return np.arange(0, num_timesteps, stride, dtype=np.int64)


def valid_step_counts(num_timesteps: int = NUM_TIMESTEPS) -> list[int]:
    """Every step count that ddim_timesteps accepts."""
    return sorted({math.ceil(num_timesteps / k) for k in range(1, num_timesteps + 1)})


@dataclass(frozen=True)
class DDIMSchedule:
    """The ᾱ values a DDIM run needs, indexed by step i (0 = least noisy), float64.

    alpha_bar_prev[0] = 1 (the clean image) and alpha_bar_next[-1] = 0 (pure noise), as in Diff-AE.
    """

    timesteps: np.ndarray  # int64 [S], the original t passed to the network
    alpha_bar: np.ndarray  # [S]
    alpha_bar_prev: np.ndarray  # [S]
    alpha_bar_next: np.ndarray  # [S]

    @property
    def steps(self) -> int:
        return len(self.timesteps)


@lru_cache(maxsize=64)
def ddim_schedule(
    steps: int,
    num_timesteps: int = NUM_TIMESTEPS,
    beta_start: float = BETA_START,
    beta_end: float = BETA_END,
) -> DDIMSchedule:
    """The S-step DDIM schedule over the linear betas beta_start..beta_end (a checkpoint's own: pass
    `*schedule_args(config.diffusion)`)."""
    t = ddim_timesteps(steps, num_timesteps)
    a = alphas_cumprod(num_timesteps, beta_start, beta_end)[t]
    return DDIMSchedule(
        timesteps=t,
        alpha_bar=a,
        alpha_bar_prev=np.concatenate([[1.0], a[:-1]]),
        alpha_bar_next=np.concatenate([a[1:], [0.0]]),
    )


def _torch_of(x: Any) -> Any:
    """The torch module if `x` is a torch tensor, else None. Never imports torch: if torch is not loaded,
    nothing can be a tensor, so numpy-only users (the server's glue models) stay light."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(x, torch.Tensor) else None


def _coef(value: float | np.ndarray, like: Array) -> Array:
    """A float64 scalar or per-sample [B] coefficient, cast and shaped to broadcast against `like`."""
    value = np.asarray(value, dtype=np.float64)
    if value.ndim:
        value = value.reshape(-1, *([1] * (like.ndim - 1)))
    torch = _torch_of(like)
    if torch is not None:
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return value.astype(like.dtype)


def predict_x0(x_t: Array, eps: Array, alpha_bar: float | np.ndarray, clip: bool = True) -> Array:
    """x0 = sqrt(1/ᾱ)·x_t − sqrt(1/ᾱ − 1)·eps, clipped to [-1, 1] (DDPM Eq. 15 rearranged)."""
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
    x0 = _coef(np.sqrt(1.0 / alpha_bar), x_t) * x_t - _coef(np.sqrt(1.0 / alpha_bar - 1.0), x_t) * eps
    return x0.clip(-1.0, 1.0) if clip else x0


def eps_from_x0(x_t: Array, x0: Array, alpha_bar: float | np.ndarray) -> Array:
    """The eps consistent with x_t and a (clipped) x0: (sqrt(1/ᾱ)·x_t − x0) / sqrt(1/ᾱ − 1)."""
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
    return (_coef(np.sqrt(1.0 / alpha_bar), x_t) * x_t - x0) / _coef(np.sqrt(1.0 / alpha_bar - 1.0), x_t)


def _move(x0: Array, eps: Array, alpha_bar_to: float | np.ndarray) -> Array:
    # DDIM Eq. 12 with eta = 0: x_s = sqrt(ᾱ_s)·x0 + sqrt(1 − ᾱ_s)·eps.
    alpha_bar_to = np.asarray(alpha_bar_to, dtype=np.float64)
    return _coef(np.sqrt(alpha_bar_to), x0) * x0 + _coef(np.sqrt(1.0 - alpha_bar_to), x0) * eps


def ddim_step(
    x_t: Array, eps: Array, alpha_bar: float | np.ndarray, alpha_bar_prev: float | np.ndarray
) -> Array:
    """One deterministic DDIM step toward the image: x_t → x_{t-1}.

    1. x0 from the network's eps, clipped to [-1, 1];
    2. eps re-derived from the clipped x0 (Diff-AE does this, so the step stays on the data range);
    3. x_{t-1} = sqrt(ᾱ_prev)·x0 + sqrt(1 − ᾱ_prev)·eps.
    """
    return ddim_update(x_t, predict_x0(x_t, eps, alpha_bar), alpha_bar, alpha_bar_prev)


def ddim_update(
    x_t: Array, x0: Array, alpha_bar: float | np.ndarray, alpha_bar_to: float | np.ndarray
) -> Array:
    """Steps 2–3 of ddim_step from an already clipped x0 (either direction): eps re-derived, then moved."""
    return _move(x0, eps_from_x0(x_t, x0, alpha_bar), alpha_bar_to)


def ddim_inverse_step(
    x_t: Array, eps: Array, alpha_bar: float | np.ndarray, alpha_bar_next: float | np.ndarray
) -> Array:
    """One DDIM inversion step toward noise: x_t → x_{t+1} (Diff-AE Eq. 7, the reverse ODE)."""
    x0 = predict_x0(x_t, eps, alpha_bar)
    return _move(x0, eps_from_x0(x_t, x0, alpha_bar), alpha_bar_next)


def q_sample(
    x0: Array,
    noise: Array,
    t: np.ndarray | int,
    num_timesteps: int = NUM_TIMESTEPS,
    alpha_bar: np.ndarray | None = None,
) -> Array:
    """Forward process x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·noise (DDPM Eq. 4), t per sample or scalar.

    `alpha_bar`: the schedule's ᾱ (default: Diff-AE's linear betas over `num_timesteps`)."""
    t = np.asarray(t.cpu() if _torch_of(t) is not None else t)
    schedule = alphas_cumprod(num_timesteps) if alpha_bar is None else alpha_bar
    return _move(x0, noise, schedule[t])


def seeded_noise(batch: int, image_size: int, seed: int, channels: int = 3) -> np.ndarray:
    """x_T ~ N(0, I) [batch, channels, size, size] float32 from a seed: identical on every engine and host."""
    shape = (batch, channels, image_size, image_size)
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def lerp(a: Array, b: Array, alpha: float | np.ndarray) -> Array:
    """(1 − α)·a + α·b, α scalar or per sample."""
    w = _coef(alpha, a)
    return (1 - w) * a + w * b


def slerp(a: Array, b: Array, alpha: float | np.ndarray, eps: float = 1e-7) -> Array:
    """Spherical interpolation per sample (flattened), as Diff-AE interpolates x_T.

    Falls back to lerp where the two vectors are (anti)parallel and the great circle is undefined.
    """
    shape = a.shape
    fa, fb = a.reshape(shape[0], -1), b.reshape(shape[0], -1)
    torch = _torch_of(a)
    xp = torch if torch is not None else np
    na = (fa * fa).sum(-1) ** 0.5
    nb = (fb * fb).sum(-1) ** 0.5
    cos = ((fa * fb).sum(-1) / (na * nb + eps)).clip(-1.0, 1.0)
    theta = xp.arccos(cos)
    alpha_v = _coef(alpha, theta)
    sin_t = xp.sin(theta)
    degenerate = abs(sin_t) < 1e-4
    safe = xp.where(degenerate, xp.ones_like(sin_t), sin_t)
    wa = xp.where(degenerate, 1 - alpha_v, xp.sin((1 - alpha_v) * theta) / safe)
    wb = xp.where(degenerate, alpha_v + 0 * theta, xp.sin(alpha_v * theta) / safe)
    return (wa[:, None] * fa + wb[:, None] * fb).reshape(shape)
