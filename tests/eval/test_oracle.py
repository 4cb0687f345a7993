import numpy as np

from diffusegae.data import AttributeDataset
from diffusegae.eval.oracle import (
    AttributeOracle,
    OracleSettings,
    load_or_train_oracle,
    oracle_paths,
    save_oracle,
    train_oracle,
)

# A short run at 32×32 (≈ 6 s on one thread); the full default (600 steps) is measured by `diffusegae eval`.
SHORT = OracleSettings(steps=150, batch_size=32, pool=1024, eval_images=400, width=16)


def test_oracle_learns_every_attribute_and_caches(tmp_path):
    ds = AttributeDataset(32, 0)
    oracle, info = train_oracle(ds, SHORT)
    for name, acc in info["heldout_accuracy"].items():
        assert acc >= 0.9, (name, acc)
    assert info["resolution"] == 32 and info["dataset_seed"] == 0

    save_oracle(oracle, info, tmp_path)
    assert all(p.is_file() for p in oracle_paths(tmp_path, 32))
    cached, cached_info = load_or_train_oracle(tmp_path, ds, SHORT)
    assert cached_info["cached"] is True
    _, imgs = ds.sample(np.random.default_rng(7), "test", 20)
    np.testing.assert_array_equal(cached.predict(imgs), oracle.predict(imgs))


def test_oracle_retrains_on_other_settings(tmp_path):
    ds = AttributeDataset(16, 0)
    tiny = OracleSettings(steps=2, batch_size=8, pool=16, eval_images=8, width=8)
    _, first = load_or_train_oracle(tmp_path, ds, tiny)
    _, again = load_or_train_oracle(tmp_path, ds, tiny)
    _, other = load_or_train_oracle(
        tmp_path, ds, OracleSettings(steps=3, batch_size=8, pool=16, eval_images=8, width=8)
    )
    assert (first["cached"], again["cached"], other["cached"]) == (False, True, False)


def test_oracle_shapes_at_other_resolutions():
    for res in (16, 64):
        oracle = AttributeOracle(res, {"a": 3, "b": 5}, width=8)
        pred = oracle.predict(np.zeros((3, res, res, 3), np.uint8))
        assert pred.shape == (3, 2) and pred.dtype == np.int64
    assert oracle.predict(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 2)
