"""Winograd F(4×4, 3×3) convolutions: the same results as the direct kernel up to rounding, only where they
apply, and an engine option that is off by default, named when on and refused where it does not belong."""

import numpy as np
import pytest
import torch
from torch import nn

from diffusegae.engines import Pipeline
from diffusegae.engines.torch_engine import TorchEngine
from diffusegae.engines.winograd import MIN_TILES, WinogradConv2d, eligible, use_winograd


@pytest.mark.parametrize(
    ("batch", "channels", "out", "size", "bias"), [(1, 8, 16, 16, True), (3, 5, 4, 12, False)]
)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_winograd_matches_the_direct_convolution(batch, channels, out, size, bias, layout):
    torch.manual_seed(0)
    conv = nn.Conv2d(channels, out, 3, padding=1, bias=bias)
    x = torch.randn(batch, channels, size, size + 4)  # height and width differ: the tiling keeps them apart
    x = x.contiguous(memory_format=layout)
    with torch.no_grad():
        expected, got = conv(x), WinogradConv2d(conv)(x)
    assert got.shape == expected.shape
    assert got.is_contiguous(memory_format=layout)  # the input's layout in, the same layout out
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 1e-5 * scale
    assert (got - expected).abs().max() > 0  # a different algorithm, not the direct kernel in disguise


@pytest.mark.parametrize(
    "shape",
    [
        (2, 4, 6, 16),  # 6 is not a multiple of the 4×4 output tile
        (1, 4, 4, 4 * (MIN_TILES - 1)),  # whole tiles, one fewer than the GEMMs need to pay
    ],
)
def test_sizes_that_do_not_tile_or_pay_take_the_direct_convolution(shape):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, padding=1)
    x = torch.randn(*shape)
    with torch.no_grad():
        assert torch.equal(WinogradConv2d(conv)(x), conv(x))


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.Conv2d(4, 4, 1),
        nn.Conv2d(4, 4, 3, padding=1, groups=2),
        nn.Conv2d(4, 4, 3, padding=1, dilation=2),
        nn.Conv2d(4, 4, 3, padding=0),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),
    ],
)
def test_only_plain_3x3_same_convolutions_are_eligible(conv):
    assert not eligible(conv) and eligible(nn.Conv2d(4, 4, 3, padding=1))
    with pytest.raises(ValueError, match="3×3, stride-1, padding-1"):
        WinogradConv2d(conv)


def test_use_winograd_swaps_only_the_wide_eligible_convolutions():
    model = nn.Sequential(
        nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 4, 1)
    )
    assert use_winograd(model, min_channels=16) == 1
    assert [type(m).__name__ for m in model] == ["Conv2d", "WinogradConv2d", "Conv2d"]


def test_the_engine_option_keeps_the_callers_model_and_the_unet_within_parity(tiny_model):
    plain = TorchEngine(tiny_model)
    wide = TorchEngine(tiny_model, winograd=True)
    assert not any(isinstance(m, WinogradConv2d) for m in tiny_model.modules())
    assert wide.model.unet.out[-1].weight.is_contiguous(memory_format=torch.channels_last)
    assert tiny_model.unet.out[-1].weight.is_contiguous()
    # the tiny UNet is narrower than MIN_CHANNELS: swap every eligible convolution to test the whole net
    swapped = use_winograd(wide.model, min_channels=1)
    assert swapped > 0
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    t, z = np.array([900, 300]), rng.standard_normal((2, 512)).astype(np.float32)
    np.testing.assert_allclose(wide.eps(x, t, z), plain.eps(x, t, z), atol=1e-4)
    np.testing.assert_allclose(wide.encode(x), plain.encode(x), atol=1e-4)
    assert Pipeline(plain).modes() == {} and Pipeline(wide).modes() == {"winograd": True}


@pytest.mark.parametrize(("device", "dtype"), [("cpu", "bfloat16"), ("cuda", None)])
def test_the_engine_refuses_winograd_off_a_float32_cpu(tiny_model, device, dtype):
    with pytest.raises(ValueError, match="winograd=True is a float32 CPU option"):
        TorchEngine(tiny_model, device=device, dtype=dtype, winograd=True)
