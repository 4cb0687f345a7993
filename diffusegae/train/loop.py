"""`train()`: create or resume a checkpoint and run one training stage on it, resumably.

A checkpoint directory that does not exist yet is created from a preset (build_model + save_checkpoint).
One that holds a train_state/ for the same stage resumes it: raw weights, EMA, Adam moments and the step
counter. Starting another stage begins from the checkpoint's model.safetensors (the EMA weights of the last
stage) with a fresh optimizer and step 0. See state.py for the files and stages.py for the losses.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from diffusegae.checkpoint import CONFIG_FILE, read_config
from diffusegae.config import ModelConfig
from diffusegae.config import preset as get_preset
from diffusegae.models import build_model
from diffusegae.train.batches import default_workers
from diffusegae.train.objectives import OBJECTIVE_FIELDS
from diffusegae.train.session import Session, Settings, StopFlag
from diffusegae.train.stages import stage_spec
from diffusegae.train.state import TrainState, export_checkpoint, load_train_state

LOCK_FILE = "train.lock.json"


def train(
    checkpoint: str | Path,
    *,
    stage: int = 1,
    steps: int = 1000,
    batch_size: int | None = None,
    lr: float | None = None,
    preset: str | None = None,
    seed: int | None = None,
    threads: int | None = None,
    log_every: int = 50,
    save_every: int | None = None,
    save_every_s: float | None = 600.0,
    time_limit_s: float | None = None,
    device: str = "auto",
    amp: bool = False,
    ema_decay: float | None = None,
    grad_clip: float | None = None,
    lambda_ss: float | None = None,
    lambda_ur: float | None = None,
    lambda_sc: float | None = None,
    gamma: float | None = None,
    stats_images: int | None = None,
    dataset_seed: int | None = None,
    quiet: bool = False,
    data_workers: int | None = None,
    **objective: Any,
) -> dict[str, Any]:
    """Run `steps` more optimizer steps of `stage` on the checkpoint directory; returns the stage summary.

    batch_size counts images in stage 1 and GROUP(C, 1) groups (1+K images each) in stages 2 and 3.
    Settings left as None keep the value of the run being resumed, else the stage default (lr 1e-4 / 4e-5 /
    1e-5; λss, λur = 1.0, 0.5 in stage 2 and 0.5, 0.5 with γ = 1 in stage 3; λsc 0; EMA decay 0.999;
    clip 1.0).
    The run stops after `steps`, after `time_limit_s`, or on SIGINT/SIGTERM, and always saves before
    returning; it also saves every `save_every` steps and every `save_every_s` seconds. data_workers:
    processes rendering batches ahead of the loop (None: none on CPU, half the cores up to 8 on a GPU);
    the images are the same whatever the number. `objective`: fields of train.objectives.Objective
    (weighting, weight_cap, min_snr_gamma, timesteps, high_t_share, high_t_from, logit_mean, logit_std,
    learned_norm) for the diffusion term of stages 1 and 3; unset ones keep the resumed run's values.
    """
    unknown = set(objective) - set(OBJECTIVE_FIELDS)
    if unknown:
        raise TypeError(f"train() got unknown arguments {sorted(unknown)}")
    t_start = time.monotonic()
    spec = stage_spec(stage)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if threads is not None:
        torch.set_num_threads(int(threads))
    dev = _device(device)
    if amp and dev.type != "cuda":
        raise ValueError("amp (bf16 autocast) is only supported on CUDA devices")
    directory = Path(checkpoint)
    cfg = _open_checkpoint(directory, preset, seed or 0)
    if spec.groups and cfg.gae is None:
        raise ValueError(f"stage {stage} trains the GAE, but {directory} is a plain Diff-AE ({cfg.name})")

    with _lock(directory):
        loaded = load_train_state(directory)
        resume = loaded is not None and loaded[0].stage == stage
        state = loaded[0] if resume else TrainState(stage=stage)
        given = {
            "batch_size": batch_size,
            "lr": lr,
            "lambda_ss": lambda_ss,
            "lambda_ur": lambda_ur,
            "lambda_sc": lambda_sc,
            "gamma": gamma,
            "seed": seed,
            "dataset_seed": dataset_seed,
            "ema_decay": ema_decay,
            "grad_clip": grad_clip,
            "stats_images": stats_images,
            **objective,
        }
        settings = Settings.resolve(spec, given, state.settings, amp, cfg.unet.prediction)
        state.segment_start = state.step  # data cursor: a new group stream per run segment (stages.py)
        workers = default_workers(dev.type) if data_workers is None else data_workers
        record = loaded[1] if resume else None
        session = Session(directory, cfg, spec, settings, state, record, dev, quiet, workers)
        try:
            with _stop_on_signals() as stop:
                session.run(steps, log_every, save_every, save_every_s, time_limit_s, t_start, stop)
        finally:
            session.close()
        return session.summary()


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return dev


def _open_checkpoint(directory: Path, preset_name: str | None, seed: int) -> ModelConfig:
    if not (directory / CONFIG_FILE).is_file():
        if preset_name is None:
            raise FileNotFoundError(f"{directory} is not a checkpoint yet; pass a preset to create it")
        cfg = get_preset(preset_name)
        directory.mkdir(parents=True, exist_ok=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            export_checkpoint(build_model(cfg), directory, info={"train": {}})
        return cfg
    cfg = read_config(directory)
    if preset_name is not None and get_preset(preset_name) != cfg:
        raise ValueError(
            f"{directory} holds a {cfg.name!r} model that differs from preset {preset_name!r}; "
            "leave the preset out to resume it, or pick a new directory"
        )
    return cfg


@contextlib.contextmanager
def _lock(directory: Path) -> Iterator[None]:
    """One training run per checkpoint: a lock file naming the owner; a dead owner's lock is taken over."""
    path = directory / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    if path.exists():
        try:
            owner = json.loads(path.read_text())
        except (OSError, ValueError):
            owner = {}
        if owner.get("host") == me["host"] and owner.get("pid") != me["pid"] and _alive(owner.get("pid")):
            raise RuntimeError(f"{directory} is being trained by process {owner['pid']} ({path})")
        path.unlink(missing_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[StopFlag]:
    """SIGINT/SIGTERM ask the loop to stop after the current step and save; a second one interrupts."""
    stop = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested, stop.reason = True, signal.Signals(signum).name

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # background jobs ignore SIGINT: keep it so
            previous[sig] = signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
