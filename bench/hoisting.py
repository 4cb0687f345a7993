"""Would hoisting the DDIM loop invariants pay? Time the part of a UNet call that is the same every step.

Per step, each ResBlock projects the time embedding (emb_layers) and z_sem (cond_emb_layers); z_sem is the
same for every step of a loop and the time embeddings of a schedule are the same for every image. This
times those projections alone against the whole UNet call: the most hoisting them out could save.
    python bench/hoisting.py [--presets synth64,diffae64] [--batches 1,8] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch
from common import measure, record, save

from diffusegae import build_model, preset
from diffusegae.models.layers import ResBlock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", default="synth64,diffae64")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records = []
    for name in args.presets.split(","):
        model = build_model(preset(name)).eval()
        blocks = [b for b in model.unet.modules() if isinstance(b, ResBlock) and b.conditioned]
        for batch in [int(b) for b in args.batches.split(",")]:
            s = model.cfg.image_size
            x, t, z = torch.randn(batch, 3, s, s), torch.full((batch,), 500), torch.randn(batch, 512)

            def whole(x=x, t=t, z=z, unet=model.unet) -> None:
                unet(x, t, z)

            def invariant(t=t, z=z, unet=model.unet, blocks=blocks) -> None:
                emb = unet.time_embed(t)
                for block in blocks:
                    block.emb_layers(emb)
                    block.cond_emb_layers(z)

            with torch.inference_mode():
                full, inv = measure(whole, args.repeats), measure(invariant, args.repeats)
            share = inv["median"] / full["median"]
            records.append(
                record(
                    "Loop invariants: share of a UNet call (torch eager)",
                    {"preset": name, "batch": batch},
                    {"median": full["median"], "min": None, "max": None, "n": full["n"]},
                    metric="UNet call",
                    extra={
                        "t/z projections median ms": round(inv["median"] * 1e3, 2),
                        "share (max saving)": f"{share:.1%}",
                    },
                    notes=f"{args.repeats} timed runs after 1 warm-up; random weights",
                    runs=False,
                )
            )
            print(f"{name} batch {batch}: UNet {full['median'] * 1e3:.1f} ms, invariants {share:.1%}")
    print(save(records))


if __name__ == "__main__":
    main()
