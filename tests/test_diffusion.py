import numpy as np
import pytest
import torch

from diffusegae import diffusion
from diffusegae.diffusion import ddim_schedule, ddim_timesteps


def test_timesteps_pinned_for_10_and_20():
    assert ddim_timesteps(10).tolist() == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]
    assert ddim_timesteps(20).tolist() == list(range(0, 1000, 50))
    assert ddim_timesteps(10).dtype == np.int64


def test_timesteps_follow_diffae_integer_stride():
    # Diff-AE picks the smallest stride k with len(range(0, 1000, k)) == S
    assert ddim_timesteps(3).tolist() == [0, 334, 668]
    assert ddim_timesteps(1).tolist() == [0]
    assert ddim_timesteps(1000).tolist() == list(range(1000))
    for s in diffusion.valid_step_counts()[:60]:
        k = next(k for k in range(1, 1001) if len(range(0, 1000, k)) == s)
        assert ddim_timesteps(s).tolist() == list(range(0, 1000, k))


@pytest.mark.parametrize("bad", [0, -1, 1001])
def test_timesteps_out_of_range(bad):
    with pytest.raises(ValueError, match=r"1\.\.1000"):
        ddim_timesteps(bad)


def test_timesteps_without_integer_stride_name_alternatives():
    with pytest.raises(ValueError, match="use 500 or 1000"):
        ddim_timesteps(700)


def test_schedule_float64_and_ends():
    a = diffusion.alphas_cumprod()
    assert a.dtype == np.float64 and a.shape == (1000,)
    assert a[0] == pytest.approx(1 - 1e-4, abs=1e-15)
    assert np.all(np.diff(a) < 0)
    s = ddim_schedule(10)
    assert s.alpha_bar_prev[0] == 1.0 and s.alpha_bar_next[-1] == 0.0
    np.testing.assert_array_equal(s.alpha_bar, a[s.timesteps])
    np.testing.assert_array_equal(s.alpha_bar_prev[1:], s.alpha_bar[:-1])


def _oracle_eps(x_t, x0, a):
    return (x_t - np.sqrt(a) * x0) / np.sqrt(1 - a)


def _x0(batch=3, seed=0):
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (batch, 3, 8, 8))


@pytest.mark.parametrize("steps", [10, 20])
def test_oracle_decode_returns_x0(steps):
    x0 = _x0()
    s = ddim_schedule(steps)
    x = np.random.default_rng(1).standard_normal(x0.shape)
    for i in reversed(range(steps)):
        x = diffusion.ddim_step(x, _oracle_eps(x, x0, s.alpha_bar[i]), s.alpha_bar[i], s.alpha_bar_prev[i])
    np.testing.assert_allclose(x, x0, atol=1e-5)


@pytest.mark.parametrize("to", [np.asarray, torch.from_numpy])
def test_oracle_inversion_then_decode_round_trip(to):
    x0 = _x0()
    s = ddim_schedule(20)
    x = to(x0.copy())
    ref = to(x0)
    for i in range(s.steps):
        x = diffusion.ddim_inverse_step(
            x, _oracle_eps(x, ref, s.alpha_bar[i]), s.alpha_bar[i], s.alpha_bar_next[i]
        )
    x_T = x
    assert np.abs(np.asarray(x_T) - x0).mean() > 0.1  # inversion moved away from the image
    for i in reversed(range(s.steps)):
        x = diffusion.ddim_step(x, _oracle_eps(x, ref, s.alpha_bar[i]), s.alpha_bar[i], s.alpha_bar_prev[i])
    np.testing.assert_allclose(np.asarray(x), x0, atol=1e-5)


def test_x0_is_clipped_and_eps_rederived():
    x_t = np.full((1, 1, 2, 2), 3.0)
    eps = np.zeros_like(x_t)
    a = 0.5
    x0 = diffusion.predict_x0(x_t, eps, a)
    assert x0.max() == 1.0
    # the step uses the eps consistent with the clipped x0, not the network's eps
    step = diffusion.ddim_step(x_t, eps, a, 0.9)
    eps_re = diffusion.eps_from_x0(x_t, x0, a)
    np.testing.assert_allclose(step, np.sqrt(0.9) * 1.0 + np.sqrt(0.1) * eps_re)


def test_per_sample_coefficients_match_scalar_steps():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, 4, 4)).astype(np.float32)
    eps = rng.standard_normal(x.shape).astype(np.float32)
    a, ap = np.array([0.9, 0.5, 0.1]), np.array([0.95, 0.6, 0.2])
    mixed = diffusion.ddim_step(x, eps, a, ap)
    assert mixed.dtype == np.float32
    for b in range(3):
        np.testing.assert_allclose(
            mixed[b], diffusion.ddim_step(x[b : b + 1], eps[b : b + 1], a[b], ap[b])[0]
        )


def test_torch_and_numpy_agree():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    eps = rng.standard_normal(x.shape).astype(np.float32)
    out_np = diffusion.ddim_inverse_step(x, eps, 0.7, 0.4)
    out_t = diffusion.ddim_inverse_step(torch.from_numpy(x), torch.from_numpy(eps), 0.7, 0.4)
    assert out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t.numpy(), out_np, rtol=1e-6, atol=1e-6)


def test_q_sample_matches_formula():
    x0 = np.ones((2, 1, 1, 1))
    noise = np.zeros_like(x0)
    out = diffusion.q_sample(x0, noise, np.array([0, 999]))
    a = diffusion.alphas_cumprod()
    np.testing.assert_allclose(out.ravel(), np.sqrt(a[[0, 999]]))


@pytest.mark.parametrize("to", [np.asarray, torch.from_numpy])
def test_slerp_endpoints_and_norm(to):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((2, 4, 3, 3))
    np.testing.assert_allclose(np.asarray(diffusion.slerp(to(a), to(b), 0.0)), a, atol=1e-6)
    np.testing.assert_allclose(np.asarray(diffusion.slerp(to(a), to(b), 1.0)), b, atol=1e-6)
    # halfway between two vectors of equal norm keeps that norm (lerp would shrink it)
    a_unit = a / np.linalg.norm(a.reshape(2, -1), axis=1)[:, None, None, None]
    b_unit = b / np.linalg.norm(b.reshape(2, -1), axis=1)[:, None, None, None]
    mid = np.asarray(diffusion.slerp(to(a_unit), to(b_unit), 0.5)).reshape(2, -1)
    np.testing.assert_allclose(np.linalg.norm(mid, axis=1), 1.0, atol=1e-6)


def test_slerp_parallel_falls_back_to_lerp():
    a = np.ones((1, 6))
    out = diffusion.slerp(a, 2 * a, 0.5)
    np.testing.assert_allclose(out, 1.5 * a)
    assert np.isfinite(out).all()


def test_lerp_per_sample_alpha():
    a, b = np.zeros((2, 3)), np.ones((2, 3))
    np.testing.assert_allclose(diffusion.lerp(a, b, np.array([0.25, 1.0])), [[0.25] * 3, [1.0] * 3])
