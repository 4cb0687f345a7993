"""DPM-Solver++(2M): order 1 is DDIM, order 2 matches the paper's algorithm written here independently,
and one batch mixes samplers and step counts, each sample on its own schedule and history."""

from __future__ import annotations

import numpy as np
import pytest

from diffusegae import preset
from diffusegae.diffusion import alphas_cumprod, ddim_inverse_step, ddim_schedule, ddim_step
from diffusegae.dpm_solver import dpmpp_step
from diffusegae.engines import ddim_loop

from .conftest import OracleEngine

AB = alphas_cumprod()


class ToyEngine:
    """A deterministic, non-trivial eps(x_t, t): enough to tell one solver from another."""

    config = preset("tiny32")

    def eps(self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray) -> np.ndarray:
        s = (t.astype(np.float64) / 1000.0).reshape(-1, 1, 1, 1)
        return (
            np.tanh(x_t) * (0.6 + 0.3 * s) + 0.1 * np.sin(3 * x_t) + 0.05 * z_sem[:, :1, None, None]
        ).astype(np.float32)


def _inputs(batch: int = 3, seed: int = 0, inverse: bool = False):
    """x_T ~ N(0, I) to sample from, or an image in [-1, 1] to invert."""
    rng = np.random.default_rng(seed)
    shape = (batch, 3, 8, 8)
    x = (rng.uniform(-1, 1, shape) if inverse else rng.standard_normal(shape)).astype(np.float32)
    z = rng.standard_normal((batch, 512)).astype(np.float32)
    return x, z


def reference_dpmpp2m(engine, x, z, steps: int, inverse: bool) -> np.ndarray:
    """DPM-Solver++(2M), Lu et al. 2022 Alg. 2, in its exponential form on λ = log(α/σ), float64; x0 clipped
    (Diff-AE), order 1 at the first step, onto ᾱ = 0 or 1, and where r < 1/2. Written from the paper, not
    from our code."""
    ts = list(np.arange(0, 1000, 1000 // steps))
    alphas = [AB[t] for t in ts]
    # the ᾱ each step moves to: sampling walks down to 1 (clean), inversion walks up to 0 (pure noise)
    order = list(range(len(ts))) if inverse else list(reversed(range(len(ts))))
    x = x.astype(np.float64)
    prev = None
    for i in order:
        a_s = alphas[i]
        up = alphas[i + 1] if i + 1 < len(ts) else 0.0
        down = alphas[i - 1] if i > 0 else 1.0
        a_t = up if inverse else down
        eps = engine.eps(x.astype(np.float32), np.full(len(x), ts[i]), z).astype(np.float64)
        m0 = np.clip((x - np.sqrt(1 - a_s) * eps) / np.sqrt(a_s), -1, 1)
        alpha_s, sigma_s = np.sqrt(a_s), np.sqrt(1 - a_s)
        alpha_t, sigma_t = np.sqrt(a_t), np.sqrt(1 - a_t)
        if prev is None or a_t in (0.0, 1.0):  # first-order step
            if a_t == 1.0:
                x = m0
            elif a_t == 0.0:
                x = (x - alpha_s * m0) / sigma_s  # σ_t = 1, α_t = 0: the noise the prediction implies
            else:
                h = np.log(alpha_t / sigma_t) - np.log(alpha_s / sigma_s)
                x = (sigma_t / sigma_s) * x - alpha_t * np.expm1(-h) * m0
        else:
            m1, a_prev = prev
            lam = lambda a: np.log(np.sqrt(a) / np.sqrt(1 - a))  # noqa: E731
            h = lam(a_t) - lam(a_s)
            r = (lam(a_s) - lam(a_prev)) / h
            if r < 0.5:  # our one deviation from Alg. 2: order 1 where the step grows more than 2× in λ
                r = np.inf
            d = (1 + 1 / (2 * r)) * m0 - (1 / (2 * r)) * m1
            x = (sigma_t / sigma_s) * x - alpha_t * np.expm1(-h) * d
        prev = (m0, a_s)
    return x


@pytest.mark.parametrize("inverse", [False, True])
def test_order_one_is_ddim_bit_for_bit(inverse):
    engine = ToyEngine()
    x, z = _inputs(inverse=inverse)
    sched = ddim_schedule(10)
    ddim = ddim_inverse_step if inverse else ddim_step
    target = sched.alpha_bar_next if inverse else sched.alpha_bar_prev
    order = range(sched.steps) if inverse else reversed(range(sched.steps))
    ours, theirs = x, x
    for i in order:
        t = np.full(len(x), sched.timesteps[i])
        ours, x0 = dpmpp_step(ours, engine.eps(ours, t, z), sched.alpha_bar[i], target[i])
        assert np.abs(x0).max() <= 1.0  # the history is Diff-AE's clipped x0
        theirs = ddim(theirs, engine.eps(theirs, t, z), sched.alpha_bar[i], target[i])
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("steps", [5, 10, 20])
@pytest.mark.parametrize("inverse", [False, True])
def test_dpmpp2m_matches_the_papers_algorithm(steps, inverse):
    engine = ToyEngine()
    x, z = _inputs(inverse=inverse)
    ours = ddim_loop.run(engine, x, z, np.full(3, steps), inverse, samplers=["dpmpp2m"] * 3)
    reference = reference_dpmpp2m(engine, x, z, steps, inverse)
    assert np.abs(ours - reference).max() <= 1e-5
    ddim = ddim_loop.run(engine, x, z, np.full(3, steps), inverse)
    assert np.abs(ours - ddim).max() > 1e-3  # second order is not DDIM


def test_one_batch_mixes_samplers_and_step_counts():
    engine = ToyEngine()
    x, z = _inputs(4, seed=2)
    steps = np.array([5, 20, 10, 5])
    samplers = ["dpmpp2m", "ddim", "dpmpp2m", "ddim"]
    for inverse in (False, True):
        mixed = ddim_loop.run(engine, x, z, steps, inverse, samplers)
        for i in range(4):
            alone = ddim_loop.run(
                engine, x[i : i + 1], z[i : i + 1], steps[i : i + 1], inverse, samplers[i : i + 1]
            )
            np.testing.assert_allclose(mixed[i : i + 1], alone, atol=1e-6, rtol=0)
    assert np.array_equal(
        ddim_loop.run(engine, x, z, steps, False), ddim_loop.run(engine, x, z, steps, False, ["ddim"] * 4)
    )


def test_exact_predictions_invert_and_decode_back_to_the_image():
    rng = np.random.default_rng(3)
    x0 = rng.uniform(-0.9, 0.9, (2, 3, 8, 8)).astype(np.float32)
    engine = OracleEngine(preset("tiny32"), x0)
    z = np.zeros((2, 512), np.float32)
    x_T = ddim_loop.run(engine, x0, z, np.array([10, 10]), True, ["dpmpp2m"] * 2)
    back = ddim_loop.run(engine, x_T, z, np.array([10, 10]), False, ["dpmpp2m"] * 2)
    assert np.abs(back - x0).max() < 1e-4


def test_unknown_samplers_are_refused_naming_the_choices():
    x, z = _inputs(1)
    with pytest.raises(ValueError, match="unknown sampler 'euler'; choose from ddim, dpmpp2m"):
        ddim_loop.run(ToyEngine(), x, z, np.array([5]), False, ["euler"])
