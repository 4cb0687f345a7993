"""The training stages: what each trains, on which data, with which loss.

1. Diff-AE pretraining: encoder + UNet on L_simple (Diff-AE Eq. 1), single images.
2. GAE on frozen z_sem: L_dis = L_r + λss·L_ss + λur·L_ur (Eq. 11) over GROUP(C, 1) batches
   (+ λsc·L_sc, the shared-chunk term of losses.py, when λsc > 0; 0 by default).
3. Joint fine-tuning: L_simple + γ·L_dis (Eq. 12), everything trained, GROUP(C, 1) batches.
4. GAE refit (optional, not in the paper): stage 2's objective again, on the encoder that stage 3 tuned. Stage
   3 moves z_sem under a GAE fitted to stage 1's; a GAE-only pass on the final encoder, with fresh z_sem
   statistics, fits the GAE to the codes the checkpoint will actually produce, at GAE-only cost.

Randomness is a pure function of (seed, stage, step), so no generator state is ever stored: batch n of
stage 1 and the t, ε and permutations of every step are drawn from generators seeded with it. Groups come
from one GroupSampler per run segment, seeded with (seed, stage, segment start step).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from diffusegae.config import GAEConfig
from diffusegae.data import AttributeDataset
from diffusegae.diffusion import schedule_alphas_cumprod
from diffusegae.images import to_model
from diffusegae.models import DiffusionAutoencoder
from diffusegae.train.losses import eps_mse, gae_losses, standardize
from diffusegae.train.objectives import LearnedLossNorm, Objective, reduce_loss, sample_timesteps

L_SIMPLE = Objective(weighting="simple")


@dataclass(frozen=True)
class StageSpec:
    number: int
    parts: tuple[str, ...]  # the model parts this stage trains
    optimizer: str  # "adamw" | "adam"
    lr: float
    batch_size: int  # images for stage 1, groups (1+K images each) for stages 2 and 3
    lambda_ss: float = 0.0
    lambda_ur: float = 0.0
    lambda_sc: float = 0.0  # the shared-chunk term (losses.chunk_consistency_loss); not in Eq. 11
    gamma: float = 0.0  # weight of L_dis in the joint loss (stage 3)

    @property
    def groups(self) -> bool:
        return self.number > 1

    @property
    def gae_only(self) -> bool:
        """Trains the GAE alone on frozen z_sem (stages 2 and 4), with fresh statistics of that z_sem."""
        return self.parts == ("gae",)


STAGES: dict[int, StageSpec] = {
    1: StageSpec(1, ("encoder", "unet"), "adamw", lr=1e-4, batch_size=32),
    2: StageSpec(2, ("gae",), "adam", lr=4e-5, batch_size=32, lambda_ss=1.0, lambda_ur=0.5),
    3: StageSpec(
        3, ("encoder", "unet", "gae"), "adam", lr=1e-5, batch_size=8, lambda_ss=0.5, lambda_ur=0.5, gamma=1.0
    ),
}
STAGES[4] = replace(STAGES[2], number=4)  # the GAE refit: stage 2's settings on stage 3's encoder


def stage_spec(stage: int) -> StageSpec:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(map(str, STAGES))}")
    return STAGES[stage]


def derive_seed(*parts: int) -> int:
    """A 32-bit seed from integers (numpy's SeedSequence mixes them; nearby inputs give unrelated seeds)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def step_generator(seed: int, stage: int, step: int) -> torch.Generator:
    """The CPU generator of one step's t, ε and permutations."""
    return torch.Generator().manual_seed(derive_seed(seed, stage, step, 0x57E9))


def attribute_chunks(gae: GAEConfig, dataset: AttributeDataset) -> list[slice]:
    """z_dis slice of each dataset attribute, in the dataset's (= group row) order."""
    if set(gae.attribute_names) != set(dataset.attribute_names):
        raise ValueError(
            f"the GAE's attributes {gae.attribute_names} differ from the dataset's {dataset.attribute_names}"
        )
    return [gae.chunk(name) for name in dataset.attribute_names]


def to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [..., H, W, 3] → float32 [..., 3, H, W] in [-1, 1] on `device`."""
    lead = images.shape[:-3]
    x = torch.from_numpy(to_model(images.reshape(-1, *images.shape[-3:])))
    return x.reshape(*lead, *x.shape[1:]).to(device, non_blocking=True)


def _noise(
    x0: torch.Tensor, gen: torch.Generator, objective: Objective, num_timesteps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    t = sample_timesteps(objective, x0.shape[0], gen, num_timesteps).to(x0.device)
    return t, torch.randn(x0.shape, generator=gen).to(x0.device)


def denoising_loss(
    model: DiffusionAutoencoder,
    x0: torch.Tensor,
    z_sem: torch.Tensor,
    gen: torch.Generator,
    objective: Objective = L_SIMPLE,
    norm: LearnedLossNorm | None = None,
) -> torch.Tensor:
    """The diffusion term: eps MSE at the objective's timesteps, weighted by it (L_simple by default)."""
    diffusion = model.cfg.diffusion
    alpha_bar = schedule_alphas_cumprod(diffusion)
    t, noise = _noise(x0, gen, objective, diffusion.num_timesteps)
    per_sample = eps_mse(model.unet, x0, z_sem, t, noise, alpha_bar)
    return reduce_loss(objective.resolved(model.cfg.unet.prediction), per_sample, t, alpha_bar, norm)


def simple_loss(
    model: DiffusionAutoencoder,
    x0: torch.Tensor,
    gen: torch.Generator,
    objective: Objective = L_SIMPLE,
    norm: LearnedLossNorm | None = None,
) -> torch.Tensor:
    """The diffusion term with z = encoder(x0), ε ~ N(0, I), t from the objective (default U{0..T−1})."""
    return denoising_loss(model, x0, model.encoder(x0), gen, objective, norm)


def dis_loss(
    model: DiffusionAutoencoder,
    z_sem: torch.Tensor,
    chunks: list[slice],
    lambda_ss: float,
    lambda_ur: float,
    gen: torch.Generator,
    lambda_sc: float = 0.0,
) -> dict[str, torch.Tensor]:
    """L_dis on group codes z_sem [B, 1+K, 512], standardised with the GAE's fixed statistics."""
    gae = model.gae
    z = standardize(z_sem.float(), gae.z_mean, gae.z_std)
    return gae_losses(gae.encoder, gae.decoder, z, chunks, lambda_ss, lambda_ur, gen, lambda_sc)


def stage_losses(
    model: DiffusionAutoencoder,
    spec: StageSpec,
    x0: torch.Tensor,
    chunks: list[slice],
    lambda_ss: float,
    lambda_ur: float,
    gamma: float,
    gen: torch.Generator,
    objective: Objective = L_SIMPLE,
    norm: LearnedLossNorm | None = None,
    lambda_sc: float = 0.0,
) -> dict[str, torch.Tensor]:
    """{"loss": the objective, plus its named terms} for one batch x0 (model space).

    "simple" names the diffusion term, weighted as `objective` says (L_simple by default)."""
    if spec.number == 1:
        simple = simple_loss(model, x0, gen, objective, norm)
        return {"loss": simple, "simple": simple}
    b, m = x0.shape[:2]
    flat = x0.reshape(b * m, *x0.shape[2:])
    if spec.gae_only:
        with torch.no_grad():
            z_sem = model.encoder(flat)
        terms = dis_loss(model, z_sem.reshape(b, m, -1), chunks, lambda_ss, lambda_ur, gen, lambda_sc)
        return {"loss": terms["dis"], **terms}
    # Stage 3 (Eq. 12): the diffusion term on every group image, L_dis on their live z_sem.
    z_sem = model.encoder(flat)
    simple = denoising_loss(model, flat, z_sem, gen, objective, norm)
    terms = dis_loss(model, z_sem.reshape(b, m, -1), chunks, lambda_ss, lambda_ur, gen, lambda_sc)
    return {"loss": simple + gamma * terms["dis"], "simple": simple, **terms}


@torch.no_grad()
def latent_stats(
    encoder: torch.nn.Module,
    dataset: AttributeDataset,
    n: int,
    seed: int,
    device: torch.device,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation (float32 [512]) of z_sem over n random training images."""
    if n < 2:
        raise ValueError(f"need at least 2 images for z_sem statistics, got {n}")
    rng = np.random.default_rng([seed, 0x57A75])
    total = sq = None
    for start in range(0, n, batch_size):
        images = dataset.sample(rng, "train", min(batch_size, n - start))[1]
        z = encoder(to_device(images, device)).double()
        total = z.sum(0) if total is None else total + z.sum(0)
        sq = (z * z).sum(0) if sq is None else sq + (z * z).sum(0)
    mean = total / n
    var = (sq / n - mean * mean).clamp_min(0.0) * n / (n - 1)
    return mean.float(), var.sqrt().clamp_min(1e-6).float()
