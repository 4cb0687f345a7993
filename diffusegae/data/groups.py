"""GROUP(C, 1) sampler (DiffuseGAE, Definition 1).

A group is a centre combination C plus, for every attribute k, one partner that has C's value on
attribute k and a different value on every other attribute. Only combinations of one split are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffusegae.data.dataset import AttributeDataset


@dataclass(frozen=True)
class Group:
    """values int64 [..., 1+K, K]; images uint8 [..., 1+K, H, W, 3]; seeds int64 [..., 1+K].

    Row 0 is the centre; row 1+k shares exactly attribute k with it. A leading batch axis is present
    when the group comes from `GroupSampler.sample_batch`.
    """

    values: np.ndarray
    images: np.ndarray
    seeds: np.ndarray


class GroupSampler:
    """Draws GROUP(C, 1) groups from one split of an AttributeDataset, reproducibly from `seed`."""

    def __init__(self, dataset: AttributeDataset, split: str = "train", seed: int = 0) -> None:
        self.dataset, self.split = dataset, split
        self.combos = dataset.split_array(split)  # [M, K]
        self.num_attributes = self.combos.shape[1]
        if min(dataset.num_values) < 2:
            raise ValueError("every attribute needs at least two values for a partner to differ")
        self._rng = np.random.default_rng([int(seed), 0x6C0])
        # partners[k][i]: indices of combos sharing only attribute k with combo i. Precomputing them lets
        # a centre without a partner be excluded up front, so sampling never has to retry.
        self._partners: list[list[np.ndarray]] = [[] for _ in range(self.num_attributes)]
        valid = np.ones(len(self.combos), bool)
        for i, c in enumerate(self.combos):
            eq = self.combos == c  # [M, K]
            for k in range(self.num_attributes):
                others = np.delete(eq, k, axis=1)
                idx = np.flatnonzero(eq[:, k] & ~others.any(axis=1))
                self._partners[k].append(idx)
                valid[i] &= idx.size > 0
        self._centres = np.flatnonzero(valid)
        if self._centres.size == 0:
            raise ValueError(f"split {split!r} has no combination with a partner for every attribute")

    @property
    def num_valid_centres(self) -> int:
        return int(self._centres.size)

    def sample_values(self) -> np.ndarray:
        """Values only (no rendering): int64 [1+K, K]."""
        i = int(self._rng.choice(self._centres))
        rows = [i] + [int(self._rng.choice(self._partners[k][i])) for k in range(self.num_attributes)]
        return self.combos[rows]

    def plan(self) -> tuple[np.ndarray, np.ndarray]:
        """One group's values [1+K, K] and nuisance seeds [1+K], without rendering (what `sample` draws)."""
        values = self.sample_values()
        return values, self._rng.integers(0, 2**31 - 1, size=len(values), dtype=np.int64)

    def sample(self) -> Group:
        """One group with its own nuisance seed per member."""
        values, seeds = self.plan()
        return Group(values=values, images=self.dataset.batch(values, seeds.tolist()), seeds=seeds)

    def plan_batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n groups' values [n, 1+K, K] and seeds [n, 1+K], drawn as n calls of `sample` would draw them."""
        k1, k = self.num_attributes + 1, self.num_attributes
        plans = [self.plan() for _ in range(n)]
        values = np.stack([v for v, _ in plans]) if plans else np.empty((0, k1, k), np.int64)
        seeds = np.stack([s for _, s in plans]) if plans else np.empty((0, k1), np.int64)
        return values, seeds

    def sample_batch(self, n: int) -> Group:
        """n groups stacked: values [n, 1+K, K], images [n, 1+K, H, W, 3], seeds [n, 1+K]."""
        values, seeds = self.plan_batch(n)
        return Group(values=values, images=render_groups(self.dataset, values, seeds), seeds=seeds)


def render_groups(dataset: AttributeDataset, values: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Images of planned groups: values [..., K] with seeds [...] → uint8 [..., H, W, 3]."""
    lead = seeds.shape
    flat = dataset.batch(values.reshape(-1, values.shape[-1]), seeds.reshape(-1).tolist())
    return flat.reshape(*lead, *flat.shape[1:])
