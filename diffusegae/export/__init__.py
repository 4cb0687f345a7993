"""Export: one spec per component (specs.py, torch-free) → ONNX files (onnx_export.py).

`export_checkpoint` loads lazily, so reading names and shapes from the specs never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from diffusegae.export.specs import BatchProfile, ExportSpec, TensorSpec, spec_by_name, specs_for

if TYPE_CHECKING:  # pragma: no cover
    from diffusegae.export.onnx_export import export_checkpoint

__all__ = ["BatchProfile", "ExportSpec", "TensorSpec", "export_checkpoint", "spec_by_name", "specs_for"]


def __getattr__(name: str) -> Any:
    if name == "export_checkpoint":
        return importlib.import_module("diffusegae.export.onnx_export").export_checkpoint
    raise AttributeError(f"module 'diffusegae.export' has no attribute {name!r}")
