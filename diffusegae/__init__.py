"""diffusegae: a serving engine for diffusion autoencoders (DiffuseGAE and Diff-AE).

The public names load lazily, so that `diffusegae.client` (and anything else that needs no model) never
imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "preset": "diffusegae.config",
    "ModelConfig": "diffusegae.config",
    "build_model": "diffusegae.models",
    "save_checkpoint": "diffusegae.checkpoint",
    "load_checkpoint": "diffusegae.checkpoint",
    "load_pipeline": "diffusegae.engines.pipeline",
    "Pipeline": "diffusegae.engines.pipeline",
}
__all__ = [
    "ModelConfig",
    "Pipeline",
    "build_model",
    "load_checkpoint",
    "load_pipeline",
    "preset",
    "save_checkpoint",
]

if TYPE_CHECKING:  # pragma: no cover
    from diffusegae.checkpoint import load_checkpoint, save_checkpoint
    from diffusegae.config import ModelConfig, preset
    from diffusegae.engines.pipeline import Pipeline, load_pipeline
    from diffusegae.models import build_model


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'diffusegae' has no attribute {name!r}")
