"""The AdaGN dispatch and the custom op on CPU: what runs where, the fallbacks, what is never imported."""

import logging
import os
import subprocess
import sys

import pytest
import torch

import diffusegae.kernels as kernels
from diffusegae.kernels import adagn, adagn_reference, resolve


def _args(batch=2, channels=8, shift=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, channels, 5, 3, generator=gen) * 2 + 3
    gamma, beta = torch.randn(channels, generator=gen), torch.randn(channels, generator=gen)
    vectors = [torch.randn(batch, channels, generator=gen) * 0.3 for _ in range(4)]
    return (h, gamma, beta, *vectors[:3], vectors[3] if shift else None)


@pytest.fixture
def fresh_state(monkeypatch):
    """Empty availability and once-only log caches, restored after the test."""
    monkeypatch.setattr(kernels, "_available", {})
    monkeypatch.setattr(kernels, "_why", {})
    monkeypatch.setattr(kernels, "_logged", set())


def test_cpu_always_runs_the_twin(fresh_state, caplog):
    args = _args()
    expected = adagn_reference(*args, groups=4)
    with caplog.at_level(logging.DEBUG, logger="diffusegae.kernels"):
        assert torch.equal(adagn(*args, groups=4), expected)  # automatic: the twin, silently
        assert caplog.records == []
        for impl in ("triton", "cuda"):  # an explicit kernel on CPU tensors falls back, with one warning each
            assert torch.equal(adagn(*args, groups=4, impl=impl), expected)
            assert torch.equal(adagn(*args, groups=4, impl=impl), expected)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"AdaGN {impl}: running the torch twin (kernels run on CUDA tensors, got cpu)"
        for impl in ("triton", "cuda")
    ]
    assert kernels._available == {}  # nothing was imported or built to find that out


def test_resolve_on_cuda_prefers_triton_then_cuda_then_the_twin(fresh_state, monkeypatch, caplog):
    state = {"triton": True, "cuda": True}
    monkeypatch.setattr(kernels, "available", lambda name: state[name])
    fp16 = torch.float16
    assert resolve(None, "cuda", fp16) == "triton"
    assert resolve("cuda", "cuda", fp16) == "cuda"
    assert resolve("torch", "cuda", fp16) == "torch"
    state["triton"] = False
    assert resolve(None, "cuda", torch.bfloat16) == "cuda"
    assert resolve("triton", "cuda", fp16) == "torch"  # asked for, unavailable: the twin
    state["cuda"] = False
    kernels._why.update(triton="ImportError: no triton", cuda="RuntimeError: nvcc failed")
    with caplog.at_level(logging.DEBUG, logger="diffusegae.kernels"):
        assert resolve(None, "cuda", torch.float32) == "torch"
    assert "triton: ImportError: no triton; cuda: RuntimeError: nvcc failed" in caplog.text


@pytest.mark.parametrize(
    "requested,dtype,needs_grad,reason",
    [
        ("triton", torch.float64, False, "kernels take fp32 / fp16 / bf16, got torch.float64"),
        ("cuda", torch.float16, True, "kernels are forward-only and autograd is recording"),
    ],
)
def test_resolve_falls_back_where_kernels_cannot_run(
    fresh_state, monkeypatch, caplog, requested, dtype, needs_grad, reason
):
    monkeypatch.setattr(kernels, "available", lambda name: True)
    with caplog.at_level(logging.WARNING, logger="diffusegae.kernels"):
        assert resolve(requested, "cuda", dtype, needs_grad) == "torch"
    assert caplog.records[0].getMessage() == f"AdaGN {requested}: running the torch twin ({reason})"


def test_available_rejects_unknown_names_and_needs_cuda_for_the_cuda_kernel(fresh_state):
    with pytest.raises(ValueError, match="triton, cuda"):
        kernels.available("cudnn")
    if not torch.cuda.is_available():
        assert kernels.available("cuda") is False
        assert "needs a CUDA device" in kernels._why["cuda"]


def test_custom_op_is_the_twin_on_cpu_and_passes_opcheck():
    for shift in (True, False):
        args = _args(shift=shift, seed=1)
        out = torch.ops.diffusegae.adagn(*args, 4, 1e-5, True, "torch")
        torch.testing.assert_close(out, adagn_reference(*args, groups=4), rtol=0, atol=0)
        torch.library.opcheck(torch.ops.diffusegae.adagn.default, (*args, 4, 1e-5, True, "torch"))
    with pytest.raises(ValueError, match="torch, triton, cuda"):
        torch.ops.diffusegae.adagn(*_args(), 4, 1e-5, True, "cudnn")


def test_gradients_flow_through_the_dispatch():
    h, gamma, beta, *vectors = _args()
    h.requires_grad_(True)
    gamma.requires_grad_(True)
    adagn(h, gamma, beta, *vectors, groups=4).square().sum().backward()
    assert h.grad is not None and gamma.grad is not None and h.grad.abs().sum() > 0


def test_cpu_paths_never_import_triton_or_build(tmp_path):
    # A `triton` that fails on import comes first on the path: a model forward, the dispatch asked for
    # triton, and importing the exporter and the server's engines must all run without touching it.
    (tmp_path / "triton.py").write_text("raise AssertionError('triton was imported')\n")
    code = (
        "import sys, torch\n"
        "from diffusegae import build_model, preset\n"
        "import diffusegae.export.onnx_export, diffusegae.engines.onnxruntime_engine\n"
        "from diffusegae.kernels import adagn\n"
        "m = build_model(preset('tiny32')).eval()\n"
        "x = torch.randn(1, 3, 32, 32)\n"
        "with torch.no_grad():\n"
        "    m.unet(x, torch.zeros(1, dtype=torch.long), torch.randn(1, 512))\n"
        "    v = torch.zeros(1, 32)\n"
        "    adagn(torch.randn(1, 32, 2, 2), torch.ones(32), torch.zeros(32), v, v, v, impl='triton')\n"
        "assert 'triton' not in sys.modules and 'diffusegae.kernels.triton_adagn' not in sys.modules\n"
        "assert 'diffusegae.kernels.cuda_adagn' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DIFFUSEGAE_KERNELS": "triton"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_groups_are_split_only_when_they_leave_sms_idle():
    from diffusegae.kernels.common import MAX_SPLIT, MIN_SPLIT_CHUNK, choose_split

    assert choose_split(bg=2048, group_size=1 << 20, sm_count=132) == 1  # batch 64 × 32 groups: full GPU
    assert choose_split(bg=32, group_size=1024, sm_count=132) == 1  # small groups: not worth a split
    big = 4 * 65536  # diffae256 at batch 1: 128 channels / 32 groups × 256×256
    split = choose_split(bg=32, group_size=big, sm_count=132)
    assert 32 * split >= 4 * 132 and split <= MAX_SPLIT  # ~4 programs per SM
    assert (
        choose_split(bg=1, group_size=3 * MIN_SPLIT_CHUNK, sm_count=132) == 3
    )  # chunks stay ≥ MIN_SPLIT_CHUNK
    assert choose_split(bg=1, group_size=1 << 30, sm_count=132) == MAX_SPLIT
    assert choose_split(bg=0, group_size=0, sm_count=132) == 1
