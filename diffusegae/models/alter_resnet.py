"""Alter-ResNet: DiffuseGAE's semantic encoder x0 → z_sem [B,512].

A ResNet whose late stages end in multi-head self-attention, after AlterNet (Park & Kim, "How Do Vision
Transformers Work?", 2022): convolutions early for local features, the block closest to the end of a late
stage swapped for an MSA block to aggregate globally. GroupNorm + SiLU throughout (batch-size independent,
so serving batches never change a code), then a head to 512: a global average pool (AlterNet) or, with
`pool_size` k > 1, an average pool to a k×k map that is flattened, so the code keeps where things are.
"""

from __future__ import annotations

import torch
from torch import nn

from diffusegae.config import EncoderConfig
from diffusegae.models.layers import AttentionBlock, normalization


class BasicBlock(nn.Module):
    """Pre-activation residual block: (GN → SiLU → conv3×3) × 2, the first conv strided when downsampling."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            normalization(in_channels),
            nn.SiLU(),
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
            normalization(out_channels),
            nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if stride == 1 and in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1, stride=stride)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.branch(x)


class AlterResNet(nn.Module):
    def __init__(self, cfg: EncoderConfig, image_size: int, in_channels: int = 3) -> None:
        super().__init__()
        widths = [m * cfg.model_channels for m in cfg.channel_mult]
        unknown = set(cfg.attention_stages) - set(range(len(widths)))
        if unknown:
            raise ValueError(f"attention_stages {sorted(unknown)} out of range 0..{len(widths) - 1}")
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        stages = []
        ch = widths[0]
        for s, width in enumerate(widths):
            blocks: list[nn.Module] = []
            for b in range(cfg.num_res_blocks):
                blocks.append(BasicBlock(ch, width, stride=2 if s > 0 and b == 0 else 1))
                ch = width
            if s in cfg.attention_stages:
                blocks.append(AttentionBlock(ch, cfg.num_heads))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            normalization(ch),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(cfg.pool_size),
            nn.Flatten(),
            nn.Linear(ch * cfg.pool_size**2, cfg.out_channels),
        )

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x0)))
