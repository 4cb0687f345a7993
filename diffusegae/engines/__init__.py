"""Engines (torch today; onnxruntime and tensorrt implement the same protocol) and the user pipeline."""

from diffusegae.engines.base import Engine, NoGAEError
from diffusegae.engines.pipeline import Pipeline, Speedups, load_pipeline

__all__ = ["Engine", "NoGAEError", "Pipeline", "Speedups", "load_pipeline"]
