"""Official Diff-AE checkpoints (phizaz/diffae, Lightning `last.ckpt`) → checkpoint directories of ours.

A `last.ckpt` holds `state_dict` with the trained weights twice, `model.*` and `ema_model.*` (the EMA copy
is the one Diff-AE samples with), plus `x_T` (a fixed noise batch, which gives the image size) and, for
templates trained with latent statistics, `conds_mean` / `conds_std`. Lightning also stores the training
config as `hyper_parameters`. Our UNet and Diff-AE encoder keep the official names (the UNet's under
`unet.`), so the weights load with strict=True.

Files are read with `torch.load(weights_only=True)`: tensors and plain containers only, never a pickled
object, so a checkpoint from anywhere cannot run code here.

Where `hyper_parameters` are missing, the architecture is inferred from the keys and shapes: each way of
splitting the block lists into levels is turned into a config, and the one whose parameter shapes match
every tensor is taken. What the keys cannot tell (the image size, the number of attention heads) comes
from the hyper-parameters, `x_T`, a preset, or the official templates' conventions, in that order.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffusegae.config import DiffusionConfig, EncoderConfig, ModelConfig, UNetConfig, preset
from diffusegae.manipulate import Directions

WEIGHT_SETS = {"ema": "ema_model.", "model": "model."}
STAT_KEYS = ("conds_mean", "conds_std")
# The latent DPM of the `*_latent` templates (unconditional sampling of z_sem): not part of what we serve.
LATENT_NET = "latent_net."
# Every official template puts attention at 16×16; with nothing else to go on, that fixes the image size.
TEMPLATE_ATTENTION_RESOLUTION = 16
# The 40 CelebA-HQ attributes of the official `*_cls` classifiers, in their output order.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
    "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
    "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip


class DiffAEImportError(ValueError):
    """The file is not an official Diff-AE checkpoint we can import; the message says what to do."""


@dataclass
class OfficialCheckpoint:
    weights: dict[str, Any]  # official names, weight-set prefix removed (torch tensors)
    hyper_parameters: dict[str, Any]
    latent_stats: dict[str, np.ndarray] | None  # conds_mean / conds_std, [512] each
    image_size: int | None  # from hyper_parameters or x_T


def load_safely(path: str | Path) -> dict[str, Any]:
    """torch.load with weights_only=True, with errors that say what went wrong and what to do."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DiffAEImportError(
            f"{path} cannot be read as tensors and plain containers (torch.load weights_only=True): "
            f"{_unsafe_globals(path) or type(err).__name__ + ': ' + str(err).splitlines()[0]}. It is not a "
            "Diff-AE checkpoint, or it pickles other objects; only if you trust the file, re-save just its "
            "state_dict: torch.save({'state_dict': torch.load(path, weights_only=False)['state_dict']}, "
            "'slim.ckpt')"
        ) from None
    if not isinstance(data, dict):
        raise DiffAEImportError(f"{path} holds a {type(data).__name__}, not a checkpoint dictionary")
    return data


def _unsafe_globals(path: Path) -> str:
    """The classes and functions a pickle would need (read without running it), as a phrase, or ""."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a torch file at all, or an older torch
        return ""
    return f"it pickles {', '.join(names[:6])}" + (", …" if len(names) > 6 else "") if names else ""


def _stats(values: dict[str, Any], where: str) -> dict[str, np.ndarray] | None:
    if not all(k in values for k in STAT_KEYS):
        return None
    arrays = {k: values[k].float().numpy() if hasattr(values[k], "numpy") else values[k] for k in STAT_KEYS}
    # float32 vectors: the Lightning modules keep them as [1, 512]
    stats = {k: np.asarray(v, np.float32).reshape(-1) for k, v in arrays.items()}
    if stats["conds_mean"].shape != stats["conds_std"].shape:
        raise DiffAEImportError(f"{where}: conds_mean and conds_std have different shapes")
    if not (stats["conds_std"] > 0).all():
        raise DiffAEImportError(f"{where}: conds_std must be positive everywhere")
    return stats


def read_official(path: str | Path, weights: str = "ema") -> OfficialCheckpoint:
    """The weights (EMA by default), hyper-parameters, latent statistics and image size of a last.ckpt."""
    if weights not in WEIGHT_SETS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_SETS)}, got {weights!r}")
    data = load_safely(path)
    state = data.get("state_dict", data)
    prefix = WEIGHT_SETS[weights]
    found = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    found = {k: v for k, v in found.items() if not k.startswith(LATENT_NET)}
    if not found:
        present = sorted({k.split(".", 1)[0] for k in state})[:8]
        raise DiffAEImportError(
            f"{path}: no '{prefix}*' weights in its state_dict (top-level names: {present}); "
            "is it a Diff-AE autoencoder checkpoint (ffhq256_autoenc/last.ckpt and the like)?"
        )
    hparams = data.get("hyper_parameters") or {}
    size = hparams.get("img_size")
    if size is None and "x_T" in state:
        size = int(state["x_T"].shape[-1])
    return OfficialCheckpoint(found, dict(hparams), _stats(state, str(path)), size)


def official_to_ours(key: str) -> str:
    """Our name of an official parameter: the encoder keeps its names, the UNet's go under `unet.`."""
    return key if key.startswith("encoder.") else f"unet.{key}"


def _shapes(weights: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {official_to_ours(k): tuple(v.shape) for k, v in weights.items()}


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    from diffusegae.models import build_model

    return {k: tuple(v.shape) for k, v in build_model(cfg, device="meta").state_dict().items()}


def _mismatch(cfg: ModelConfig, shapes: dict[str, tuple[int, ...]]) -> list[str]:
    want = expected_shapes(cfg)
    problems = [f"missing {k}" for k in sorted(set(want) - set(shapes))]
    problems += [f"unexpected {k}" for k in sorted(set(shapes) - set(want))]
    problems += [
        f"{k}: {shapes[k]} ≠ {want[k]}" for k in sorted(set(want) & set(shapes)) if want[k] != shapes[k]
    ]
    return problems


# ---- architecture inference ----


def _count(shapes: dict[str, tuple[int, ...]], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    indices = {int(m.group(1)) for k in shapes if (m := pattern.match(k))}
    return max(indices) + 1 if indices else 0


def _levels(
    shapes: dict[str, tuple[int, ...]], prefix: str, levels: int, blocks: int, channels: int
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """channel_mult and the levels with attention, for `levels` levels of `blocks` ResBlocks (or None)."""
    mult, attention = [], []
    for level in range(levels):
        first = 1 + level * (blocks + 1)
        block = f"{prefix}.{first}.0"
        # conditioned ResBlocks end in out_layers; the encoder's unconditioned ones are in_layers only
        out = shapes.get(f"{block}.out_layers.3.weight", shapes.get(f"{block}.in_layers.2.weight"))
        if out is None or out[0] % channels:
            return None
        mult.append(out[0] // channels)
        if any(f"{prefix}.{first + j}.1.qkv.weight" in shapes for j in range(blocks)):
            attention.append(level)
    return tuple(mult), tuple(attention)


def _splits(n_blocks: int) -> list[tuple[int, int]]:
    """(levels, ResBlocks per level) with levels·(blocks + 1) = n_blocks (the length of both block lists)."""
    return [(n_blocks // (b + 1), b) for b in range(1, n_blocks) if n_blocks % (b + 1) == 0]


def _resolutions(attention: tuple[int, ...], image_size: int) -> tuple[int, ...]:
    return tuple(image_size >> level for level in attention)


def infer_config(
    weights: dict[str, Any],
    *,
    image_size: int | None = None,
    num_heads: int = 1,
    hyper_parameters: dict[str, Any] | None = None,
    name: str = "diffae",
) -> ModelConfig:
    """The ModelConfig whose parameters have exactly the shapes of `weights` (official names)."""
    shapes = _shapes(weights)
    hp = hyper_parameters or {}
    try:
        ch, in_ch = shapes["unet.input_blocks.0.0.weight"][:2]
        out_ch = shapes["unet.out.2.weight"][0]
        embed = shapes["unet.time_embed.time_embed.0.weight"][0]
        enc_ch = shapes["encoder.input_blocks.0.0.weight"][0]
        z_width = next(
            v[0] for k, v in shapes.items() if re.match(r"encoder\.out\.\d+\.weight", k) and len(v) == 4
        )
        cond = shapes["unet.input_blocks.1.0.cond_emb_layers.1.weight"][0]
        first = shapes["unet.input_blocks.1.0.out_layers.3.weight"][0]
    except (KeyError, StopIteration) as err:
        raise DiffAEImportError(
            f"not a Diff-AE autoencoder: no parameter {err} (a plain DDIM UNet or latent DPM checkpoint?)"
        ) from None
    adagn_mode = "scale" if cond == first else "scale_shift"
    candidates = []
    for levels, blocks in _splits(_count(shapes, "unet.input_blocks")):
        unet = _levels(shapes, "unet.input_blocks", levels, blocks, ch)
        for enc_levels, enc_blocks in _splits(_count(shapes, "encoder.input_blocks")):
            enc = _levels(shapes, "encoder.input_blocks", enc_levels, enc_blocks, enc_ch)
            if unet is None or enc is None:
                continue
            # no size given: the one at which the first attention level is the templates' 16×16
            size = image_size or (TEMPLATE_ATTENTION_RESOLUTION << unet[1][0] if unet[1] else None)
            if size is None:
                continue
            try:
                cfg = ModelConfig(
                    name=name,
                    image_size=size,
                    unet=UNetConfig(
                        model_channels=ch,
                        channel_mult=unet[0],
                        num_res_blocks=blocks,
                        attention_resolutions=_resolutions(unet[1], size),
                        num_heads=num_heads,
                        embed_channels=embed,
                        adagn_mode=adagn_mode,
                        in_channels=in_ch,
                        out_channels=out_ch,
                    ),
                    encoder=EncoderConfig(
                        kind="diffae",
                        model_channels=enc_ch,
                        channel_mult=enc[0],
                        num_res_blocks=enc_blocks,
                        attention_resolutions=_resolutions(enc[1], size),
                        num_heads=num_heads,
                        out_channels=z_width,
                    ),
                )
            except ValueError:  # e.g. the image size does not halve that many times
                continue
            if not _mismatch(cfg, shapes):
                candidates.append(cfg)
    candidates = _agreeing(candidates, hp)
    if not candidates:
        hint = (
            ""
            if image_size
            else " (or its image size is not the templates' 16×16 attention: pass --image-size)"
        )
        raise DiffAEImportError(f"no Diff-AE architecture of ours has exactly these parameters{hint}")
    if len(candidates) > 1:
        shown = "; ".join(_describe(c) for c in candidates)
        raise DiffAEImportError(f"the keys fit several architectures ({shown}): pass --preset to pick one")
    return candidates[0]


def _agreeing(candidates: list[ModelConfig], hp: dict[str, Any]) -> list[ModelConfig]:
    """Keep the candidates that agree with the Lightning hyper-parameters, where these say anything."""
    checks = {
        "net_num_res_blocks": lambda c: c.unet.num_res_blocks,
        "net_ch_mult": lambda c: c.unet.channel_mult,
        "net_enc_num_res_blocks": lambda c: c.encoder.num_res_blocks,
        "net_enc_channel_mult": lambda c: c.encoder.channel_mult,
    }
    for key, get in checks.items():
        if hp.get(key) is not None:
            want = tuple(hp[key]) if isinstance(hp[key], list | tuple) else hp[key]
            candidates = [c for c in candidates if get(c) == want]
    return candidates


def _describe(cfg: ModelConfig) -> str:
    u, e = cfg.unet, cfg.encoder
    return (
        f"{cfg.image_size}px, UNet mult {u.channel_mult} × {u.num_res_blocks} blocks, "
        f"encoder mult {e.channel_mult} × {e.num_res_blocks} blocks"
    )


# ---- the import ----


def official_diffusion(hp: dict[str, Any], where: str | Path = "checkpoint") -> DiffusionConfig:
    """The noise schedule an official checkpoint was trained with (its `beta_scheduler` and `T`).

    Diff-AE's "linear" is Ho et al.'s, stretched to T steps: betas scale·1e-4 .. scale·0.02 with
    scale = 1000/T. Any other schedule (or a network that does not predict eps) is refused by name: sampling
    it with these betas would give wrong images without any error."""
    scheduler = str(hp.get("beta_scheduler", "linear"))
    if scheduler != "linear":
        raise DiffAEImportError(
            f"{where} was trained with the {scheduler!r} beta schedule; diffusegae implements Diff-AE's "
            "'linear' schedule only"
        )
    mean_type = str(hp.get("model_mean_type", "eps")).rsplit(".", 1)[-1].lower()
    if mean_type != "eps":
        raise DiffAEImportError(f"{where} predicts {mean_type!r}; official imports must predict 'eps'")
    steps = int(hp.get("T", 1000))
    scale = 1000.0 / steps
    return DiffusionConfig(num_timesteps=steps, beta_start=scale * 1e-4, beta_end=scale * 0.02)


def import_diffae(
    checkpoint: str | Path,
    out: str | Path,
    *,
    preset_name: str | None = None,
    weights: str = "ema",
    classifier: str | Path | None = None,
    latent_stats: str | Path | None = None,
    image_size: int | None = None,
) -> Path:
    """Write checkpoint directory `out` (weights [+ latent stats, directions]) from an official last.ckpt."""
    import torch

    from diffusegae.checkpoint import save_checkpoint, save_directions
    from diffusegae.models import build_model

    official = read_official(checkpoint, weights)
    hp = official.hyper_parameters
    heads = int(hp.get("net_beatgans_attn_head") or 1)
    size = image_size or official.image_size
    name = Path(checkpoint).resolve().parent.name or "diffae"
    if preset_name is not None:
        cfg = preset(preset_name)
        problems = _mismatch(cfg, _shapes(official.weights))
        if problems:
            shown = "; ".join(problems[:5]) + (f"; … {len(problems) - 5} more" if len(problems) > 5 else "")
            raise DiffAEImportError(f"{checkpoint} does not match preset {preset_name!r}: {shown}")
        if size is not None and size != cfg.image_size:
            raise DiffAEImportError(
                f"{checkpoint} works at {size}px but preset {preset_name!r} at {cfg.image_size}px"
            )
    else:
        cfg = infer_config(official.weights, image_size=size, num_heads=heads, hyper_parameters=hp, name=name)
    cfg = dataclasses.replace(cfg, diffusion=official_diffusion(hp, checkpoint))
    model = build_model(cfg, device="meta")
    state = {official_to_ours(k): v.float() for k, v in official.weights.items()}
    model.load_state_dict(state, strict=True, assign=True)

    stats = read_latent_stats(latent_stats) if latent_stats is not None else official.latent_stats
    directions = read_classifier(classifier, stats) if classifier is not None else None
    info = {
        "imported_from": str(Path(checkpoint).resolve()),
        "weights": weights,
        "classifier": str(Path(classifier).resolve()) if classifier is not None else None,
    }
    out = save_checkpoint(
        model,
        out,
        latent_stats={k: torch.from_numpy(v) for k, v in stats.items()} if stats else None,
        info=info,
    )
    if directions is not None:
        save_directions(out, directions)
    return out


def read_latent_stats(path: str | Path) -> dict[str, np.ndarray]:
    """conds_mean / conds_std from Diff-AE's latent.pkl (torch, weights_only) or a safetensors file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        values: dict[str, Any] = load_file(path)
    else:
        values = load_safely(path)
    stats = _stats(values, str(path))
    if stats is None:
        raise DiffAEImportError(f"{path} has no conds_mean and conds_std (found {sorted(values)[:8]})")
    return stats


def read_classifier(path: str | Path, latent_stats: dict[str, np.ndarray] | None) -> Directions:
    """Directions from a Diff-AE linear classifier checkpoint (ClsModel: classifier.weight [K, 512]).

    The classifier was trained on z_sem normalised with its own conds_mean / conds_std; those are kept with
    the directions (the autoencoder's latent statistics stand in when the classifier has none).
    """
    data = load_safely(path)
    state = data.get("state_dict", data)
    if "classifier.weight" not in state:
        raise DiffAEImportError(f"{path} has no classifier.weight: is it a Diff-AE *_cls checkpoint?")
    weight = state["classifier.weight"].float().numpy()
    stats = _stats(state, str(path)) or latent_stats
    if stats is None:
        raise DiffAEImportError(
            f"{path} has no conds_mean / conds_std, and neither has the autoencoder checkpoint: pass "
            "--latent-stats (Diff-AE's latent.pkl) so z_sem can be normalised as the classifier expects"
        )
    k = weight.shape[0]
    names = CELEBA_ATTRIBUTES if k == len(CELEBA_ATTRIBUTES) else tuple(f"class_{i}" for i in range(k))
    return Directions(tuple(names), weight, stats["conds_mean"], stats["conds_std"])


IMPORT_HELP = "convert an official Diff-AE last.ckpt (phizaz/diffae) into a checkpoint directory"


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("ckpt", help="the Lightning checkpoint, e.g. checkpoints/ffhq256_autoenc/last.ckpt")
    add("--out", required=True, help="checkpoint directory to write")
    add("--preset", default=None, help="check the weights against a preset: diffae64 | diffae128 | diffae256")
    add("--weights", default="ema", choices=list(WEIGHT_SETS), help="EMA weights (default) or the raw ones")
    add("--classifier", default=None, help="a Diff-AE *_cls checkpoint: attribute directions for manipulate")
    add("--latent-stats", default=None, help="conds_mean / conds_std (Diff-AE's latent.pkl), if not inside")
    add("--image-size", type=int, default=None, help="only for checkpoints that cannot tell (no x_T)")


def run_import(args: argparse.Namespace) -> int:
    from diffusegae.checkpoint import load_directions, read_config

    options = {k: getattr(args, k) for k in ("weights", "classifier", "latent_stats", "image_size")}
    out = import_diffae(args.ckpt, args.out, preset_name=args.preset, **options)
    cfg = read_config(out)
    directions = load_directions(out)
    print(
        f"{out}: plain Diff-AE, {cfg.image_size}×{cfg.image_size}, UNet {cfg.unet.model_channels} channels × "
        f"{cfg.unet.channel_mult}, z_sem {cfg.encoder.out_channels}"
        + (f", {len(directions.names)} manipulation directions" if directions else "")
    )
    print(f"serve: diffusegae build-repo --checkpoint {out} --out REPO; diffusegae serve --repository REPO")
    return 0
