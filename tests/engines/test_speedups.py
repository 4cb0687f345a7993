"""The opt-in lossy speed-ups: feature reuse across DDIM steps and fewer inversion steps.

Off by default, named when on, refused with a clear message when wrong, and the same on every engine."""

import numpy as np
import pytest
import torch

from diffusegae.checkpoint import load_checkpoint
from diffusegae.engines import Pipeline, Speedups
from diffusegae.engines.onnxruntime_engine import OnnxRuntimeEngine
from diffusegae.engines.torch_engine import TorchEngine
from diffusegae.export.onnx_export import ONNX_REUSE_DIR

ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("ort_cache")


@pytest.fixture(scope="module")
def engines(checkpoint):
    return TorchEngine(load_checkpoint(checkpoint)), OnnxRuntimeEngine(checkpoint, threads=1)


def _inputs(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    return x, np.array([900, 300][:batch], np.int64), rng.standard_normal((batch, 512)).astype(np.float32)


class Counting:
    """An engine that counts whole and outermost-level-only UNet calls."""

    def __init__(self, engine):
        self.engine, self.config, self.calls = engine, engine.config, []

    def eps(self, *a):
        self.calls.append("eps")
        return self.engine.eps(*a)

    def eps_and_deep(self, *a):
        self.calls.append("whole")
        return self.engine.eps_and_deep(*a)

    def eps_from_deep(self, *a):
        self.calls.append("outer")
        return self.engine.eps_from_deep(*a)

    def __getattr__(self, name):
        return getattr(self.engine, name)


def test_the_split_unet_is_the_unet(tiny_model):
    x, t, z = (torch.from_numpy(a) for a in _inputs())
    with torch.no_grad():
        eps = tiny_model.unet(x, t, z)
        whole, deep = tiny_model.unet.eps_and_deep(x, t, z)
        outer = tiny_model.unet.eps_from_deep(x, t, z, deep)  # the step's own deep feature: nothing reused
    torch.testing.assert_close(whole, eps, rtol=0, atol=0)
    torch.testing.assert_close(outer, eps, rtol=1e-5, atol=1e-6)
    assert deep.shape == (2, 64, 32, 32)  # tiny32: level 1's 64 channels at full resolution


def test_onnxruntime_split_graphs_match_torch(engines, checkpoint):
    torch_engine, ort_engine = engines
    x, t, z = _inputs()
    eps_t, deep_t = torch_engine.eps_and_deep(x, t, z)
    eps_o, deep_o = ort_engine.eps_and_deep(x, t, z)
    np.testing.assert_allclose(eps_o, eps_t, atol=ATOL)
    np.testing.assert_allclose(deep_o, deep_t, atol=ATOL)
    x2, t2, _ = _inputs(seed=1)
    np.testing.assert_allclose(
        ort_engine.eps_from_deep(x2, t2, z, deep_t), torch_engine.eps_from_deep(x2, t2, z, deep_t), atol=ATOL
    )
    assert (checkpoint / ONNX_REUSE_DIR / "unet_shallow.onnx").is_file()


def test_split_graphs_follow_a_chosen_onnx_dir_and_save_optimized(checkpoint, tmp_path):
    engine = OnnxRuntimeEngine(checkpoint, threads=1, onnx_dir=tmp_path, save_optimized=True)
    engine.eps_and_deep(*_inputs(batch=1))
    assert (tmp_path / "reuse" / "unet_shallow.onnx").is_file()
    assert (tmp_path / "reuse" / "unet_deep.all.opt.onnx").is_file()


@pytest.mark.parametrize("every, pattern", [(2, "whole outer " * 5), (3, "whole outer outer " * 3 + "whole")])
def test_feature_reuse_runs_the_whole_unet_every_nth_step(engines, every, pattern):
    counting = Counting(engines[0])
    pipe = Pipeline(counting, speedups=Speedups(feature_reuse=every))
    x, _, z = _inputs()
    pipe.decode(x, z, steps=10)
    assert counting.calls == pattern.split()


def test_feature_reuse_is_off_by_default_and_changes_the_result_when_on(engines):
    x, _, z = _inputs()
    exact = Pipeline(engines[0]).decode(x, z, steps=10)
    counting = Counting(engines[0])
    assert np.array_equal(Pipeline(counting).decode(x, z, steps=10), exact)
    assert set(counting.calls) == {"eps"}
    reused = {name: Pipeline(e, speedups=Speedups(feature_reuse=2)).decode(x, z, steps=10)
              for name, e in zip(("torch", "onnxruntime"), engines, strict=True)}  # fmt: skip
    np.testing.assert_allclose(reused["onnxruntime"], reused["torch"], atol=ATOL)
    assert np.abs(reused["torch"] - exact).max() > 1e-3  # the steps between really reuse a stale feature


def test_feature_reuse_follows_samples_that_finish_early(engines):
    """A batch mixing S=4 and S=10: each sample's result is what it gets alone."""
    pipe = Pipeline(engines[0], speedups=Speedups(feature_reuse=2))
    x, _, z = _inputs()
    from diffusegae.engines import ddim_loop

    mixed = ddim_loop.run(engines[0], x, z, np.array([4, 10]), False, reuse=2)
    for i, steps in enumerate((4, 10)):
        np.testing.assert_allclose(mixed[i], pipe.decode(x[i : i + 1], z[i : i + 1], steps)[0], atol=1e-5)


def test_invert_steps_inverts_with_fewer_steps(engines):
    torch_engine = engines[0]
    rng = np.random.default_rng(2)
    src, ref = (rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32) for _ in range(2))
    fast = Pipeline(torch_engine, speedups=Speedups(invert_steps=4))
    exact = Pipeline(torch_engine)
    z = torch_engine.encode(np.concatenate([src, ref]))
    expected = exact.decode(exact.invert(src, z[:1], 4), exact.swap_codes(z[:1], z[1:], ["pose"]), 8)
    np.testing.assert_allclose(fast.edit(src, ref, ["pose"], steps=8), expected, atol=1e-6)
    assert np.abs(exact.edit(src, ref, ["pose"], steps=8) - expected).max() > 1e-4


def test_a_pipeline_names_every_lossy_setting_and_none_is_on_by_default(engines, tiny_model):
    assert Pipeline(engines[0]).modes() == {} and Pipeline(engines[1]).modes() == {}
    bf16 = TorchEngine(tiny_model, dtype="bfloat16")
    modes = Pipeline(bf16, speedups=Speedups(feature_reuse=2)).modes()
    assert modes == {"feature_reuse": 2, "dtype": "bfloat16"}


def test_speedups_are_named_when_on_and_refused_when_wrong(engines):
    assert Speedups().active() == {}
    assert Speedups(feature_reuse=2, invert_steps=10).active() == {"feature_reuse": 2, "invert_steps": 10}
    assert Speedups(invert_steps=10).active() == {"invert_steps": 10}
    with pytest.raises(ValueError, match="reuse must be a whole number of steps ≥ 1"):
        Pipeline(engines[0], speedups=Speedups(feature_reuse=0))
    with pytest.raises(ValueError, match="steps"):
        Pipeline(engines[0], speedups=Speedups(invert_steps=0))

    class EpsOnly:
        config = engines[0].config

        def eps(self, *a):
            raise AssertionError("not called")

    with pytest.raises(ValueError, match="feature reuse needs an engine with eps_and_deep"):
        Pipeline(EpsOnly(), speedups=Speedups(feature_reuse=2))
