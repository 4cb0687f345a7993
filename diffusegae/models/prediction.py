"""What the UNet's last layer predicts, turned into eps inside the model.

A checkpoint names its parameterisation (`UNetConfig.prediction`); this module is the one place that
converts it, so the exported ONNX graph, every engine, the server and the samplers only ever see eps.
With x_t = √ᾱ·x0 + √(1−ᾱ)·ε:

- "eps": the output is ε (DDPM, Diff-AE; every official checkpoint).
- "v":   the output is v = √ᾱ·ε − √(1−ᾱ)·x0 (Salimans & Ho 2022, §4), so ε = √ᾱ·v + √(1−ᾱ)·x_t. At high t
         the skip term √(1−ᾱ)·x_t carries ε almost alone and the network's error is scaled by √ᾱ ≈ 0, so
         its output is free to say what the image is (the same effect as EDM's c_skip / c_out).
- "x0":  the output is x0, so ε = (x_t − √ᾱ·x0) / √(1−ᾱ).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from diffusegae.config import PREDICTIONS


class EpsFromPrediction(nn.Module):
    """(output, x_t, t) → eps for one parameterisation, with ᾱ of the checkpoint's own schedule."""

    def __init__(self, prediction: str, alphas_cumprod: np.ndarray) -> None:
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose from {', '.join(PREDICTIONS)}")
        self.prediction = prediction
        ab = np.asarray(alphas_cumprod, np.float64)
        # Not persistent: derived from the config, so state dicts stay Diff-AE's (strict official loads).
        self.register_buffer("sqrt_ab", torch.from_numpy(np.sqrt(ab)).float(), persistent=False)
        self.register_buffer("sqrt_1m_ab", torch.from_numpy(np.sqrt(1.0 - ab)).float(), persistent=False)

    def forward(self, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction == "eps":
            return out
        # The conversion runs in fp32 whatever the network's dtype (a no-op, and no graph node, in fp32);
        # coefficients are indexed per sample, so one call can mix timesteps.
        a = self.sqrt_ab.float()[t][:, None, None, None]
        s = self.sqrt_1m_ab.float()[t][:, None, None, None]
        out32 = out if out.dtype == torch.float32 else out.float()
        x32 = x_t if x_t.dtype == torch.float32 else x_t.float()
        eps = a * out32 + s * x32 if self.prediction == "v" else (x32 - a * out32) / s
        return eps if eps.dtype == out.dtype else eps.to(out.dtype)

    def extra_repr(self) -> str:
        return f"prediction={self.prediction!r}"
