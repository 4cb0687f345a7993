"""TensorRT plans built from the ONNX export: the one build, used by the TensorRT engine (its plan cache)
and by the repository builder (`tensorrt_plan` leaves of the NGC container).

UNVERIFIED: no machine of this project has TensorRT. Written against the TensorRT 10 Python API:
OnnxParser.parse_from_file, IBuilderConfig memory pool / FP16 flag / timing cache, one optimisation profile
from each spec's BatchProfile (min / opt / max); plans and the timing cache are written atomically.
`tensorrt` (and torch, for the GPU check) are imported only when a plan is built.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from diffusegae.export import specs
from diffusegae.export.cache import canonical, read_manifest, sha256
from diffusegae.fileio import write_atomic

TIMING_CACHE = "timing.cache"
PRECISIONS = ("fp16", "fp32")
# Opset ≤ 20 exports GroupNorm as InstanceNormalization; TensorRT 10.7 is reported to reject opset 21's
# per-channel GroupNormalization.
ONNX_OPSET = 17
MIN_TRT_MAJOR = 10
UNAVAILABLE = (
    "TensorRT engine needs the tensorrt package and a CUDA GPU; unverified on this project's machines"
)

Shapes = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def check_options(precision: str, workspace_gb: float) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if not workspace_gb > 0:
        raise ValueError(f"workspace_gb must be positive, got {workspace_gb}")


def require_tensorrt(device: int = 0, hint: str = "") -> ModuleType:
    """The tensorrt module, or RuntimeError saying what is missing (package, GPU, or a TensorRT ≥ 10).

    `hint` is appended to every message: where the caller's users can get what is missing."""
    import torch

    suffix = f"; {hint}" if hint else ""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as error:  # OSError: the wheel is there but libnvinfer does not load
        raise RuntimeError(f"{UNAVAILABLE} (import tensorrt failed: {error}){suffix}") from error
    if not torch.cuda.is_available() or not 0 <= device < torch.cuda.device_count():
        raise RuntimeError(f"{UNAVAILABLE} (no CUDA device {device} visible to torch){suffix}")
    major = str(getattr(trt, "__version__", "0")).split(".")[0]
    if not major.isdigit() or int(major) < MIN_TRT_MAJOR:
        raise RuntimeError(
            f"{UNAVAILABLE} (found TensorRT {trt.__version__}; the engine uses the 10.x API){suffix}"
        )
    return trt


def profile_shapes(spec: specs.ExportSpec) -> dict[str, Shapes]:
    """Per input: (min, opt, max) shapes, the batch axis from the spec's BatchProfile, other axes fixed."""
    p = spec.profile
    return {
        t.name: (t.concrete_shape(p.min), t.concrete_shape(p.opt), t.concrete_shape(p.max))
        for t in spec.inputs
    }


def onnx_keys(onnx_dir: Path) -> dict[str, str]:
    """Per component, the hash of what its ONNX file was built from (= its `diffusegae.key` model prop)."""
    return {name: sha256(canonical(entry["key"])) for name, entry in read_manifest(onnx_dir).items()}


def plan_key(
    spec: specs.ExportSpec, onnx_key: str, trt_version: str, gpu: str, precision: str, workspace_gb: float
) -> dict[str, Any]:
    """Everything a plan depends on (a plan only runs on the TensorRT version and GPU it was built on)."""
    return {
        "onnx": onnx_key,
        "tensorrt": trt_version,
        "gpu": gpu,
        "precision": precision,
        "workspace_gb": workspace_gb,
        "spec": sha256(spec.fingerprint().encode()),
    }


def needs_build(entry: dict[str, Any] | None, key: dict[str, Any], plan: Path) -> bool:
    return entry is None or entry.get("key") != key or not plan.is_file()


def build_plan(
    onnx_path: Path,
    plan: Path,
    spec: specs.ExportSpec,
    precision: str = "fp16",
    workspace_gb: float = 4.0,
    trt: ModuleType | None = None,
    logger: Any = None,
) -> None:
    """ONNX → serialized engine at `plan` (written atomically), through the timing cache beside it.

    One optimisation profile over the spec's batch range; `trt` / `logger`: a caller's own (else made here).
    """
    check_options(precision, workspace_gb)
    trt = trt or require_tensorrt()
    logger = logger or trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16":
        if not hasattr(trt.BuilderFlag, "FP16"):
            # Weak typing (precision flags) was deprecated in TensorRT 10.12 and removed in 11.
            raise RuntimeError(
                f"precision='fp16' uses BuilderFlag.FP16, which TensorRT {trt.__version__} no longer has; "
                "use TensorRT 10.x or precision='fp32'"
            )
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile_shapes(spec).items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)

    cache_path = plan.parent / TIMING_CACHE
    cached = cache_path.read_bytes() if cache_path.is_file() else b""
    cache = config.create_timing_cache(cached)
    # A cache from another GPU or TensorRT version fails verification: start an empty one instead.
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        command = trtexec_command(onnx_path, plan, spec, precision == "fp16")
        raise RuntimeError(
            f"TensorRT failed to build {spec.name} from {onnx_path} (see its log above); "
            f"try by hand: {command}"
        )
    write_atomic(cache_path, memoryview(config.get_timing_cache().serialize()))
    write_atomic(plan, memoryview(serialized))


def trtexec_command(onnx_path: Path, plan_path: Path, spec: specs.ExportSpec, fp16: bool = True) -> str:
    """The same build as `build_plan`, for trtexec on the command line."""

    def shapes(batch: int) -> str:
        return ",".join(f"{t.name}:{'x'.join(map(str, t.concrete_shape(batch)))}" for t in spec.inputs)

    p = spec.profile
    return (
        f"trtexec --onnx={onnx_path} --saveEngine={plan_path} --minShapes={shapes(p.min)} "
        f"--optShapes={shapes(p.opt)} --maxShapes={shapes(p.max)}" + (" --fp16" if fp16 else "")
    )
