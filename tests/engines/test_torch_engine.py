import copy
import time

import numpy as np
import pytest
import torch

from diffusegae.engines import Engine
from diffusegae.engines.torch_engine import CUDAGraphed, TorchEngine

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _inputs(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch, 3, 32, 32)).astype(np.float32)
    t = np.array([0, 500, 999, 1, 250][:batch], np.int64)  # mixed steps in one call
    z = rng.standard_normal((batch, 512)).astype(np.float32)
    return x, t, z


def test_default_engine_equals_the_model_exactly(tiny_model):
    engine = TorchEngine(tiny_model)
    assert isinstance(engine, Engine)
    x, t, z = _inputs(3)
    with torch.inference_mode():
        z_sem = tiny_model.encoder(torch.from_numpy(x))
        eps = tiny_model.unet(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(z))
        z_dis = tiny_model.gae.encode(z_sem)
        z_back = tiny_model.gae.decode(z_dis)
    for out, ref in [
        (engine.encode(x), z_sem),
        (engine.eps(x, t, z), eps),
        (engine.gae_encode(z_sem.numpy()), z_dis),
        (engine.gae_decode(z_dis.numpy()), z_back),
    ]:
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, ref.numpy())


def test_warmup_runs_every_component_per_batch_size(tiny_model):
    seconds = TorchEngine(tiny_model).warmup([1, 2])
    assert list(seconds) == ["encoder", "gae_encode", "gae_decode", "unet"]
    assert all(list(per_batch) == [1, 2] and min(per_batch.values()) > 0 for per_batch in seconds.values())


@pytest.mark.parametrize("dtype", [torch.float16, "float16"])
def test_float16_needs_cuda(tiny_model, dtype):
    with pytest.raises(ValueError, match=r"needs a CUDA device.*torch\.bfloat16"):
        TorchEngine(tiny_model, dtype=dtype)


def test_bf16_on_cpu_is_close_to_fp32_and_leaves_the_model_fp32(tiny_model):
    eager, bf16 = TorchEngine(tiny_model), TorchEngine(tiny_model, dtype="bfloat16")
    assert next(tiny_model.parameters()).dtype == torch.float32
    x, t, z = _inputs(2)
    exact, reduced = eager.eps(x, t, z), bf16.eps(x, t, z)
    assert reduced.dtype == np.float32
    err = float(np.abs(reduced - exact).max() / np.abs(exact).max())
    assert 0 < err <= 0.05, err  # bf16 keeps 8 bits of mantissa: close, and not bit-equal
    z_bf16, z_exact = bf16.encode(x), eager.encode(x)
    assert float(np.abs(z_bf16 - z_exact).max() / np.abs(z_exact).max()) <= 0.05


def test_cuda_graphs_need_cuda_and_dtypes_are_checked(tiny_model):
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device"):
        TorchEngine(tiny_model, cuda_graphs=True)
    with pytest.raises(ValueError, match=r"torch\.float32, torch\.float16, torch\.bfloat16"):
        TorchEngine(tiny_model, dtype=torch.int8)
    with pytest.raises(ValueError, match=r"torch\.float32, torch\.float16, torch\.bfloat16"):
        TorchEngine(tiny_model, dtype="fp16")
    assert TorchEngine(tiny_model, dtype=torch.float32).dtype == torch.float32


@pytest.mark.slow
def test_compiled_eps_matches_eager_on_cpu(tiny_model):
    """Inductor's CPU backend (needs a C++ compiler). Cold cache ≈ 40 s on 2 cores: one odd batch size."""
    eager = TorchEngine(tiny_model)
    compiled = TorchEngine(tiny_model, compile=True)
    for batch in (3,):
        x, t, z = _inputs(batch, seed=batch)
        start = time.perf_counter()
        out = compiled.eps(x, t, z)
        seconds = time.perf_counter() - start
        err = float(np.abs(out - eager.eps(x, t, z)).max())
        print(f"batch {batch}: compile + first eps call {seconds:.1f} s, max abs error vs eager {err:.1e}")
        assert out.shape == x.shape and err <= 1e-4, err


@needs_cuda
@pytest.mark.gpu
def test_fp16_cuda_graphs_match_fp32_eager():
    from diffusegae import build_model, preset

    from ..conftest import randomize

    torch.manual_seed(0)
    model = randomize(build_model(preset("tiny32"))).eval()
    eager = TorchEngine(model, device="cuda")
    fast = TorchEngine(model, device="cuda", dtype=torch.float16, cuda_graphs=True)
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is not cast
    for batch in (1, 3, 1, 3):  # repeated shapes replay the captured graphs
        x, t, z = _inputs(batch, seed=batch)
        err = float(np.abs(fast.eps(x, t, z) - eager.eps(x, t, z)).max())
        assert err <= 1e-2, (batch, err)
        assert float(np.abs(fast.encode(x) - eager.encode(x)).max()) <= 1e-2
    assert isinstance(fast._unet, CUDAGraphed) and len(fast._unet.graphs) == 2


@needs_cuda
@pytest.mark.gpu
def test_bf16_runs_on_cuda(tiny_model):
    engine = TorchEngine(copy.deepcopy(tiny_model), device="cuda", dtype=torch.bfloat16)
    x, t, z = _inputs(2)
    eps = engine.eps(x, t, z)
    assert eps.dtype == np.float32 and np.isfinite(eps).all()
