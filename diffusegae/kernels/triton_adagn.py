"""AdaGN as OpenAI Triton kernels: one fused kernel per (sample, group), or a split path for few groups.

A group of an NCHW tensor is one contiguous run of CPG·HW elements. It is walked in 2-D tiles of
[BLOCK_C channels × BLOCK_HW positions] (at most TILE elements, autotuned), so each channel's six AdaGN
vectors are loaded once per tile row and folded into one scale and one shift:

    y = ((x − p) − μ)·A_c + B_c,  A_c = rstd·γ_c·(1+t_s)·(1+z_s),  B_c = (β_c·(1+t_s) + t_b)·(1+z_s) [+ z_b]

then SiLU. Statistics are fp32 and numerically sound on offset data: every value is first shifted by the
pivot p (the group's first element, as the torch twin does), each tile's mean and M2 come from the tile in
registers (two passes over registers, one over memory), and tiles are merged with Chan's formula.

Paths (memory traffic: x read twice, y written once, either way):
- fused: grid (B·G,); one program computes its group's statistics, then normalizes it.
- split (B·G smaller than the SM count, so one program per group would leave most of the GPU idle): grid
  (B·G, S); `_partial_stats` writes (n, mean, M2) of 1/S of each group's tiles, then `_split_apply` merges
  the S partials of its group (Chan, in parallel form) and normalizes its 1/S.

Set TRITON_INTERPRET=1 before this module is imported to run the kernels in Triton's interpreter on CPU
tensors (the tests do, in a subprocess); the kernels are decorated, so the mode is fixed at import.
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch
import triton
import triton.language as tl

from diffusegae.kernels.common import MAX_SPLIT, choose_split, sm_count


def _interpreting() -> bool:
    knobs = getattr(triton, "knobs", None)  # triton ≥ 3.4; older ones read the variable themselves
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


INTERPRET = _interpreting()


def _configs() -> list[triton.Config]:
    if INTERPRET:  # the interpreter runs every config it is given: one, small enough to loop over tiles
        return [triton.Config({"TILE": 64}, num_warps=4)]
    return [triton.Config({"TILE": t}, num_warps=w) for t in (1024, 2048, 4096) for w in (4, 8)]


def _blocks(nargs: dict) -> dict:
    """Tile shape from TILE: as many positions as the map has (up to TILE), the rest of TILE in channels."""
    block_hw = min(triton.next_power_of_2(nargs["HW"]), nargs["TILE"])
    block_c = max(1, min(triton.next_power_of_2(nargs["CPG"]), nargs["TILE"] // block_hw))
    return {"BLOCK_HW": block_hw, "BLOCK_C": block_c}


_heuristics = triton.heuristics(
    {"BLOCK_HW": lambda a: _blocks(a)["BLOCK_HW"], "BLOCK_C": lambda a: _blocks(a)["BLOCK_C"]}
)
_autotune = triton.autotune(configs=_configs(), key=["HW", "CPG", "SPLIT"])


@triton.jit
def _tile_stats(x_ptr, base, pivot, t_begin, t_end, HW, CPG, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """(n, mean, M2) of the pivot-shifted values in tiles [t_begin, t_end) of one group."""
    n_hw = (HW + BLOCK_HW - 1) // BLOCK_HW
    n = 0.0
    mean = 0.0
    m2 = 0.0
    for t in range(t_begin, t_end):
        row0 = (t // n_hw) * BLOCK_C
        col0 = (t % n_hw) * BLOCK_HW
        rows = row0 + tl.arange(0, BLOCK_C)
        cols = col0 + tl.arange(0, BLOCK_HW)
        mask = (rows < CPG)[:, None] & (cols < HW)[None, :]
        v = tl.load(x_ptr + base + rows[:, None] * HW + cols[None, :], mask=mask, other=0.0)
        v = tl.where(mask, v.to(tl.float32) - pivot, 0.0)
        count = (tl.minimum(CPG - row0, BLOCK_C) * tl.minimum(HW - col0, BLOCK_HW)).to(tl.float32)
        tile_mean = tl.sum(v) / count
        d = tl.where(mask, v - tile_mean, 0.0)
        tile_m2 = tl.sum(d * d)
        # Chan et al.: merge (count, tile_mean, tile_m2) into the running (n, mean, m2)
        total = n + count
        delta = tile_mean - mean
        mean = mean + delta * (count / total)
        m2 = m2 + tile_m2 + delta * delta * (n * count / total)
        n = total
    return n, mean, m2


@triton.jit
def _tile_apply(
    x_ptr,
    y_ptr,
    base,
    pivot,
    mean,
    rstd,
    b,
    g,
    t_begin,
    t_end,
    gamma_ptr,
    beta_ptr,
    ts_ptr,
    tb_ptr,
    zs_ptr,
    zb_ptr,
    ts_stride,
    tb_stride,
    zs_stride,
    zb_stride,
    HW,
    CPG,
    HAS_ZB: tl.constexpr,
    SILU: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_HW: tl.constexpr,
):
    """Normalize tiles [t_begin, t_end) of one group and apply the folded AdaGN scale / shift (+ SiLU)."""
    n_hw = (HW + BLOCK_HW - 1) // BLOCK_HW
    for t in range(t_begin, t_end):
        rows = (t // n_hw) * BLOCK_C + tl.arange(0, BLOCK_C)
        cols = (t % n_hw) * BLOCK_HW + tl.arange(0, BLOCK_HW)
        row_ok = rows < CPG
        mask = row_ok[:, None] & (cols < HW)[None, :]
        ch = g * CPG + rows
        gamma = tl.load(gamma_ptr + ch, mask=row_ok, other=0.0).to(tl.float32)
        beta = tl.load(beta_ptr + ch, mask=row_ok, other=0.0).to(tl.float32)
        ts = tl.load(ts_ptr + b * ts_stride + ch, mask=row_ok, other=0.0).to(tl.float32)
        tb = tl.load(tb_ptr + b * tb_stride + ch, mask=row_ok, other=0.0).to(tl.float32)
        zs = tl.load(zs_ptr + b * zs_stride + ch, mask=row_ok, other=0.0).to(tl.float32)
        scale = rstd * gamma * (1.0 + ts) * (1.0 + zs)
        shift = (beta * (1.0 + ts) + tb) * (1.0 + zs)
        if HAS_ZB:
            shift += tl.load(zb_ptr + b * zb_stride + ch, mask=row_ok, other=0.0).to(tl.float32)
        offs = base + rows[:, None] * HW + cols[None, :]
        v = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        out = ((v - pivot) - mean) * scale[:, None] + shift[:, None]
        if SILU:
            out = out / (1.0 + tl.exp(-out))  # SiLU (tl.sigmoid, inlined)
        tl.store(y_ptr + offs, out.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _fused(
    x_ptr,
    y_ptr,
    gamma_ptr,
    beta_ptr,
    ts_ptr,
    tb_ptr,
    zs_ptr,
    zb_ptr,
    ts_stride,
    tb_stride,
    zs_stride,
    zb_stride,
    HW,
    CPG,
    G,
    eps,
    SPLIT,  # always 1 here; an autotune key shared with the split kernels
    TILE: tl.constexpr,
    HAS_ZB: tl.constexpr,
    SILU: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_HW: tl.constexpr,
):
    bg = tl.program_id(0)
    base = bg.to(tl.int64) * CPG * HW
    pivot = tl.load(x_ptr + base).to(tl.float32)
    tiles = ((CPG + BLOCK_C - 1) // BLOCK_C) * ((HW + BLOCK_HW - 1) // BLOCK_HW)
    n, mean, m2 = _tile_stats(x_ptr, base, pivot, 0, tiles, HW, CPG, BLOCK_C, BLOCK_HW)
    rstd = tl.rsqrt(m2 / n + eps)
    _tile_apply(
        x_ptr, y_ptr, base, pivot, mean, rstd, bg // G, bg % G, 0, tiles,
        gamma_ptr, beta_ptr, ts_ptr, tb_ptr, zs_ptr, zb_ptr, ts_stride, tb_stride, zs_stride, zb_stride,
        HW, CPG, HAS_ZB, SILU, BLOCK_C, BLOCK_HW,
    )  # fmt: skip


@triton.jit
def _partial_stats(
    x_ptr,
    part_ptr,
    HW,
    CPG,
    SPLIT,
    TILE: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_HW: tl.constexpr,
):
    bg = tl.program_id(0)
    s = tl.program_id(1)
    base = bg.to(tl.int64) * CPG * HW
    pivot = tl.load(x_ptr + base).to(tl.float32)
    tiles = ((CPG + BLOCK_C - 1) // BLOCK_C) * ((HW + BLOCK_HW - 1) // BLOCK_HW)
    n, mean, m2 = _tile_stats(
        x_ptr, base, pivot, s * tiles // SPLIT, (s + 1) * tiles // SPLIT, HW, CPG, BLOCK_C, BLOCK_HW
    )
    out = part_ptr + (bg * SPLIT + s) * 3
    tl.store(out, n)
    tl.store(out + 1, mean)
    tl.store(out + 2, m2)


@triton.jit
def _split_apply(
    x_ptr,
    y_ptr,
    part_ptr,
    gamma_ptr,
    beta_ptr,
    ts_ptr,
    tb_ptr,
    zs_ptr,
    zb_ptr,
    ts_stride,
    tb_stride,
    zs_stride,
    zb_stride,
    HW,
    CPG,
    G,
    eps,
    SPLIT,
    SPLIT_POW2: tl.constexpr,
    TILE: tl.constexpr,
    HAS_ZB: tl.constexpr,
    SILU: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_HW: tl.constexpr,
):
    bg = tl.program_id(0)
    s = tl.program_id(1)
    # Chan's merge of the group's S partials, in parallel form: n = Σnᵢ, μ = Σnᵢμᵢ/n, M2 = Σ(M2ᵢ + nᵢ(μᵢ−μ)²)
    k = tl.arange(0, SPLIT_POW2)
    ok = k < SPLIT
    part = part_ptr + (bg * SPLIT + k) * 3
    ns = tl.load(part, mask=ok, other=0.0)
    means = tl.load(part + 1, mask=ok, other=0.0)
    m2s = tl.load(part + 2, mask=ok, other=0.0)
    n = tl.sum(ns, axis=0)
    mean = tl.sum(ns * means, axis=0) / n
    m2 = tl.sum(m2s + ns * (means - mean) * (means - mean), axis=0)
    rstd = tl.rsqrt(m2 / n + eps)

    base = bg.to(tl.int64) * CPG * HW
    pivot = tl.load(x_ptr + base).to(tl.float32)
    tiles = ((CPG + BLOCK_C - 1) // BLOCK_C) * ((HW + BLOCK_HW - 1) // BLOCK_HW)
    _tile_apply(
        x_ptr, y_ptr, base, pivot, mean, rstd, bg // G, bg % G, s * tiles // SPLIT, (s + 1) * tiles // SPLIT,
        gamma_ptr, beta_ptr, ts_ptr, tb_ptr, zs_ptr, zb_ptr, ts_stride, tb_stride, zs_stride, zb_stride,
        HW, CPG, HAS_ZB, SILU, BLOCK_C, BLOCK_HW,
    )  # fmt: skip


_fused_fixed = _heuristics(_fused)
_partial_fixed = _heuristics(_partial_stats)
_apply_fixed = _heuristics(_split_apply)
_fused_tuned = _autotune(_fused_fixed)
_partial_tuned = _autotune(_partial_fixed)
_apply_tuned = _autotune(_apply_fixed)


def _row(v: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A [B, C] vector as (tensor with unit column stride, row stride): chunk() views are used in place."""
    if v.stride(-1) != 1:
        v = v.contiguous()
    return v, v.stride(0)


def adagn_triton(
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
    *,
    split: int | None = None,
    tile: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """AdaGN on [B, C, *spatial] (fp32 / fp16 / bf16, CUDA tensors, or CPU ones under TRITON_INTERPRET=1).

    split: programs per group (default: `choose_split`); tile: elements per tile, a power of two
    (default: autotuned). Both are forcible so tests can cover the split path and multi-tile merges.
    out: a contiguous tensor of h's shape and dtype to write into (the TensorRT plugin's output buffer).
    """
    if h.device.type != "cuda" and not INTERPRET:
        raise ValueError(f"the Triton AdaGN kernel needs CUDA tensors, got {h.device}")
    b, c = h.shape[:2]
    if c % groups:
        raise ValueError(f"channels ({c}) must be divisible by groups ({groups})")
    if tile is not None and (tile < 1 or tile & (tile - 1)):
        raise ValueError(f"tile must be a power of two, got {tile}")
    h = h.contiguous()
    if h.numel() == 0:
        return torch.empty_like(h) if out is None else out
    hw = h.numel() // (b * c)
    cpg = c // groups
    bg = b * groups
    if split is None:
        split = choose_split(bg, cpg * hw, sm_count(h.device) if h.is_cuda else 1)
    if not 1 <= split <= MAX_SPLIT:
        raise ValueError(f"split must be in 1..{MAX_SPLIT}, got {split}")
    if out is None:
        y = torch.empty_like(h)
    elif out.shape != h.shape or out.dtype != h.dtype or not out.is_contiguous():
        raise ValueError(
            f"out must be contiguous {h.dtype} {tuple(h.shape)}, got {out.dtype} {tuple(out.shape)}"
        )
    else:
        y = out
    (ts, ts_stride), (tb, tb_stride), (zs, zs_stride) = _row(t_scale), _row(t_shift), _row(z_scale)
    zb, zb_stride = _row(z_shift) if z_shift is not None else (zs, 0)
    vectors = (gamma.contiguous(), beta.contiguous(), ts, tb, zs, zb)
    strides = (ts_stride, tb_stride, zs_stride, zb_stride)
    flags = {"HAS_ZB": z_shift is not None, "SILU": bool(silu)}
    # FP fusion (FMA) stated, not left to Triton's default, which changes in 3.10 and warns until then
    options: dict = {"enable_fp_fusion": True}
    if tile is not None:
        options |= {"TILE": tile, "num_warps": 4}
    with torch.cuda.device(h.device) if h.is_cuda else nullcontext():
        if split == 1:
            kernel = _fused_fixed if tile is not None else _fused_tuned
            kernel[(bg,)](h, y, *vectors, *strides, hw, cpg, groups, eps, 1, **flags, **options)
            return y
        partials = torch.empty(bg * split * 3, device=h.device, dtype=torch.float32)
        stats = _partial_fixed if tile is not None else _partial_tuned
        stats[(bg, split)](h, partials, hw, cpg, split, **options)
        apply = _apply_fixed if tile is not None else _apply_tuned
        pow2 = triton.next_power_of_2(split)
        apply[(bg, split)](
            h, y, partials, *vectors, *strides, hw, cpg, groups, eps, split, pow2, **flags, **options
        )
    return y
