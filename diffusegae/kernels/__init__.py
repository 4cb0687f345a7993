"""AdaGN: one dispatch over the PyTorch twin and the fused kernels (switch: DIFFUSEGAE_KERNELS or impl=).

- "torch": the plain-PyTorch twin (kernels/reference.py), the numerical spec; runs everywhere.
- "triton": the OpenAI Triton kernel (kernels/triton_adagn.py); CUDA tensors.
- "cuda": the CUDA C++ kernel (kernels/cuda/adagn.cu), built just in time on first use; CUDA tensors.

Unset means automatic: on CUDA tensors triton if it imports, else cuda if it builds, else torch; on CPU
tensors always torch. A request that cannot run where it is asked to (a kernel on CPU tensors, a dtype other
than fp32 / fp16 / bf16, autograd through the kernels, which are forward-only, a kernel that does not import
or build) runs the twin instead and logs why once, at WARNING for an explicit request and DEBUG for the
automatic choice. Under torch.compile the kernels run as the custom op `torch.ops.diffusegae.adagn`
(kernels/custom_op.py), which the ONNX export also uses.

Nothing here imports triton or builds anything until a CUDA tensor asks for a kernel.
"""

from __future__ import annotations

import logging

import torch

from diffusegae import settings
from diffusegae.kernels import custom_op
from diffusegae.kernels.reference import adagn_reference

__all__ = ["adagn", "adagn_reference", "available", "resolve"]

log = logging.getLogger(__name__)
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_available: dict[str, bool] = {}
_why: dict[str | None, str] = {}  # why a kernel is unavailable
_logged: set[tuple[str | None, str]] = set()


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
    requested = impl or settings.kernel_impl()
    if requested is not None and requested not in settings.KERNEL_CHOICES:
        raise ValueError(f"impl={requested!r} is not one of {', '.join(settings.KERNEL_CHOICES)}")
    if h.shape[1] % groups:
        raise ValueError(f"channels ({h.shape[1]}) must be divisible by groups ({groups})")
    args = (h, gamma, beta, t_scale, t_shift, z_scale, z_shift, groups, eps, silu)
    if custom_op.exporting():  # one node per AdaGN in the traced graph; the twin computes its value
        return torch.ops.diffusegae.adagn(*args, "torch")
    chosen = resolve(requested, h.device.type, h.dtype, _needs_grad(args))
    if chosen == "torch":
        return adagn_reference(*args)
    if torch.compiler.is_compiling():  # one opaque node for torch.compile, which must not trace a launcher
        return torch.ops.diffusegae.adagn(*args, chosen)
    return custom_op.run(chosen, *args)


def resolve(requested: str | None, device_type: str, dtype: torch.dtype, needs_grad: bool = False) -> str:
    """The implementation that runs for a request (None: automatic) on a tensor of this device and dtype."""
    if requested == "torch" or (requested is None and device_type != "cuda"):
        return "torch"  # the common CPU path touches nothing else (torch.compile traces through it)
    if device_type != "cuda":
        return _fallback(requested, f"kernels run on CUDA tensors, got {device_type}")
    if dtype not in KERNEL_DTYPES:
        return _fallback(requested, f"kernels take fp32 / fp16 / bf16, got {dtype}")
    if needs_grad:
        return _fallback(requested, "kernels are forward-only and autograd is recording")
    names = (requested,) if requested else ("triton", "cuda")
    for name in names:
        if available(name):
            return name
    return _fallback(requested, "unavailable: " + "; ".join(f"{n}: {_why.get(n, 'unknown')}" for n in names))


def available(name: str) -> bool:
    """Whether kernel `name` ("triton" or "cuda") can run here; tried once (import or JIT build)."""
    if name not in ("triton", "cuda"):
        raise ValueError(f"no kernel named {name!r}; kernels: triton, cuda")
    if name not in _available:
        try:
            if name == "triton":
                import diffusegae.kernels.triton_adagn  # noqa: F401  (imports triton)
            else:
                from diffusegae.kernels.cuda_adagn import load_extension

                load_extension()
            _available[name] = torch.cuda.is_available()
            if not _available[name]:
                _why[name] = "no CUDA device"
        except Exception as error:  # an import error, a failed JIT build (RuntimeError, OSError, ...)
            _available[name] = False
            _why[name] = f"{type(error).__name__}: {error}"
    return _available[name]


def _fallback(requested: str | None, reason: str) -> str:
    # Not while torch.compile traces: a logging call there would break the graph.
    if (requested, reason) not in _logged and not torch.compiler.is_compiling():
        _logged.add((requested, reason))
        level = logging.WARNING if requested else logging.DEBUG
        log.log(level, "AdaGN %s: running the torch twin (%s)", requested or "auto", reason)
    return "torch"


def _needs_grad(args: tuple) -> bool:
    return torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
