"""Side by side with the research code: the edit's work in phizaz/diffae's own model and sampler vs ours.

The official code (model/, diffusion/, choices.py, config_base.py; it needs only torch and numpy) is
exported from a git checkout into a temporary folder at run time — never copied into this repository.
Its `ffhq64_autoenc` architecture (templates.py: 64 px, ch 64, mult 1,2,4,8, encoder mult 1,2,4,8,8,
attention at 16, two-cond ResBlocks; 90.8 M parameters) gets seeded random weights (its zero-initialised
output layers too, so every path carries signal), which are saved as a Lightning-style last.ckpt and
imported with `diffusegae import-diffae`: both sides run the same weights on the same inputs with the same
thread count. The edit's work = encode → DDIM inversion with S steps → decode with S steps (the GAE's
swap is a 100-d MLP, left out on both sides). Official: `model.encoder`, `ddim_reverse_sample_loop`,
`ddim_sample_loop` of SpacedDiffusionBeatGans on Diff-AE's own DDIM spacing (`space_timesteps(1000,
"ddimS")`, clip_denoised=True), eager. Ours: the pipeline on each engine. Timings are medians of
interleaved repeats; the max |difference| of each output from the official one is recorded beside them.
Beside them stands the fp32 roofline of the same machine (bench/roofline.py's measure): a "fp32 floor" row,
the exact edit's FLOPs (torch's counter over one encoder and one UNet call, times the 2·S calls) over the
best dense fp32 rate measured before and after each batch — no exact engine can beat it — and each exact
row's share of that peak (the lossy modes do less work, so a share would flatter them and is left out).
The official code runs in a child process of its own, as a user runs it: glibc's malloc defaults, which
our torch engine changes for its process (diffusegae.engines.allocator); `--official-allocator kept`
gives the child the same setting, to show what share of a gap is the allocator's.
    python bench/official.py --official /path/to/diffae[.git] [--batches 1,8] [--steps 20] [--repeats 3]
                             [--engines torch,torch-compiled,onnxruntime] [--modes reuse=2,reuse=2+invert=10]
                             [--official-allocator default|kept]
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import parse_mode, record, save
from roofline import count_gflop, dense_peak

from diffusegae import settings
from diffusegae.checkpoint import load_checkpoint
from diffusegae.diffae_import import import_diffae
from diffusegae.engines.allocator import keep_freed_memory
from diffusegae.engines.pipeline import Pipeline, load_pipeline
from diffusegae.engines.torch_engine import TorchEngine

OFFICIAL_FILES = ("model", "diffusion", "choices.py", "config_base.py")
IMAGE_SIZE = 64
# templates.ffhq64_autoenc → TrainConfig.make_model_conf → BeatGANsAutoencConfig (the values that matter)
FFHQ64 = dict(
    image_size=IMAGE_SIZE,
    in_channels=3,
    out_channels=3,
    model_channels=64,
    channel_mult=(1, 2, 4, 8),
    num_res_blocks=2,
    attention_resolutions=(16,),
    embed_channels=512,
    enc_out_channels=512,
    enc_pool="adaptivenonzero",
    enc_num_res_block=2,
    enc_channel_mult=(1, 2, 4, 8, 8),
    num_heads=1,
    dropout=0.1,
    resblock_updown=True,
    resnet_two_cond=True,
    resnet_use_zero_module=True,
)
HYPER = {"img_size": IMAGE_SIZE, "net_beatgans_attn_head": 1, "beta_scheduler": "linear", "T": 1000}


def official_code(source: Path, into: Path) -> Path:
    """The official code's files in `into`: copied from a checkout, or exported from a git directory."""
    into.mkdir(parents=True, exist_ok=True)
    if (source / "model").is_dir():
        subprocess.run(["cp", "-r", *(str(source / f) for f in OFFICIAL_FILES), str(into)], check=True)
    else:
        archive = subprocess.run(
            ["git", "--git-dir", str(source), "archive", "HEAD", *OFFICIAL_FILES],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def official_model(seed: int = 0) -> torch.nn.Module:
    from model.unet_autoenc import BeatGANsAutoencConfig

    torch.manual_seed(seed)
    model = BeatGANsAutoencConfig(**FFHQ64).make_model().eval()
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised output layers would hide whole paths
            if not p.any():
                p.normal_(0.0, 0.02)
    return model


def official_sampler(steps: int):
    from choices import GenerativeType, LossType, ModelMeanType, ModelType, ModelVarType
    from diffusion.base import get_named_beta_schedule
    from diffusion.diffusion import SpacedDiffusionBeatGansConfig, space_timesteps

    return SpacedDiffusionBeatGansConfig(
        gen_type=GenerativeType.ddim,
        model_type=ModelType.autoencoder,
        betas=get_named_beta_schedule("linear", 1000),
        model_mean_type=ModelMeanType.eps,
        model_var_type=ModelVarType.fixed_large,
        loss_type=LossType.mse,
        rescale_timesteps=False,
        use_timesteps=space_timesteps(1000, f"ddim{steps}"),  # what its DDIM configs use
        fp16=False,
    ).make_sampler()


def official_edit(model: torch.nn.Module, sampler, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        cond = model.encoder(x)
        x_t = sampler.ddim_reverse_sample_loop(model, x, clip_denoised=True, model_kwargs={"cond": cond})
        out = sampler.ddim_sample_loop(
            model, shape=x.shape, noise=x_t["sample"], clip_denoised=True, model_kwargs={"cond": cond}
        )
    return out.numpy()


def _official_worker(conn, code: str, steps: int, threads: int, keep_allocator: bool) -> None:
    """The child's loop: each batch received is edited once by the official code; sends (seconds, output)."""
    if keep_allocator:
        keep_freed_memory()
    torch.set_num_threads(threads)
    sys.path.insert(0, code)
    model, sampler = official_model(), official_sampler(steps)
    conn.send(None)  # ready
    while (x := conn.recv()) is not None:
        start = time.perf_counter()
        out = official_edit(model, sampler, torch.from_numpy(x))
        conn.send((time.perf_counter() - start, out))


class OfficialProcess:
    """The official code in a fresh interpreter (spawned: nothing of this process's state is inherited)."""

    def __init__(self, code: Path, steps: int, threads: int, keep_allocator: bool) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.conn, child = spawn.Pipe()
        args = (child, str(code), steps, threads, keep_allocator)
        # daemon: an error in the parent must not leave it waiting on a child that waits for work
        self.process = spawn.Process(target=_official_worker, args=args, daemon=True)
        self.process.start()
        child.close()  # the child's end lives in the child: a child that dies ends recv() with EOFError
        self.conn.recv()
        self.seconds: list[float] = []

    def edit(self, x: np.ndarray) -> np.ndarray:
        self.conn.send(x)
        seconds, out = self.conn.recv()
        self.seconds.append(seconds)
        return out

    def close(self) -> None:
        self.conn.send(None)
        self.process.join(timeout=60)


def our_edit(pipe, x: np.ndarray, steps: int) -> np.ndarray:
    return pipe.reconstruct(x, steps)  # encode → invert → decode, with the pipeline's speed-ups if any


def edit_gflop(engine: TorchEngine, x: np.ndarray, steps: int) -> float:
    """The exact edit's GFLOP: one encoder call and 2·S UNet calls (inversion and decode) of the same cost."""
    z = engine.encode(x)
    t = np.full(len(x), 500, np.int64)
    return count_gflop(lambda: engine.encode(x)) + 2 * steps * count_gflop(lambda: engine.eps(x, t, z))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--official", required=True, help="a phizaz/diffae checkout or its git directory")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--engines", default="torch,onnxruntime", help="torch, torch-compiled, torch-winograd, onnxruntime"
    )
    parser.add_argument(
        "--modes",
        default="",
        help="opt-in lossy modes run on the last engine too (on the torch engine when they name bf16 or "
        "winograd), e.g. reuse=2+invert=10,bf16+reuse=2+invert=10 (bench/speedups.py measures their quality)",
    )
    parser.add_argument(
        "--official-allocator",
        choices=("default", "kept"),
        default="default",
        help="glibc's malloc defaults for the official code's process (as users run it), or the setting our "
        "torch engine applies to its own",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engines = args.engines.split(",")
    # name → (engine, options); torch: torch.set_num_threads above. torch-compiled compiles (frozen, on a
    # CPU) in the warm-up run, minutes per batch size for this model, which the timed repeats leave out.
    known = {
        "torch": ("torch", {}),
        "torch-compiled": ("torch", {"compile": True}),
        "torch-winograd": ("torch", {"winograd": True}),
        "onnxruntime": ("onnxruntime", {"threads": args.threads}),
    }
    if unknown := [name for name in engines if name not in known]:
        raise SystemExit(f"unknown engine(s) {unknown}: choose from {', '.join(known)}")
    if args.official_allocator == "kept" and not settings.keep_freed_memory():
        raise SystemExit("--official-allocator kept needs DIFFUSEGAE_KEEP_FREED_MEMORY unset or 1")
    work = Path(tempfile.mkdtemp(prefix="diffusegae-official-"))
    code = official_code(Path(args.official), work / "official")
    sys.path.insert(0, str(code))
    model = official_model()  # the weights our side imports; the child builds the same from the same seed
    official = OfficialProcess(code, args.steps, args.threads, args.official_allocator == "kept")
    params = sum(p.numel() for p in model.parameters())
    ckpt = work / "ffhq64_autoenc" / "last.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": {f"ema_model.{k}": v for k, v in model.state_dict().items()},
                "hyper_parameters": HYPER}, ckpt)  # fmt: skip
    ours = import_diffae(ckpt, work / "ours")
    pipes = {name: load_pipeline(ours, engine=known[name][0], **known[name][1]) for name in engines}
    counter = TorchEngine(load_checkpoint(ours))  # eager: torch's FLOP counter sees every op
    rates = dense_peak(args.threads)
    exact = {"official", "fp32 floor", *engines}
    for mode in filter(None, args.modes.split(",")):
        speedups, torch_options = parse_mode(mode)
        engine = load_pipeline(ours, **torch_options).engine if torch_options else pipes[engines[-1]].engine
        pipes[f"{'torch' if torch_options else engines[-1]} {mode}"] = Pipeline(engine, speedups=speedups)
    measured = []  # (batch, name, timing, official seconds, max |diff|, exact GFLOP)
    for batch in (int(b) for b in args.batches.split(",")):
        x = np.random.default_rng(batch).uniform(-1, 1, (batch, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
        runs: dict[str, Callable[[], np.ndarray]] = {"official": lambda x=x: official.edit(x)}
        runs |= {name: (lambda p=p, x=x: our_edit(p, x, args.steps)) for name, p in pipes.items()}
        outputs = {name: run() for name, run in runs.items()}  # warm-up, and the outputs compared
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():  # interleaved: drift hits every side alike
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        times["official"] = official.seconds[-args.repeats :]  # the child's own clock: no pipe transfer
        official_s = float(np.median(times["official"]))
        gflop = edit_gflop(counter, x, args.steps)
        for name, seconds in times.items():
            median = float(np.median(seconds))
            diff = float(np.abs(outputs[name] - outputs["official"]).max())
            print(f"batch {batch} {name:12s} {median:7.2f} s  {official_s / median:5.2f}×  |diff| {diff:.1e}")
            timing = {"median": median, "min": min(seconds), "max": max(seconds), "n": len(seconds)}
            measured.append((batch, name, timing, official_s, f"{diff:.1e}", gflop))
        measured.append((batch, "fp32 floor", None, official_s, "", gflop))
        # a shared host's rate drifts: the peak is the best of the run, as in bench/roofline.py
        rates = {k: max(v, rates[k]) for k, v in dense_peak(args.threads).items()}
    official.close()
    peak = max(rates.values())
    notes = (
        f"{params / 1e6:.1f} M parameters, random weights; encode + inversion + decode, "
        f"{args.threads} threads, medians of {args.repeats} interleaved repeats after a warm-up; the "
        f"official code in its own process, {args.official_allocator} allocator; fp32 floor = the exact "
        f"edit's FLOPs / the best dense fp32 rate of the run (bench/roofline.py: a torch matmul "
        f"{rates['matmul']:.0f} GFLOP/s, a 3×3 convolution {rates['conv']:.0f}); share of fp32 peak "
        "for the exact paths only, at the direct convolution's FLOPs (Winograd does fewer)"
    )
    records = []
    for batch, name, timing, official_s, diff, gflop in measured:
        if timing is None:
            timing = {"median": gflop / peak, "min": None, "max": None, "n": 0}
            print(
                f"batch {batch} fp32 floor   {timing['median']:7.2f} s  {official_s / timing['median']:.2f}×"
            )
        share = f"{gflop / timing['median'] / peak:.0%}" if name in exact else ""
        records.append(_row(args.steps, batch, name, timing, official_s, share, diff, notes))
    print(save(records))


def _row(steps, batch, name, timing, official_s, share, diff, notes):
    return record(
        f"Side by side with phizaz/diffae: edit S={steps} on ffhq64_autoenc",
        {"batch": batch, "implementation": name},
        timing,
        extra={
            "vs official": f"{official_s / timing['median']:.2f}×",
            "share of fp32 peak": share,
            "max |diff|": diff,
        },
        notes=notes,
        runs=name != "fp32 floor",
    )


if __name__ == "__main__":
    main()
