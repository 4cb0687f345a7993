"""Every environment switch the package reads, in one place."""

from __future__ import annotations

import os

KERNEL_CHOICES = ("torch", "triton", "cuda")


def kernel_impl() -> str | None:
    """DIFFUSEGAE_KERNELS=torch|triton|cuda picks the AdaGN implementation; unset means automatic (a fused
    kernel on CUDA tensors, the torch twin on CPU; see diffusegae.kernels for the fallbacks)."""
    value = os.environ.get("DIFFUSEGAE_KERNELS", "").strip().lower()
    if not value:
        return None
    if value not in KERNEL_CHOICES:
        raise ValueError(f"DIFFUSEGAE_KERNELS={value!r} is not one of {', '.join(KERNEL_CHOICES)}")
    return value


def keep_freed_memory() -> bool:
    """DIFFUSEGAE_KEEP_FREED_MEMORY=0 leaves glibc's malloc thresholds as they are; unset or 1 lets the torch
    engine keep freed memory in the heap (diffusegae.engines.allocator)."""
    value = os.environ.get("DIFFUSEGAE_KEEP_FREED_MEMORY", "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"DIFFUSEGAE_KEEP_FREED_MEMORY={value!r} must be 0 or 1")
    return value == "1"
