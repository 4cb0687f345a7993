"""The conditional DDIM decoder: Diff-AE's BeatGANs UNet, eps = unet(x_t, t, z_sem).

Layout (BeatGANs): a conv stem, then per level `num_res_blocks` ResBlocks (+ attention at the chosen
resolutions) and a downsampling ResBlock; a middle ResBlock–attention–ResBlock; output blocks that
concatenate the matching input activation (lateral connection) and end each level but the top with an
upsampling ResBlock; GN → SiLU → zero conv to 3 channels. Every ResBlock is conditioned by AdaGN on the
time embedding and on z_sem.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from diffusegae.config import Z_SEM_CHANNELS, UNetConfig
from diffusegae.diffusion import alphas_cumprod
from diffusegae.models.layers import (
    AttentionBlock,
    CondSequential,
    ResBlock,
    normalization,
    timestep_embedding,
    zero_module,
)
from diffusegae.models.prediction import EpsFromPrediction


class TimeEmbed(nn.Module):
    """Sinusoidal features → MLP. Wrapped once more so that keys read `time_embed.time_embed.*` (Diff-AE)."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.time_embed = nn.Sequential(
            nn.Linear(channels, out_channels), nn.SiLU(), nn.Linear(out_channels, out_channels)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # The features are computed in fp32 (t up to 999 needs it) and enter the MLP in its own dtype.
        return self.time_embed(timestep_embedding(t, self.channels).to(self.time_embed[0].weight.dtype))


class UNet(nn.Module):
    def __init__(
        self,
        cfg: UNetConfig,
        image_size: int,
        cond_channels: int = Z_SEM_CHANNELS,
        alpha_bar: np.ndarray | None = None,
    ) -> None:
        """`alpha_bar`: ᾱ_t of the checkpoint's schedule (default: Diff-AE's), used by non-eps predictions."""
        super().__init__()
        self.cfg = cfg
        self.time_embed = TimeEmbed(cfg.model_channels, cfg.embed_channels)

        def res(ch_in: int, ch_out: int | None = None, **resample: bool) -> ResBlock:
            return ResBlock(
                ch_in, ch_out, cfg.embed_channels, cond_channels, cfg.adagn_mode, cfg.dropout, **resample
            )

        def attn(ch: int) -> AttentionBlock:
            return AttentionBlock(ch, cfg.num_heads)

        ch = cfg.channel_mult[0] * cfg.model_channels
        stem_channels = ch
        self.input_blocks = nn.ModuleList([CondSequential(nn.Conv2d(cfg.in_channels, ch, 3, padding=1))])
        skip_channels = [ch]
        resolution = image_size
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * cfg.model_channels)]
                ch = mult * cfg.model_channels
                if resolution in cfg.attention_resolutions:
                    layers.append(attn(ch))
                self.input_blocks.append(CondSequential(*layers))
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(CondSequential(res(ch, down=True)))
                skip_channels.append(ch)
                resolution //= 2

        self.middle_block = CondSequential(res(ch), attn(ch), res(ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), mult * cfg.model_channels)]
                ch = mult * cfg.model_channels
                if resolution in cfg.attention_resolutions:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, up=True))
                    resolution *= 2
                self.output_blocks.append(CondSequential(*layers))

        self.out = nn.Sequential(
            normalization(ch),
            nn.SiLU(),
            zero_module(nn.Conv2d(stem_channels, cfg.out_channels, 3, padding=1)),
        )
        self.to_eps = EpsFromPrediction(cfg.prediction, alphas_cumprod() if alpha_bar is None else alpha_bar)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Predict eps from x_t [B,3,H,W], integer timesteps t [B] (0..999) and z_sem [B,512].

        The network's own output is in the checkpoint's parameterisation; `to_eps` converts it."""
        return self._forward(x_t, t, cond)[0]

    @property
    def outer_blocks(self) -> int:
        """How many input (and output) blocks the outermost level has: the stem and its ResBlocks on the
        way down, its ResBlocks on the way up. Feature reuse recomputes only these."""
        return self.cfg.num_res_blocks + 1

    def eps_and_deep(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """eps and the deep feature: what the inner levels hand the outermost level on the way up."""
        return self._forward(x_t, t, cond)

    def eps_from_deep(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, deep: torch.Tensor
    ) -> torch.Tensor:
        """eps from the outermost level only, on a deep feature of an earlier, adjacent step (DeepCache,
        Ma et al. 2024: the inner levels' output changes slowly across adjacent steps)."""
        return self._forward(x_t, t, cond, reuse=deep)[0]

    def _forward(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, reuse: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.time_embed(t)
        down = self.input_blocks if reuse is None else self.input_blocks[: self.outer_blocks]
        h = x_t
        laterals = []
        for block in down:
            h = block(h, emb, cond)
            laterals.append(h)
        cut = len(self.output_blocks) - self.outer_blocks
        if reuse is None:
            h = self.middle_block(h, emb, cond)
            for block in self.output_blocks[:cut]:
                h = block(torch.cat([h, laterals.pop()], dim=1), emb, cond)
        else:
            h = reuse
        deep = h
        for block in self.output_blocks[cut:]:
            h = block(torch.cat([h, laterals.pop()], dim=1), emb, cond)
        return self.to_eps(self.out(h), x_t, t), deep
