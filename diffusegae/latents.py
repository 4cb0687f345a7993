"""Latent-code math, and nothing else: attribute masks, swapping, recombining and interpolating the named
chunks of z_dis, slerp of x_T, one reference broadcast over many sources. No network, no request checks.

The pipeline, the server's glue models (swap, combine, mix) and the GAE's training losses all call these;
every function works on numpy arrays and on torch tensors, as diffusion.py does. A mask is bool over the
code's width ([W], or [B, W] for one mask per row); True marks the entries an operation changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from diffusegae.diffusion import Array, _torch_of, lerp, seeded_noise, slerp


def attribute_mask(gae: Any, names: Sequence[str]) -> np.ndarray:
    """bool [z_dis width]: True on the chunks of the named attributes (a GAEConfig names the chunks)."""
    mask = np.zeros(gae.z_dis_channels, dtype=bool)
    for name in names:
        mask[gae.chunk(name)] = True  # an unknown name raises ValueError listing the choices
    return mask


def chunk_masks(chunks: Sequence[slice], width: int) -> np.ndarray:
    """bool [K, width]: row k is True on chunk k. Chunks must not overlap."""
    masks = np.zeros((len(chunks), width), dtype=bool)
    for k, sl in enumerate(chunks):
        masks[k, sl] = True
    if (masks.sum(0) > 1).any():
        raise ValueError(f"attribute chunks overlap: {list(chunks)}")
    return masks


def _where(mask: Any, a: Array, b: Array) -> Array:
    torch = _torch_of(a)
    if torch is not None:
        return torch.where(torch.as_tensor(mask, device=a.device), a, b)
    return np.where(mask, a, b)


def swap(into: Array, donor: Array, mask: Any) -> Array:
    """`into` with the masked entries taken from `donor` (DiffuseGAE's attribute swap on z_dis)."""
    return _where(mask, donor, into)


def reassemble(base: Array, sources: Sequence[Array], masks: Any) -> Array:
    """Chunk k from sources[k] for every k; entries no mask covers keep `base`."""
    out = base
    for source, mask in zip(sources, masks, strict=True):
        out = swap(out, source, mask)
    return out


def recombine(codes: Mapping[str, Array], gae: Any) -> Array:
    """One z_dis whose chunk of each attribute comes from `codes[attribute]` (every attribute named)."""
    names = gae.attribute_names
    missing = [a for a in names if a not in codes]
    if missing:
        raise ValueError(f"recombine needs a code for every attribute; missing {missing}")
    masks = [attribute_mask(gae, [name]) for name in names]
    return reassemble(codes[names[0]], [codes[name] for name in names], masks)


def interpolate(a: Array, b: Array, alpha: float | np.ndarray, mask: Any = True) -> Array:
    """From code a toward b by alpha (per row, or one number), only on the masked entries (lerp)."""
    return _where(mask, lerp(a, b, alpha), a)


def interpolate_noise(a: Array, b: Array, alpha: float | np.ndarray) -> Array:
    """x_T between two inversions: slerp, which keeps the norm a Gaussian sample has (Diff-AE §5)."""
    return slerp(a, b, alpha)


def one_for_each(reference: Array, count: int, name: str = "reference") -> Array:
    """One reference row repeated for `count` sources; a batch of `count` rows is returned as it is."""
    if len(reference) == count:
        return reference
    if len(reference) != 1:
        raise ValueError(
            f"{name} has {len(reference)} rows for {count} sources; send one {name} or one per source"
        )
    torch = _torch_of(reference)
    if torch is not None:
        return reference.expand(count, *reference.shape[1:]).clone()
    return np.repeat(reference, count, axis=0)


def noise_for_seeds(seeds: np.ndarray, image_size: int) -> np.ndarray:
    """x_T for rows that each name a seed: row i gets row i of seeded_noise(B, size, seeds[i]), so a batch
    whose rows share one seed gets exactly the noise that seed gives the whole batch."""
    seeds = np.asarray(seeds)
    out = np.empty((len(seeds), 3, image_size, image_size), np.float32)
    for seed in np.unique(seeds):
        rows = seeds == seed
        out[rows] = seeded_noise(len(seeds), image_size, int(seed))[rows]
    return out
