"""TensorRT plans for the native leaf models (leaf_backend="tensorrt"), built from the ONNX export.

Unverified: no machine here has TensorRT. Written against the TensorRT 10 Python API; the batch profile
(min / opt / max) comes from the export specs, as the ONNX dynamic axes do.
"""

from __future__ import annotations

from pathlib import Path

from diffusegae.export.specs import ExportSpec

NGC_HINT = (
    "build the repository where TensorRT is installed (e.g. inside nvcr.io/nvidia/tritonserver:<ver>-py3 "
    "after `pip install tensorrt`), or use leaf backend 'onnxruntime'"
)


def require_tensorrt() -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise RuntimeError(
            f"leaf backend 'tensorrt' needs the tensorrt package, not installed here: {NGC_HINT}"
        ) from None


def trtexec_command(onnx_path: Path, plan_path: Path, spec: ExportSpec, fp16: bool = True) -> str:
    """The same build as build_plan, for trtexec on the command line."""

    def shapes(batch: int) -> str:
        return ",".join(f"{t.name}:{'x'.join(map(str, t.concrete_shape(batch)))}" for t in spec.inputs)

    p = spec.profile
    return (
        f"trtexec --onnx={onnx_path} --saveEngine={plan_path} --minShapes={shapes(p.min)} "
        f"--optShapes={shapes(p.opt)} --maxShapes={shapes(p.max)}" + (" --fp16" if fp16 else "")
    )


def build_plan(onnx_path: Path, plan_path: Path, spec: ExportSpec, fp16: bool = True) -> Path:
    """Parse the ONNX file, build one optimisation profile over the spec's batch range, save the plan."""
    require_tensorrt()
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    p = spec.profile
    for t in spec.inputs:
        profile.set_shape(t.name, t.concrete_shape(p.min), t.concrete_shape(p.opt), t.concrete_shape(p.max))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        command = trtexec_command(onnx_path, plan_path, spec)
        raise RuntimeError(f"TensorRT failed to build {plan_path}; try by hand: {command}")
    plan_path.write_bytes(bytes(plan))
    return plan_path
