"""The Triton AdaGN kernel in Triton's CPU interpreter against the torch twin: the cases and their worker.

Run as a script (`python triton_interpret_cases.py`, which test_triton_interpret.py does in a subprocess) it
sets TRITON_INTERPRET=1 before triton is first imported, runs every case and prints one JSON line per case.
A subprocess keeps the interpreter apart from whatever the test session has imported (torch.compile may
import triton; GPU tests need the compiler). Importing this module imports neither torch nor triton.

Shapes stay small: the interpreter runs programs one after another, in numpy (~25 ms a program).
"""

from __future__ import annotations

import json
import os
import sys


def _case(shape: tuple[int, ...], groups: int, mode: str, silu: bool, **options) -> dict:
    """options: dtype, split (None: choose_split), tile (None: the autotune config), layout of the [B, C]
    vectors ("rows": tensors of their own; "chunks": views of one [B, 2C] tensor, as the ResBlock's Linear
    output), offset of the input (mean 1e4, std 0.1 by default; std 3 where the offset is 0)."""
    return dict(shape=shape, groups=groups, mode=mode, silu=silu, **options)


CASES: dict[str, dict] = {
    # C = 96, H×W = 7×5, B = 3, 32 groups; tile 64 holds one channel, so a group is 3 tiles, Chan-merged
    "odd_fused_scale_shift_silu": _case((3, 96, 7, 5), 32, "scale_shift", True, split=1, tile=64),
    "odd_split_scale_plain": _case((3, 96, 7, 5), 32, "scale", False, split=2, tile=64),
    # more split programs than tiles (2 tiles, 3 programs): one program has nothing and writes n = 0
    "split_wider_than_group": _case((2, 8, 3, 3), 4, "scale_shift", True, split=3, tile=16),
    # one group over 6 channels: tiles of 2 channels × 16 positions, 3 of them
    "one_group_channel_tiles": _case((1, 6, 5, 3), 1, "scale", True, split=1, tile=32),
    "defaults_autotune_config": _case((2, 64, 4, 4), 32, "scale_shift", True),
    "chunked_vectors_1d_map": _case((2, 12, 7), 4, "scale_shift", True, layout="chunks"),
    "fp16": _case((2, 24, 5, 5), 8, "scale_shift", True, dtype="float16", offset=0.0),
    "bf16_split": _case((2, 24, 5, 5), 8, "scale", False, dtype="bfloat16", offset=0.0, split=2, tile=16),
}


def inputs(case: dict, seed: int = 0):
    """h, gamma, beta, t_scale, t_shift, z_scale, z_shift (None in mode "scale") for a case."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    shape = case["shape"]
    b, c = shape[:2]
    dtype = getattr(torch, case.get("dtype", "float32"))
    offset = case.get("offset", 1e4)
    std = 0.1 if offset else 3.0
    h = (torch.randn(shape, generator=gen) * std + offset).to(dtype)
    gamma = 1 + 0.5 * torch.randn(c, generator=gen)
    beta = 0.5 * torch.randn(c, generator=gen)
    if case.get("layout") == "chunks":
        t_scale, t_shift = (0.3 * torch.randn(b, 2 * c, generator=gen)).to(dtype).chunk(2, dim=1)
        z_scale, z_shift = (0.3 * torch.randn(b, 2 * c, generator=gen)).to(dtype).chunk(2, dim=1)
    else:
        t_scale, t_shift, z_scale, z_shift = (
            (0.3 * torch.randn(b, c, generator=gen)).to(dtype) for _ in range(4)
        )
    return h, gamma, beta, t_scale, t_shift, z_scale, z_shift if case["mode"] == "scale_shift" else None


def run(name: str) -> dict:
    import numpy as np

    from diffusegae.kernels.reference import adagn_reference
    from diffusegae.kernels.triton_adagn import adagn_triton

    case = CASES[name]
    args = inputs(case)
    options = dict(groups=case["groups"], silu=case["silu"])
    with np.errstate(over="ignore"):  # SiLU's exp(−x) overflows to inf for very negative x, as on a GPU
        out = adagn_triton(*args, **options, split=case.get("split"), tile=case.get("tile"))
    ref = adagn_reference(*args, **options)
    return {
        "name": name,
        "dtype": str(out.dtype),
        "shape": list(out.shape),
        "max_err": float((out.double() - ref.double()).abs().max()),
        "scale": float(ref.double().abs().max()),
    }


def main(names: list[str]) -> None:
    os.environ["TRITON_INTERPRET"] = "1"
    if "triton" in sys.modules:
        raise RuntimeError("triton was imported before TRITON_INTERPRET was set")
    for name in names or list(CASES):
        print(json.dumps(run(name)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
