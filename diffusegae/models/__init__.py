"""PyTorch reference models: the DiffuseGAE / Diff-AE autoencoder and its parts."""

from __future__ import annotations

import torch
from torch import nn

from diffusegae.config import ModelConfig
from diffusegae.diffusion import schedule_alphas_cumprod
from diffusegae.models.encoder import build_encoder
from diffusegae.models.gae import GAE
from diffusegae.models.unet import UNet

__all__ = ["GAE", "DiffusionAutoencoder", "UNet", "build_model"]


class DiffusionAutoencoder(nn.Module):
    """Semantic encoder + conditional UNet (+ GAE for DiffuseGAE). Parts are called directly; no forward."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        alpha_bar = schedule_alphas_cumprod(cfg.diffusion)
        self.unet = UNet(cfg.unet, cfg.image_size, cfg.encoder.out_channels, alpha_bar)
        self.encoder = build_encoder(cfg.encoder, cfg.image_size)
        self.gae = GAE(cfg.gae) if cfg.gae is not None else None

    def num_parameters(self) -> dict[str, int]:
        parts = {"unet": self.unet, "encoder": self.encoder, "gae": self.gae}
        return {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items() if part}


def build_model(cfg: ModelConfig, device: torch.device | str | None = None) -> DiffusionAutoencoder:
    """A freshly initialised model for `cfg` (pass device="meta" to count parameters without memory)."""
    with torch.device(device or "cpu"):
        return DiffusionAutoencoder(cfg)
