"""Training objectives: each weighting is the loss it names, samplers draw what they say, EDM2's u(t)
trains and resumes, and the objective is recorded with the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffusegae import build_model, preset
from diffusegae.checkpoint import load_checkpoint, read_info
from diffusegae.diffusion import alphas_cumprod, q_sample
from diffusegae.train import train
from diffusegae.train.losses import eps_mse
from diffusegae.train.objectives import (
    LearnedLossNorm,
    Objective,
    loss_weights,
    reduce_loss,
    sample_timesteps,
)
from diffusegae.train.state import STATE_DIR, STATE_FILE

AB = alphas_cumprod()
T = torch.tensor([0, 100, 500, 800, 999])


def _eps_and_x0_errors():
    """An eps error and the x0 error it implies at each t: x̂0 − x0 = −sqrt(1/ᾱ − 1)·(ε̂ − ε)."""
    gen = torch.Generator().manual_seed(0)
    d_eps = torch.randn(len(T), 3, 4, 4, generator=gen)
    ab = torch.from_numpy(AB[T.numpy()])
    d_x0 = -torch.sqrt(1 / ab - 1).view(-1, 1, 1, 1) * d_eps.double()
    d_v = torch.sqrt(ab).view(-1, 1, 1, 1) * d_eps.double() - torch.sqrt(1 - ab).view(-1, 1, 1, 1) * d_x0
    return ab, d_eps.pow(2).flatten(1).mean(1).double(), d_x0.pow(2).flatten(1).mean(1), d_v


@pytest.mark.parametrize("weighting", ["simple", "v", "x0", "min_snr"])
def test_each_weighting_is_the_loss_it_names(weighting):
    ab, eps_mse, x0_mse, d_v = _eps_and_x0_errors()
    snr = ab / (1 - ab)
    expected = {
        "simple": eps_mse,
        "v": d_v.pow(2).flatten(1).mean(1),  # ‖v̂ − v‖²
        "x0": x0_mse,
        "min_snr": snr.clamp(max=5.0) * x0_mse,  # Hang et al.: x0 errors count min(SNR, γ)
    }[weighting]
    got = loss_weights(Objective(weighting=weighting), ab).double() * eps_mse
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)


def test_auto_is_the_mse_of_what_the_model_predicts_and_caps_apply():
    assert [Objective().resolved(p).weighting for p in ("eps", "v", "x0")] == ["simple", "v", "x0"]
    capped = loss_weights(Objective(weighting="v", weight_cap=300.0), torch.from_numpy(AB[T.numpy()]))
    assert capped.max() == 300.0 and capped[0] == pytest.approx(1 / AB[0])
    with pytest.raises(ValueError, match="unknown loss weighting 'snr'; choose from auto, simple"):
        Objective(weighting="snr")
    with pytest.raises(ValueError, match="unknown timestep sampling"):
        Objective(timesteps="cosine")


def test_timestep_samplers_draw_what_they_say():
    gen = torch.Generator().manual_seed(0)
    uniform = sample_timesteps(Objective(), 20000, gen, 1000)
    high = sample_timesteps(Objective(timesteps="high", high_t_share=0.5, high_t_from=800), 20000, gen, 1000)
    lean = sample_timesteps(Objective(timesteps="logit_normal", logit_mean=1.0), 20000, gen, 1000)
    for t in (uniform, high, lean):
        assert t.dtype == torch.int64 and t.min() >= 0 and t.max() <= 999
    assert abs((uniform >= 800).float().mean() - 0.2) < 0.02
    assert abs((high >= 800).float().mean() - (0.5 + 0.5 * 0.2)) < 0.02
    assert abs(lean.float().median() - 1000 / (1 + np.exp(-1.0))) < 15  # median of σ(1 + n) is σ(1)
    again = sample_timesteps(Objective(), 8, torch.Generator().manual_seed(3), 1000)
    assert torch.equal(again, torch.randint(0, 1000, (8,), generator=torch.Generator().manual_seed(3)))


def test_learned_norm_is_edm2s_and_its_optimum_is_the_log_loss():
    norm = LearnedLossNorm(1000, buckets=10)
    per_sample = torch.tensor([0.5, 2.0])
    t = torch.tensor([50, 950])
    with torch.no_grad():
        norm.u.copy_(torch.arange(10.0) / 10)
    expected = per_sample / torch.exp(torch.tensor([0.0, 0.9])) + torch.tensor([0.0, 0.9])
    torch.testing.assert_close(norm(per_sample, t), expected)
    # d/du (L e^-u + u) = 0 at u = log L: trained alone, u(t) learns the log of its bucket's loss
    opt = torch.optim.Adam(norm.parameters(), lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        reduce_loss(Objective(weighting="simple"), per_sample, t, AB, norm).backward()
        opt.step()
    assert norm.u[0].item() == pytest.approx(np.log(0.5), abs=0.02)
    assert norm.u[9].item() == pytest.approx(np.log(2.0), abs=0.02)


def test_the_v_loss_of_a_v_model_is_its_output_mse():
    """Stage 1's 'v' objective on a v-parameterised model is plain MSE on the network's own output."""
    torch.manual_seed(0)
    model = build_model(preset("tiny32")).eval()
    assert model.cfg.unet.prediction == "v"
    with torch.no_grad():
        for p in model.unet.out.parameters():
            p.normal_(0, 0.05)
    x0, noise = torch.rand(3, 3, 32, 32) * 2 - 1, torch.randn(3, 3, 32, 32)
    t, z = torch.tensor([10, 600, 990]), torch.randn(3, 512)
    ab = torch.from_numpy(AB[t.numpy()]).float().view(-1, 1, 1, 1)
    with torch.no_grad():
        eps = model.unet(q_sample(x0, noise, t), t, z)
        per_sample = eps_mse(model.unet, x0, z, t, noise)
        loss = reduce_loss(Objective(weighting="v"), per_sample, t, AB)
    v_hat = (eps - (1 - ab).sqrt() * q_sample(x0, noise, t)) / ab.sqrt()  # eps = √ᾱ·v + √(1−ᾱ)·x_t
    v = ab.sqrt() * noise - (1 - ab).sqrt() * x0
    assert torch.count_nonzero(eps) > 0
    torch.testing.assert_close(loss, (v_hat - v).pow(2).mean(), rtol=1e-3, atol=1e-6)


FAST = {"batch_size": 4, "log_every": 1, "quiet": True}
OBJECTIVE = {"weighting": "v", "timesteps": "high", "learned_norm": True}


def _raw(directory: Path) -> dict[str, torch.Tensor]:
    record = json.loads((directory / STATE_DIR / STATE_FILE).read_text())
    return load_file(directory / STATE_DIR / record["files"]["raw"])


def test_the_objective_is_recorded_resumed_and_the_u_table_kept_out_of_the_checkpoint(tmp_path: Path):
    directory = tmp_path / "ck"
    train(directory, preset="tiny32", stage=1, steps=2, **OBJECTIVE, **FAST)
    recorded = read_info(directory)["train"]["stage1"]["objective"]
    assert recorded["weighting"] == "v" and recorded["timesteps"] == "high" and recorded["learned_norm"]
    record = json.loads((directory / STATE_DIR / STATE_FILE).read_text())
    assert "train_only.u" in _raw(directory) and "train_only.u" in record["optimizer"]["params"]
    load_checkpoint(directory)  # strict: the table never reaches the model
    # resumed without flags: the run keeps its objective; 2 + 1 steps equal 3 steps in one go
    summary = train(directory, stage=1, steps=1, **FAST)
    assert summary["objective"] == recorded and summary["steps"] == 3
    straight = tmp_path / "straight"
    train(straight, preset="tiny32", stage=1, steps=3, **OBJECTIVE, **FAST)
    resumed, once = _raw(directory), _raw(straight)
    assert all(torch.equal(resumed[k], once[k]) for k in once)


def test_a_bad_objective_flag_is_refused_before_training(tmp_path: Path):
    with pytest.raises(TypeError, match="unknown arguments"):
        train(tmp_path / "x", preset="tiny32", stage=1, steps=1, weighting_typo="v", **FAST)
    with pytest.raises(ValueError, match="unknown loss weighting"):
        train(tmp_path / "y", preset="tiny32", stage=1, steps=1, weighting="snr", **FAST)
