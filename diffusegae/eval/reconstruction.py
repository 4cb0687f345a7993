"""Reconstruction quality (Diff-AE Table 2): MSE, PSNR and SSIM of held-out images decoded from their z_sem,
with the inferred x_T (encode → DDIM inversion → decode) and with a random x_T (seeded N(0, I)), at several
step counts S. Metrics are per image on [0, 1] images; the report gives mean ± std over images.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from diffusegae.engines.pipeline import Pipeline
from diffusegae.eval.metrics import image_metrics

X_T_MODES = ("inferred", "random")


def batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def encode_all(pipe: Pipeline, x0: np.ndarray, batch_size: int) -> np.ndarray:
    """z_sem [N, 512] of model-space x0, encoded batch by batch."""
    return np.concatenate([pipe.encode(x0[p]) for p in batches(len(x0), batch_size)])


def reconstruct_all(
    pipe: Pipeline, x0: np.ndarray, steps: int, mode: str, seed: int, batch_size: int
) -> np.ndarray:
    """Reconstructions of model-space x0 in batches.

    mode "random" decodes from x_T = pipe.noise(len(x0), seed), drawn once for all images, so the numbers do
    not depend on the batch size (pipe.reconstruct(seed=...) would draw per batch).
    """
    if mode not in X_T_MODES:
        raise ValueError(f"unknown x_T mode {mode!r}; choose from {', '.join(X_T_MODES)}")
    noise = pipe.noise(len(x0), seed) if mode == "random" else None
    out = []
    for part in batches(len(x0), batch_size):
        if noise is None:
            out.append(pipe.reconstruct(x0[part], steps=steps))
        else:
            out.append(pipe.decode(noise[part], pipe.encode(x0[part]), steps))
    return np.concatenate(out)


def evaluate_reconstruction(
    pipe: Pipeline, x0: np.ndarray, steps: Sequence[int], seed: int = 0, batch_size: int = 32
) -> tuple[list[dict[str, Any]], dict[tuple[int, str], np.ndarray]]:
    """One row per (S, x_T mode): {"steps", "x_T", "mse", "psnr", "ssim", "seconds"} (metrics: mean/std/n),
    and the reconstructions themselves keyed by (S, mode)."""
    rows, outputs = [], {}
    for s in steps:
        for mode in X_T_MODES:
            start = time.perf_counter()
            recon = reconstruct_all(pipe, x0, s, mode, seed, batch_size)
            seconds = time.perf_counter() - start
            rows.append(
                {"steps": int(s), "x_T": mode, **image_metrics(x0, recon), "seconds": round(seconds, 2)}
            )
            outputs[int(s), mode] = recon
    return rows, outputs
