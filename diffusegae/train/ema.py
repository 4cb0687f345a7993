"""Exponential moving average of a model's weights (what inference loads)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay(decay: float, updates: int) -> float:
    """Warm-up: min(decay, (1 + n) / (10 + n)) after n updates, so early averages are not stuck at init."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class EMA:
    """A frozen copy of `model` whose parameters follow θ_ema ← d·θ_ema + (1 − d)·θ; buffers are copied."""

    def __init__(self, model: nn.Module, decay: float, updates: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay, self.updates = float(decay), int(updates)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = ema_decay(self.decay, self.updates)
        ema_params = dict(self.model.named_parameters())
        for name, p in model.named_parameters():
            if p.requires_grad:  # frozen parts are equal in both models already
                ema_params[name].lerp_(p.detach(), 1.0 - d)
        ema_buffers = dict(self.model.named_buffers())
        for name, b in model.named_buffers():
            ema_buffers[name].copy_(b)
        self.updates += 1
