"""Shared fixtures: tiny models and the oracle engine used across the test suite."""

from __future__ import annotations

import os

# Before torch loads: OpenMP threads that spin while waiting starve each other on 2 cores shared with any
# other busy process (measured: a tiny32 eps call went from 56 ms to 2.5 s). Passive waiting avoids it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
import torch

from diffusegae import build_model, preset
from diffusegae.config import ModelConfig
from diffusegae.diffusion import alphas_cumprod

torch.set_num_threads(2)


def torch_threads(n: int):
    """A package-wide autouse fixture running that package's tests on `n` torch threads (restored after).

    Packages of many small ops (train, eval) use 1: a second OpenMP thread gains little on an idle machine
    and costs a great deal on a busy one.
    """

    @pytest.fixture(autouse=True, scope="package")
    def fixture():
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        yield
        torch.set_num_threads(before)

    return fixture


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give zero-initialised layers random weights too, so outputs depend on every input."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


@pytest.fixture(scope="session")
def tiny_model():
    torch.manual_seed(0)
    return randomize(build_model(preset("tiny32"))).eval()


class OracleEngine:
    """An Engine whose eps is exact for known clean images: eps = (x_t − sqrt(ᾱ_t)·x0) / sqrt(1 − ᾱ_t)."""

    def __init__(self, config: ModelConfig, x0: np.ndarray) -> None:
        self.config = config
        self.x0 = x0.astype(np.float64)
        self.alpha_bar = alphas_cumprod()

    def encode(self, x0: np.ndarray) -> np.ndarray:
        return np.zeros((len(x0), 512), np.float32)

    def eps(self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray) -> np.ndarray:
        a = self.alpha_bar[t].reshape(-1, 1, 1, 1)
        return ((x_t - np.sqrt(a) * self.x0) / np.sqrt(1 - a)).astype(np.float32)

    def gae_encode(self, z_sem: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    gae_decode = gae_encode
