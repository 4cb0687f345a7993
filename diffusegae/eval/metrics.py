"""Image-quality metrics of Diff-AE's Table 2, per image, on float images in [0, 1] laid out [B,C,H,W].

SSIM follows Wang et al. (2004) as Diff-AE computes it (pytorch_msssim): an 11×11 Gaussian window with
σ = 1.5, 'valid' filtering (no padding), K1 = 0.01, K2 = 0.03, the SSIM map averaged over space per channel
and then over channels. PSNR is capped at PSNR_CAP_DB: identical images give the cap, not infinity, so every
number stays finite in JSON.
"""

from __future__ import annotations

import numpy as np

PSNR_CAP_DB = 100.0  # = the PSNR of MSE 1e-10 on [0, 1] images
WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two [B,C,H,W] arrays of one shape, got {x.shape} and {y.shape}")
    return x, y


def to_unit(x_model: np.ndarray) -> np.ndarray:
    """Model space [-1, 1] → [0, 1] (clipped), the range every metric here expects."""
    return np.clip((np.asarray(x_model, np.float64) + 1.0) * 0.5, 0.0, 1.0)


def mse(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean squared error per image: [B]."""
    x, y = _pair(x, y)
    return ((x - y) ** 2).mean(axis=(1, 2, 3))


def psnr_from_mse(err: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """PSNR = 10·log10(L² / MSE) in dB, capped at PSNR_CAP_DB (so MSE 0 gives the cap)."""
    err = np.asarray(err, np.float64)
    floor = data_range**2 * 10.0 ** (-PSNR_CAP_DB / 10.0)
    return 10.0 * np.log10(data_range**2 / np.maximum(err, floor))


def psnr(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """PSNR per image: [B]."""
    return psnr_from_mse(mse(x, y), data_range)


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian; the 2-D window is its outer product with itself."""
    coords = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter(a: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Separable 'valid' Gaussian filtering over the last two axes: [..., H, W] → [..., H-k+1, W-k+1]."""
    k = len(win)
    rows = np.lib.stride_tricks.sliding_window_view(a, k, axis=-2) @ win
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=-1) @ win


def ssim(
    x: np.ndarray,
    y: np.ndarray,
    data_range: float = 1.0,
    size: int = WINDOW_SIZE,
    sigma: float = WINDOW_SIGMA,
) -> np.ndarray:
    """Structural similarity per image: [B], in [-1, 1]; 1 only for identical images."""
    x, y = _pair(x, y)
    if min(x.shape[-2:]) < size:
        raise ValueError(f"SSIM needs images of at least {size}×{size}, got {x.shape[-2:]}")
    win = gaussian_window(size, sigma)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = _filter(x, win), _filter(y, win)
    # σ² = E[x²] − μ² under the window (the biased estimate, as in the reference implementations)
    var_x = _filter(x * x, win) - mu_x**2
    var_y = _filter(y * y, win) - mu_y**2
    cov = _filter(x * y, win) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
    per_channel = (luminance * contrast_structure).mean(axis=(-2, -1))  # [B, C]
    return per_channel.mean(axis=1)


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean and (population) standard deviation over images, as plain floats for JSON."""
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()), "n": int(values.size)}


def image_metrics(reference: np.ndarray, output: np.ndarray) -> dict[str, dict[str, float]]:
    """MSE, PSNR and SSIM of model-space images (float [-1, 1], [B,3,H,W]), computed on [0, 1]."""
    ref, out = to_unit(reference), to_unit(output)
    err = mse(ref, out)
    return {
        "mse": summarize(err),
        "psnr": summarize(psnr_from_mse(err)),
        "ssim": summarize(ssim(ref, out)),
    }
