"""The Triton and CUDA AdaGN kernels on a GPU against the torch twin, and the UNet with kernels on vs off.

Skipped without CUDA. A kernel that cannot run on the GPU machine (triton missing, the CUDA extension does
not build) is skipped with the reason rather than failed: the dispatch falls back to the twin there too.
"""

import pytest
import torch

import diffusegae.kernels as kernels
from diffusegae import build_model, preset
from diffusegae.kernels import adagn_reference

from ..conftest import randomize

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# (shape, groups): odd sizes, the diffae256 kinds of maps, one group, and a large map (split path)
SHAPES = [
    ((3, 96, 7, 5), 32),
    ((4, 6, 5, 3), 3),
    ((2, 128, 32, 32), 32),
    ((1, 512, 8, 8), 32),
    ((1, 128, 128, 128), 32),
]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# max |kernel − twin| / max |twin|; fp16 / bf16: one rounding of the output
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-3, torch.bfloat16: 8e-3}


def _kernel(impl):
    if not kernels.available(impl):
        pytest.skip(f"{impl} kernel unavailable: {kernels._why.get(impl)}")
    if impl == "triton":
        from diffusegae.kernels.triton_adagn import adagn_triton

        return adagn_triton
    from diffusegae.kernels.cuda_adagn import adagn_cuda

    return adagn_cuda


def _inputs(shape, dtype, mode, vector_dtype=None, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    b, c = shape[:2]
    if dtype == torch.float32:  # offset data: mean 1e4, std 0.1
        h = torch.randn(shape, generator=gen, device="cuda") * 0.1 + 1e4
    else:
        h = (torch.randn(shape, generator=gen, device="cuda") * 3 + 5).to(dtype)
    vector_dtype = vector_dtype or dtype
    gamma = (1 + 0.5 * torch.randn(c, generator=gen, device="cuda")).to(vector_dtype)
    beta = (0.5 * torch.randn(c, generator=gen, device="cuda")).to(vector_dtype)
    # [B, 2C] chunks, as the ResBlock's Linear layers produce them
    t_scale, t_shift = (
        (0.3 * torch.randn(b, 2 * c, generator=gen, device="cuda")).to(vector_dtype).chunk(2, 1)
    )
    z_scale, z_shift = (
        (0.3 * torch.randn(b, 2 * c, generator=gen, device="cuda")).to(vector_dtype).chunk(2, 1)
    )
    return h, gamma, beta, t_scale, t_shift, z_scale, z_shift if mode == "scale_shift" else None


def _check(out, ref):
    assert out.dtype == ref.dtype and out.shape == ref.shape
    err = (out.double() - ref.double()).abs().max().item()
    scale = ref.double().abs().max().item()
    assert err <= TOLERANCE[ref.dtype] * scale, (err, scale)


@pytest.mark.parametrize("impl", ["triton", "cuda"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,groups", SHAPES)
@pytest.mark.parametrize("mode", ["scale", "scale_shift"])
def test_kernel_matches_the_twin(impl, dtype, shape, groups, mode):
    kernel = _kernel(impl)
    args = _inputs(shape, dtype, mode)
    silu = mode == "scale_shift"
    ref = adagn_reference(*args, groups=groups, silu=silu)
    _check(kernel(*args, groups=groups, silu=silu), ref)  # the default split for this GPU
    for split in (1, 5):  # both paths, whatever the default picked
        _check(kernel(*args, groups=groups, silu=silu, split=split), ref)


@pytest.mark.parametrize("impl", ["triton", "cuda"])
def test_kernel_takes_fp32_vectors_with_a_half_map(impl):
    """Under autocast the norm's γ, β stay fp32 while h and the Linear outputs are fp16."""
    kernel = _kernel(impl)
    args = _inputs((2, 64, 16, 16), torch.float16, "scale_shift", vector_dtype=torch.float32)
    _check(kernel(*args, groups=32), adagn_reference(*args, groups=32))


def test_dispatch_runs_a_kernel_on_cuda_tensors():
    args = _inputs((2, 64, 8, 8), torch.float16, "scale_shift")
    chosen = kernels.resolve(None, "cuda", torch.float16)
    assert chosen in ("triton", "cuda"), kernels._why
    _check(kernels.adagn(*args, groups=32), adagn_reference(*args, groups=32))
    # autograd recording: the forward-only kernels step aside for the twin, and gradients flow
    h = args[0].float().requires_grad_(True)
    kernels.adagn(h, *args[1:], groups=32).sum().backward()
    assert h.grad is not None


@pytest.mark.parametrize("impl", ["triton", "cuda"])
def test_unet_eps_with_kernels_matches_the_twin_in_fp16(impl, monkeypatch):
    _kernel(impl)
    torch.manual_seed(0)
    unet = randomize(build_model(preset("tiny32"))).unet.eval().cuda().half()
    gen = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(3, 3, 32, 32, generator=gen, device="cuda").half()
    t = torch.tensor([0, 500, 999], device="cuda")
    z = torch.randn(3, 512, generator=gen, device="cuda").half()
    with torch.no_grad():
        monkeypatch.setenv("DIFFUSEGAE_KERNELS", "torch")
        off = unet(x, t, z)
        monkeypatch.setenv("DIFFUSEGAE_KERNELS", impl)
        on = unet(x, t, z)
    assert (on.float() - off.float()).abs().max().item() <= 1e-3
    assert off.float().abs().max().item() > 0.1  # a real output
