"""Tests for the procedural attribute dataset and the GROUP(C, 1) sampler."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffusegae.data import AttributeDataset, Group, GroupSampler

ROOT = Path(__file__).resolve().parents[2]
SEED = 11  # fixed nuisance seed for the attribute-visibility checks


@pytest.fixture(scope="module")
def ds32() -> AttributeDataset:
    return AttributeDataset(resolution=32, seed=0)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def min_pair_distance(images: list[np.ndarray]) -> float:
    return min(mad(a, b) for a, b in itertools.combinations(images, 2))


# ---- API and rendering ---------------------------------------------------------------------------------
def test_attributes_order_and_sizes(ds32: AttributeDataset) -> None:
    assert list(ds32.attributes) == ["identity", "background", "pose"]
    assert ds32.attributes["identity"] == 6 and ds32.attributes["pose"] == 10
    assert ds32.attributes["background"] >= 16


@pytest.mark.parametrize("res", [16, 32, 64, 128])
def test_render_shape_dtype(res: int) -> None:
    ds = AttributeDataset(resolution=res)
    img = ds.render((5, ds.attributes["background"] - 1, 9), seed=123)
    assert img.shape == (res, res, 3) and img.dtype == np.uint8
    assert img.std() > 10  # not blank


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ((6, 0, 0), r"identity.*\[0, 5\]"),
        ((0, -1, 0), r"background.*\[0, "),
        ((0, 0, 10), r"pose.*\[0, 9\]"),
        ((0, 0, 1.5), r"pose"),
        ((0, 0), r"expected 3 values"),
        ((0, 0, 0, 0), r"expected 3 values"),
    ],
)
def test_render_validates(ds32: AttributeDataset, values: tuple, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        ds32.render(values, seed=0)


def test_render_accepts_numpy_and_list(ds32: AttributeDataset) -> None:
    ref = ds32.render((1, 2, 3), seed=4)
    assert np.array_equal(ds32.render(np.array([1, 2, 3]), seed=np.int64(4)), ref)
    assert np.array_equal(ds32.render([1, 2, 3], seed=4), ref)


def test_batch_and_sample(ds32: AttributeDataset) -> None:
    vals = [(0, 0, 0), (3, 7, 9)]
    b = ds32.batch(vals, [1, 2])
    assert b.shape == (2, 32, 32, 3) and b.dtype == np.uint8
    assert np.array_equal(b[1], ds32.render((3, 7, 9), seed=2))
    with pytest.raises(ValueError):
        ds32.batch(vals, [1])
    values, images = ds32.sample(np.random.default_rng(0), split="train", n=5)
    assert values.shape == (5, 3) and values.dtype == np.int64 and images.shape == (5, 32, 32, 3)
    train = set(ds32.split("train"))
    assert all(tuple(v) in train for v in values.tolist())


# ---- determinism ---------------------------------------------------------------------------------------
def test_determinism_same_inputs(ds32: AttributeDataset) -> None:
    a = ds32.render((2, 5, 7), seed=99)
    assert a.tobytes() == ds32.render((2, 5, 7), seed=99).tobytes()
    other = AttributeDataset(resolution=32, seed=0)
    assert a.tobytes() == other.render((2, 5, 7), seed=99).tobytes()
    assert other.split("train") == ds32.split("train") and other.split("test") == ds32.split("test")


def test_determinism_across_processes(ds32: AttributeDataset) -> None:
    code = (
        "import hashlib; from diffusegae.data import AttributeDataset as D; d = D(32, seed=0);"
        "print(hashlib.sha256(d.render((4, 13, 6), seed=5).tobytes()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == hashlib.sha256(ds32.render((4, 13, 6), seed=5).tobytes()).hexdigest()


def test_nuisance_seeds_differ_but_close(ds32: AttributeDataset) -> None:
    n_bg = ds32.attributes["background"]
    for i in range(6):
        vals = (i, (3 * i) % n_bg, i)
        imgs = [ds32.render(vals, seed=s) for s in range(4)]
        for a, b in itertools.combinations(imgs, 2):
            assert 0.0 < mad(a, b) < 40.0
        # Coarsely (4x4 blocks) the jittered images match far better than a different scene does.
        other = ds32.render((i, (3 * i + 1) % n_bg, i), seed=0)

        def coarse(x: np.ndarray) -> np.ndarray:
            return x.astype(np.float32).reshape(8, 4, 8, 4, 3).mean(axis=(1, 3))

        jitter_gap = np.abs(coarse(imgs[0]) - coarse(imgs[1])).mean()
        assert jitter_gap < np.abs(coarse(imgs[0]) - coarse(other)).mean()


# ---- every attribute visibly matters -------------------------------------------------------------------
def test_every_pose_pair_differs_for_every_identity(ds32: AttributeDataset) -> None:
    for bg in (1, 16):
        for i in range(6):
            imgs = [ds32.render((i, bg, p), seed=SEED) for p in range(10)]
            assert min_pair_distance(imgs) > 3.0, (i, bg)


def test_every_background_pair_differs(ds32: AttributeDataset) -> None:
    for i, p in ((0, 0), (3, 4), (5, 7)):
        imgs = [ds32.render((i, b, p), seed=SEED) for b in range(ds32.attributes["background"])]
        assert min_pair_distance(imgs) > 8.0, (i, p)


def test_every_identity_pair_differs(ds32: AttributeDataset) -> None:
    for b in range(ds32.attributes["background"]):
        imgs = [ds32.render((i, b, 2), seed=SEED) for i in range(6)]
        assert min_pair_distance(imgs) > 8.0, b


# ---- split ---------------------------------------------------------------------------------------------
def test_split_properties(ds32: AttributeDataset) -> None:
    train, test = ds32.split("train"), ds32.split("test")
    product = set(itertools.product(*(range(n) for n in ds32.attributes.values())))
    assert len(train) == len(set(train)) and len(test) == len(set(test))
    assert not set(train) & set(test)
    assert set(train) | set(test) == product
    assert len(test) == round(0.2 * len(product))
    for k, n in enumerate(ds32.attributes.values()):
        assert {v[k] for v in train} == set(range(n))
    assert all(isinstance(v, int) for v in train[0])


def test_split_depends_on_seed_only() -> None:
    a, b = AttributeDataset(resolution=16, seed=1), AttributeDataset(resolution=64, seed=1)
    assert a.split("test") == b.split("test")
    assert AttributeDataset(resolution=16, seed=2).split("test") != a.split("test")


def test_unknown_split(ds32: AttributeDataset) -> None:
    with pytest.raises(ValueError, match=r"train.*test|test.*train"):
        ds32.split("val")


# ---- GROUP(C, 1) ---------------------------------------------------------------------------------------
def check_group_values(values: np.ndarray, allowed: set[tuple[int, ...]]) -> None:
    k_attr = values.shape[1]
    assert values.shape == (1 + k_attr, k_attr)
    centre = values[0]
    for k in range(k_attr):
        same = values[1 + k] == centre
        assert same[k] and same.sum() == 1
    assert all(tuple(v) in allowed for v in values.tolist())


@pytest.mark.parametrize("split", ["train", "test"])
def test_group_property_many_draws(ds32: AttributeDataset, split: str) -> None:
    gs = GroupSampler(ds32, split=split, seed=0)
    allowed = set(ds32.split(split))
    for _ in range(500):
        check_group_values(gs.sample_values(), allowed)


def test_group_images_and_seeds(ds32: AttributeDataset) -> None:
    gs = GroupSampler(ds32, split="train", seed=3)
    g = gs.sample()
    assert isinstance(g, Group)
    assert g.values.dtype == np.int64 and g.images.shape == (4, 32, 32, 3) and g.images.dtype == np.uint8
    assert len(set(g.seeds.tolist())) == 4  # every member has its own nuisance seed
    for vals, seed, img in zip(g.values, g.seeds, g.images, strict=True):
        assert np.array_equal(img, ds32.render(tuple(vals), seed=int(seed)))
    batch = gs.sample_batch(6)
    assert batch.values.shape == (6, 4, 3) and batch.images.shape == (6, 4, 32, 32, 3)
    assert batch.seeds.shape == (6, 4)
    allowed = set(ds32.split("train"))
    for vals in batch.values:
        check_group_values(vals, allowed)
    # reproducible from the sampler seed
    again = GroupSampler(ds32, split="train", seed=3)
    assert np.array_equal(again.sample().values, g.values)


def test_group_sampler_skips_centres_without_partners() -> None:
    ds = AttributeDataset(resolution=16, seed=0, test_fraction=0.9)  # sparse split: some centres are stuck
    gs = GroupSampler(ds, split="train", seed=0)
    assert 0 < gs.num_valid_centres <= len(ds.split("train"))
    allowed = set(ds.split("train"))
    for _ in range(200):
        check_group_values(gs.sample_values(), allowed)


def test_pose_marker_is_one_colour_on_every_identity(ds32: AttributeDataset) -> None:
    # On a dark flat scene the marker is the brightest thing; its colour must not tell the identity, or an
    # identity interpolation between two marker colours blends the marker away (and the pose with it).
    brightest = []
    for i in range(6):
        img = AttributeDataset(64).render((i, 0, 0), seed=SEED).reshape(-1, 3).astype(int)
        brightest.append(img[img.sum(1).argmax()])
    assert np.abs(np.array(brightest) - brightest[0]).max() <= 8, brightest
