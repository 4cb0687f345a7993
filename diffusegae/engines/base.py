"""The Engine protocol: what the pipeline and the server's loop model call, whatever runs underneath.

numpy float32 in and out, batch first. `t` is int64 [B], one timestep per sample, so a single eps call can
mix samples at different DDIM steps (the server batches requests that way).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from diffusegae.config import ModelConfig


class NoGAEError(ValueError):
    """An op needs the GAE and the checkpoint is a plain Diff-AE model."""


@runtime_checkable
class Engine(Protocol):
    config: ModelConfig

    def encode(self, x0: np.ndarray) -> np.ndarray:
        """x0 [B,3,H,W] in [-1,1] → z_sem [B,512]."""
        ...

    def eps(self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray) -> np.ndarray:
        """x_t [B,3,H,W], t int64 [B] in 0..T-1, z_sem [B,512] → predicted noise [B,3,H,W]."""
        ...

    def gae_encode(self, z_sem: np.ndarray) -> np.ndarray:
        """z_sem [B,512] → z_dis [B,D]."""
        ...

    def gae_decode(self, z_dis: np.ndarray) -> np.ndarray:
        """z_dis [B,D] → z_sem [B,512]."""
        ...


def require_gae(config: ModelConfig, op: str) -> None:
    if config.gae is None:
        raise NoGAEError(
            f"{op} needs a DiffuseGAE checkpoint (one with a GAE); {config.name!r} is a plain Diff-AE "
            "checkpoint: use encode / invert / decode / reconstruct / interpolate / manipulate instead"
        )
