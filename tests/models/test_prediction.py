"""Each parameterisation is converted to eps inside the model, with the checkpoint's own schedule."""

import dataclasses

import numpy as np
import pytest
import torch

from diffusegae import build_model, preset
from diffusegae.checkpoint import load_checkpoint, save_checkpoint
from diffusegae.config import DiffusionConfig, ModelConfig
from diffusegae.diffusion import alphas_cumprod, q_sample
from diffusegae.models.prediction import EpsFromPrediction

from ..conftest import randomize


def _with(prediction: str, diffusion: DiffusionConfig | None = None) -> ModelConfig:
    cfg = preset("tiny32")
    cfg = dataclasses.replace(cfg, unet=dataclasses.replace(cfg.unet, prediction=prediction))
    return dataclasses.replace(cfg, diffusion=diffusion) if diffusion else cfg


def _noised(ab: np.ndarray):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1
    eps = torch.randn(4, 3, 8, 8, generator=gen)
    t = torch.tensor([0, 300, 800, 999])
    return x0, eps, t, q_sample(x0, eps, t, alpha_bar=ab)


@pytest.mark.parametrize("betas", [(1e-4, 0.02), (1e-4, 0.03)])
def test_the_exact_target_of_each_parameterisation_gives_back_eps(betas):
    ab = alphas_cumprod(1000, *betas)
    x0, eps, t, x_t = _noised(ab)
    a = torch.from_numpy(np.sqrt(ab[t.numpy()])).float().view(-1, 1, 1, 1)
    s = torch.from_numpy(np.sqrt(1 - ab[t.numpy()])).float().view(-1, 1, 1, 1)
    targets = {"eps": eps, "v": a * eps - s * x0, "x0": x0}  # v: Salimans & Ho 2022, Eq. in §4
    for prediction, target in targets.items():
        back = EpsFromPrediction(prediction, ab)(target, x_t, t)
        # x0 → eps divides by sqrt(1 − ᾱ_0) = 0.01 at t = 0, which scales the float32 rounding of x_t
        torch.testing.assert_close(back, eps, atol=2e-3 if prediction == "x0" else 1e-5, rtol=1e-4)


def test_the_model_uses_the_schedule_of_its_own_config():
    cfg = _with("v", DiffusionConfig(beta_start=1e-4, beta_end=0.03))
    fresh = build_model(cfg)  # zero-initialised output conv: v = 0, so eps = sqrt(1 − ᾱ_t)·x_t
    x = torch.randn(2, 3, 32, 32)
    t = torch.tensor([100, 700])
    with torch.no_grad():
        eps = fresh.unet(x, t, torch.zeros(2, 512))
    s = np.sqrt(1 - alphas_cumprod(1000, 1e-4, 0.03)[t.numpy()])
    torch.testing.assert_close(eps, x * torch.from_numpy(s).float().view(-1, 1, 1, 1))
    default = np.sqrt(1 - alphas_cumprod()[700])
    assert abs(default - s[1]) > 1e-3  # the test would notice the default schedule


def test_unknown_prediction_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="choose from eps, v, x0"):
        _with("sample")


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_state_dict_names_do_not_depend_on_the_prediction(prediction, tmp_path):
    """The conversion has no weights: an official eps checkpoint and our v ones share every key."""
    torch.manual_seed(0)
    model = randomize(build_model(_with(prediction))).eval()
    assert set(model.state_dict()) == set(build_model(_with("eps")).state_dict())
    back = load_checkpoint(save_checkpoint(model, tmp_path / prediction))
    assert back.cfg.unet.prediction == prediction
    x, t, z = torch.randn(2, 3, 32, 32), torch.tensor([5, 950]), torch.randn(2, 512)
    with torch.no_grad():
        torch.testing.assert_close(back.unet(x, t, z), model.unet(x, t, z))
