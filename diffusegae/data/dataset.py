"""Procedural stand-in for ilab_20M: objects (identity) x scenes (background) x orientations (pose).

Everything is plain numpy and deterministic: appearance depends only on the attribute values, the
per-image nuisance seed and the resolution; the dataset seed only chooses the train/test split.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

ATTRIBUTES: dict[str, int] = {"identity": 6, "background": 20, "pose": 10}
POSE_STEP_DEG = 36.0

_NUISANCE_TAG = 0x6A7E  # keeps nuisance streams apart from any other use of the same integer seed
_OBJ_RADIUS = 0.58  # object radius in normalised image units (the image spans [-1, 1])
_OUTLINE_PX = 1.2  # dark outline width in output pixels: keeps objects apart from any scene
_MARKER_TAN = np.tan(np.deg2rad(22.0))  # half-width of the pose wedge: 44 deg, just over one pose step

# name, body colour. The pose marker is one colour on every body: a marker whose colour came with the
# identity (white on four bodies, black on the star and the ring) vanished halfway through an identity
# interpolation between the two kinds (grey on a blended body), so pose was lost with identity.
_IDENTITIES = (
    ("disc", (215, 35, 35)),
    ("square", (35, 75, 215)),
    ("triangle", (40, 165, 55)),
    ("star", (245, 205, 25)),
    ("cross", (195, 45, 195)),
    ("ring", (30, 195, 210)),
)
_MARKER = np.array((250, 250, 250), np.float32)  # far from every body in RGB (>= 200 in some channel)
_OUTLINE = np.array((18, 18, 22), np.float32)

# Scenes, muted so the saturated objects stand out: (kind, params, colour a, colour b).
_BACKGROUNDS = (
    ("flat", (), (48, 48, 54), None),
    ("flat", (), (200, 200, 196), None),
    ("flat", (), (196, 176, 138), None),
    ("flat", (), (92, 104, 124), None),
    ("grad", (0.0,), (40, 40, 40), (215, 215, 215)),
    ("grad", (90.0,), (40, 50, 90), (210, 200, 170)),
    ("grad", (45.0,), (105, 70, 50), (225, 218, 200)),
    ("grad", (135.0,), (225, 190, 170), (80, 95, 125)),
    ("stripes", (0.0, 0.5), (205, 205, 205), (125, 125, 125)),
    ("stripes", (90.0, 0.5), (215, 195, 160), (120, 85, 60)),
    ("stripes", (45.0, 0.45), (150, 150, 150), (60, 65, 75)),
    ("stripes", (135.0, 0.3), (165, 165, 115), (95, 95, 65)),
    ("checker", (4,), (230, 230, 230), (115, 115, 115)),
    ("checker", (8,), (80, 60, 45), (180, 150, 110)),
    ("dots", (6, 0.3), (45, 70, 70), (170, 190, 185)),
    ("dots", (5, 0.3), (220, 215, 205), (95, 80, 80)),
    ("noise", (5, 101), (65, 85, 55), (160, 170, 125)),
    ("noise", (16, 202), (80, 80, 80), (185, 180, 170)),
    ("split", (0.2,), (200, 205, 215), (120, 90, 65)),
    ("grid", (4, 0.12), (55, 55, 60), (190, 190, 190)),
)
assert len(_BACKGROUNDS) == ATTRIBUTES["background"] and len(_IDENTITIES) == ATTRIBUTES["identity"]


def _supersample(resolution: int) -> int:
    # Enough sub-samples for smooth edges at small sizes, while staying cheap at large ones.
    return 4 if resolution <= 32 else 3 if resolution <= 64 else 2


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of an n x n grid in [-1, 1]; y grows downwards."""
    c = ((np.arange(n, dtype=np.float32) + 0.5) / n) * 2.0 - 1.0
    return c[None, :], c[:, None]


def _downsample(a: np.ndarray, s: int) -> np.ndarray:
    if s == 1:
        return a
    h, w = a.shape[0] // s, a.shape[1] // s
    return a.reshape(h, s, w, s, *a.shape[2:]).mean(axis=(1, 3), dtype=np.float32)


def _value_noise(x: np.ndarray, y: np.ndarray, cells: int, seed: int) -> np.ndarray:
    """Smooth bilinear value noise on a fixed lattice, so the texture is resolution independent."""
    lattice = np.random.default_rng(seed).random((cells + 1, cells + 1)).astype(np.float32)
    gx, gy = (x + 1.0) * 0.5 * cells, (y + 1.0) * 0.5 * cells
    ix, iy = np.clip(np.floor(gx), 0, cells - 1).astype(int), np.clip(np.floor(gy), 0, cells - 1).astype(int)
    fx, fy = gx - ix, gy - iy
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)  # smoothstep hides the lattice
    top = lattice[iy, ix] * (1 - fx) + lattice[iy, ix + 1] * fx
    bot = lattice[iy + 1, ix] * (1 - fx) + lattice[iy + 1, ix + 1] * fx
    return top * (1 - fy) + bot * fy


def _background_field(index: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Scene `index` as float32 [n, n, 3] in 0..255 on the (super-sampled) grid x, y."""
    kind, params, col_a, col_b = _BACKGROUNDS[index]
    x, y = np.broadcast_arrays(x, y)
    a = np.asarray(col_a, np.float32)
    if kind == "flat":
        return np.broadcast_to(a, (*x.shape, 3)).copy()
    if kind in ("grad", "stripes"):
        th = np.deg2rad(params[0])
        d = x * np.cos(th) + y * np.sin(th)
        if kind == "grad":
            t = np.clip(d / (abs(np.cos(th)) + abs(np.sin(th))) * 0.5 + 0.5, 0.0, 1.0)
        else:
            t = (np.mod(d / params[1], 1.0) < 0.5).astype(np.float32)
    elif kind == "checker":
        n = params[0]
        cx, cy = np.floor((x + 1.0) * 0.5 * n), np.floor((y + 1.0) * 0.5 * n)
        t = np.mod(cx + cy, 2.0)
    elif kind in ("dots", "grid"):
        n = params[0]
        fx, fy = np.mod((x + 1.0) * 0.5 * n, 1.0) - 0.5, np.mod((y + 1.0) * 0.5 * n, 1.0) - 0.5
        if kind == "dots":
            t = (fx * fx + fy * fy < params[1] ** 2).astype(np.float32)
        else:
            t = (np.maximum(np.abs(fx), np.abs(fy)) > 0.5 - params[1] / 2).astype(np.float32)
    elif kind == "noise":
        t = _value_noise(x, y, params[0], params[1])
    elif kind == "split":
        t = (y > params[0]).astype(np.float32)
    else:  # pragma: no cover - table is fixed above
        raise AssertionError(kind)
    b = np.asarray(col_b, np.float32)
    return a + (b - a) * t.astype(np.float32)[..., None]


def _inside(identity: int, u: np.ndarray, v: np.ndarray, grow: float) -> np.ndarray:
    """Silhouette of `identity` in object units (radius ~1); `grow` widens it uniformly (for the outline)."""
    name = _IDENTITIES[identity][0]
    if name == "disc":
        return u * u + v * v < (0.88 + grow) ** 2
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) < 0.76 + grow
    if name == "triangle":  # apex at angle 0; edge normals at 60, 180, 300 degrees; inradius 0.55
        lim = 0.55 + grow
        h = 0.8660254 * v
        return (-u < lim) & (0.5 * u + h < lim) & (0.5 * u - h < lim)
    if name == "cross":
        au, av = np.abs(u), np.abs(v)
        w, ln = 0.3 + grow, 0.95 + grow
        return ((au < w) & (av < ln)) | ((av < w) & (au < ln))
    if name == "ring":
        r2 = u * u + v * v
        return (r2 < (0.95 + grow) ** 2) & (r2 > max(0.5 - grow, 0.0) ** 2)
    # star: fold the angle into one half-spike [0, 36] deg and test against its outer edge line
    r = np.sqrt(u * u + v * v)
    phi = np.abs(np.mod(np.arctan2(v, u) + np.pi / 5, 2 * np.pi / 5) - np.pi / 5)
    qx, qy = r * np.cos(phi), r * np.sin(phi)
    ro, ri = 1.05, 0.45
    dx, dy = ri * np.cos(np.pi / 5) - ro, ri * np.sin(np.pi / 5)
    nx, ny = dy / np.hypot(dx, dy), -dx / np.hypot(dx, dy)  # outward unit normal of the edge
    return (qx - ro) * nx + qy * ny < grow


class AttributeDataset:
    """Deterministic renderer of (identity, background, pose) images plus an 80/20 combination split."""

    def __init__(self, resolution: int = 64, seed: int = 0, test_fraction: float = 0.2) -> None:
        if not 8 <= int(resolution) <= 1024:
            raise ValueError(f"resolution must be in [8, 1024], got {resolution}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        self.resolution, self.seed, self.test_fraction = int(resolution), int(seed), float(test_fraction)
        self.attributes: dict[str, int] = dict(ATTRIBUTES)
        self._ss = _supersample(self.resolution)
        self._x, self._y = _grid(self.resolution * self._ss)
        self._bg_cache: dict[int, np.ndarray] = {}
        self._splits = self._make_splits()

    # ---- attributes -------------------------------------------------------------------------------------
    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(self.attributes)

    @property
    def num_values(self) -> tuple[int, ...]:
        return tuple(self.attributes.values())

    def validate(self, values: Sequence[int]) -> tuple[int, ...]:
        """Check a value tuple and return it as plain ints; ValueError names the offending attribute."""
        vals = tuple(np.asarray(values).reshape(-1).tolist()) if not isinstance(values, tuple) else values
        if len(vals) != len(self.attributes):
            raise ValueError(
                f"expected {len(self.attributes)} values {self.attribute_names}, got {len(vals)}"
            )
        out = []
        for (name, n), v in zip(self.attributes.items(), vals, strict=True):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 0 <= int(v) < n:
                raise ValueError(f"attribute '{name}' must be an integer in [0, {n - 1}], got {v!r}")
            out.append(int(v))
        return tuple(out)

    # ---- rendering --------------------------------------------------------------------------------------
    def _background(self, index: int) -> np.ndarray:
        bg = self._bg_cache.get(index)
        if bg is None:
            bg = _downsample(_background_field(index, self._x, self._y), self._ss)
            self._bg_cache[index] = bg
        return bg

    def render(self, values: Sequence[int], seed: int = 0) -> np.ndarray:
        """Render one image as uint8 [H, W, 3] (RGB). `seed` drives only the small nuisance jitter."""
        identity, background, pose = self.validate(values)
        if not isinstance(seed, int | np.integer) or int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        rng = np.random.default_rng([int(seed), _NUISANCE_TAG])
        shift = rng.uniform(-0.08, 0.08, size=2)  # ~4% of the image width each way
        scale = rng.uniform(0.92, 1.08)
        angle = np.deg2rad(pose * POSE_STEP_DEG + rng.uniform(-4.0, 4.0))
        bright = rng.uniform(0.93, 1.07)

        radius = _OBJ_RADIUS * scale
        c, s = np.float32(np.cos(angle) / radius), np.float32(np.sin(angle) / radius)
        x, y = self._x - np.float32(shift[0]), self._y - np.float32(shift[1])
        u, v = c * x + s * y, c * y - s * x  # object frame: the pose rotates the shape and its marker
        grow = _OUTLINE_PX * (2.0 / self.resolution) / radius
        outline = _inside(identity, u, v, grow)
        body = _inside(identity, u, v, 0.0)
        # Pose marker: a wedge pointing along the object's local +u axis (breaks every symmetry).
        marker = body & (np.abs(v) < _MARKER_TAN * u) & (u * u + v * v > 0.08**2)
        a_out, a_body, a_mark = (_downsample(m.astype(np.float32), self._ss) for m in (outline, body, marker))

        body_col = np.asarray(_IDENTITIES[identity][1], np.float32)
        img = self._background(background) * (1.0 - a_out)[..., None]
        img += _OUTLINE * (a_out - a_body)[..., None]
        img += body_col * (a_body - a_mark)[..., None]
        img += _MARKER * a_mark[..., None]
        img *= np.float32(bright)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

    def batch(self, values_list: Sequence[Sequence[int]], seeds: Sequence[int] | int) -> np.ndarray:
        """Render many images: uint8 [B, H, W, 3]. `seeds` is one seed per image (or an int for all)."""
        values_list = list(values_list)
        seeds = [int(seeds)] * len(values_list) if isinstance(seeds, int | np.integer) else list(seeds)
        if len(seeds) != len(values_list):
            raise ValueError(f"got {len(values_list)} value tuples but {len(seeds)} seeds")
        out = np.empty((len(values_list), self.resolution, self.resolution, 3), np.uint8)
        for i, (vals, sd) in enumerate(zip(values_list, seeds, strict=True)):
            out[i] = self.render(vals, sd)
        return out

    def sample(
        self, rng: np.random.Generator, split: str = "train", n: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """n random combos of `split` with fresh nuisance seeds: (values int64 [n, 3], uint8 [n, H, W, 3])."""
        values, seeds = self.plan(rng, split, n)
        return values, self.batch(values, seeds.tolist())

    def plan(
        self, rng: np.random.Generator, split: str = "train", n: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """What `sample` draws, without rendering: (values int64 [n, 3], nuisance seeds int64 [n])."""
        combos = self.split_array(split)
        values = combos[rng.integers(0, len(combos), size=n)]
        return values, rng.integers(0, 2**31 - 1, size=n)

    # ---- split ------------------------------------------------------------------------------------------
    def _make_splits(self) -> dict[str, np.ndarray]:
        combos = np.array(list(itertools.product(*(range(n) for n in self.num_values))), np.int64)
        n_test = round(len(combos) * self.test_fraction)
        # A diagonal of combinations is pinned to train so that every single value is seen in training.
        pinned = np.zeros(len(combos), bool)
        strides = np.cumprod((1, *self.num_values[:0:-1]))[::-1]
        for j in range(max(self.num_values)):
            pinned[sum((j % n) * st for n, st in zip(self.num_values, strides, strict=True))] = True
        free = np.flatnonzero(~pinned)
        n_test = min(n_test, len(free))
        rng = np.random.default_rng([self.seed, 0x5B117])
        is_test = np.zeros(len(combos), bool)
        is_test[rng.choice(free, size=n_test, replace=False)] = True
        return {"train": combos[~is_test], "test": combos[is_test]}

    def split_array(self, name: str) -> np.ndarray:
        """Combinations of a split as int64 [M, 3] (a copy)."""
        if name not in self._splits:
            raise ValueError(f"unknown split {name!r}; choose one of {sorted(self._splits)}")
        return self._splits[name].copy()

    def split(self, name: str) -> list[tuple[int, ...]]:
        """Combinations of a split as a list of (identity, background, pose) tuples."""
        return [tuple(int(v) for v in row) for row in self.split_array(name)]
