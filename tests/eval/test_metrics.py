import itertools

import numpy as np
import pytest

from diffusegae.eval.metrics import (
    PSNR_CAP_DB,
    gaussian_window,
    image_metrics,
    mse,
    psnr,
    psnr_from_mse,
    ssim,
    to_unit,
)


def images(seed: int = 0, shape: tuple[int, ...] = (3, 3, 32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


def ssim_direct(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """A second, deliberately plain SSIM: an explicit 2-D window at every valid position."""
    c = np.arange(size) - size // 2
    w = np.exp(-(c[:, None] ** 2 + c[None, :] ** 2) / (2 * sigma**2))
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    b, ch, h, wd = x.shape
    out = np.zeros((b, ch))
    for i in range(b):
        for k in range(ch):
            vals = []
            for r in range(h - size + 1):
                for s in range(wd - size + 1):
                    px, py = x[i, k, r : r + size, s : s + size], y[i, k, r : r + size, s : s + size]
                    mx, my = (w * px).sum(), (w * py).sum()
                    vx, vy = (w * px * px).sum() - mx**2, (w * py * py).sum() - my**2
                    cov = (w * px * py).sum() - mx * my
                    vals.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
            out[i, k] = np.mean(vals)
    return out.mean(axis=1)


def test_identical_images():
    x = images()
    assert np.all(mse(x, x) == 0)
    np.testing.assert_allclose(ssim(x, x), 1.0, atol=1e-12)
    # PSNR is capped, not infinite, so JSON stays valid
    np.testing.assert_array_equal(psnr(x, x), PSNR_CAP_DB)


def test_known_psnr_for_known_mse():
    x = np.full((2, 3, 16, 16), 0.5)
    y = x + 0.1  # MSE 0.01 → PSNR 20 dB on [0, 1] images
    np.testing.assert_allclose(mse(x, y), 0.01)
    np.testing.assert_allclose(psnr(x, y), 20.0)
    np.testing.assert_allclose(psnr_from_mse(np.array([1e-3, 1.0])), [30.0, 0.0])
    np.testing.assert_allclose(psnr_from_mse(np.array([0.01 * 255**2]), data_range=255.0), 20.0)


def test_ssim_symmetric_and_in_range():
    x, y = images(0), images(1)
    np.testing.assert_allclose(ssim(x, y), ssim(y, x))
    assert np.all(np.abs(ssim(x, y)) <= 1)
    # an inverted image is anti-correlated: SSIM below zero
    assert np.all(ssim(x, 1 - x) < 0)


def test_ssim_decreases_with_noise():
    x = images(0, (2, 3, 32, 32)) * 0.5 + 0.25
    rng = np.random.default_rng(3)
    noise = rng.normal(size=x.shape)
    scores = [ssim(x, np.clip(x + s * noise, 0, 1)).mean() for s in (0.0, 0.02, 0.05, 0.1, 0.3)]
    assert scores[0] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(scores))


def test_ssim_matches_a_direct_implementation():
    x = images(4, (2, 3, 13, 14))  # odd sizes: 3×4 valid positions
    y = np.clip(x + 0.2 * np.random.default_rng(5).normal(size=x.shape), 0, 1)
    np.testing.assert_allclose(ssim(x, y), ssim_direct(x, y), rtol=1e-10)


def test_window_and_errors():
    w = gaussian_window()
    assert w.shape == (11,) and w.sum() == pytest.approx(1.0) and w.argmax() == 5
    with pytest.raises(ValueError, match="11×11"):
        ssim(images(0, (1, 3, 8, 8)), images(1, (1, 3, 8, 8)))
    with pytest.raises(ValueError, match="shape"):
        mse(images(0), images(0, (3, 3, 16, 16)))


def test_image_metrics_on_model_space():
    x = images(0) * 2 - 1
    np.testing.assert_allclose(to_unit(np.array([-2.0, -1.0, 0.0, 1.0, 3.0])), [0, 0, 0.5, 1, 1])
    same = image_metrics(x, x)
    assert same["mse"]["mean"] == 0 and same["ssim"]["mean"] == pytest.approx(1.0)
    assert same["psnr"]["mean"] == PSNR_CAP_DB and same["psnr"]["n"] == 3
    noisy = image_metrics(x, x + 0.1)
    assert 0 < noisy["mse"]["mean"] < 0.01 and noisy["ssim"]["mean"] < 1
