"""The fused AdaGN kernels against the eager chain and torch.compile, on a GPU (needs CUDA; exits otherwise).

1. Every AdaGN feature-map shape of the diffae256 UNet (found by running the UNet on the meta device), at
   batch 1, 8, 64: time per call, achieved GB/s (one read and one write of the map, the least any AdaGN
   moves, over the time) against the device's measured copy bandwidth (a large device-to-device copy,
   counted the same way), and speed-ups over the eager Diff-AE chain (GroupNorm in fp32 → time scale/shift
   → z_sem scale/shift → SiLU, separate ops) and over that chain under torch.compile.
   Each op is captured `inner` times in one CUDA graph and replayed, so the times are GPU time, not
   Python launch overhead (which is what the UNet rows below include).
2. The whole diffae256 UNet step (random weights, one eps call), the twin vs each kernel, plain eager calls.

Goals (issue #6): kernel ≥ 85 % of copy bandwidth and ≥ 5× over eager on the large maps.
    python bench/adagn.py [--batches 1,8,64] [--dtype fp16] [--repeats 20] [--no-compile] [--no-unet]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections import Counter
from collections.abc import Callable

import torch
import torch.nn.functional as F
from common import measure, record, save

import diffusegae.models.layers as layers
from diffusegae import build_model, preset
from diffusegae.kernels import adagn, adagn_reference, available

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
GROUPS = 32
COPY_BYTES = 1 << 30
PRESET = "diffae256"  # plain Diff-AE: AdaGN mode "scale" (no z_sem shift)


def adagn_shapes(name: str = PRESET) -> Counter:
    """{(C, H, W): AdaGN calls per UNet step} of a preset, from one forward on the meta device."""
    seen: Counter = Counter()
    original = layers.adagn

    def spy(h, *args, **kwargs):
        seen[tuple(h.shape[1:])] += 1
        return original(h, *args, **kwargs)

    cfg = preset(name)
    unet = build_model(cfg, device="meta").unet.eval()
    meta = {"device": "meta"}
    x = torch.empty(1, 3, cfg.image_size, cfg.image_size, **meta)
    layers.adagn = spy
    try:
        with torch.no_grad():
            unet(x, torch.zeros(1, dtype=torch.long, **meta), torch.empty(1, 512, **meta))
    finally:
        layers.adagn = original
    return seen


def diffae_chain(h, gamma, beta, t_scale, t_shift, z_scale, z_shift):
    """AdaGN as Diff-AE runs it: GroupNorm32 (fp32 statistics), then the conditioning, then SiLU."""
    out = F.group_norm(h.float(), GROUPS, gamma.float(), beta.float(), 1e-5).to(h.dtype)
    out = out * (1 + t_scale[..., None, None]) + t_shift[..., None, None]
    out = out * (1 + z_scale[..., None, None])
    if z_shift is not None:
        out = out + z_shift[..., None, None]
    return F.silu(out)


def graph_time(fn: Callable[[], object], inner: int, repeats: int) -> dict[str, float]:
    """Seconds per call of fn, from replays of a CUDA graph holding `inner` calls (warmed up first)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # autotuning, compilation, allocator growth: never inside a capture
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(inner):
            fn()
    r = measure(graph.replay, repeats, warmup=2)
    del graph
    return {k: v / inner if k != "n" else v for k, v in r.items()}


def copy_bandwidth(repeats: int) -> float:
    """Bytes per second of a large device-to-device copy, counting its read and its write."""
    src = torch.empty(COPY_BYTES, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    r = graph_time(lambda: dst.copy_(src), 4, repeats)
    return 2 * COPY_BYTES / r["median"]


def inputs(batch: int, shape: tuple[int, ...], dtype: torch.dtype, mode: str):
    gen = torch.Generator(device="cuda").manual_seed(0)
    c = shape[0]
    h = torch.randn(batch, *shape, generator=gen, device="cuda").to(dtype)
    gamma = torch.ones(c, device="cuda")
    beta = torch.zeros(c, device="cuda")
    t_scale, t_shift = (0.1 * torch.randn(batch, 2 * c, generator=gen, device="cuda")).to(dtype).chunk(2, 1)
    z_scale, z_shift = (0.1 * torch.randn(batch, 2 * c, generator=gen, device="cuda")).to(dtype).chunk(2, 1)
    return h, gamma, beta, t_scale, t_shift, z_scale, z_shift if mode == "scale_shift" else None


def bench_maps(args, dtype: torch.dtype, bandwidth: float) -> list:
    kernels = [k for k in ("triton", "cuda") if available(k)]
    shapes = adagn_shapes()
    mode = preset(PRESET).unet.adagn_mode
    section = f"AdaGN kernels, {PRESET} feature maps (mode {mode}), {args.dtype}"
    notes = (
        f"GPU time per call (CUDA graph replays); GB/s = 2·map bytes / time; copy bandwidth "
        f"{bandwidth / 1e9:.0f} GB/s (1 GiB device-to-device copy); eager = Diff-AE's chain of ops; "
        f"calls per UNet step: " + ", ".join(f"{c}×{h}×{w}: {n}" for (c, h, w), n in sorted(shapes.items()))
    )
    # one compiled chain per map shape: let dynamo keep them all rather than fall back to eager after 8
    torch._dynamo.config.recompile_limit = 4 * len(shapes) * len(args.batches)
    records = []
    for batch in args.batches:
        for shape in sorted(shapes, key=lambda s: -math.prod(s)):
            x = inputs(batch, shape, dtype, mode)
            nbytes = 2 * x[0].numel() * x[0].element_size()
            inner = max(1, min(100, (256 << 20) // nbytes))
            ops: dict[str, Callable[[], object]] = {"eager": lambda x=x: diffae_chain(*x)}
            if not args.no_compile:
                compiled = torch.compile(diffae_chain, dynamic=False)
                ops["torch.compile"] = lambda x=x, f=compiled: f(*x)
            ops["twin"] = lambda x=x: adagn_reference(*x, groups=GROUPS)
            for k in kernels:
                ops[k] = lambda x=x, k=k: adagn(*x, groups=GROUPS, impl=k)
            times = {name: graph_time(fn, inner, args.repeats) for name, fn in ops.items()}
            for name, r in times.items():
                gbps = nbytes / r["median"]
                extra = {"GB/s": f"{gbps / 1e9:.0f}", "% of copy": f"{100 * gbps / bandwidth:.0f}%"}
                extra["vs eager"] = f"{times['eager']['median'] / r['median']:.2f}×"
                if "torch.compile" in times:
                    extra["vs compile"] = f"{times['torch.compile']['median'] / r['median']:.2f}×"
                label = "×".join(str(d) for d in (batch, *shape))
                print(f"{label:>18s} {name:13s} {r['median'] * 1e6:9.1f} µs  " + "  ".join(extra.values()))
                records.append(
                    record(section, {"map (B×C×H×W)": label, "impl": name}, r, extra=extra, notes=notes)
                )
            del x, ops
            torch.cuda.empty_cache()
    return records


def bench_unet(args, dtype: torch.dtype) -> list:
    torch.manual_seed(0)
    unet = build_model(preset(PRESET)).unet.eval().to("cuda")
    impls = ["torch", *(k for k in ("triton", "cuda") if available(k))]
    section = f"{PRESET} UNet step (random weights), {args.dtype} autocast, eager calls"
    # reduced precision as TorchEngine runs it: fp32 weights under autocast
    cast = torch.autocast("cuda", dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    records = []
    for batch in args.batches:
        gen = torch.Generator(device="cuda").manual_seed(batch)
        x = torch.randn(batch, 3, 256, 256, generator=gen, device="cuda")
        t = torch.full((batch,), 500, device="cuda")
        z = torch.randn(batch, 512, generator=gen, device="cuda")
        times = {}
        outs = {}
        for impl in impls:
            os.environ["DIFFUSEGAE_KERNELS"] = impl
            with torch.no_grad(), cast:
                outs[impl] = unet(x, t, z)
                times[impl] = measure(
                    lambda x=x, t=t, z=z: unet(x, t, z), max(3, args.repeats // 4), warmup=2
                )
        os.environ.pop("DIFFUSEGAE_KERNELS")
        for impl, r in times.items():
            err = (outs[impl].float() - outs["torch"].float()).abs().max().item()
            extra = {
                "vs twin": f"{times['torch']['median'] / r['median']:.2f}×",
                "max |Δeps| vs twin": f"{err:.1e}",
            }
            print(
                f"UNet batch {batch:3d} {impl:7s} {r['median'] * 1e3:9.2f} ms  " + "  ".join(extra.values())
            )
            records.append(record(section, {"batch": batch, "adagn": impl}, r, extra=extra))
        del x, z, outs
        torch.cuda.empty_cache()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp16")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("--no-unet", action="store_true", help="skip the whole-UNet step")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench/adagn.py measures GPU kernels and needs a CUDA GPU; none is visible to torch.")
    args.batches = [int(b) for b in args.batches.split(",")]
    dtype = DTYPES[args.dtype]
    kernels = ", ".join(f"{k}: {'yes' if available(k) else 'no'}" for k in ("triton", "cuda"))
    print(f"device: {torch.cuda.get_device_name()}; kernels available: {kernels}")
    bandwidth = copy_bandwidth(args.repeats)
    print(f"copy bandwidth: {bandwidth / 1e9:.0f} GB/s")
    records = bench_maps(args, dtype, bandwidth)
    if not args.no_unet:
        records += bench_unet(args, dtype)
    print(save(records))


if __name__ == "__main__":
    main()
