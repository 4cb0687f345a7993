"""Training losses: Diff-AE's L_simple and DiffuseGAE's L_dis = L_r + λss·L_ss + λur·L_ur (Eq. 11),
plus an optional shared-chunk term λsc·L_sc that Eq. 11 does not have (`chunk_consistency_loss`).

The GAE losses are pure functions of callables, so tests can hand them maps whose answer is known:
`encode` / `decode` act on *standardised* z_sem ((z − z_mean) / z_std), which is the GAE's own
`encoder` / `decoder` halves. Working there keeps all 512 dimensions on one scale, so the reconstruction
terms weigh every dimension alike. Every distance here is a mean absolute error (L1), the norm of Eq. 10,
used for L_r and L_ss too so the three terms are comparable.

Group layout (GROUP(C, 1), see diffusegae.data.groups): z is [B, 1+K, D]; row 0 is the centre C, row 1+k
shares exactly attribute k with C. `chunks[k]` is the z_dis slice of attribute k.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffusegae.diffusion import q_sample
from diffusegae.latents import chunk_masks, reassemble, swap

Map = Callable[[torch.Tensor], torch.Tensor]


def eps_mse(
    unet: nn.Module,
    x0: torch.Tensor,
    z_sem: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    alpha_bar: np.ndarray | None = None,
) -> torch.Tensor:
    """Per-sample ‖ε_θ(x_t, t, z_sem) − ε‖² [B] with x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε (ᾱ: the
    checkpoint's schedule; default Diff-AE's). Objectives weigh it per timestep (objectives.py)."""
    x_t = q_sample(x0, noise, t, alpha_bar=alpha_bar)
    eps = unet(x_t, t, z_sem)
    return (eps.float() - noise.float()).pow(2).flatten(1).mean(1)


def diffusion_loss(
    unet: nn.Module, x0: torch.Tensor, z_sem: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """L_simple (Diff-AE Eq. 1): the batch mean of `eps_mse`."""
    return eps_mse(unet, x0, z_sem, t, noise).mean()


def standardize(z_sem: torch.Tensor, z_mean: torch.Tensor, z_std: torch.Tensor) -> torch.Tensor:
    """(z − z_mean) / z_std: the space the GAE halves work in."""
    return (z_sem - z_mean) / z_std


def reconstruction_loss(decode: Map, z: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """L_r: every member reconstructs, mean over members of |D(E(z)) − z|; codes = E(z), [N, width]."""
    flat = z.reshape(-1, z.shape[-1])
    return F.l1_loss(decode(codes), flat)


def swap_loss(decode: Map, z: torch.Tensor, codes: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """L_ss, the supervised swap: mean over 2K + 1 terms, each an L1 over the batch.

    z is [B, 1+K, D] and codes = E(z) flattened, [B·(1+K), width].

    For each attribute k (z_c centre, z_k its partner on k, E·/D· the GAE halves):
      1. D(swap_k(E z_c ← E z_k)) ≈ z_c   (C keeps its look when it takes k from an image that shares k)
      2. D(swap_k(E z_k ← E z_c)) ≈ z_k
    and once: 3. D(concat_k chunk_k(E z_k)) ≈ z_c (C reassembled from its K partners).
    """
    b, m, _ = z.shape
    k_attrs = m - 1
    if masks.shape[0] != k_attrs:
        raise ValueError(f"groups have {k_attrs} partners but {masks.shape[0]} attribute chunks were given")
    codes = codes.reshape(b, m, -1)
    centre, partners = codes[:, 0], codes[:, 1:]
    inputs, targets = [], []
    for k in range(k_attrs):
        inputs.append(swap(centre, partners[:, k], masks[k]))  # 1.
        targets.append(z[:, 0])
        inputs.append(swap(partners[:, k], centre, masks[k]))  # 2.
        targets.append(z[:, 1 + k])
    inputs.append(reassemble(centre, [partners[:, k] for k in range(k_attrs)], masks))  # 3.
    targets.append(z[:, 0])
    return F.l1_loss(decode(torch.cat(inputs)), torch.cat(targets))


def reassembly_loss(
    encode: Map,
    decode: Map,
    codes: torch.Tensor,
    masks: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_ur (Eq. 10), unsupervised reassembly: |z_u − E(D(z_u))|.

    z_u takes chunk k from code π_k(i) for an independent random permutation π_k of the batch, so it is a
    plausible code that no image had. z_u is detached: it is a sample of the code distribution, and letting
    the gradient shrink the codes themselves would make the cycle trivially easy.
    """
    n = codes.shape[0]
    perms = [torch.randperm(n, generator=generator).to(codes.device) for _ in range(masks.shape[0])]
    z_u = reassemble(codes, [codes[p] for p in perms], masks).detach()
    return F.l1_loss(encode(decode(z_u)), z_u)


def chunk_consistency_loss(codes: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """L_sc: chunk k of two images that share attribute k should be equal, relative to images that do not.

    codes is E(z) as [B, 1+K, width] (GROUP(C, 1): partner k shares exactly attribute k with C, and partner
    j ≠ k differs from C in attribute k). For each k,

        mean |chunk_k(E z_c) − chunk_k(E z_k)|  /  mean over j ≠ k of |chunk_k(E z_c) − chunk_k(E z_j)|

    averaged over k. L_ss only asks the decoder to cope with a chunk that carries other attributes; this asks
    the encoder not to put them there (a chunk that tells apart two images sharing its attribute leaks the
    others into every swap). The ratio is scale-free, so the codes cannot shrink their way to a low loss.
    """
    k_attrs = codes.shape[1] - 1
    if k_attrs < 2:
        raise ValueError("the shared-chunk loss needs groups of at least two partners")
    centre = codes[:, 0]
    terms = []
    for k, sel in enumerate(masks):
        gaps = (
            (centre[:, None, sel] - codes[:, 1:, sel]).abs().mean(dim=(0, 2))
        )  # [K]: chunk k to each partner
        apart = torch.cat([gaps[:k], gaps[k + 1 :]]).mean()
        terms.append(gaps[k] / apart.clamp_min(1e-8))
    return torch.stack(terms).mean()


def gae_losses(
    encode: Map,
    decode: Map,
    z: torch.Tensor,
    chunks: Sequence[slice],
    lambda_ss: float,
    lambda_ur: float,
    generator: torch.Generator | None = None,
    lambda_sc: float = 0.0,
) -> dict[str, torch.Tensor]:
    """L_dis = L_r + λss·L_ss + λur·L_ur (Eq. 11) + λsc·L_sc on standardised group codes z [B, 1+K, D].

    Returns {"dis", "r", "ss", "ur", "sc"}; L_ur reassembles codes of every member of every group. L_sc is
    reported even at λsc = 0 (Eq. 11 as written), so a log shows the leak it measures.
    """
    if z.ndim != 3 or z.shape[1] != len(chunks) + 1:
        raise ValueError(f"z must be [B, 1+K, D] with K={len(chunks)} attributes, got {tuple(z.shape)}")
    b, m, d = z.shape
    codes = encode(z.reshape(b * m, d))
    masks = torch.from_numpy(chunk_masks(chunks, codes.shape[-1])).to(codes.device)
    l_r = reconstruction_loss(decode, z, codes)
    l_ss = swap_loss(decode, z, codes, masks)
    l_ur = reassembly_loss(encode, decode, codes, masks, generator)
    l_sc = chunk_consistency_loss(codes.reshape(b, m, -1), masks)
    dis = l_r + lambda_ss * l_ss + lambda_ur * l_ur + lambda_sc * l_sc
    return {"dis": dis, "r": l_r, "ss": l_ss, "ur": l_ur, "sc": l_sc}
