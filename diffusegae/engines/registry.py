"""Engines by name: each name maps to a "module:attribute" import string, imported only when that engine is
asked for (uvicorn's import strings), so adding an engine is one line here and no other file changes.

ENGINES are the in-process engines of `load_pipeline(engine=...)`: each entry is a loader
`(checkpoint_dir, device=None, **options) -> Engine`. LOOP_ENGINES are where the server's DDIM loop models
run eps: each entry is `(model) -> Engine` for the python-backend model that will drive it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

ENGINES: dict[str, str] = {
    "torch": "diffusegae.engines.torch_engine:load_torch_engine",
    "onnxruntime": "diffusegae.engines.onnxruntime_engine:load_onnxruntime_engine",
    "tensorrt": "diffusegae.engines.tensorrt_engine:load_tensorrt_engine",
}
LOOP_ENGINES: dict[str, str] = {
    "onnxruntime": "diffusegae.server.models.base:in_process_engine",  # the checkpoint's ONNX in-process
    "bls": "diffusegae.server.models.bls:bls_engine",  # BLS calls to the `unet` model (native leaves)
}
DEFAULT_LOOP_ENGINE = "onnxruntime"


def import_string(target: str) -> Any:
    """The attribute named by "package.module:attribute"."""
    module, sep, attribute = target.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"import string {target!r} must look like 'package.module:attribute'")
    return getattr(importlib.import_module(module), attribute)


def lookup(registry: Mapping[str, str], name: str, kind: str = "engine") -> Any:
    """The implementation registered under `name`; an unknown name raises ValueError listing the choices."""
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; choose from {', '.join(registry)}")
    return import_string(registry[name])


def load_engine(name: str, checkpoint_dir: Any, device: str | None = None, **options: Any) -> Any:
    """The engine `name` over a checkpoint directory (options go to that engine)."""
    return lookup(ENGINES, name)(checkpoint_dir, device=device, **options)
