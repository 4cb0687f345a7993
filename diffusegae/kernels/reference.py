"""AdaGN in plain PyTorch: the reference every fused kernel is tested against.

AdaGN (Diff-AE §3.1; DiffuseGAE Eq. 8), per sample b and channel c:
    h = GroupNorm(h) · γ_c + β_c                 statistics over each group, in fp32
    h = h · (1 + t_scale[b,c]) + t_shift[b,c]    from the time embedding
    h = h · (1 + z_scale[b,c]) [+ z_shift[b,c]]  from z_sem ("scale" mode has no z_shift)
    h = SiLU(h)                                  optional
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def adagn_reference(
    h: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    t_scale: torch.Tensor,
    t_shift: torch.Tensor,
    z_scale: torch.Tensor,
    z_shift: torch.Tensor | None = None,
    groups: int = 32,
    eps: float = 1e-5,
    silu: bool = True,
) -> torch.Tensor:
    def col(v: torch.Tensor) -> torch.Tensor:  # [B, C] -> [B, C, 1, 1] in fp32
        return v.float().reshape(*v.shape, *([1] * (h.ndim - 2)))

    # Shifted two-pass statistics in fp32: subtract a pivot (each group's first element) so the sums see
    # small numbers, then the mean, then square. F.group_norm on CPU loses offset data (mean 1e4, std 0.1):
    # it forms E[x²] − E[x]², and even a plain fp32 mean of values near 1e4 is off by 1% of such a std.
    b, c = h.shape[:2]
    g = h.float()
    if g.is_contiguous():
        # each group is one contiguous run: reduce it whole
        g = g.reshape(b, groups, -1)
        g = g - g[..., :1]
        centered = g - g.mean(dim=-1, keepdim=True)
        var = centered.square().mean(dim=-1, keepdim=True)
        out = (centered * torch.rsqrt(var + eps)).reshape(h.shape)
    else:
        # channels-last (the Winograd engine) or other strides: per-channel means, then per group, so the
        # result keeps h's layout (a [B, groups, -1] view would copy h and hand the next conv a copy back)
        first = (slice(None), slice(None, None, c // groups)) + (0,) * (h.ndim - 2)
        g = g - col(g[first].repeat_interleave(c // groups, dim=1))
        centered = g - col(_group_mean(g, groups))
        var = col(_group_mean(centered.square(), groups))
        out = centered * torch.rsqrt(var + eps)
    out = out * col(gamma[None].expand(b, c)) + col(beta[None].expand(b, c))
    out = out * (1 + col(t_scale)) + col(t_shift)
    out = out * (1 + col(z_scale))
    if z_shift is not None:
        out = out + col(z_shift)
    if silu:
        out = F.silu(out)
    return out.to(h.dtype)


def _group_mean(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[B, C]: each sample's mean over its channel's group and every position (groups are equal-sized,
    so the mean of the channels' means)."""
    b, c = x.shape[:2]
    per_channel = x.mean(dim=tuple(range(2, x.ndim))) if x.ndim > 2 else x
    per_group = per_channel.view(b, groups, -1).mean(dim=-1, keepdim=True)
    return per_group.expand(b, groups, c // groups).reshape(b, c)
