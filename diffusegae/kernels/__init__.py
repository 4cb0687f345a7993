"""AdaGN: one dispatch over the PyTorch reference and the fused kernels (env switch DIFFUSEGAE_KERNELS)."""

from __future__ import annotations

import torch

from diffusegae import settings
from diffusegae.kernels.reference import adagn_reference

__all__ = ["adagn", "adagn_reference"]


def adagn(
    h: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    t_scale: torch.Tensor,
    t_shift: torch.Tensor,
    z_scale: torch.Tensor,
    z_shift: torch.Tensor | None = None,
    groups: int = 32,
    eps: float = 1e-5,
    silu: bool = True,
    impl: str | None = None,
) -> torch.Tensor:
    """GroupNorm → time scale/shift → z_sem scale[/shift] → SiLU. Vectors are [B, C]."""
    impl = impl or settings.kernel_impl() or "torch"
    if impl not in settings.KERNEL_CHOICES:
        raise ValueError(f"impl={impl!r} is not one of {', '.join(settings.KERNEL_CHOICES)}")
    if h.shape[1] % groups:
        raise ValueError(f"channels ({h.shape[1]}) must be divisible by groups ({groups})")
    # The fused Triton / CUDA kernels are GPU-only and not built yet: every choice falls back to the
    # reference, which is also what runs on CPU.
    return adagn_reference(h, gamma, beta, t_scale, t_shift, z_scale, z_shift, groups, eps, silu)
