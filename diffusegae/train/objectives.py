"""Training objectives for the diffusion loss: what each timestep's error counts for, and which timesteps
a batch sees. Training-only: none of this changes the network's parameterisation, the schedule or the
sampler; it only changes what the network learns first.

Every weight here multiplies the per-sample eps MSE ‖ε̂ − ε‖², whatever the model predicts (the model
converts its own output to ε, models/prediction.py). With SNR = ᾱ/(1 − ᾱ):

- "simple":  1                       L_simple (DDPM, Diff-AE Eq. 1). An x0 error counts SNR times: at t = 800
                                     that is 0.0015 against 32 at t = 50, so the layout steps learn last.
- "v":       1 + 1/SNR = 1/ᾱ         the v-MSE ‖v̂ − v‖² (Salimans & Ho 2022): x0 errors count SNR + 1.
- "x0":      1/SNR                   the x0-MSE ‖x̂0 − x0‖²: x0 errors count 1.
- "min_snr": min(SNR, γ)/SNR         Min-SNR-γ (Hang et al. 2023): x0 errors count min(SNR, γ).
- "auto":    the MSE of the model's own output: eps → "simple", v → "v", x0 → "x0".

`weight_cap` caps any weight (None: no cap). Timestep sampling: "uniform" over 0..T−1; "high": a share of
each batch drawn from [high_t_from, T) and the rest uniform; "logit_normal": t = ⌊T·σ(m + s·n)⌋, n ~ N(0, 1)
(Esser et al. 2024; m > 0 leans toward noise).

`learned_norm` is EDM2's learned loss normalisation (Karras et al. 2024, Eq. 14): the per-sample loss L
becomes L/e^{u(t)} + u(t) with u a small table over t trained with the network, so every noise level
contributes a loss of about the same size without a hand-made weighting.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from diffusegae.config import OBJECTIVE_FIELDS, TIMESTEP_SAMPLERS, WEIGHTINGS, Objective

__all__ = [
    "OBJECTIVE_FIELDS",
    "TIMESTEP_SAMPLERS",
    "WEIGHTINGS",
    "LearnedLossNorm",
    "Objective",
    "loss_weights",
    "reduce_loss",
    "sample_timesteps",
]


def loss_weights(objective: Objective, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """Per-sample weights [B] on the eps MSE, from ᾱ_t of each sample (float64 in, float32 out)."""
    snr = alpha_bar_t / (1.0 - alpha_bar_t)
    kind = objective.weighting
    if kind == "simple":
        w = torch.ones_like(snr)
    elif kind == "v":
        w = 1.0 / alpha_bar_t  # = 1 + 1/SNR
    elif kind == "x0":
        w = 1.0 / snr  # ‖x̂0 − x0‖² = ‖ε̂ − ε‖² / SNR
    elif kind == "min_snr":
        w = snr.clamp(max=objective.min_snr_gamma) / snr
    else:
        raise ValueError(f"weighting {kind!r} is not resolved; call Objective.resolved(prediction) first")
    if objective.weight_cap is not None:
        w = w.clamp(max=objective.weight_cap)
    return w.float()


def sample_timesteps(objective: Objective, n: int, gen: torch.Generator, num_timesteps: int) -> torch.Tensor:
    """int64 [n] timesteps in 0..num_timesteps−1, drawn from `gen` (CPU)."""
    if objective.timesteps == "uniform":
        return torch.randint(0, num_timesteps, (n,), generator=gen)
    if objective.timesteps == "high":
        t = torch.randint(0, num_timesteps, (n,), generator=gen)
        lo = min(max(int(objective.high_t_from), 0), num_timesteps - 1)
        high = torch.randint(lo, num_timesteps, (n,), generator=gen)
        take = torch.rand(n, generator=gen) < objective.high_t_share
        return torch.where(take, high, t)
    u = torch.sigmoid(objective.logit_mean + objective.logit_std * torch.randn(n, generator=gen))
    return (u * num_timesteps).long().clamp(0, num_timesteps - 1)


class LearnedLossNorm(nn.Module):
    """EDM2's u(t) as a table over `buckets` equal ranges of t; exists only in training."""

    def __init__(self, num_timesteps: int, buckets: int = 20) -> None:
        super().__init__()
        self.num_timesteps, self.buckets = num_timesteps, buckets
        self.u = nn.Parameter(torch.zeros(buckets))

    def forward(self, per_sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        u = self.u[(t * self.buckets // self.num_timesteps).clamp(0, self.buckets - 1)]
        return per_sample / torch.exp(u) + u


def reduce_loss(
    objective: Objective,
    per_sample: torch.Tensor,
    t: torch.Tensor,
    alpha_bar: np.ndarray,
    norm: LearnedLossNorm | None = None,
) -> torch.Tensor:
    """The scalar objective from per-sample eps MSEs [B] at timesteps t [B]."""
    ab = torch.from_numpy(np.asarray(alpha_bar, np.float64)[t.cpu().numpy()]).to(per_sample.device)
    weighted = loss_weights(objective, ab) * per_sample
    if norm is not None:
        weighted = norm(weighted, t)
    return weighted.mean()
