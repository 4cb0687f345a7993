"""One evaluation run over a checkpoint: reconstruction (Table 2 analog), the decoder's use of z_sem by
timestep, linear probes (Table 1 analog), the attribute oracle and edit / recombine accuracy; returns one
JSON-ready dict with the settings used."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffusegae.checkpoint import read_info
from diffusegae.data import AttributeDataset
from diffusegae.engines.pipeline import Pipeline, load_pipeline
from diffusegae.eval.conditioning import conditioning_use
from diffusegae.eval.edits import (
    edit_accuracy,
    interpolation_accuracy,
    recombine_accuracy,
    reconstruction_accuracy,
)
from diffusegae.eval.oracle import OracleSettings, load_or_train_oracle
from diffusegae.eval.probes import ProbeSettings, probe_matrix, sample_probe_images
from diffusegae.eval.reconstruction import encode_all, evaluate_reconstruction
from diffusegae.images import to_model


@dataclass(frozen=True)
class EvalSettings:
    images: int = 32  # held-out images for reconstruction; also the default for edits / recombines
    steps: tuple[int, ...] = (20, 100)
    seed: int = 0
    engine: str = "torch"
    device: str = "cpu"
    threads: int | None = None
    batch_size: int = 32
    probe_images: int = 1500
    edit_images: int | None = None  # None: = images
    edit_steps: int | None = None  # None: the smallest of `steps`
    dataset_seed: int | None = None  # None: the split the checkpoint was trained on (else 0)
    quick: bool = False
    sampler: str = "ddim"  # what every decode and inversion of the run uses (dpm_solver.SAMPLERS)
    oracle: OracleSettings = field(default_factory=OracleSettings)
    probe: ProbeSettings = field(default_factory=ProbeSettings)


def quick_settings(**overrides: Any) -> EvalSettings:
    """A small-sample run that still exercises every part (for tests and smoke checks)."""
    base = EvalSettings(
        images=16,
        steps=(5,),
        probe_images=200,
        edit_images=8,
        quick=True,
        oracle=OracleSettings(steps=60, batch_size=32, pool=512, eval_images=200, width=16),
        probe=ProbeSettings(iterations=50),
    )
    return dataclasses.replace(base, **overrides)


def training_stages(checkpoint: str | Path) -> dict[str, dict[str, Any]]:
    """The training record of each stage the checkpoint went through ({} for an imported checkpoint)."""
    stages = read_info(checkpoint).get("train", {})
    return {name: s for name, s in sorted(stages.items()) if isinstance(s, dict)}


def checkpoint_dataset_seed(checkpoint: str | Path) -> int | None:
    """The dataset seed (train/test split) recorded by training, or None if the checkpoint does not say."""
    seeds = [s["dataset_seed"] for s in training_stages(checkpoint).values() if "dataset_seed" in s]
    return int(seeds[-1]) if seeds else None


def held_out_sample(dataset: AttributeDataset, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The eval's n test-split images for `seed`: (values [n, 3], uint8 [n, H, W, 3])."""
    return dataset.sample(np.random.default_rng([seed, 0x7E57]), "test", n)


def latent_features(pipe: Pipeline, x0: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """Probe features: raw z_sem, plus each named z_dis chunk and the GAE round trip on a DiffuseGAE."""
    z_sem = encode_all(pipe, x0, batch_size)
    features = {"z_sem": z_sem}
    gae = pipe.config.gae
    if gae is not None:
        z_dis = pipe.disentangle(z_sem)
        features |= {name: z_dis[:, gae.chunk(name)] for name in gae.attribute_names}
        features["_z_sem_roundtrip"] = pipe.entangle(z_dis)
    return features


def _environment(settings: EvalSettings) -> dict[str, Any]:
    from diffusegae.train.state import device_name

    return {
        "device": device_name(torch.device(settings.device)),
        "torch_threads": torch.get_num_threads(),
        "engine": settings.engine,
        "sampler": settings.sampler,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _probes(pipe: Pipeline, dataset: AttributeDataset, settings: EvalSettings) -> dict[str, Any]:
    values, images = sample_probe_images(dataset, settings.probe_images, settings.seed)
    features = latent_features(pipe, to_model(images), settings.batch_size)
    roundtrip = features.pop("_z_sem_roundtrip", None)
    probes = probe_matrix(features, values, dataset.attributes, settings.probe)
    if roundtrip is not None:  # ‖ẑ_sem − z_sem‖² over the total variance of z_sem
        z = features["z_sem"]
        probes["gae_relative_error"] = float(((roundtrip - z) ** 2).sum() / ((z - z.mean(0)) ** 2).sum())
    return probes


def _edits(
    pipe: Pipeline,
    dataset: AttributeDataset,
    settings: EvalSettings,
    oracle_dir: str | Path,
    reconstructions: tuple[np.ndarray, dict[tuple[int, str], np.ndarray]],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    gae = pipe.config.gae
    assert gae is not None
    if tuple(gae.attribute_names) != dataset.attribute_names:
        raise ValueError(
            f"checkpoint attributes {gae.attribute_names} differ from the dataset's "
            f"{dataset.attribute_names}; the oracle cannot score its edits"
        )
    n = settings.edit_images if settings.edit_images is not None else settings.images
    steps = settings.edit_steps if settings.edit_steps is not None else min(settings.steps)
    clock = time.perf_counter()
    oracle, oracle_info = load_or_train_oracle(oracle_dir, dataset, settings.oracle)
    oracle_s = time.perf_counter() - clock
    args = (pipe, oracle, dataset, n, steps, settings.seed, settings.batch_size)
    values, outputs = reconstructions
    at = steps if any(s == steps for s, _ in outputs) else min(s for s, _ in outputs)
    edits = {
        "edit": edit_accuracy(*args),
        "recombine": recombine_accuracy(*args),
        "interpolate": interpolation_accuracy(*args),
        "reconstruction": {
            "steps": at,
            "images": len(values),
            **reconstruction_accuracy(
                oracle, values, {m: x for (s, m), x in outputs.items() if s == at}, dataset.attribute_names
            ),
        },
    }
    return oracle_info, edits, {"oracle_s": oracle_s, "edits_s": time.perf_counter() - clock - oracle_s}


def _notes(pipe: Pipeline, settings: EvalSettings, stages: dict[str, Any]) -> list[str]:
    notes = []
    if pipe.config.gae is None:
        notes.append(
            "plain Diff-AE checkpoint (no GAE): probes on z_sem only; no z_dis probes, no edit accuracy"
        )
    elif stages and not {"stage2", "stage3", "stage4"} & set(stages):
        notes.append(
            f"the GAE was never trained (training record: {', '.join(stages)}): z_dis probes and edit "
            "accuracy measure an untrained GAE"
        )
    if settings.quick:
        notes.append("--quick: small samples and short probe / oracle training; not for quoting")
    return notes


def evaluate(checkpoint: str | Path, settings: EvalSettings, oracle_dir: str | Path) -> dict[str, Any]:
    """Run every part that applies to the checkpoint; the oracle is cached in (or read from) oracle_dir.

    settings.threads, when given, sets torch's intra-op thread count for the process.
    """
    start = clock = time.perf_counter()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    options: dict[str, Any] = {}
    if settings.engine == "onnxruntime" and settings.threads is not None:
        options["threads"] = settings.threads
    if settings.engine == "torch":
        options["device"] = settings.device
    pipe = load_pipeline(checkpoint, engine=settings.engine, **options)
    pipe.sampler = settings.sampler
    cfg, stages = pipe.config, training_stages(checkpoint)
    dataset_seed = settings.dataset_seed
    if dataset_seed is None:
        dataset_seed = checkpoint_dataset_seed(checkpoint) or 0
    dataset = AttributeDataset(cfg.image_size, dataset_seed)
    timings = {"load_s": time.perf_counter() - clock}

    clock = time.perf_counter()
    test_values, test_images = held_out_sample(dataset, settings.images, settings.seed)
    recon, recon_images = evaluate_reconstruction(
        pipe, to_model(test_images), settings.steps, settings.seed, settings.batch_size
    )
    timings["reconstruction_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    conditioning = conditioning_use(
        pipe, to_model(test_images), seed=settings.seed, batch_size=settings.batch_size
    )
    timings["conditioning_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    probes = _probes(pipe, dataset, settings)
    timings["probes_s"] = time.perf_counter() - clock

    oracle_info = edits = None
    if cfg.gae is not None:
        oracle_info, edits, edit_timings = _edits(
            pipe, dataset, settings, oracle_dir, (test_values, recon_images)
        )
        timings |= edit_timings
    timings["total_s"] = time.perf_counter() - start

    used = dataclasses.asdict(settings) | {
        "dataset_seed": dataset_seed,
        "edit_images": edits["edit"]["images"] if edits else None,
        "edit_steps": edits["edit"]["steps"] if edits else None,
        "steps": list(settings.steps),
    }
    return {
        "checkpoint": str(checkpoint),
        "model": cfg.name,
        "kind": cfg.kind,
        "resolution": cfg.image_size,
        "z_dis_widths": dict(cfg.gae.attributes) if cfg.gae is not None else None,
        "settings": used,
        "training_steps": {name: s.get("steps") for name, s in stages.items()},
        "environment": _environment(settings),
        "reconstruction": {"images": settings.images, "split": "test", "rows": recon},
        "conditioning": conditioning,
        "probes": probes,
        "oracle": oracle_info,
        "edits": edits,
        "notes": _notes(pipe, settings, stages),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
