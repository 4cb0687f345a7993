import pytest
import torch
import torch.nn.functional as F

from diffusegae.kernels import adagn


def _chain(h, gamma, beta, ts, tb, zs, zb, groups, silu):
    """AdaGN written op by op from the definition in DESIGN.md, in float64."""
    b = h.shape[0]
    g = h.double().reshape(b, groups, -1)
    g = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + 1e-5)
    out = g.reshape(h.shape) * gamma.double()[:, None, None] + beta.double()[:, None, None]
    out = out * (1 + ts.double()[..., None, None]) + tb.double()[..., None, None]
    out = out * (1 + zs.double()[..., None, None])
    if zb is not None:
        out = out + zb.double()[..., None, None]
    return F.silu(out) if silu else out


@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize("shape,groups", [((3, 96, 7, 5), 32), ((2, 32, 4, 4), 32), ((1, 12, 3, 3), 4)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_reference_matches_definition(shape, groups, silu, shift, layout):
    gen = torch.Generator().manual_seed(0)
    b, c = shape[:2]
    h = torch.randn(shape, generator=gen) * 0.1 + 1e4  # offset data: E[x²]−E[x]² would fail here
    h = h.contiguous(memory_format=layout)  # channels-last: the Winograd engine's layout, reduced in place
    vec = [torch.randn(c, generator=gen)] * 2 + [torch.randn(b, c, generator=gen) * 0.1 for _ in range(4)]
    gamma, beta, ts, tb, zs, zb = vec
    out = adagn(h, gamma, beta, ts, tb, zs, zb if shift else None, groups=groups, silu=silu)
    ref = _chain(h, gamma, beta, ts, tb, zs, zb if shift else None, groups, silu)
    assert out.dtype == h.dtype
    assert out.is_contiguous(memory_format=layout)
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)


def test_low_precision_keeps_fp32_statistics():
    h = torch.randn(2, 64, 8, 8) * 3 + 5
    vec = torch.zeros(2, 64)
    out = adagn(h.bfloat16(), torch.ones(64), torch.zeros(64), vec, vec, vec)
    ref = adagn(h, torch.ones(64), torch.zeros(64), vec, vec, vec)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)


def test_dispatch_rejects_bad_switch_and_groups(monkeypatch):
    h = torch.randn(1, 32, 2, 2)
    v = torch.zeros(1, 32)
    with pytest.raises(ValueError, match="torch, triton, cuda"):
        adagn(h, torch.ones(32), torch.zeros(32), v, v, v, impl="cudnn")
    monkeypatch.setenv("DIFFUSEGAE_KERNELS", "fast")
    with pytest.raises(ValueError, match="DIFFUSEGAE_KERNELS"):
        adagn(h, torch.ones(32), torch.zeros(32), v, v, v)
    monkeypatch.delenv("DIFFUSEGAE_KERNELS")
    with pytest.raises(ValueError, match="divisible"):
        adagn(h, torch.ones(32), torch.zeros(32), v, v, v, groups=5)
