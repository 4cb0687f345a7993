"""Checkpoint directory → one self-contained ONNX file per export spec, cached on disk.

Exporter: the TorchScript-based one (`torch.onnx.export(..., dynamo=False)`). The torch.export-based
exporter (`dynamo=True`, torch 2.13 + onnxscript 0.7) fails on AttentionBlock's 3-D
`scaled_dot_product_attention` ("only 4D query, key, and value are supported") and has no implementations
below opset 18 (it exports 18 and down-converts). The TorchScript path exports every component at opset 17
with a symbolic batch axis and matches eager to ~1e-5. It is deprecated upstream: revisit when torch
removes it (AttentionBlock would then need 4-D q/k/v).

Cache: `manifest.json` next to the files records, per component, what its file was built from (weights
and config bytes, the spec, opset, precision, exporter and model-code versions); a file is rebuilt only
when one of those changed or the file is gone.

Precision: fp32, or fp16 (`precision="fp16"`, for GPU execution providers): the weights and every
activation are half precision, the norms' statistics stay fp32 (GroupNorm32 and the AdaGN twin cast up),
and inputs and outputs stay float32, so specs, Triton configs and clients do not change. fp16 files go to a
cache folder of their own.

Fused AdaGN (`fused_adagn=True`, for TensorRT with the plugin of kernels/tensorrt_plugin.py): every AdaGN
becomes one `diffusegae::AdaGN` node (kernels/custom_op.py) instead of the twin's chain of standard ops.
Such files go to a cache folder of their own; the default export keeps standard ops, so ONNX Runtime needs
nothing custom.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffusegae.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, read_config
from diffusegae.export.cache import canonical, read_manifest, sha256, write_manifest
from diffusegae.export.specs import BATCH, ExportSpec, reuse_specs_for, specs_for
from diffusegae.fileio import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    import onnx

    from diffusegae.models import DiffusionAutoencoder

ONNX_DIR = "onnx"  # default cache folder inside the checkpoint (git-ignored by the `*.onnx` rule)
ONNX_FUSED_DIR = "onnx-fused"  # the same for fused_adagn=True exports
ONNX_REUSE_DIR = "onnx-reuse"  # the split UNet graphs of feature reuse
PRECISIONS = ("fp32", "fp16")
OPSETS = range(14, 21)  # ≥ 14: attention's symbolic; ≤ 20: the TorchScript exporter's last opset
# Trace at batch 2, not 1: at batch 1 size-1 broadcasting can hide a shape that wrongly ignores the batch.
EXPORT_BATCH = 2

_PACKAGE = Path(__file__).resolve().parents[1]
# The code an exported graph is traced from: a change here must invalidate cached files.
_TRACED_SOURCES = (
    "models/*.py",
    "kernels/__init__.py",
    "kernels/reference.py",
    "kernels/custom_op.py",
    "export/*.py",
)


def export_checkpoint(
    checkpoint_dir: str | Path,
    out_dir: str | Path | None = None,
    opset: int = 17,
    precision: str = "fp32",
    fused_adagn: bool = False,
    feature_reuse: bool = False,
) -> dict[str, Path]:
    """Export every component of a checkpoint to `<out_dir>/<name>.onnx` (default `<checkpoint>/onnx/`).

    Returns {component name: path}. Up-to-date files are left untouched; the model is loaded only when
    something has to be rebuilt. fused_adagn: one custom `diffusegae::AdaGN` node per AdaGN (TensorRT
    with the AdaGN plugin only; default folder `<checkpoint>/onnx-fused/`). feature_reuse: the two split
    UNet graphs of feature reuse instead (`specs.reuse_specs_for`; default folder `<checkpoint>/onnx-reuse/`).
    """
    _check_options(opset, precision)
    checkpoint_dir = Path(checkpoint_dir)
    config = read_config(checkpoint_dir)
    default = cache_dir(checkpoint_dir, precision, fused_adagn, feature_reuse)
    out = Path(out_dir) if out_dir is not None else default
    out.mkdir(parents=True, exist_ok=True)
    ignore = out / ".gitignore"
    if out_dir is None and not ignore.exists():
        # `*.onnx` is git-ignored but the manifest is not: the default cache ignores itself (as
        # .pytest_cache does). A chosen out_dir (a Triton repository) may hold tracked files: left alone.
        ignore.write_text("# written by diffusegae export: a build cache\n*\n")

    common = {**_common_key(checkpoint_dir, opset, precision), "fused_adagn": fused_adagn}
    entries: dict[str, Any] = read_manifest(out)
    model: DiffusionAutoencoder | None = None
    paths: dict[str, Path] = {}
    for spec in reuse_specs_for(config) if feature_reuse else specs_for(config):
        path = out / f"{spec.name}.onnx"
        key = {**common, "spec": sha256(spec.fingerprint().encode())}
        entry = entries.get(spec.name)
        if entry is None or entry.get("key") != key or not path.is_file():
            if model is None:
                model = load_checkpoint(checkpoint_dir)
            _export_spec(spec, model, path, opset, key, fused_adagn, precision)
            entries[spec.name] = {"file": path.name, "key": key}
            write_manifest(out, entries)
        paths[spec.name] = path

    # Components this config no longer has (GAE files after a plain Diff-AE was saved over a DiffuseGAE).
    stale = set(entries) - set(paths)
    for name in stale:
        (out / entries.pop(name)["file"]).unlink(missing_ok=True)
    if stale:
        write_manifest(out, entries)
    return paths


def cache_dir(
    checkpoint_dir: str | Path,
    precision: str = "fp32",
    fused_adagn: bool = False,
    feature_reuse: bool = False,
) -> Path:
    """The default folder of an export: `onnx/`, `onnx-fused/`, `onnx-reuse/`, and `-fp16` after any."""
    name = ONNX_FUSED_DIR if fused_adagn else ONNX_REUSE_DIR if feature_reuse else ONNX_DIR
    return Path(checkpoint_dir) / (name if precision == "fp32" else f"{name}-{precision}")


def _check_options(opset: int, precision: str) -> None:
    if opset not in OPSETS:
        raise ValueError(f"opset must be in {OPSETS.start}..{OPSETS.stop - 1}, got {opset}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")


def exporter_version() -> str:
    # Read from package metadata: a cache hit (the common case, e.g. a server starting) imports no torch.
    return f"torch {version('torch')} torchscript-onnx; onnx {version('onnx')}"


def _common_key(checkpoint_dir: Path, opset: int, precision: str) -> dict[str, Any]:
    code = hashlib.sha256()
    for pattern in _TRACED_SOURCES:
        for source in sorted(_PACKAGE.glob(pattern)):
            code.update(source.relative_to(_PACKAGE).as_posix().encode() + b"\0" + source.read_bytes())
    with open(checkpoint_dir / WEIGHTS_FILE, "rb") as f:
        weights = hashlib.file_digest(f, "sha256").hexdigest()
    return {
        "weights": weights,
        "config": sha256((checkpoint_dir / CONFIG_FILE).read_bytes()),
        "opset": opset,
        "precision": precision,
        "exporter": exporter_version(),
        "code": code.hexdigest(),
    }


def _export_spec(
    spec: ExportSpec,
    model: DiffusionAutoencoder,
    path: Path,
    opset: int,
    key: dict[str, Any],
    fused_adagn: bool = False,
    precision: str = "fp32",
) -> None:
    """Trace one component to a temporary file, check it, then move it into place (atomic for readers)."""
    import onnx
    import torch

    from diffusegae.export.wrappers import HalfPrecision
    from diffusegae.kernels import custom_op

    module = spec.build_module(model)
    if precision == "fp16":
        module = HalfPrecision(module)
    sample = spec.sample_inputs(EXPORT_BATCH)
    args = tuple(torch.from_numpy(sample[name]) for name in spec.input_names)
    dynamic_axes = {
        t.name: {axis: BATCH for axis, dim in enumerate(t.shape) if dim == BATCH}
        for t in (*spec.inputs, *spec.outputs)
    }
    fused = custom_op.onnx_export_mode() if fused_adagn else contextlib.nullcontext()
    with atomic_path(path) as tmp:
        with torch.no_grad(), fused, warnings.catch_warnings():
            # Choosing the TorchScript exporter is deliberate (see the module docstring); its deprecation
            # notices would fail warnings-as-errors runs.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings(
                "ignore", message=".*legacy TorchScript-based ONNX", category=DeprecationWarning
            )
            # Tracer notes on Python-level checks of channel counts (AdaGN's groups and scale/shift split,
            # F.group_norm's size check): channels are fixed per graph, and the batch axis stays symbolic.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                module,
                args,
                str(tmp),
                input_names=list(spec.input_names),
                output_names=list(spec.output_names),
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                dynamo=False,
            )
        proto = onnx.load(str(tmp))
        _check_names(spec, proto)
        onnx.helper.set_model_props(
            proto, {"diffusegae.component": spec.name, "diffusegae.key": sha256(canonical(key))}
        )
        onnx.checker.check_model(proto, full_check=True)
        # Weights stay inside the file: a single .onnx per model is what Triton and the cache expect.
        onnx.save(proto, str(tmp), save_as_external_data=False)


def _check_names(spec: ExportSpec, proto: onnx.ModelProto) -> None:
    inputs = tuple(i.name for i in proto.graph.input)
    outputs = tuple(o.name for o in proto.graph.output)
    if inputs != spec.input_names or outputs != spec.output_names:
        raise RuntimeError(
            f"exported {spec.name} has inputs {inputs} and outputs {outputs}; the spec says "
            f"{spec.input_names} and {spec.output_names}"
        )
