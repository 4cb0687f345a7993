"""Linear probes (DiffuseGAE Table 1): how well each latent chunk predicts each attribute.

A probe is multinomial logistic regression on standardised features, fitted full-batch with L-BFGS and an L2
penalty. `probe_matrix` fits one probe per (feature set, attribute) on the same split of the probe images;
an ideal disentangled z_dis scores 1 on the diagonal (chunk k → attribute k) and chance (1/n_values) off it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from diffusegae.data import AttributeDataset


@dataclass(frozen=True)
class ProbeSettings:
    l2: float = 1e-3  # on the weights of standardised features, added to the mean cross-entropy
    iterations: int = 200  # L-BFGS iterations (full batch)
    train_fraction: float = 0.8
    seed: int = 0


@dataclass
class LinearProbe:
    mean: np.ndarray
    std: np.ndarray
    weight: np.ndarray  # [D, n_classes]
    bias: np.ndarray  # [n_classes]

    def predict(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, np.float64) - self.mean) / self.std
        return (z @ self.weight + self.bias).argmax(axis=1)


def fit_probe(
    features: np.ndarray, labels: np.ndarray, n_classes: int, settings: ProbeSettings = ProbeSettings()
) -> LinearProbe:
    """Multinomial logistic regression: minimise CE + l2·‖W‖² by full-batch L-BFGS (deterministic)."""
    x = np.asarray(features, np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)  # constant features stay zero after standardising
    xt = torch.from_numpy((x - mean) / std)
    yt = torch.from_numpy(np.asarray(labels, np.int64))
    weight = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias], max_iter=settings.iterations, line_search_fn="strong_wolfe", history_size=20
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ weight + bias, yt) + settings.l2 * weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LinearProbe(mean, std, weight.detach().numpy(), bias.detach().numpy())


def split_indices(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng([seed, 0x9B0BE]).permutation(n)
    n_train = round(n * train_fraction)
    if not 0 < n_train < n:
        raise ValueError(f"need at least 2 probe samples on each side of the split, got n={n}")
    return order[:n_train], order[n_train:]


def probe_matrix(
    features: Mapping[str, np.ndarray],
    values: np.ndarray,
    attributes: Mapping[str, int],
    settings: ProbeSettings = ProbeSettings(),
) -> dict[str, object]:
    """Test accuracy of a probe per (feature set, attribute): {"rows": {row: {attribute: acc}}, ...}.

    values: int [N, n_attributes], columns in `attributes` order; every feature set is [N, D_row].
    """
    values = np.asarray(values)
    train, test = split_indices(len(values), settings.train_fraction, settings.seed)
    rows: dict[str, dict[str, float]] = {}
    for row, feats in features.items():
        feats = np.asarray(feats)
        if len(feats) != len(values):
            raise ValueError(f"feature set {row!r} has {len(feats)} rows for {len(values)} labels")
        rows[row] = {}
        for j, (name, n) in enumerate(attributes.items()):
            probe = fit_probe(feats[train], values[train, j], n, settings)
            rows[row][name] = float((probe.predict(feats[test]) == values[test, j]).mean())
    return {
        "rows": rows,
        "chance": {name: 1.0 / n for name, n in attributes.items()},
        "n_train": len(train),
        "n_test": len(test),
        "settings": {"l2": settings.l2, "iterations": settings.iterations, "seed": settings.seed},
    }


def sample_probe_images(dataset: AttributeDataset, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images over the whole dataset (both splits), random combinations and nuisance seeds."""
    combos = np.concatenate([dataset.split_array("train"), dataset.split_array("test")])
    rng = np.random.default_rng([seed, 0x960BE])
    values = combos[rng.integers(0, len(combos), size=n)]
    return values, dataset.batch(values, rng.integers(0, 2**31 - 1, size=n).tolist())
