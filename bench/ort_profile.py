"""Where ONNX Runtime spends a UNet call: kernel time per ONNX op type, from ORT's own profiler.

Guides the engine work of bench/engines.py (which op types to fuse or re-express). Random weights of the
preset, exported through the project's exporter and run with the ONNX Runtime engine's session settings.
Prints the call's median time and each op type's share of kernel time; nothing is recorded (shares, not
timings of a user-facing op).

    python bench/ort_profile.py [--preset synth64] [--batch 1] [--threads 2] [--calls 20]
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import command_line, device_name, measure

from diffusegae import build_model, preset, save_checkpoint
from diffusegae.engines.onnxruntime_engine import session_options
from diffusegae.export.onnx_export import export_checkpoint
from diffusegae.export.specs import TIMESTEP, X_T, Z_SEM

WARMUP = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--preset", default="synth64")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        cfg = preset(args.preset)
        ckpt = save_checkpoint(build_model(cfg), Path(tmp) / "ck")
        unet = export_checkpoint(ckpt)["unet"]
        options = session_options(args.threads, "all")
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(unet), options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        s, b = cfg.image_size, args.batch
        feed = {
            X_T: rng.standard_normal((b, 3, s, s), dtype=np.float32),
            TIMESTEP: np.full(b, 500, np.int64),
            Z_SEM: rng.standard_normal((b, cfg.encoder.out_channels), dtype=np.float32),
        }
        timing = measure(lambda: session.run(None, feed), args.calls, warmup=WARMUP)
        events = json.loads(Path(session.end_profiling()).read_text())
    share: collections.Counter[str] = collections.Counter()  # kernel µs per op type, all runs
    count: collections.Counter[str] = collections.Counter()  # node executions per op type, all runs
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            share[event["args"]["op_name"]] += event["dur"]
            count[event["args"]["op_name"]] += 1
    runs = WARMUP + args.calls
    total = sum(share.values()) or 1
    print(f"command: {command_line()}\ndevice: {device_name()}")
    print(f"{args.preset} UNet, batch {b}: median {timing['median'] * 1e3:.1f} ms per call")
    print(f"{'op type':24s} {'share':>6s} {'nodes':>6s}")
    for op, dur in share.most_common(args.top):
        print(f"{op:24s} {dur / total:6.1%} {count[op] // runs:6d}")


if __name__ == "__main__":
    main()
