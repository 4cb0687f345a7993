"""Winograd convolution F(4×4, 3×3) for the torch engine on a CPU: the same 3×3 convolution in fewer FLOPs.

A direct 3×3 convolution spends 9 multiply-adds per output and input channel; Winograd's minimal filtering
(Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks", F(m×m, r×r) with m = 4, r = 3)
computes each 4×4 output tile from a 6×6 input tile with 36 products per channel pair, 2.25 instead of 9
per output: 4× less arithmetic in the channel-mixing GEMMs, the part that costs, plus linear input and
output transforms that cost memory passes, not FLOPs. In float32 it is exact up to rounding (about 1e-5
relative here, against about 1e-7 for the direct kernel; the engine's parity bound is 1e-4).

It pays where the GEMMs are large against the transforms: many channels, several images (bench/NOTES.md,
2026-12-04, 2 threads of an AVX2 EPYC, against torch's direct convolution: 1.4–2.1× at batch 8 from 64 to
512 channels; at batch 1 1.3–1.4× at 128–256 channels, even at 512 and a loss at 64). `use_winograd`
therefore swaps only the convolutions with at least `min_channels` input channels, and a swapped one
still runs direct on a call with fewer than MIN_TILES output tiles (batch 1 at 8×8 and below: 0.3–1.1×).

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A     for each 4×4 output tile Y, 6×6 input tile d and 3×3 filter g
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TILE, INPUT_TILE = 4, 6  # m and m + r − 1
MIN_CHANNELS = 128  # narrower: the transforms cost more than the GEMMs save at batch 1 (bench/NOTES.md)
# Fewer output tiles in a call (images × tiles per image): the GEMMs are too thin to pay for reading the
# transformed weights, 4× the direct ones (36 against 9 values per channel pair), and the call goes direct.
MIN_TILES = 16
# The transforms of F(4×4, 3×3) on the interpolation points 0, ±1, ±2 and ∞ (Lavin & Gray, §4.2).
B_T = torch.tensor(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=torch.float64,
)
G = torch.tensor(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    dtype=torch.float64,
)
A_T = torch.tensor(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    dtype=torch.float64,
)
# Both transforms as one linear map each over a flattened tile: Bᵀ d B as a 36×36 matrix, Aᵀ m A as 16×36.
INPUT_MATRIX = torch.einsum("ij,kl->ikjl", B_T, B_T).reshape(INPUT_TILE**2, INPUT_TILE**2)
OUTPUT_MATRIX = torch.einsum("ij,kl->ikjl", A_T, A_T).reshape(TILE**2, INPUT_TILE**2)


def eligible(conv: nn.Module) -> bool:
    """A plain 3×3 convolution with stride 1 and 'same' padding: what F(4×4, 3×3) computes."""
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


class WinogradConv2d(nn.Module):
    """An eligible nn.Conv2d computed with F(4×4, 3×3); inputs whose height or width is not a multiple of 4,
    or that make fewer than MIN_TILES tiles, take the direct convolution. Weights are transformed once,
    here (in float64, then cast)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not eligible(conv):
            raise ValueError(f"Winograd F(4×4, 3×3) needs a 3×3, stride-1, padding-1 Conv2d, got {conv}")
        self.conv = conv
        weight = conv.weight.detach().double()
        # U = G g Gᵀ per (out, in) pair, laid out [36, in, out] for one GEMM per tile position
        u = torch.einsum("ij,ocjk,lk->ilco", G, weight, G).reshape(INPUT_TILE**2, *weight.shape[1::-1])
        self.register_buffer("u", u.to(conv.weight.dtype).contiguous(), persistent=False)
        self.register_buffer("input_matrix", INPUT_MATRIX.to(conv.weight.dtype), persistent=False)
        self.register_buffer("output_matrix", OUTPUT_MATRIX.to(conv.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        th, tw = h // TILE, w // TILE
        tiles = n * th * tw
        if h % TILE or w % TILE or tiles < MIN_TILES:
            return self.conv(x)
        # Channels innermost (NHWC) from here on: every copy moves contiguous runs of channels, and the tile
        # transforms and the channel GEMMs meet without a layout change in between (about 1.15× over the
        # NCHW form at batch 8, bench/NOTES.md 2026-12-04); a channels-last input is already laid out so.
        padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))
        # [n, th, tw, c, 6, 6]: the overlapping input tiles, a view
        d = padded.unfold(1, INPUT_TILE, TILE).unfold(2, INPUT_TILE, TILE)
        d = d.permute(4, 5, 0, 1, 2, 3).reshape(INPUT_TILE**2, tiles * c)  # rows: the 36 tile positions
        v = torch.mm(self.input_matrix, d).view(INPUT_TILE**2, tiles, c)  # Bᵀ d B
        m = torch.bmm(v, self.u)  # the channel mixing: one GEMM per tile position
        out = m.shape[2]
        y_tiles = torch.mm(self.output_matrix, m.view(INPUT_TILE**2, -1))  # Aᵀ m A
        y_tiles = y_tiles.view(TILE, TILE, n, th, tw, out).permute(2, 3, 0, 4, 1, 5)
        y = x.new_empty((n, h, w, out))
        rows = y.view(n, th, TILE, tw, TILE, out)
        if self.conv.bias is None:
            rows.copy_(y_tiles)
        else:
            torch.add(y_tiles, self.conv.bias, out=rows)
        y = y.permute(0, 3, 1, 2)  # NCHW in shape, channels-last in memory
        return y if x.is_contiguous(memory_format=torch.channels_last) else y.contiguous()


def use_winograd(model: nn.Module, min_channels: int = MIN_CHANNELS) -> int:
    """Swap, in place, every eligible Conv2d of `model` with ≥ `min_channels` input channels for a
    WinogradConv2d; returns how many were swapped."""
    swapped = 0
    for parent in list(model.modules()):
        if isinstance(parent, WinogradConv2d):  # already swapped: its direct twin is its fallback
            continue
        for name, child in parent.named_children():
            if eligible(child) and child.in_channels >= min_channels:
                setattr(parent, name, WinogradConv2d(child))
                swapped += 1
    return swapped
