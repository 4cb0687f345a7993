"""The inversion cache: a hit only for the same checkpoint, image, z_sem, step count and sampler; bounded;
safe under concurrent use."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from diffusegae.engines.xt_cache import XTCache, checkpoint_identity


def _row(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (3, 8, 8)).astype(np.float32), rng.standard_normal(16).astype(np.float32)


def test_only_the_same_image_checkpoint_steps_and_sampler_hit():
    cache = XTCache(1 << 20, "ck-a")
    x, z = _row(0)
    key = cache.key(x, z, 20, "ddim")
    x_t = np.arange(192, dtype=np.float32).reshape(3, 8, 8)
    cache.put(key, x_t)
    got = cache.get(cache.key(x.copy(), z.copy(), 20, "ddim"))
    np.testing.assert_array_equal(got, x_t)
    assert not got.flags.writeable  # a caller cannot change what the next hit returns
    other_image = x.copy()
    other_image[0, 0, 0] += 1e-6
    misses = [
        cache.key(other_image, z, 20, "ddim"),
        cache.key(x, z + 1e-6, 20, "ddim"),
        cache.key(x, z, 10, "ddim"),
        cache.key(x, z, 20, "dpmpp2m"),
        cache.key(x.astype(np.float64), z, 20, "ddim"),
        XTCache(1 << 20, "ck-b").key(x, z, 20, "ddim"),
    ]
    assert all(cache.get(k) is None for k in misses) and len(set(misses)) == len(misses)
    assert (cache.hits, cache.misses) == (1, len(misses))


def test_the_checkpoint_identity_changes_with_its_weights(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"1234")
    before = checkpoint_identity(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"12345")
    assert checkpoint_identity(tmp_path) != before


def test_it_is_bounded_and_evicts_the_least_recently_used():
    x_t = np.zeros(256, np.float32)  # 1 KiB each
    cache = XTCache(3 * x_t.nbytes, "ck")
    for name in "abc":
        cache.put(name, x_t)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", x_t)
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 3
    assert cache.nbytes == 3 * x_t.nbytes
    cache.put("huge", np.zeros(4096, np.float32))  # larger than the whole cache: not kept
    assert cache.get("huge") is None and cache.nbytes <= cache.max_bytes
    with pytest.raises(ValueError, match="must not be negative"):
        XTCache(-1, "ck")


def test_concurrent_users_see_whole_entries_and_the_bound_holds():
    cache = XTCache(64 * 1024, "ck")
    errors = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(300):
            n = int(rng.integers(40))
            key = f"k{n}"
            cache.put(key, np.full(512, n, np.float32))
            got = cache.get(key)
            if got is not None and not (got == n).all():
                errors.append((key, got[:3]))
            if cache.nbytes > cache.max_bytes:
                errors.append(("over", cache.nbytes))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) <= 32
