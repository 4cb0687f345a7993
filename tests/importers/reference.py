"""The recipe behind reference.safetensors: a small Diff-AE in the official code's terms, random weights.

The reference tensors were made by running phizaz/diffae's own model and sampler code (fetched, run from a
throw-away folder under /tmp, never committed) on the weights `official_state_dict` builds here. The tests
rebuild the same weights from the same recipe, wrap them in a Lightning-style `last.ckpt`, import that with
`diffusegae import-diffae`, and compare our outputs with the stored ones.

Weights come from numpy's legacy RandomState, whose streams are frozen across numpy versions, one stream per
tensor seeded by the tensor's name, so the result does not depend on key order.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

REFERENCE_FILE = Path(__file__).with_name("reference.safetensors")

# BeatGANsAutoencConfig keyword arguments of the reference model (the official templates' settings where
# they matter, smaller sizes). Attention sits at 8×8, not at the templates' 16×16, and the encoder has a
# different block count and depth than the UNet, so inferring the architecture from keys is exercised.
OFFICIAL_CONFIG = dict(
    image_size=16,
    in_channels=3,
    out_channels=3,
    model_channels=32,
    channel_mult=(1, 2),
    num_res_blocks=2,
    attention_resolutions=(8,),
    enc_channel_mult=(1, 2, 2),
    enc_num_res_block=1,
    enc_pool="adaptivenonzero",
    enc_out_channels=512,
    embed_channels=512,
    num_heads=1,
    dropout=0.1,
    resblock_updown=True,
    resnet_two_cond=True,
    resnet_use_zero_module=True,
)

SEED = 20261121
BATCH = 3
STEPS = 10  # DDIM steps of the sampled references (inversion and decoding)
EPS_TIMESTEPS = (0, 417, 999)
NUM_CLASSES = 40  # like the official CelebA-HQ attribute classifier
DIRECTION = 5
AMP = 0.3
ALPHA = 0.4  # interpolation between inputs 0 and 1


def _rng(name: str) -> np.random.RandomState:
    return np.random.RandomState((SEED + zlib.crc32(name.encode())) % 2**32)


def random_tensor(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Weights ~ N(0, 1/fan_in); 1-D weights (norm scales) ~ 1 + N(0, 0.1²); 1-D others ~ N(0, 0.05²)."""
    rng = _rng(name)
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
    if name.endswith(".weight"):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    return (0.05 * rng.standard_normal(shape)).astype(np.float32)


def official_state_dict(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Random weights for the official model's state-dict keys (`shapes`: key → shape)."""
    return {name: random_tensor(name, tuple(shape)) for name, shape in shapes.items()}


def inputs() -> dict[str, np.ndarray]:
    """The inputs every reference output was computed from."""
    rng = _rng("inputs")
    size = OFFICIAL_CONFIG["image_size"]
    images = (BATCH, 3, size, size)
    return {
        "x0": rng.uniform(-1, 1, images).astype(np.float32),
        "x_t": rng.standard_normal(images).astype(np.float32),
        "t": np.asarray(EPS_TIMESTEPS, dtype=np.int64),
        "z": rng.standard_normal((BATCH, OFFICIAL_CONFIG["enc_out_channels"])).astype(np.float32),
    }


def classifier() -> dict[str, np.ndarray]:
    """A linear attribute classifier on z_sem with its normalisation, in the official ClsModel's names."""
    rng = _rng("classifier")
    width = OFFICIAL_CONFIG["enc_out_channels"]
    return {
        "classifier.weight": (rng.standard_normal((NUM_CLASSES, width)) / np.sqrt(width)).astype(np.float32),
        "classifier.bias": (0.1 * rng.standard_normal(NUM_CLASSES)).astype(np.float32),
        "conds_mean": (0.5 * rng.standard_normal((1, width))).astype(np.float32),
        "conds_std": rng.uniform(0.5, 1.5, (1, width)).astype(np.float32),
    }


def load_reference() -> tuple[dict[str, np.ndarray], dict[str, tuple[int, ...]]]:
    """The official outputs, and the official model's state-dict shapes (recorded by the harness)."""
    import json

    from safetensors import safe_open

    with safe_open(str(REFERENCE_FILE), framework="numpy") as f:
        outputs = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a Mapping)
        shapes = {k: tuple(v) for k, v in json.loads(f.metadata()["official_shapes"]).items()}
    return outputs, shapes


def lightning_checkpoint(path: Path, *, x_t: bool = True, hyper_parameters: dict | None = None) -> Path:
    """Write the reference weights as a Diff-AE Lightning last.ckpt: EMA and raw copies, x_T, statistics
    and a stray latent-DPM tensor (left out by the import).

    The raw `model.*` copy is the EMA one halved, so a test can tell which set was loaded.
    """
    import torch

    _, shapes = load_reference()
    weights = {k: torch.from_numpy(v) for k, v in official_state_dict(shapes).items()}
    state = {f"ema_model.{k}": v for k, v in weights.items()}
    state |= {f"model.{k}": 0.5 * v for k, v in weights.items()}
    state["ema_model.latent_net.layers.0.weight"] = torch.ones(2, 2)  # a *_latent template's z_sem DPM
    cls = classifier()
    state |= {k: torch.from_numpy(cls[k]) for k in ("conds_mean", "conds_std")}
    if x_t:
        size = OFFICIAL_CONFIG["image_size"]
        state["x_T"] = torch.randn(4, 3, size, size)
    data: dict = {"state_dict": state, "epoch": 3, "global_step": 1234}
    if hyper_parameters is not None:
        data["hyper_parameters"] = hyper_parameters
    torch.save(data, path)
    return path


def classifier_checkpoint(path: Path) -> Path:
    """The reference classifier as a Diff-AE ClsModel checkpoint (conds_* kept as [1, 512] buffers)."""
    import torch

    state = {k: torch.from_numpy(v) for k, v in classifier().items()}
    state["ema_classifier.weight"] = state["classifier.weight"] * 0.9
    state["ema_classifier.bias"] = state["classifier.bias"]
    torch.save({"state_dict": state}, path)
    return path
