"""Evaluation: reconstruction metrics (Diff-AE Table 2), linear probes (DiffuseGAE Table 1), the attribute
oracle and edit / recombine accuracy; `diffusegae eval` writes eval.json + eval.md."""

from diffusegae.eval.metrics import mse, psnr, ssim
from diffusegae.eval.suite import EvalSettings, evaluate, quick_settings

__all__ = ["EvalSettings", "evaluate", "mse", "psnr", "quick_settings", "ssim"]
