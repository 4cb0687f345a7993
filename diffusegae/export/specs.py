"""One export spec per component: the single source of every exported model and tensor name.

ONNX files, ONNX Runtime feeds, TensorRT profiles, Triton `config.pbtxt` files and the client all read
names, dtypes, shapes and batch profiles from here. This module imports no torch (the client reads it);
the torch modules that get exported live in `diffusegae.export.wrappers` and are looked up by class name.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from diffusegae.config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from diffusegae.models import DiffusionAutoencoder

BATCH = "batch"  # the symbolic batch axis, first in every tensor

# Component (ONNX file stem, Triton model) names.
ENCODER = "encoder"
GAE_ENCODE = "gae_encode"
GAE_DECODE = "gae_decode"
UNET = "unet"
# Feature reuse (an opt-in): the UNet split where the outermost level meets the inner ones.
UNET_DEEP = "unet_deep"
UNET_SHALLOW = "unet_shallow"

# Tensor names. Each is written here once; a name may appear in several components (z_sem is the encoder's
# output and the UNet's and GAE encoder's input) because tensor names are per model.
X0 = "x0"
X_T = "x_t"
TIMESTEP = "t"
Z_SEM = "z_sem"
Z_DIS = "z_dis"
EPS = "eps"
DEEP = "deep"

WRAPPERS_MODULE = "diffusegae.export.wrappers"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, numpy dtype name, shape with BATCH first, and how to draw sample values."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    # sample values: None draws N(0, 1); (low, high) draws uniformly, integers in [low, high) for int dtypes
    sample_range: tuple[float, float] | None = None

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if dim == BATCH else int(dim) for dim in self.shape)

    def sample(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        shape = self.concrete_shape(batch)
        if np.issubdtype(np.dtype(self.dtype), np.integer):
            low, high = self.sample_range or (0, 2)
            return rng.integers(int(low), int(high), size=shape, dtype=self.dtype)
        if self.sample_range is None:
            return rng.standard_normal(shape).astype(self.dtype)
        return rng.uniform(*self.sample_range, size=shape).astype(self.dtype)


@dataclass(frozen=True)
class BatchProfile:
    """The min / opt / max batch sizes an engine is built for (TensorRT profiles, Triton max_batch_size)."""

    min: int = 1
    opt: int = 8
    max: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ValueError(f"batch profile needs 1 <= min <= opt <= max, got {self}")


class TensorIO:
    """Names of a spec's inputs and outputs, in order (for any spec with `inputs` and `outputs`)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)


@dataclass(frozen=True)
class ExportSpec(TensorIO):
    """An exported component: its name, IO tensors, batch profile, and the wrapper module to export."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    wrapper: str  # class name in diffusegae.export.wrappers
    profile: BatchProfile = BatchProfile()

    def sample_inputs(self, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Random inputs of the right names, dtypes and shapes for `batch` samples (reproducible by seed)."""
        rng = np.random.default_rng(seed)
        return {t.name: t.sample(batch, rng) for t in self.inputs}

    def build_module(self, model: DiffusionAutoencoder) -> nn.Module:
        """The torch module to export, wrapping the part of `model` this spec describes (in eval mode)."""
        cls = getattr(importlib.import_module(WRAPPERS_MODULE), self.wrapper)
        return cls(model).eval()

    def fingerprint(self) -> str:
        """A stable text form of everything in the spec, for export cache keys."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def specs_for(config: ModelConfig) -> list[ExportSpec]:
    """The export specs of a model config: encoder, [gae_encode, gae_decode,] unet (no GAE for Diff-AE)."""
    s = config.image_size
    z_sem_width = config.encoder.out_channels
    image = (BATCH, config.unet.in_channels, s, s)
    specs = [
        ExportSpec(
            ENCODER,
            inputs=(TensorSpec(X0, "float32", image, sample_range=(-1.0, 1.0)),),
            outputs=(TensorSpec(Z_SEM, "float32", (BATCH, z_sem_width)),),
            wrapper="EncoderWrapper",
        )
    ]
    if config.gae is not None:
        z_dis = TensorSpec(Z_DIS, "float32", (BATCH, config.gae.z_dis_channels))
        z_sem = TensorSpec(Z_SEM, "float32", (BATCH, config.gae.in_channels))
        specs += [
            ExportSpec(GAE_ENCODE, inputs=(z_sem,), outputs=(z_dis,), wrapper="GAEEncodeWrapper"),
            ExportSpec(GAE_DECODE, inputs=(z_dis,), outputs=(z_sem,), wrapper="GAEDecodeWrapper"),
        ]
    specs.append(
        ExportSpec(
            UNET,
            inputs=(
                TensorSpec(X_T, "float32", image),
                TensorSpec(TIMESTEP, "int64", (BATCH,), sample_range=(0, config.diffusion.num_timesteps)),
                TensorSpec(Z_SEM, "float32", (BATCH, z_sem_width)),
            ),
            outputs=(TensorSpec(EPS, "float32", (BATCH, config.unet.out_channels, s, s)),),
            wrapper="UNetWrapper",
        )
    )
    return specs


def reuse_specs_for(config: ModelConfig) -> list[ExportSpec]:
    """The two UNet graphs of feature reuse: the whole UNet, also returning its deep feature, and the
    outermost level alone on a given deep feature (`UNet.eps_and_deep`, `UNet.eps_from_deep`)."""
    (unet,) = (spec for spec in specs_for(config) if spec.name == UNET)
    mult = config.unet.channel_mult
    s = config.image_size
    # what the inner levels hand the outermost one: level 1's channels, upsampled to full resolution
    deep = TensorSpec(
        DEEP, "float32", (BATCH, mult[min(1, len(mult) - 1)] * config.unet.model_channels, s, s)
    )
    return [
        dataclasses.replace(unet, name=UNET_DEEP, outputs=(*unet.outputs, deep), wrapper="UNetDeepWrapper"),
        dataclasses.replace(
            unet, name=UNET_SHALLOW, inputs=(*unet.inputs, deep), wrapper="UNetShallowWrapper"
        ),
    ]


def spec_by_name(config: ModelConfig, name: str) -> ExportSpec:
    """The spec called `name`; unknown names raise ValueError listing the components of this config."""
    specs = {spec.name: spec for spec in specs_for(config)}
    if name not in specs:
        raise ValueError(f"no component {name!r} for {config.name!r}; choose from {', '.join(specs)}")
    return specs[name]
