"""Semantic encoders x0 [B,3,H,W] → z_sem [B,512].

- DiffAEEncoder: Diff-AE's half-UNet without time conditioning (keys as in Diff-AE under `encoder.*`):
  conv stem, unconditioned ResBlocks with attention at the chosen resolutions and downsampling ResBlocks,
  a middle ResBlock–attention–ResBlock, then GN → SiLU → global average pool → 1×1 conv to 512.
- AlterResNet: DiffuseGAE's encoder, in models/alter_resnet.py.
"""

from __future__ import annotations

import torch
from torch import nn

from diffusegae.config import EncoderConfig
from diffusegae.models.layers import AttentionBlock, ResBlock, normalization


class DiffAEEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig, image_size: int, in_channels: int = 3) -> None:
        super().__init__()
        ch = cfg.channel_mult[0] * cfg.model_channels
        self.input_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        resolution = image_size
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, mult * cfg.model_channels)]
                ch = mult * cfg.model_channels
                if resolution in cfg.attention_resolutions:
                    layers.append(AttentionBlock(ch, cfg.num_heads))
                self.input_blocks.append(nn.Sequential(*layers))
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(nn.Sequential(ResBlock(ch, down=True)))
                resolution //= 2
        self.middle_block = nn.Sequential(ResBlock(ch), AttentionBlock(ch, cfg.num_heads), ResBlock(ch))
        self.out = nn.Sequential(
            normalization(ch),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(ch, cfg.out_channels, 1),
            nn.Flatten(),
        )

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        h = x0
        for block in self.input_blocks:
            h = block(h)
        return self.out(self.middle_block(h))


def build_encoder(cfg: EncoderConfig, image_size: int) -> nn.Module:
    if cfg.kind == "diffae":
        return DiffAEEncoder(cfg, image_size)
    from diffusegae.models.alter_resnet import AlterResNet

    return AlterResNet(cfg, image_size)
