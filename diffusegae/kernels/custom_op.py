"""AdaGN as one opaque op, `torch.ops.diffusegae.adagn`, and its ONNX form: one custom-domain node.

Under torch.compile the dispatch calls the op when a fused kernel runs, so dynamo sees one node (its fake
implementation gives the output's shape) instead of tracing into a kernel launcher; eager calls go to
`run`, the op's body, directly. For the export, `onnx_export_mode()` makes the dispatch emit the op on
CPU too (running the torch twin), and `register_onnx_symbolic()` teaches the TorchScript exporter to write
it as one node:

    diffusegae::AdaGN(h, gamma, beta, t_scale, t_shift, z_scale, z_shift) -> y
      groups: int, eps: float, mode: "scale" | "scale_shift", silu: int (0/1),
      plugin_name: "AdaGN", plugin_namespace: "diffusegae", plugin_version: "1"

TensorRT's ONNX parser looks up a node it has no importer for as a plugin named by the node's op type, with
the `plugin_namespace` and `plugin_version` attributes (see kernels/tensorrt_plugin.py); `plugin_name`
repeats the op type for readers. In mode "scale" (no z_sem shift) the seventh input is a [1, C] zero
constant so the node always has seven inputs; the plugin ignores it. ONNX Runtime has no such op: the
default export keeps standard ops.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

OP = "diffusegae::adagn"
ONNX_DOMAIN = "diffusegae"
ONNX_DOMAIN_VERSION = 1
PLUGIN_NAME = "AdaGN"  # = the ONNX op type
PLUGIN_NAMESPACE = "diffusegae"
PLUGIN_VERSION = "1"  # what tensorrt.plugin registers every plugin as
IMPLS = ("torch", "triton", "cuda")

_exporting = 0  # a plain global (not thread-local): torch.compile guards on it without a graph break


@torch.library.custom_op(OP, mutates_args=())
def adagn_op(
    h: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    t_scale: torch.Tensor,
    t_shift: torch.Tensor,
    z_scale: torch.Tensor,
    z_shift: torch.Tensor | None,
    groups: int,
    eps: float,
    silu: bool,
    impl: str,
) -> torch.Tensor:
    """AdaGN by the implementation `impl` names; the output is a new contiguous tensor of h's dtype."""
    return run(impl, h, gamma, beta, t_scale, t_shift, z_scale, z_shift, groups, eps, silu)


@adagn_op.register_fake
def _(h, gamma, beta, t_scale, t_shift, z_scale, z_shift, groups, eps, silu, impl):
    return torch.empty_like(h, memory_format=torch.contiguous_format)


def run(impl: str, *args) -> torch.Tensor:
    """The op's body, callable without the dispatcher (eager calls skip its few µs of overhead)."""
    if impl == "triton":
        from diffusegae.kernels.triton_adagn import adagn_triton

        return adagn_triton(*args)
    if impl == "cuda":
        from diffusegae.kernels.cuda_adagn import adagn_cuda

        return adagn_cuda(*args)
    if impl != "torch":
        raise ValueError(f"impl={impl!r} is not one of {', '.join(IMPLS)}")
    from diffusegae.kernels.reference import adagn_reference

    return adagn_reference(*args).contiguous()


def exporting() -> bool:
    """True inside `onnx_export_mode()`."""
    return _exporting > 0


@contextlib.contextmanager
def onnx_export_mode() -> Iterator[None]:
    """While active, the dispatch emits the custom op on every device, so a trace records one node."""
    global _exporting
    register_onnx_symbolic()
    _exporting += 1
    try:
        yield
    finally:
        _exporting -= 1


_registered = False


def register_onnx_symbolic() -> None:
    """Map the op to one ONNX node for the TorchScript exporter (all opsets it supports; idempotent)."""
    global _registered
    if _registered:
        return
    from torch.onnx import register_custom_op_symbolic

    register_custom_op_symbolic(OP, _symbolic, 9)
    _registered = True


def _symbolic(g, h, gamma, beta, t_scale, t_shift, z_scale, z_shift, groups, eps, silu, impl):
    from torch.onnx import symbolic_helper as sym

    mode = "scale" if sym._is_none(z_shift) else "scale_shift"
    if mode == "scale":
        (channels,) = sym._get_tensor_sizes(gamma)
        z_shift = g.op("Constant", value_t=torch.zeros(1, channels, dtype=torch.float32))
    out = g.op(
        f"{ONNX_DOMAIN}::{PLUGIN_NAME}",
        h,
        gamma,
        beta,
        t_scale,
        t_shift,
        z_scale,
        z_shift,
        groups_i=sym._get_const(groups, "i", "groups"),
        eps_f=sym._get_const(eps, "f", "eps"),
        mode_s=mode,
        silu_i=int(sym._get_const(silu, "b", "silu")),
        plugin_name_s=PLUGIN_NAME,
        plugin_namespace_s=PLUGIN_NAMESPACE,
        plugin_version_s=PLUGIN_VERSION,
    )
    out.setType(h.type())
    return out
