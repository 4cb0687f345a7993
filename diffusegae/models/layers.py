"""Building blocks of the Diff-AE UNet and encoder, with Diff-AE's submodule names.

Submodule names (in_layers, emb_layers, cond_emb_layers, out_layers, skip_connection, norm, qkv, proj_out)
and their Sequential indices are kept exactly, so official checkpoints load with strict=True.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from diffusegae.kernels import adagn


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with statistics in fp32 whatever the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 weights too: a half/bf16 copy of the model runs its norms in fp32 with or without autocast
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


def normalization(channels: int) -> GroupNorm32:
    return GroupNorm32(min(32, channels), channels)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero-initialise a layer's parameters (the last conv of each residual branch, as in BeatGANs)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps [B] → [B, dim]: cos half first, then sin (as Diff-AE)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class Downsample(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class Upsample(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")


class ResBlock(nn.Module):
    """BeatGANs residual block, optionally resampling, conditioned through AdaGN.

    in_layers:  GN → SiLU → [up/down] → conv3×3
    out_layers: AdaGN(GN, time scale/shift, z_sem scale[/shift]) → SiLU → dropout → zero conv3×3
    Without emb_channels (the Diff-AE encoder) the block is in_layers plus the skip only.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        emb_channels: int | None = None,
        cond_channels: int | None = None,
        adagn_mode: str = "scale",
        dropout: float = 0.0,
        up: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(
            normalization(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.resample = Upsample() if up else Downsample() if down else None
        self.conditioned = emb_channels is not None
        if self.conditioned:
            self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
            z_width = 2 * out_channels if adagn_mode == "scale_shift" else out_channels
            self.cond_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(cond_channels, z_width))
            self.out_layers = nn.Sequential(
                normalization(out_channels),
                nn.SiLU(),
                nn.Dropout(p=dropout),
                zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
            )
        if out_channels == channels:
            self.skip_connection: nn.Module = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 1)

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor | None = None, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.resample is not None:
            # resample between the activation and the conv, and resample the skip path alike
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.resample(h))
            x = self.resample(x)
        else:
            h = self.in_layers(x)
        if self.conditioned:
            h = self._adagn_out(h, emb, cond)
        return self.skip_connection(x) + h

    def _adagn_out(self, h: torch.Tensor, emb: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t_scale, t_shift = self.emb_layers(emb).chunk(2, dim=1)
        z = self.cond_emb_layers(cond)
        z_scale, z_shift = z.chunk(2, dim=1) if z.shape[1] == 2 * h.shape[1] else (z, None)
        norm = self.out_layers[0]
        h = adagn(
            h,
            norm.weight,
            norm.bias,
            t_scale,
            t_shift,
            z_scale,
            z_shift,
            groups=norm.num_groups,
            eps=norm.eps,
            silu=True,
        )
        return self.out_layers[3](self.out_layers[2](h))


class AttentionBlock(nn.Module):
    """Spatial self-attention with a residual connection (heads split before q/k/v, as Diff-AE)."""

    def __init__(self, channels: int, num_heads: int = 1) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels {channels} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        flat = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(flat))
        # [B, heads·3·ch, L] → [B·heads, 3·ch, L] → q, k, v [B·heads, L, ch]
        q, k, v = qkv.reshape(b * self.num_heads, -1, qkv.shape[-1]).transpose(1, 2).chunk(3, dim=-1)
        attended = F.scaled_dot_product_attention(q, k, v)  # softmax(q·kᵀ/sqrt(ch))·v
        h = self.proj_out(attended.transpose(1, 2).reshape(b, c, -1))
        return (flat + h).reshape(b, c, *spatial)


class CondSequential(nn.Sequential):
    """A Sequential that hands the time embedding and z_sem to the ResBlocks inside it."""

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor | None = None, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb, cond) if isinstance(layer, ResBlock) else layer(x)
        return x
