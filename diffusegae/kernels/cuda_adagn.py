"""The CUDA C++ AdaGN kernel (kernels/cuda/adagn.cu), built just in time with torch's cpp_extension.

The first call on a CUDA machine compiles the extension (nvcc, about a minute) into torch's extension cache
(TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions), which rebuilds it only when the source or the
toolchain changes; later processes load the cached library. Nothing is built on import or without CUDA.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import torch

from diffusegae.kernels.common import MAX_SPLIT, choose_split, sm_count

SOURCE = Path(__file__).resolve().parent / "cuda" / "adagn.cu"
EXTENSION = "diffusegae_adagn"
_extension: ModuleType | None = None


def load_extension(verbose: bool = False) -> ModuleType:
    """The compiled extension (built on first use); RuntimeError without a CUDA device."""
    global _extension
    if _extension is None:
        if not torch.cuda.is_available():
            raise RuntimeError("the CUDA AdaGN kernel needs a CUDA device")
        from torch.utils.cpp_extension import load

        _extension = load(
            name=EXTENSION, sources=[str(SOURCE)], extra_cuda_cflags=["-O3", "-lineinfo"], verbose=verbose
        )
    return _extension


def adagn_cuda(
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
    *,
    split: int | None = None,
) -> torch.Tensor:
    """AdaGN on CUDA [B, C, *spatial] fp32 / fp16 / bf16; split: blocks per group (default: choose_split)."""
    if h.device.type != "cuda":
        raise ValueError(f"the CUDA AdaGN kernel needs CUDA tensors, got {h.device}")
    b, c = h.shape[:2]
    if c % groups:
        raise ValueError(f"channels ({c}) must be divisible by groups ({groups})")
    if split is None:
        split = choose_split(b * groups, h.numel() // max(b * groups, 1), sm_count(h.device))
    if not 1 <= split <= MAX_SPLIT:
        raise ValueError(f"split must be in 1..{MAX_SPLIT}, got {split}")
    return load_extension().forward(
        h, gamma, beta, t_scale, t_shift, z_scale, z_shift, groups, float(eps), bool(silu), split
    )
