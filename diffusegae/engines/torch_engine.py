"""The Engine protocol over the PyTorch reference models (eager)."""

from __future__ import annotations

import numpy as np
import torch

from diffusegae.engines.base import require_gae
from diffusegae.models import DiffusionAutoencoder


class TorchEngine:
    def __init__(self, model: DiffusionAutoencoder, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.cfg

    def _run(self, fn, *arrays: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays]
            return fn(*tensors).float().cpu().numpy()

    def encode(self, x0: np.ndarray) -> np.ndarray:
        return self._run(self.model.encoder, x0.astype(np.float32, copy=False))

    def eps(self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray) -> np.ndarray:
        return self._run(
            self.model.unet,
            x_t.astype(np.float32, copy=False),
            t.astype(np.int64, copy=False),
            z_sem.astype(np.float32, copy=False),
        )

    def gae_encode(self, z_sem: np.ndarray) -> np.ndarray:
        require_gae(self.config, "gae_encode")
        return self._run(self.model.gae.encode, z_sem.astype(np.float32, copy=False))

    def gae_decode(self, z_dis: np.ndarray) -> np.ndarray:
        require_gae(self.config, "gae_decode")
        return self._run(self.model.gae.decode, z_dis.astype(np.float32, copy=False))
