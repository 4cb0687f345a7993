import numpy as np
import pytest

from diffusegae.data import AttributeDataset
from diffusegae.eval.probes import fit_probe, probe_matrix, sample_probe_images, split_indices

ATTRIBUTES = {"identity": 6, "background": 20, "pose": 10}
WIDTHS = {"identity": 60, "background": 20, "pose": 20}
N = 600


def labels(rng: np.random.Generator) -> np.ndarray:
    return np.stack([rng.integers(0, n, N) for n in ATTRIBUTES.values()], axis=1)


def test_probe_matrix_is_identity_like_when_each_chunk_encodes_one_attribute():
    rng = np.random.default_rng(0)
    values = labels(rng)
    features = {}
    for j, (name, n) in enumerate(ATTRIBUTES.items()):
        codebook = rng.normal(size=(n, WIDTHS[name]))  # attribute j, linearly, in chunk j only
        features[name] = codebook[values[:, j]] + 0.3 * rng.normal(size=(N, WIDTHS[name]))
    result = probe_matrix(features, values, ATTRIBUTES)
    assert result["n_train"] == 480 and result["n_test"] == 120
    for row, accs in result["rows"].items():
        for attr, acc in accs.items():
            if row == attr:
                assert acc >= 0.95, (row, attr, acc)
            else:
                assert abs(acc - result["chance"][attr]) < 0.1, (row, attr, acc)


def test_random_features_score_chance():
    rng = np.random.default_rng(1)
    values = labels(rng)
    result = probe_matrix({"noise": rng.normal(size=(N, 512))}, values, ATTRIBUTES)
    for attr, acc in result["rows"]["noise"].items():
        assert abs(acc - 1 / ATTRIBUTES[attr]) < 0.1, (attr, acc)


def test_fit_probe_separable_and_constant_features():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 90)
    x = np.concatenate([np.eye(3)[y] * 5 + rng.normal(size=(90, 3)) * 0.1, np.ones((90, 1))], axis=1)
    probe = fit_probe(x, y, 3)
    assert (probe.predict(x) == y).all()
    assert np.isfinite(probe.weight).all()


def test_split_and_sampling():
    train, test = split_indices(10, 0.8, 0)
    assert len(train) == 8 and sorted([*train, *test]) == list(range(10))
    with pytest.raises(ValueError, match="probe samples"):
        split_indices(1, 0.8, 0)
    ds = AttributeDataset(16, 0)
    values, imgs = sample_probe_images(ds, 12, 0)
    assert values.shape == (12, 3) and imgs.shape == (12, 16, 16, 3) and imgs.dtype == np.uint8
    again, _ = sample_probe_images(ds, 12, 0)
    np.testing.assert_array_equal(values, again)
