"""A checkpoint's own noise schedule is honoured on every path: in-process pipeline, served result, and an
independent DDIM written here from the equations with the same betas all agree (issue: betas 1e-4..0.03)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from diffusegae import build_model, preset, save_checkpoint
from diffusegae.client import Client
from diffusegae.config import DiffusionConfig
from diffusegae.engines import Pipeline
from diffusegae.engines.onnxruntime_engine import load_onnxruntime_engine
from diffusegae.images import to_model, to_uint8

from ..conftest import randomize
from .serving import assert_same_images, dataset_images, start_server

STEPS = 4
BETAS = (1e-4, 0.03)


def reference_reconstruct(engine, x0: np.ndarray, steps: int, betas: tuple[float, float]) -> np.ndarray:
    """Diff-AE's DDIM (eta = 0, x0 clipped, eps re-derived) inverted then decoded, from scratch in float64."""
    alpha_bar = np.cumprod(1.0 - np.linspace(*betas, 1000, dtype=np.float64))
    ts = np.arange(0, 1000, 1000 // steps)
    z = engine.encode(x0)

    def move(x, t, to):  # one eta = 0 step from timestep t to ᾱ = `to`
        eps = engine.eps(x.astype(np.float32), np.full(len(x), t, np.int64), z).astype(np.float64)
        a = alpha_bar[t]
        pred = np.clip(np.sqrt(1 / a) * x - np.sqrt(1 / a - 1) * eps, -1, 1)
        eps = (np.sqrt(1 / a) * x - pred) / np.sqrt(1 / a - 1)
        return np.sqrt(to) * pred + np.sqrt(1 - to) * eps

    x = x0.astype(np.float64)
    for i, t in enumerate(ts):  # inversion walks upward to ᾱ_next (0 after the last step)
        x = move(x, t, alpha_bar[ts[i + 1]] if i + 1 < len(ts) else 0.0)
    for i in reversed(range(len(ts))):  # decoding walks down to ᾱ_prev (1 after the first step)
        x = move(x, ts[i], alpha_bar[ts[i - 1]] if i > 0 else 1.0)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = dataclasses.replace(
        preset("tiny32"), diffusion=DiffusionConfig(beta_start=BETAS[0], beta_end=BETAS[1])
    )
    torch.manual_seed(3)
    return save_checkpoint(randomize(build_model(cfg)).eval(), tmp_path_factory.mktemp("betas"))


def test_pipeline_server_and_an_independent_ddim_agree_on_another_schedule(checkpoint, tmp_path):
    images = dataset_images(2, seed=4)
    pipe = Pipeline(load_onnxruntime_engine(checkpoint, threads=1))
    x0 = to_model(images)
    ours = pipe.reconstruct(x0, steps=STEPS)
    independent = reference_reconstruct(pipe.engine, x0, STEPS, BETAS)
    assert np.abs(ours - independent).max() < 1e-4
    default = reference_reconstruct(pipe.engine, x0, STEPS, (1e-4, 0.02))
    assert np.abs(ours - default).max() > 1e-2  # the test can tell the schedules apart
    server = start_server(tmp_path / "repository", checkpoint, tmp_path / "triton")
    try:
        with Client(server.url, timeout=120) as client:
            assert_same_images(client.reconstruct(images, steps=STEPS), to_uint8(ours))
    finally:
        assert server.stop() == 0, server.log_tail()
