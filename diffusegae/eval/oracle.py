"""The attribute oracle: a small CNN with one classification head per attribute, trained on real dataset
images, that reads the attribute values off generated images (edit and recombine outputs).

It trains on train-split combinations with random nuisance seeds and is scored on held-out test-split
combinations; a trained oracle is cached per resolution next to the evaluation outputs
(oracle_<res>.safetensors + oracle_<res>.json) and retrained when missing or trained with other settings.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from diffusegae.data import AttributeDataset
from diffusegae.images import to_model

MIN_FEATURE_SIZE = 4  # downsample until the feature map is this wide


@dataclass(frozen=True)
class OracleSettings:
    steps: int = 600
    batch_size: int = 64
    pool: int = 4096  # rendered training images, drawn once
    eval_images: int = 1000  # held-out test-split images for the reported accuracy
    lr: float = 2e-3
    width: int = 32
    seed: int = 0


class AttributeOracle(nn.Module):
    """uint8 [B,H,W,3] → one logit vector per attribute."""

    def __init__(self, resolution: int, attributes: dict[str, int], width: int = 32) -> None:
        super().__init__()
        self.resolution, self.attributes = int(resolution), dict(attributes)
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
        size, channels = self.resolution, width
        while size > MIN_FEATURE_SIZE:
            out = min(channels * 2, 128)
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            size, channels = (size + 1) // 2, out
        self.features = nn.Sequential(
            *layers, nn.Flatten(), nn.Linear(channels * size * size, 256), nn.ReLU()
        )
        self.heads = nn.ModuleDict({name: nn.Linear(256, n) for name, n in self.attributes.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 [B,H,W,3] images → predicted values int64 [B, n_attributes], attribute order."""
        self.eval()
        out = []
        for i in range(0, len(images), batch_size):
            logits = self(torch.from_numpy(to_model(images[i : i + batch_size])))
            out.append(torch.stack([logits[a].argmax(1) for a in self.attributes], dim=1))
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.attributes)), np.int64)


def accuracy(predicted: np.ndarray, values: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Fraction of correct values per attribute (columns in `names` order)."""
    return {name: float((predicted[:, j] == values[:, j]).mean()) for j, name in enumerate(names)}


def train_oracle(
    dataset: AttributeDataset, settings: OracleSettings
) -> tuple[AttributeOracle, dict[str, Any]]:
    """Train on the train split; return the oracle and its held-out (test-split) accuracy per attribute."""
    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng([settings.seed, 0x0AC1E])
    values, images = dataset.sample(rng, "train", settings.pool)
    x, y = torch.from_numpy(to_model(images)), torch.from_numpy(values)
    oracle = AttributeOracle(dataset.resolution, dataset.attributes, settings.width)
    opt = torch.optim.Adam(oracle.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=max(settings.steps, 1))
    gen = torch.Generator().manual_seed(settings.seed)
    oracle.train()
    for _ in range(settings.steps):
        idx = torch.randint(0, len(x), (settings.batch_size,), generator=gen)
        logits = oracle(x[idx])
        loss = sum(
            nn.functional.cross_entropy(logits[name], y[idx, j]) for j, name in enumerate(oracle.attributes)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        sched.step()
    train_s = time.perf_counter() - start
    test_values, test_images = dataset.sample(rng, "test", settings.eval_images)
    names = dataset.attribute_names
    info = {
        "settings": asdict(settings),
        "resolution": dataset.resolution,
        "dataset_seed": dataset.seed,
        "heldout_accuracy": accuracy(oracle.predict(test_images), test_values, names),
        "train_accuracy": accuracy(oracle.predict(images[:1000]), values[:1000], names),
        "train_s": round(train_s, 2),
    }
    return oracle.eval(), info


def oracle_paths(directory: str | Path, resolution: int) -> tuple[Path, Path]:
    base = Path(directory) / f"oracle_{resolution}"
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def save_oracle(oracle: AttributeOracle, info: dict[str, Any], directory: str | Path) -> Path:
    from safetensors.torch import save_file

    weights, meta = oracle_paths(directory, oracle.resolution)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in oracle.state_dict().items()}
    save_file(state, str(weights), metadata={"info": json.dumps(info)})
    meta.write_text(json.dumps(info, indent=2) + "\n")
    return weights


def load_oracle(directory: str | Path, dataset: AttributeDataset) -> tuple[AttributeOracle, dict[str, Any]]:
    from safetensors.torch import load_file

    weights, meta = oracle_paths(directory, dataset.resolution)
    info = json.loads(meta.read_text())
    oracle = AttributeOracle(dataset.resolution, dataset.attributes, info["settings"]["width"])
    oracle.load_state_dict(load_file(weights), strict=True)
    return oracle.eval(), info


def load_or_train_oracle(
    directory: str | Path, dataset: AttributeDataset, settings: OracleSettings
) -> tuple[AttributeOracle, dict[str, Any]]:
    """The cached oracle for this resolution if it was trained with these settings, else a new one (saved)."""
    weights, meta = oracle_paths(directory, dataset.resolution)
    if weights.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        if info.get("settings") == asdict(settings) and info.get("dataset_seed") == dataset.seed:
            oracle, info = load_oracle(directory, dataset)
            return oracle, {**info, "cached": True}
    oracle, info = train_oracle(dataset, settings)
    save_oracle(oracle, info, directory)
    return oracle, {**info, "cached": False}
