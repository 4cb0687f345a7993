"""How much the decoder uses z_sem, timestep by timestep.

At a timestep t, L_simple (Diff-AE Eq. 1) is measured twice on the same held-out images and the same noise:
with each image's own z_sem, and with the z_sem of another image of the sample (the batch rolled by one).
"z_sem share" = 1 − own / other is the part of the wrong-code loss that the right code removes: 0 means
the UNet ignores z_sem at that t.

Why it matters for edits: DDIM fixes an image's layout in its first steps, at large t, where x_t is almost
pure noise (sqrt(ᾱ_t) is given per row). A decoder that only uses z_sem at small t decodes a random x_T to an
image of its own choosing, and an inverted x_T back to the source whatever code it is given.

It takes seconds, so `python -m diffusegae.eval.progress` also measures it between training runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from diffusegae.diffusion import q_sample, schedule_alphas_cumprod
from diffusegae.engines.pipeline import Pipeline
from diffusegae.eval.reconstruction import batches, encode_all

# Fractions of the diffusion length T; with T = 1000 these are t = 50, 200, 400, 600, 800, 950.
TIMESTEP_FRACTIONS = (0.05, 0.2, 0.4, 0.6, 0.8, 0.95)


def conditioning_timesteps(num_timesteps: int, fractions: Sequence[float] = TIMESTEP_FRACTIONS) -> list[int]:
    return sorted({min(num_timesteps - 1, round(f * num_timesteps)) for f in fractions})


def _loss(
    pipe: Pipeline, x_t: np.ndarray, t: np.ndarray, z: np.ndarray, noise: np.ndarray, size: int
) -> float:
    eps = np.concatenate([pipe.engine.eps(x_t[p], t[p], z[p]) for p in batches(len(x_t), size)])
    return float(np.mean((eps.astype(np.float64) - noise) ** 2))


def conditioning_use(
    pipe: Pipeline,
    x0: np.ndarray,
    timesteps: Sequence[int] | None = None,
    seed: int = 0,
    batch_size: int = 32,
) -> dict[str, Any]:
    """{"images", "rows": [{"t", "signal", "loss_own", "loss_other", "z_sem_share"}]} for model-space x0."""
    if len(x0) < 2:
        raise ValueError(f"conditioning use needs at least 2 images (one lends its code), got {len(x0)}")
    num_timesteps = pipe.config.diffusion.num_timesteps
    alpha_bar = schedule_alphas_cumprod(pipe.config.diffusion)
    timesteps = conditioning_timesteps(num_timesteps) if timesteps is None else list(timesteps)
    z_own = encode_all(pipe, x0, batch_size)
    z_other = np.roll(z_own, 1, axis=0)  # every image gets a code that is not its own
    rng = np.random.default_rng([seed, 0xC0D])
    rows = []
    for t in timesteps:
        noise = rng.standard_normal(x0.shape).astype(np.float32)
        t_batch = np.full(len(x0), t, np.int64)
        x_t = q_sample(x0, noise, t_batch, alpha_bar=alpha_bar)
        own = _loss(pipe, x_t, t_batch, z_own, noise, batch_size)
        other = _loss(pipe, x_t, t_batch, z_other, noise, batch_size)
        rows.append(
            {
                "t": int(t),
                "signal": float(np.sqrt(alpha_bar[t])),
                "loss_own": own,
                "loss_other": other,
                "z_sem_share": 1.0 - own / other if other > 0 else 0.0,
            }
        )
    return {"images": len(x0), "rows": rows}
