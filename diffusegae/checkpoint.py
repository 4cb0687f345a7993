"""A checkpoint is a directory: config.json + model.safetensors (+ latent_stats, directions .safetensors).

Loading reads JSON and safetensors only: nothing is ever unpickled. The config is also written into the
safetensors header, so a weights file on its own still says what it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffusegae.config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from diffusegae.manipulate import Directions
    from diffusegae.models import DiffusionAutoencoder

# torch loads inside the functions that need it: reading a config (servers, the client side, export-cache
# checks) must stay light.

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
LATENT_STATS_FILE = "latent_stats.safetensors"  # conds_mean / conds_std of z_sem (Diff-AE normalisation)
DIRECTIONS_FILE = "directions.safetensors"  # attribute directions for manipulate (diffusegae.manipulate)


def save_checkpoint(
    model: DiffusionAutoencoder,
    directory: str | Path,
    *,
    dtype: torch.dtype | None = None,
    latent_stats: dict[str, torch.Tensor] | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write `model` to `directory` (created if needed). dtype=torch.float16 halves the file for shipping."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"format_version": FORMAT_VERSION, "model": model.cfg.to_dict(), "info": info or {}}
    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"config": json.dumps(config["model"])})
    if latent_stats is not None:
        save_file(
            {k: v.float().contiguous().cpu() for k, v in latent_stats.items()},
            str(directory / LATENT_STATS_FILE),
        )
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_config(directory: str | Path) -> ModelConfig:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a checkpoint directory: {CONFIG_FILE} is missing")
    data = json.loads(path.read_text())
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {data.get('format_version')} unsupported (want {FORMAT_VERSION})"
        )
    return ModelConfig.from_dict(data["model"])


def read_info(directory: str | Path) -> dict[str, Any]:
    return json.loads((Path(directory) / CONFIG_FILE).read_text()).get("info", {})


def load_checkpoint(directory: str | Path, device: torch.device | str = "cpu") -> DiffusionAutoencoder:
    """The model of a checkpoint directory, float32, in eval mode; weights must match the config exactly."""
    from safetensors.torch import load_file

    from diffusegae.models import build_model

    directory = Path(directory)
    cfg = read_config(directory)
    model = build_model(cfg, device="meta")
    state = {
        k: v.float() if v.is_floating_point() else v for k, v in load_file(directory / WEIGHTS_FILE).items()
    }
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device).eval()


def load_latent_stats(directory: str | Path) -> dict[str, torch.Tensor] | None:
    from safetensors.torch import load_file

    path = Path(directory) / LATENT_STATS_FILE
    return load_file(path) if path.is_file() else None


def save_directions(directory: str | Path, directions: Directions) -> Path:
    """Write the manipulation directions (with the statistics they were trained on) into a checkpoint."""
    from safetensors.numpy import save_file

    path = Path(directory) / DIRECTIONS_FILE
    tensors = {"weight": directions.weight, "conds_mean": directions.mean, "conds_std": directions.std}
    save_file(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
        str(path),
        metadata={"names": json.dumps(list(directions.names))},
    )
    return path


def load_directions(directory: str | Path) -> Directions | None:
    """The checkpoint's manipulation directions, or None; numpy only (the server's glue model reads it)."""
    from safetensors import safe_open

    from diffusegae.manipulate import Directions

    path = Path(directory) / DIRECTIONS_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), framework="numpy") as f:
        names = tuple(json.loads(f.metadata()["names"]))
        return Directions(
            names, f.get_tensor("weight"), f.get_tensor("conds_mean"), f.get_tensor("conds_std")
        )
