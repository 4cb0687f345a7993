"""The decoder's use of z_sem by timestep, on engines whose answer is known in closed form."""

import numpy as np
import pytest

from diffusegae import preset
from diffusegae.diffusion import alphas_cumprod
from diffusegae.engines import Pipeline
from diffusegae.eval.conditioning import conditioning_timesteps, conditioning_use


class CodeReadingEngine:
    """z_sem carries the image's index; eps is exact for that image, or predicts x0 = 0 if ignore_code."""

    def __init__(self, x0: np.ndarray, ignore_code: bool = False) -> None:
        self.config = preset("tiny32")
        self.x0 = x0.astype(np.float64)
        self.ignore_code = ignore_code

    def encode(self, x0: np.ndarray) -> np.ndarray:
        index = [int(np.argmin(((self.x0 - x) ** 2).sum(axis=(1, 2, 3)))) for x in x0]
        z = np.zeros((len(x0), 512), np.float32)
        z[:, 0] = index
        return z

    def eps(self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray) -> np.ndarray:
        a = alphas_cumprod()[t].reshape(-1, 1, 1, 1)
        x0 = 0.0 if self.ignore_code else self.x0[z_sem[:, 0].astype(int)]
        return ((x_t - np.sqrt(a) * x0) / np.sqrt(1 - a)).astype(np.float32)


@pytest.fixture(scope="module")
def x0():
    return np.random.default_rng(0).uniform(-1, 1, (5, 3, 32, 32)).astype(np.float32)


def test_timesteps_spread_over_the_diffusion():
    assert conditioning_timesteps(1000) == [50, 200, 400, 600, 800, 950]
    assert conditioning_timesteps(10, (0.0, 0.99, 1.0)) == [0, 9]


def test_a_decoder_that_reads_the_code_gets_a_share_near_one(x0):
    result = conditioning_use(Pipeline(CodeReadingEngine(x0)), x0, batch_size=2)
    assert result["images"] == 5 and [r["t"] for r in result["rows"]] == [50, 200, 400, 600, 800, 950]
    for r in result["rows"]:
        assert r["loss_own"] < 1e-8 < r["loss_other"]
        assert r["z_sem_share"] > 0.999
        assert r["signal"] == pytest.approx(np.sqrt(alphas_cumprod()[r["t"]]))


def test_a_decoder_that_ignores_the_code_gets_zero_and_the_closed_form_loss(x0):
    result = conditioning_use(Pipeline(CodeReadingEngine(x0, ignore_code=True)), x0, timesteps=[100, 700])
    mean_square = float(np.mean(x0.astype(np.float64) ** 2))
    for r in result["rows"]:
        a = alphas_cumprod()[r["t"]]
        # predicting x0 = 0 leaves eps − noise = sqrt(ᾱ)·x0 / sqrt(1 − ᾱ)
        assert r["loss_own"] == pytest.approx(a / (1 - a) * mean_square, rel=1e-4)
        assert r["loss_own"] == r["loss_other"] and r["z_sem_share"] == 0.0


def test_one_image_is_refused(x0):
    with pytest.raises(ValueError, match="at least 2 images"):
        conditioning_use(Pipeline(CodeReadingEngine(x0)), x0[:1])
