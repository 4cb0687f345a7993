"""Group-supervised AutoEncoder (DiffuseGAE §3.4): z_sem [B,512] → z_dis [B,100] → z_sem.

z_dis is a concatenation of named attribute chunks (default identity 60 · background 20 · pose 20); the
training losses (train/) make each chunk carry one attribute, so chunks can be swapped between images.

Each half has 6 blocks: 3 MLP blocks (Linear → norm → SiLU, identity skip where widths match), 2 residual
bottleneck blocks (width → width/4 → width), and a last skip block that is the 4th MLP block: a linear head
plus a linear skip from the half's input, so a direct path z_sem ↔ z_dis exists. Norms: LayerNorm in the
encoder, GroupNorm in the decoder.
"""

from __future__ import annotations

import torch
from torch import nn

from diffusegae.config import GAEConfig


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.LayerNorm(channels) if kind == "layer" else nn.GroupNorm(min(32, channels), channels)


class MLPBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels)
        self.norm = _norm(norm, out_channels)
        self.act = nn.SiLU()
        self.residual = in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.norm(self.linear(x)))
        return x + h if self.residual else h


class BottleneckBlock(nn.Module):
    """x + W2·SiLU(norm(W1·x)), W1 narrowing to width/4: capacity without widening the code path."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        mid = max(channels // 4, 32)
        self.reduce = nn.Linear(channels, mid)
        self.norm = _norm(norm, mid)
        self.act = nn.SiLU()
        self.expand = nn.Linear(mid, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.expand(self.act(self.norm(self.reduce(x))))


class SkipBlock(nn.Module):
    """Output block: Linear(h) + Linear(input of the half). No norm or activation: codes are unconstrained."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels)
        self.skip = nn.Linear(skip_channels, out_channels, bias=False)

    def forward(self, h: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return self.linear(h) + self.skip(source)


class _Half(nn.Module):
    def __init__(self, in_channels: int, hidden: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            MLPBlock(in_channels, hidden, norm),
            MLPBlock(hidden, hidden, norm),
            MLPBlock(hidden, hidden, norm),
            BottleneckBlock(hidden, norm),
            BottleneckBlock(hidden, norm),
        )
        self.head = SkipBlock(hidden, in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x), x)


class GAE(nn.Module):
    def __init__(self, cfg: GAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # z_sem statistics of the training set: the GAE works on standardised codes. Set by training.
        self.register_buffer("z_mean", torch.zeros(cfg.in_channels))
        self.register_buffer("z_std", torch.ones(cfg.in_channels))
        self.encoder = _Half(cfg.in_channels, cfg.hidden_channels, cfg.z_dis_channels, norm="layer")
        self.decoder = _Half(cfg.z_dis_channels, cfg.hidden_channels, cfg.in_channels, norm="group")

    def encode(self, z_sem: torch.Tensor) -> torch.Tensor:
        return self.encoder((z_sem - self.z_mean) / self.z_std)

    def decode(self, z_dis: torch.Tensor) -> torch.Tensor:
        return self.decoder(z_dis) * self.z_std + self.z_mean

    def forward(self, z_sem: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(z_sem))

    def split(self, z_dis: torch.Tensor) -> dict[str, torch.Tensor]:
        """z_dis → {attribute name: chunk}."""
        return {name: z_dis[:, self.cfg.chunk(name)] for name in self.cfg.attribute_names}
