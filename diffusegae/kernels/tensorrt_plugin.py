"""The fused AdaGN as a TensorRT plugin, registered through the `tensorrt.plugin` Python API (TRT ≥ 10.6).

UNVERIFIED: no machine of this project has had TensorRT. Written against the documented quickly deployable
plugin API (`tensorrt.plugin.register` / `autotune` / `impl`) and onnx-tensorrt's fallback importer, which
maps an ONNX node it has no importer for to the plugin named by the node's op type, in the namespace and
version of its `plugin_namespace` / `plugin_version` attributes, and passes the node's attributes that the
plugin declares (groups, eps, mode, silu) as plugin fields. kernels/custom_op.py writes exactly such a node.

The implementation is the Triton kernel, called from Python on TensorRT's stream (a JIT plugin: the engine
needs this process to have called `register_plugin()` before it is built or deserialized, as
TensorRTEngine(fused_adagn=True) does). IO: all fp32 or all fp16 (bf16 has no CUDA array interface type).
"""

# No `from __future__ import annotations`: tensorrt.plugin reads the decorated functions' annotations
# as objects.
from diffusegae.kernels.custom_op import PLUGIN_NAME, PLUGIN_NAMESPACE

PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
MIN_TENSORRT = (10, 6)
_registered = False


def register_plugin() -> None:
    """Register the plugin with TensorRT's plugin registry (idempotent); RuntimeError without TRT ≥ 10.6."""
    global _registered
    if _registered:
        return
    try:
        import tensorrt as trt
        import tensorrt.plugin as trtp
    except (ImportError, OSError) as error:
        raise RuntimeError(
            f"the AdaGN TensorRT plugin needs tensorrt.plugin (TensorRT ≥ 10.6): {error}"
        ) from error
    version = tuple(int(p) for p in trt.__version__.split(".")[:2] if p.isdigit())
    if version < MIN_TENSORRT:
        raise RuntimeError(f"the AdaGN TensorRT plugin needs TensorRT ≥ 10.6, found {trt.__version__}")
    _define(trtp)
    _registered = True


def _define(trtp) -> None:  # the decorated functions' annotations are read by tensorrt.plugin
    @trtp.register(PLUGIN_ID)
    def adagn_desc(
        h: trtp.TensorDesc,
        gamma: trtp.TensorDesc,
        beta: trtp.TensorDesc,
        t_scale: trtp.TensorDesc,
        t_shift: trtp.TensorDesc,
        z_scale: trtp.TensorDesc,
        z_shift: trtp.TensorDesc,
        groups: int,
        eps: float,
        mode: str,
        silu: int,
    ) -> trtp.TensorDesc:
        return h.like()

    @trtp.autotune(PLUGIN_ID)
    def adagn_autotune(
        h: trtp.TensorDesc,
        gamma: trtp.TensorDesc,
        beta: trtp.TensorDesc,
        t_scale: trtp.TensorDesc,
        t_shift: trtp.TensorDesc,
        z_scale: trtp.TensorDesc,
        z_shift: trtp.TensorDesc,
        groups: int,
        eps: float,
        mode: str,
        silu: int,
        outputs: tuple[trtp.TensorDesc],
    ) -> list[trtp.AutoTuneCombination]:
        # eight IO positions (seven inputs, one output), linear layout, all FP32 or all FP16
        return [trtp.AutoTuneCombination(", ".join(["FP32|FP16"] * 8), "LINEAR")]

    @trtp.impl(PLUGIN_ID)
    def adagn_impl(
        h: trtp.Tensor,
        gamma: trtp.Tensor,
        beta: trtp.Tensor,
        t_scale: trtp.Tensor,
        t_shift: trtp.Tensor,
        z_scale: trtp.Tensor,
        z_shift: trtp.Tensor,
        groups: int,
        eps: float,
        mode: str,
        silu: int,
        outputs: tuple[trtp.Tensor],
        stream: int,
    ) -> None:
        import torch

        from diffusegae.kernels.triton_adagn import adagn_triton

        def view(t: trtp.Tensor) -> torch.Tensor:  # zero-copy, through the CUDA array interface
            return torch.as_tensor(t, device="cuda")

        vectors = [view(t) for t in (gamma, beta, t_scale, t_shift, z_scale)]
        shift = view(z_shift) if mode == "scale_shift" else None
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            adagn_triton(
                view(h), *vectors, shift, groups=groups, eps=eps, silu=bool(silu), out=view(outputs[0])
            )
