"""Engines (torch today; onnxruntime and tensorrt implement the same protocol) and the user pipeline."""

from diffusegae.engines.base import Engine, NoGAEError
from diffusegae.engines.pipeline import Pipeline, load_pipeline

__all__ = ["Engine", "NoGAEError", "Pipeline", "load_pipeline"]
