"""The torch modules that get exported: one small explicit module per component.

Each holds only the submodule it runs, so an exported file carries only that part's weights, and its
forward takes exactly the spec's inputs, in the spec's order.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from diffusegae.models import DiffusionAutoencoder


class EncoderWrapper(nn.Module):
    """x0 [B,3,H,W] → z_sem [B,512]."""

    def __init__(self, model: DiffusionAutoencoder) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return self.encoder(x0)


class GAEEncodeWrapper(nn.Module):
    """z_sem [B,512] → z_dis [B,D] (standardisation by the GAE's z statistics included)."""

    def __init__(self, model: DiffusionAutoencoder) -> None:
        super().__init__()
        if model.gae is None:
            raise ValueError(f"{model.cfg.name!r} has no GAE to export")
        self.gae = model.gae

    def forward(self, z_sem: torch.Tensor) -> torch.Tensor:
        return self.gae.encode(z_sem)


class GAEDecodeWrapper(GAEEncodeWrapper):
    """z_dis [B,D] → z_sem [B,512]: the same GAE the other way."""

    def forward(self, z_dis: torch.Tensor) -> torch.Tensor:
        return self.gae.decode(z_dis)


class UNetWrapper(nn.Module):
    """x_t [B,3,H,W], t int64 [B], z_sem [B,512] → eps [B,3,H,W]."""

    def __init__(self, model: DiffusionAutoencoder) -> None:
        super().__init__()
        self.unet = model.unet

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t, z_sem)


class UNetDeepWrapper(UNetWrapper):
    """x_t, t, z_sem → eps and the deep feature (feature reuse's full step)."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.unet.eps_and_deep(x_t, t, z_sem)


class UNetShallowWrapper(UNetWrapper):
    """x_t, t, z_sem and a deep feature → eps from the outermost level (feature reuse's cheap step)."""

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor, deep: torch.Tensor
    ) -> torch.Tensor:
        return self.unet.eps_from_deep(x_t, t, z_sem, deep)


class HalfPrecision(nn.Module):
    """A half-precision copy of a wrapper behind float32 inputs and outputs (the fp16 export).

    Integer inputs (timesteps) pass unchanged; the model's norms keep fp32 statistics on their own.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(inner).half()  # a copy: the float32 model serves the other exports

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        cast = [x.half() if x.is_floating_point() else x for x in inputs]
        return self.inner(*cast).float()
