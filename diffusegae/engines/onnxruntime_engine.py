"""The Engine protocol over ONNX Runtime sessions, one per exported component.

The ONNX files come from `export_checkpoint` (built on first use, cached in the checkpoint's onnx/ folder).
onnxruntime is imported only when an engine is built: it writes a cache under $XDG_CACHE_HOME on import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from diffusegae.checkpoint import read_config
from diffusegae.engines.base import require_gae
from diffusegae.export import specs
from diffusegae.export.onnx_export import cache_dir, export_checkpoint

# The providers picked by default, best first, among those the installed onnxruntime offers.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")

Provider = str | tuple[str, dict[str, Any]]


class OnnxRuntimeEngine:
    """encode / eps / gae_encode / gae_decode on ONNX Runtime; numpy float32 in and out, batch first.

    providers: execution providers, names or (name, options) pairs, best first; default TensorRT, CUDA,
    CPU as available. threads: intra-op threads (None: onnxruntime's default, one per physical core).
    graph_optimization: disable | basic | extended | all. spinning: let idle intra-op threads busy-wait
    (off by default: on a shared CPU — Triton's many model processes, a 2-core box — spinning threads starve
    the working ones; measured on 2 cores with one busy: a synth64 UNet call took 75 ms spinning, 40 ms not).
    precision: fp32, or fp16 files (float32 in and out; for CUDA / TensorRT providers, slow on CPU).
    onnx_dir: where the exported graphs go (default `<checkpoint>/onnx/`); feature reuse's split graphs go
    to its `reuse/` (default `<checkpoint>/onnx-reuse/`). save_optimized: also write each optimised graph
    next to the ONNX files (`<name>.<level>.opt.onnx`) to inspect what onnxruntime runs.
    io_binding: run through IO binding: each input copied once into an OrtValue on the provider's device, the
    output allocated there and copied back (None: on when the first provider is CUDA or TensorRT). The
    Engine protocol is numpy in and out, so this saves onnxruntime's implicit staging, not the copies;
    keeping x_t on the GPU across DDIM steps would also need the update inside the graph (not done). The
    CUDA path follows onnxruntime's documented API and is unverified (no GPU onnxruntime here); on CPU it
    is tested to match run().
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        providers: list[Provider] | None = None,
        threads: int | None = None,
        graph_optimization: str = "all",
        spinning: bool = False,
        onnx_dir: str | Path | None = None,
        save_optimized: bool = False,
        precision: str = "fp32",
        io_binding: bool | None = None,
    ) -> None:
        import onnxruntime as ort

        self.checkpoint_dir = Path(checkpoint_dir)
        self.config = read_config(self.checkpoint_dir)
        self.onnx_dir = Path(onnx_dir) if onnx_dir is not None else cache_dir(self.checkpoint_dir, precision)
        self._reuse_dir = self.onnx_dir / "reuse" if onnx_dir is not None else None  # None: the default
        self._save_optimized = save_optimized
        self.providers = resolve_providers(providers, ort.get_available_providers())
        self.precision = precision
        self._options = (threads, graph_optimization, spinning)
        session_options(*self._options)  # bad options fail here, before any export
        self.paths = export_checkpoint(self.checkpoint_dir, onnx_dir, precision=precision)
        self.specs = {spec.name: spec for spec in specs.specs_for(self.config)}
        self.sessions = {name: self._session(path, save_optimized) for name, path in self.paths.items()}
        self.io_device = binding_device(self.providers)
        self.io_binding = self.io_device[0] != "cpu" if io_binding is None else bool(io_binding)

    def _session(self, path: Path, save_optimized: bool = False) -> Any:
        import onnxruntime as ort

        options = session_options(*self._options)  # one each: the optimised-graph path differs
        if save_optimized:
            options.optimized_model_filepath = str(path.with_suffix(f".{self._options[1]}.opt.onnx"))
        return ort.InferenceSession(str(path), options, providers=self.providers)

    def _run(self, name: str, *arrays: np.ndarray) -> np.ndarray:
        spec = self.specs[name]
        feeds = {
            t.name: np.ascontiguousarray(a, dtype=t.dtype) for t, a in zip(spec.inputs, arrays, strict=True)
        }
        session = self.sessions[name]
        if not self.io_binding:
            outs = session.run(list(spec.output_names), feeds)
            return outs[0] if len(outs) == 1 else tuple(outs)
        import onnxruntime as ort

        device, device_id = self.io_device
        binding = session.io_binding()
        for tensor_name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(array, device, device_id)
            binding.bind_ortvalue_input(tensor_name, value)
        for tensor_name in spec.output_names:
            binding.bind_output(tensor_name, device, device_id)
        session.run_with_iobinding(binding)
        outs = binding.copy_outputs_to_cpu()
        return outs[0] if len(outs) == 1 else tuple(outs)

    def encode(self, x0: np.ndarray) -> np.ndarray:
        return self._run(specs.ENCODER, x0)

    def eps(self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray) -> np.ndarray:
        return self._run(specs.UNET, x_t, t, z_sem)

    def eps_and_deep(
        self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """eps and the UNet's deep feature (feature reuse's full step; its graphs load on first use)."""
        self._load_reuse_graphs()
        return self._run(specs.UNET_DEEP, x_t, t, z_sem)

    def eps_from_deep(
        self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray, deep: np.ndarray
    ) -> np.ndarray:
        """eps from the outermost level on an earlier step's deep feature (feature reuse's cheap step)."""
        self._load_reuse_graphs()
        return self._run(specs.UNET_SHALLOW, x_t, t, z_sem, deep)

    def _load_reuse_graphs(self) -> None:
        if specs.UNET_SHALLOW in self.sessions:
            return
        paths = export_checkpoint(
            self.checkpoint_dir, self._reuse_dir, precision=self.precision, feature_reuse=True
        )
        for spec in specs.reuse_specs_for(self.config):
            session = self._session(paths[spec.name], self._save_optimized)
            self.specs[spec.name], self.sessions[spec.name] = spec, session

    def gae_encode(self, z_sem: np.ndarray) -> np.ndarray:
        require_gae(self.config, "gae_encode")
        return self._run(specs.GAE_ENCODE, z_sem)

    def gae_decode(self, z_dis: np.ndarray) -> np.ndarray:
        require_gae(self.config, "gae_decode")
        return self._run(specs.GAE_DECODE, z_dis)


def load_onnxruntime_engine(
    checkpoint_dir: str | Path, device: str | None = None, **options: Any
) -> OnnxRuntimeEngine:
    """An OnnxRuntimeEngine over a checkpoint directory (options as in OnnxRuntimeEngine).

    device, when `providers` is not given: "cpu" runs on the CPU provider only, "cuda[:N]" puts the CUDA
    provider first; None keeps the default (TensorRT, CUDA, CPU, as installed)."""
    if device is not None and options.get("providers") is None:
        if device == "cpu":
            options["providers"] = ["CPUExecutionProvider"]
        elif device.startswith("cuda"):
            index = int(device.partition(":")[2] or 0)
            options["providers"] = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            raise ValueError(f"device must be cpu or cuda[:N], got {device!r}")
    return OnnxRuntimeEngine(checkpoint_dir, **options)


def resolve_providers(requested: list[Provider] | None, available: list[str]) -> list[Provider]:
    """The requested providers, checked against those installed; by default TensorRT, CUDA, CPU as present."""
    if requested is None:
        return [p for p in PREFERRED_PROVIDERS if p in available]
    missing = [p for p in requested if (p if isinstance(p, str) else p[0]) not in available]
    if missing:
        raise ValueError(
            f"execution providers {missing} are not available in this onnxruntime; available: "
            f"{', '.join(available)} (CUDA and TensorRT need the onnxruntime-gpu package)"
        )
    return list(requested)


def binding_device(providers: list[Provider]) -> tuple[str, int]:
    """Where IO binding puts tensors for these providers: ("cuda", device_id) when the first one is CUDA or
    TensorRT (device_id from its options, default 0), else ("cpu", 0)."""
    first = providers[0] if providers else "CPUExecutionProvider"
    name, options = (first, {}) if isinstance(first, str) else first
    if name in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        return "cuda", int(options.get("device_id", 0))
    return "cpu", 0


def session_options(threads: int | None, graph_optimization: str, spinning: bool = False) -> Any:
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if graph_optimization not in levels:
        raise ValueError(
            f"unknown graph_optimization {graph_optimization!r}; choose from {', '.join(GRAPH_OPTIMIZATIONS)}"
        )
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be a positive number (or None for the default), got {threads}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[graph_optimization]
    if threads is not None:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options
