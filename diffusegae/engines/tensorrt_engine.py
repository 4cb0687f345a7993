"""The Engine protocol over TensorRT engines, one per export spec, built from the fp32 ONNX files.

UNVERIFIED: no machine of this project has TensorRT. Written against the TensorRT 10 Python API (builder:
OnnxParser.parse_from_file, IBuilderConfig memory pool / FP16 flag / timing cache, one optimization profile
from each spec's BatchProfile; runtime: deserialize_cuda_engine, set_input_shape, set_tensor_address,
execute_async_v3 on torch CUDA buffers). `tensorrt` is imported only when an engine is built.

Fused AdaGN (`fused_adagn=True`, also unverified): the UNet is exported with one `diffusegae::AdaGN` node
per AdaGN and TensorRT runs it through the plugin of kernels/tensorrt_plugin.py (TensorRT ≥ 10.6, Triton),
registered in this process before any plan is built or loaded. Its ONNX files and plans have folders of
their own (`onnx-fused/`, `tensorrt-fused/`).

Cache: `<checkpoint>/tensorrt/<name>.plan`, with a manifest recording what each plan was built from (the
ONNX file's manifest key, TensorRT version, GPU, precision, workspace, spec); a plan is rebuilt when one of
those changes. One timing cache file next to the plans is loaded before and saved after every build.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from diffusegae.checkpoint import read_config
from diffusegae.engines.base import require_gae
from diffusegae.export import specs
from diffusegae.export.cache import read_manifest, write_manifest
from diffusegae.export.onnx_export import export_checkpoint
from diffusegae.export.tensorrt import (
    ONNX_OPSET,
    build_plan,
    check_options,
    needs_build,
    onnx_keys,
    plan_key,
    profile_shapes,
    require_tensorrt,
)

TRT_DIR = "tensorrt"  # default plan cache inside the checkpoint
TRT_FUSED_DIR = "tensorrt-fused"  # the same for fused_adagn=True


class TensorRTEngine:
    """encode / eps / gae_encode / gae_decode on TensorRT; numpy float32 in and out, batch first.

    precision: fp16 (BuilderFlag.FP16 on the fp32 graph: TensorRT picks fp16 kernels where they are
    faster; IO stays fp32) or fp32. workspace_gb: the builder's workspace memory pool. engine_dir: plan
    cache (default `<checkpoint>/tensorrt`). device: CUDA device index. fused_adagn: AdaGN as one plugin
    node (see the module docstring). Batches larger than a spec's profile max run in chunks.
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        precision: str = "fp16",
        workspace_gb: float = 4,
        engine_dir: str | Path | None = None,
        device: int = 0,
        onnx_dir: str | Path | None = None,
        fused_adagn: bool = False,
    ) -> None:
        check_options(precision, workspace_gb)
        self.precision = precision  # what Pipeline.modes() reports
        trt = require_tensorrt(device)
        if fused_adagn:
            from diffusegae.kernels.tensorrt_plugin import register_plugin

            register_plugin()
        self.checkpoint_dir = Path(checkpoint_dir)
        self.config = read_config(self.checkpoint_dir)
        self.device = torch.device("cuda", device)
        default_engine_dir = TRT_FUSED_DIR if fused_adagn else TRT_DIR
        self.engine_dir = (
            Path(engine_dir) if engine_dir is not None else self.checkpoint_dir / default_engine_dir
        )
        self.engine_dir.mkdir(parents=True, exist_ok=True)
        ignore = self.engine_dir / ".gitignore"
        if engine_dir is None and not ignore.exists():
            ignore.write_text("# written by diffusegae: a TensorRT build cache\n*\n")

        onnx_paths = export_checkpoint(
            self.checkpoint_dir, onnx_dir, opset=ONNX_OPSET, fused_adagn=fused_adagn
        )
        onnx_key = onnx_keys(next(iter(onnx_paths.values())).parent)  # the folder the export used
        logger = trt.Logger(trt.Logger.WARNING)
        major, minor = torch.cuda.get_device_capability(device)
        gpu = f"{torch.cuda.get_device_name(device)} sm{major}{minor}"
        entries = read_manifest(self.engine_dir)
        self.plans: dict[str, Path] = {}
        self.runners: dict[str, _PlanRunner] = {}
        runtime = trt.Runtime(logger)
        for spec in specs.specs_for(self.config):
            plan = self.engine_dir / f"{spec.name}.plan"
            key = plan_key(spec, onnx_key[spec.name], trt.__version__, gpu, precision, workspace_gb)
            if needs_build(entries.get(spec.name), key, plan):
                with torch.cuda.device(self.device):
                    build_plan(onnx_paths[spec.name], plan, spec, precision, workspace_gb, trt, logger)
                entries[spec.name] = {"file": plan.name, "key": key}
                write_manifest(self.engine_dir, entries)
            self.plans[spec.name] = plan
            self.runners[spec.name] = _PlanRunner(trt, runtime, plan, spec, self.device)
        # Plans of components this config no longer has (a plain Diff-AE saved over a DiffuseGAE).
        stale = set(entries) - set(self.plans)
        for name in stale:
            (self.engine_dir / entries.pop(name)["file"]).unlink(missing_ok=True)
        if stale:
            write_manifest(self.engine_dir, entries)

    def encode(self, x0: np.ndarray) -> np.ndarray:
        return self.runners[specs.ENCODER](x0)

    def eps(self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray) -> np.ndarray:
        return self.runners[specs.UNET](x_t, t, z_sem)

    def gae_encode(self, z_sem: np.ndarray) -> np.ndarray:
        require_gae(self.config, "gae_encode")
        return self.runners[specs.GAE_ENCODE](z_sem)

    def gae_decode(self, z_dis: np.ndarray) -> np.ndarray:
        require_gae(self.config, "gae_decode")
        return self.runners[specs.GAE_DECODE](z_dis)


def load_tensorrt_engine(
    checkpoint_dir: str | Path, device: str | None = None, **options: Any
) -> TensorRTEngine:
    """A TensorRTEngine over a checkpoint directory (options as in TensorRTEngine); device "cuda[:N]"."""
    if device is not None:
        if not device.startswith("cuda"):
            raise ValueError(f"the tensorrt engine runs on a CUDA device (cuda or cuda:N), not {device!r}")
        options["device"] = int(device.partition(":")[2] or 0)
    return TensorRTEngine(checkpoint_dir, **options)


class _PlanRunner:
    """One deserialized engine and its execution context; torch CUDA tensors are the device buffers."""

    def __init__(
        self, trt: ModuleType, runtime: Any, plan: Path, spec: specs.ExportSpec, device: torch.device
    ) -> None:
        self.spec = spec
        self.device = device
        with torch.cuda.device(device):
            self.engine = runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not load {plan}; delete it to rebuild")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = {n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT}
        if inputs != set(spec.input_names) or set(names) - inputs != set(spec.output_names):
            raise RuntimeError(
                f"{plan} has tensors {names}; the spec says {spec.input_names + spec.output_names}"
            )
        # The engine's own IO types (the parser may narrow int64 to int32): inputs are cast to them.
        torch_types = {
            trt.DataType.FLOAT: torch.float32,
            trt.DataType.HALF: torch.float16,
            trt.DataType.INT32: torch.int32,
            trt.DataType.INT64: torch.int64,
        }
        self.dtypes = {n: torch_types[self.engine.get_tensor_dtype(n)] for n in names}
        self.context = self.engine.create_execution_context()
        # A stream of our own: on the legacy default stream TensorRT adds synchronizations of its own.
        self.stream = torch.cuda.Stream(device)

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        limit = self.spec.profile.max
        chunks = [
            self._run([a[i : i + limit] for a in arrays]) for i in range(0, max(len(arrays[0]), 1), limit)
        ]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def _run(self, arrays: list[np.ndarray]) -> np.ndarray:
        (out_name,) = self.spec.output_names
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            keep = []  # the input buffers must outlive the enqueued work
            for name, array in zip(self.spec.input_names, arrays, strict=True):
                x = torch.from_numpy(np.ascontiguousarray(array)).to(self.device, self.dtypes[name])
                if not self.context.set_input_shape(name, tuple(x.shape)):
                    raise ValueError(
                        f"{self.spec.name}: input {name} of shape {tuple(x.shape)} is outside the engine's "
                        f"profile {profile_shapes(self.spec)[name]}"
                    )
                self.context.set_tensor_address(name, x.data_ptr())
                keep.append(x)
            shape = tuple(self.context.get_tensor_shape(out_name))
            out = torch.empty(shape, dtype=self.dtypes[out_name], device=self.device)
            self.context.set_tensor_address(out_name, out.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution of {self.spec.name} failed (see its log)")
            return out.float().cpu().numpy()  # .cpu() waits for the stream
