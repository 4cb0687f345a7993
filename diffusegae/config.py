"""Typed model configs and the named presets.

A ModelConfig is everything needed to rebuild a model: it is written to a checkpoint's config.json and read
back with `ModelConfig.from_dict`. Presets:

- tiny32     CI-sized DiffuseGAE (seconds on 2 CPU cores)
- synth64    the DiffuseGAE we ship, trained on the procedural attribute dataset (~8 M parameters)
- ilab128    paper scale (DiffuseGAE on ilab_20M at 128×128)
- diffae64 / diffae128 / diffae256   the official Diff-AE templates ffhq64_autoenc, ffhq128_autoenc,
             ffhq256_autoenc (plain Diff-AE: no GAE), so official checkpoints load with strict=True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

AdaGNMode = Literal["scale", "scale_shift"]
EncoderKind = Literal["diffae", "alter_resnet"]
Prediction = Literal["eps", "v", "x0"]

ADAGN_MODES = ("scale", "scale_shift")
ENCODER_KINDS = ("diffae", "alter_resnet")
# What the UNet's last layer outputs; the model converts it to eps itself (models/prediction.py), so every
# engine, export and sampler sees eps whatever the checkpoint was trained to predict.
PREDICTIONS = ("eps", "v", "x0")
Z_SEM_CHANNELS = 512


@dataclass(frozen=True)
class UNetConfig:
    """The conditional DDIM decoder (Diff-AE's BeatGANs autoencoder UNet)."""

    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 8)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    num_heads: int = 1
    embed_channels: int = 512  # width of the time embedding
    adagn_mode: AdaGNMode = "scale"  # "scale": Diff-AE; "scale_shift": DiffuseGAE Eq. 8
    # "eps": Diff-AE (and every official checkpoint); "v": v = sqrt(ᾱ)·eps − sqrt(1−ᾱ)·x0 (Salimans & Ho
    # 2022), which keeps the network's output informative where x_t is almost pure noise; "x0": the image
    prediction: Prediction = "eps"
    dropout: float = 0.1
    in_channels: int = 3
    out_channels: int = 3


@dataclass(frozen=True)
class EncoderConfig:
    """The semantic encoder x0 → z_sem (512-d)."""

    kind: EncoderKind = "diffae"
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 8, 8)
    num_res_blocks: int = 2
    # diffae: attention at these feature-map resolutions; alter_resnet: stages whose last block is attention
    attention_resolutions: tuple[int, ...] = (16,)
    attention_stages: tuple[int, ...] = ()
    num_heads: int = 1
    out_channels: int = Z_SEM_CHANNELS
    # alter_resnet head: 1 = global average pool (AlterNet); k > 1 = average pool to a k×k map, flattened,
    # so z_sem keeps *where* things are (a global pool throws away the direction of a pose, ENVIRONMENT.md)
    pool_size: int = 1


@dataclass(frozen=True)
class GAEConfig:
    """Group-supervised AutoEncoder on z_sem (DiffuseGAE §3.4): z_sem → z_dis (named chunks) → z_sem."""

    attributes: tuple[tuple[str, int], ...] = (("identity", 60), ("background", 20), ("pose", 20))
    hidden_channels: int = 1024
    in_channels: int = Z_SEM_CHANNELS

    @property
    def z_dis_channels(self) -> int:
        return sum(width for _, width in self.attributes)

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.attributes)

    def chunk(self, name: str) -> slice:
        """The z_dis index range of a named attribute; unknown names raise ValueError listing the choices."""
        start = 0
        for attr, width in self.attributes:
            if attr == name:
                return slice(start, start + width)
            start += width
        raise ValueError(f"unknown attribute {name!r}; choose from {', '.join(self.attribute_names)}")


@dataclass(frozen=True)
class DiffusionConfig:
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02


@dataclass(frozen=True)
class ModelConfig:
    name: str
    image_size: int
    unet: UNetConfig
    encoder: EncoderConfig
    gae: GAEConfig | None = None  # None: a plain Diff-AE model
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    def __post_init__(self) -> None:
        if self.unet.adagn_mode not in ADAGN_MODES:
            raise ValueError(f"unknown adagn_mode {self.unet.adagn_mode!r}; choose from {ADAGN_MODES}")
        if self.encoder.kind not in ENCODER_KINDS:
            raise ValueError(f"unknown encoder kind {self.encoder.kind!r}; choose from {ENCODER_KINDS}")
        if self.unet.prediction not in PREDICTIONS:
            raise ValueError(
                f"unknown prediction {self.unet.prediction!r}; choose from {', '.join(PREDICTIONS)}"
            )
        if self.encoder.pool_size < 1 or (self.encoder.kind == "diffae" and self.encoder.pool_size != 1):
            raise ValueError(
                f"encoder pool_size must be >= 1 (1 for the Diff-AE encoder), got {self.encoder.pool_size}"
            )
        levels = len(self.unet.channel_mult) - 1
        if self.image_size % (2**levels):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2**{levels}")

    @property
    def kind(self) -> str:
        return "diffusegae" if self.gae is not None else "diffae"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        def build(kind: type, values: dict[str, Any] | None) -> Any:
            if values is None:
                return None
            names = {f.name for f in dataclasses.fields(kind)}
            unknown = set(values) - names
            if unknown:
                raise ValueError(f"unknown {kind.__name__} fields {sorted(unknown)}; known: {sorted(names)}")
            # JSON has lists where the dataclasses hold tuples (of tuples, for GAE attributes)
            return kind(**{k: _tuples(v) for k, v in values.items()})

        return cls(
            name=data["name"],
            image_size=int(data["image_size"]),
            unet=build(UNetConfig, data["unet"]),
            encoder=build(EncoderConfig, data["encoder"]),
            gae=build(GAEConfig, data.get("gae")),
            diffusion=build(DiffusionConfig, data.get("diffusion", {})),
        )


WEIGHTINGS = ("auto", "simple", "v", "x0", "min_snr")
TIMESTEP_SAMPLERS = ("uniform", "high", "logit_normal")
_NATURAL = {"eps": "simple", "v": "v", "x0": "x0"}


@dataclass(frozen=True)
class Objective:
    """How the diffusion term of training weighs and samples timesteps (train/objectives.py)."""

    weighting: str = "auto"
    weight_cap: float | None = None
    min_snr_gamma: float = 5.0
    timesteps: str = "uniform"
    high_t_share: float = 0.5
    high_t_from: int = 700
    logit_mean: float = 0.0
    logit_std: float = 1.0
    learned_norm: bool = False

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"unknown loss weighting {self.weighting!r}; choose from {', '.join(WEIGHTINGS)}"
            )
        if self.timesteps not in TIMESTEP_SAMPLERS:
            raise ValueError(
                f"unknown timestep sampling {self.timesteps!r}; choose from {', '.join(TIMESTEP_SAMPLERS)}"
            )
        if not 0.0 <= self.high_t_share <= 1.0:
            raise ValueError(f"high_t_share must be in [0, 1], got {self.high_t_share}")
        if self.weight_cap is not None and not self.weight_cap > 0:
            raise ValueError(f"weight_cap must be > 0, got {self.weight_cap}")
        if not self.min_snr_gamma > 0 or not self.logit_std > 0:
            raise ValueError("min_snr_gamma and logit_std must be > 0")

    def resolved(self, prediction: str) -> Objective:
        """ "auto" made explicit: the loss of the model's own parameterisation."""
        if self.weighting != "auto":
            return self
        return dataclasses.replace(self, weighting=_NATURAL[prediction])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


OBJECTIVE_FIELDS = tuple(f.name for f in dataclasses.fields(Objective))


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _diffae(
    name: str, image_size: int, ch: int, mult: tuple[int, ...], enc_mult: tuple[int, ...]
) -> ModelConfig:
    # The official templates: attention at 16×16, two ResBlocks per level, one head, 512-d embeddings.
    return ModelConfig(
        name=name,
        image_size=image_size,
        unet=UNetConfig(model_channels=ch, channel_mult=mult),
        encoder=EncoderConfig(kind="diffae", model_channels=ch, channel_mult=enc_mult),
    )


def _small(
    name: str, size: int, mult: tuple[int, ...], embed: int, enc_mult: tuple[int, ...], stage: int, pool: int
) -> ModelConfig:
    # The CPU-sized DiffuseGAEs: 32 channels, one ResBlock per level, v-prediction, Eq. 8's scale_shift.
    return ModelConfig(
        name=name,
        image_size=size,
        unet=UNetConfig(
            model_channels=32,
            channel_mult=mult,
            num_res_blocks=1,
            attention_resolutions=(16,),
            embed_channels=embed,
            adagn_mode="scale_shift",
            prediction="v",
            dropout=0.0,
        ),
        encoder=EncoderConfig(
            kind="alter_resnet",
            model_channels=32,
            channel_mult=enc_mult,
            num_res_blocks=1,
            attention_stages=(stage,),
            pool_size=pool,
        ),
        gae=GAEConfig(hidden_channels=256),
    )


PRESETS: dict[str, ModelConfig] = {
    "tiny32": _small("tiny32", 32, (1, 2), 128, (1, 2, 2), 2, pool=4),
    # a 2×2 pool keeps the fp16 weights in one 16 MiB file (4×4 would not)
    "synth64": _small("synth64", 64, (1, 2, 3, 4), 256, (1, 2, 4, 4), 3, pool=2),
    "ilab128": ModelConfig(
        name="ilab128",
        image_size=128,
        unet=UNetConfig(
            model_channels=128,
            channel_mult=(1, 1, 2, 3, 4),
            adagn_mode="scale_shift",
            prediction="v",
        ),
        encoder=EncoderConfig(
            kind="alter_resnet",
            model_channels=64,
            channel_mult=(1, 2, 4, 8),
            num_res_blocks=2,
            attention_stages=(2, 3),
            num_heads=4,
            pool_size=4,
        ),
        gae=GAEConfig(),
    ),
    "diffae64": _diffae("diffae64", 64, 64, (1, 2, 4, 8), (1, 2, 4, 8, 8)),
    "diffae128": _diffae("diffae128", 128, 128, (1, 1, 2, 3, 4), (1, 1, 2, 3, 4, 4)),
    "diffae256": _diffae("diffae256", 256, 128, (1, 1, 2, 2, 4, 4), (1, 1, 2, 2, 4, 4, 4)),
}


def preset(name: str) -> ModelConfig:
    """A named preset; unknown names raise ValueError listing the choices."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
