"""What a resumable run keeps on disk, written atomically, as JSON and safetensors only (nothing pickled).

checkpoint/
  config.json, model.safetensors   the EMA weights: what inference loads (diffusegae.checkpoint)
  train_log.jsonl                  one JSON line per log step
  train_state/
    state.json                     the commit point: stage, step, settings, data cursor, smoothed losses,
                                   optimizer index, and the names of the three weight files below
    raw-<step>.safetensors         the raw (non-averaged) model
    ema-<step>.safetensors         the EMA model (the same as model.safetensors, kept with its step)
    optim-<step>.safetensors       Adam's per-parameter state, keys "<param name>:<field>"

A save writes the step-named files, then replaces state.json in one rename, then deletes the files no
longer named; a run killed at any point leaves the last complete save in place.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from diffusegae.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint
from diffusegae.fileio import atomic_path, write_json_atomic

STATE_DIR = "train_state"
STATE_FILE = "state.json"
LOG_FILE = "train_log.jsonl"
STATE_VERSION = 1


@dataclass
class TrainState:
    """The resumable part of a run, apart from tensors. `step` counts optimizer steps of this stage."""

    stage: int
    step: int = 0
    images: int = 0  # training images seen in this stage
    wall_s: float = 0.0  # seconds spent training in this stage, over every resume
    ema_updates: int = 0
    segment_start: int = 0  # step at which the current group stream was seeded (data cursor)
    smoothed: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # the resolved settings of the latest run

    def smooth(self, losses: dict[str, float], beta: float = 0.98) -> None:
        for name, value in losses.items():
            old = self.smoothed.get(name)
            self.smoothed[name] = value if old is None else beta * old + (1.0 - beta) * value


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))


def optimizer_tensors(optimizer: torch.optim.Optimizer, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Adam(W) state as flat tensors keyed "<param name>:<field>" (step, exp_avg, exp_avg_sq)."""
    out = {}
    for index, entry in optimizer.state_dict()["state"].items():
        for key, value in entry.items():
            out[f"{names[index]}:{key}"] = torch.as_tensor(value)
    return out


def restore_optimizer(
    optimizer: torch.optim.Optimizer, names: Sequence[str], tensors: dict[str, torch.Tensor]
) -> None:
    """Load state written by `optimizer_tensors` into an optimizer built over the same named parameters."""
    index = {name: i for i, name in enumerate(names)}
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        name, _, field_name = key.rpartition(":")
        if name not in index:
            raise ValueError(f"optimizer state names parameter {name!r}, which this stage does not train")
        state.setdefault(index[name], {})[field_name] = value
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_train_state(
    directory: Path,
    state: TrainState,
    model: nn.Module,
    ema_model: nn.Module,
    optimizer: torch.optim.Optimizer,
    param_names: Sequence[str],
    train_only: dict[str, torch.Tensor] | None = None,
) -> None:
    """`train_only`: tensors saved with the raw weights that are not part of the model (e.g. EDM2's u(t))."""
    folder = directory / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "raw": f"raw-s{state.stage}-{state.step:08d}.safetensors",
        "ema": f"ema-s{state.stage}-{state.step:08d}.safetensors",
        "optimizer": f"optim-s{state.stage}-{state.step:08d}.safetensors",
    }
    _save_tensors({**model.state_dict(), **(train_only or {})}, folder / files["raw"])
    _save_tensors(ema_model.state_dict(), folder / files["ema"])
    _save_tensors(optimizer_tensors(optimizer, param_names), folder / files["optimizer"])
    record = {
        "version": STATE_VERSION,
        **dataclasses.asdict(state),
        "files": files,
        "optimizer": {"params": list(param_names), "param_groups": _jsonable(optimizer.param_groups)},
    }
    write_json_atomic(folder / STATE_FILE, record)  # the commit point
    keep = {STATE_FILE, *files.values()}
    for path in folder.iterdir():
        if path.name not in keep:
            path.unlink()


def _jsonable(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    simple = (bool, int, float, str, type(None))
    return [
        {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in g.items()
            if k != "params" and isinstance(v, (*simple, tuple))
        }
        for g in groups
    ]


def load_train_state(directory: Path) -> tuple[TrainState, dict[str, Any]] | None:
    """(state, record) of the last complete save, or None when the checkpoint has never been trained."""
    path = directory / STATE_DIR / STATE_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: version {record.get('version')} unsupported (want {STATE_VERSION})")
    names = {f.name for f in dataclasses.fields(TrainState)}
    return TrainState(**{k: v for k, v in record.items() if k in names}), record


def load_state_tensors(directory: Path, record: dict[str, Any], which: str) -> dict[str, torch.Tensor]:
    return load_file(directory / STATE_DIR / record["files"][which])


def export_checkpoint(model: nn.Module, directory: Path, info: dict[str, Any]) -> None:
    """save_checkpoint into a scratch folder, then move its files over the checkpoint's one by one."""
    tmp = directory / f".export-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_checkpoint(model, tmp, info=info)
    for name in (WEIGHTS_FILE, CONFIG_FILE):  # config last: it describes the weights
        os.replace(tmp / name, directory / name)
    shutil.rmtree(tmp)


def append_log(directory: Path, record: dict[str, Any]) -> None:
    with open(directory / LOG_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
