"""Attribute manipulation along a linear classifier's directions (Diff-AE §5.3 / its manipulate notebook).

A classifier trained on normalised z_sem, ẑ = (z − μ) / σ, gives one direction w_k per attribute. Moving a
code by `amp` along attribute k is

    z' = denormalise(ẑ + amp · √D · w_k / |w_k|) = z + amp · √D · σ ⊙ w_k / |w_k|

with D the width of z_sem (512): √D makes amp a step in units of a unit-variance code's norm. numpy only,
so the server's glue model can use it without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def direction_index(names: Sequence[str], direction: str | int) -> int:
    """A direction's row: by name, or by its number (as int or as text); ValueError naming the choices."""
    if isinstance(direction, str) and direction in names:
        return list(names).index(direction)
    try:
        i = int(direction)
    except (TypeError, ValueError):
        i = -1
    if not 0 <= i < len(names) or isinstance(direction, bool):
        shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
        raise ValueError(
            f"unknown direction {direction!r}: give a name ({shown}) or a number 0..{len(names) - 1}"
        )
    return i


@dataclass(frozen=True)
class Directions:
    names: tuple[str, ...]
    weight: np.ndarray  # [K, D], one direction per attribute (the classifier's rows)
    mean: np.ndarray  # [D] conds_mean
    std: np.ndarray  # [D] conds_std

    def __post_init__(self) -> None:
        k, d = np.shape(self.weight)
        if len(self.names) != k or len(set(self.names)) != k:
            raise ValueError(f"need {k} distinct direction names, got {len(set(self.names))}")
        if np.shape(self.mean) != (d,) or np.shape(self.std) != (d,):
            raise ValueError(f"conds_mean and conds_std must be [{d}] like the directions")

    @property
    def width(self) -> int:
        return self.weight.shape[1]

    def index(self, direction: str | int) -> int:
        return direction_index(self.names, direction)

    def unit(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The unit directions w_k / |w_k| of the given rows, float64 [N, D]."""
        w = self.weight[np.asarray(indices, dtype=np.int64)].astype(np.float64)
        return w / np.linalg.norm(w, axis=1, keepdims=True).clip(min=1e-12)

    def apply(
        self, z_sem: np.ndarray, direction: str | int | Sequence[str | int], amp: float | np.ndarray
    ) -> np.ndarray:
        """z_sem [B, D] moved by amp (scalar or [B]) along one direction, or one direction per row."""
        z = np.asarray(z_sem)
        if z.ndim != 2 or z.shape[1] != self.width:
            raise ValueError(f"z_sem must be [B,{self.width}], got shape {z.shape}")
        many = not isinstance(direction, str | int | np.integer)
        indices = [self.index(d) for d in direction] if many else [self.index(direction)] * len(z)
        if len(indices) != len(z):
            raise ValueError(f"give one direction per row ({len(z)}), got {len(indices)}")
        amp = np.broadcast_to(np.asarray(amp, dtype=np.float64).reshape(-1, 1), (len(z), 1))
        if not np.isfinite(amp).all():
            raise ValueError("amp must be a finite number (about ±0.3 is a visible edit)")
        step = amp * np.sqrt(self.width) * self.std.astype(np.float64) * self.unit(indices)
        return (z.astype(np.float64) + step).astype(np.float32)
