"""Latent-code math: masks, swap, recombine, interpolate and broadcasting, the same on numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusegae import preset
from diffusegae.diffusion import seeded_noise
from diffusegae.latents import (
    attribute_mask,
    chunk_masks,
    interpolate,
    interpolate_noise,
    noise_for_seeds,
    one_for_each,
    reassemble,
    recombine,
    swap,
)

CHUNKS = [slice(0, 6), slice(6, 8), slice(8, 10)]  # three attributes, z_dis width 10
WIDTH = 10
GAE = preset("tiny32").gae


def test_swap_and_reassemble() -> None:
    masks = chunk_masks(CHUNKS, WIDTH)
    a, b = torch.zeros(2, WIDTH), torch.ones(2, WIDTH)
    assert swap(a, b, masks[1]).sum(1).tolist() == [2.0, 2.0]
    parts = [torch.full((1, WIDTH), float(k + 1)) for k in range(3)]
    assert reassemble(torch.zeros(1, WIDTH), parts, masks).tolist() == [[1.0] * 6 + [2.0] * 2 + [3.0] * 2]
    with pytest.raises(ValueError, match="overlap"):
        chunk_masks([slice(0, 4), slice(3, 6)], WIDTH)


def test_attribute_masks_name_the_chunks() -> None:
    mask = attribute_mask(GAE, ["background", "pose"])
    assert mask.dtype == bool and mask.shape == (100,)
    assert not mask[:60].any() and mask[60:].all()
    with pytest.raises(ValueError, match="identity, background, pose"):
        attribute_mask(GAE, ["hair"])


def test_numpy_and_torch_give_the_same_codes() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 100)).astype(np.float32), rng.standard_normal((3, 100)).astype(np.float32)
    mask = attribute_mask(GAE, ["pose"])
    rows = np.stack([mask, ~mask, mask])  # one mask per row
    alpha = np.array([0.0, 0.5, 1.0])
    for op in (lambda x, y: swap(x, y, rows), lambda x, y: interpolate(x, y, alpha, rows)):
        np.testing.assert_allclose(op(torch.from_numpy(a), torch.from_numpy(b)).numpy(), op(a, b), atol=1e-6)
    mid = interpolate(a, b, 0.5, mask)
    np.testing.assert_allclose(mid[:, mask], (a[:, mask] + b[:, mask]) / 2, atol=1e-6)
    np.testing.assert_array_equal(mid[:, ~mask], a[:, ~mask])
    np.testing.assert_array_equal(interpolate(a, b, alpha, rows)[2, mask], b[2, mask])


def test_recombine_takes_each_chunk_from_its_code() -> None:
    codes = {name: np.full((2, 100), float(i + 1), np.float32) for i, name in enumerate(GAE.attribute_names)}
    mixed = recombine(codes, GAE)
    assert (
        mixed[:, :60].tolist() == [[1.0] * 60] * 2
        and (mixed[:, 60:80] == 2).all()
        and (mixed[:, 80:] == 3).all()
    )
    with pytest.raises(ValueError, match=r"missing \['pose'\]"):
        recombine({k: v for k, v in codes.items() if k != "pose"}, GAE)


def test_one_reference_serves_every_source() -> None:
    ref = np.arange(6.0).reshape(1, 6)
    assert one_for_each(ref, 3).shape == (3, 6) and (one_for_each(ref, 3) == ref).all()
    assert one_for_each(np.zeros((3, 6)), 3).shape == (3, 6)
    t = one_for_each(torch.ones(1, 4), 2)
    t[0, 0] = 5.0  # a real copy, not a view of the reference
    assert t[1, 0] == 1.0
    with pytest.raises(ValueError, match="reference has 2 rows for 3 sources; send one reference or one per"):
        one_for_each(np.zeros((2, 6)), 3)


def test_noise_for_seeds_is_the_pipelines_noise_per_seed() -> None:
    x = noise_for_seeds(np.array([4, 4, 9]), 8)
    np.testing.assert_array_equal(x[:2], seeded_noise(3, 8, 4)[:2])
    np.testing.assert_array_equal(x[2], seeded_noise(3, 8, 9)[2])
    a, b = seeded_noise(2, 8, 0), seeded_noise(2, 8, 1)
    np.testing.assert_allclose(interpolate_noise(a, b, 0.0), a, atol=1e-5)
