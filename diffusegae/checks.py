"""Checks on a request's values: the one home of them, for the in-process Pipeline and for every
python-backend model of the server (whose `prepare` step runs them first), with the same messages.

Each check raises RequestError (a ValueError) with a message that says what to send instead. On the server,
Triton has already rejected wrong dtypes, ranks and missing inputs; the model answers a request that fails
here with INVALID_ARG and still serves the others. Numpy only: the glue models stay light.
"""

from __future__ import annotations

import numpy as np

from diffusegae import latents
from diffusegae.config import GAEConfig
from diffusegae.manipulate import direction_index

SEED_MAX = 2**63 - 1


class RequestError(ValueError):
    """A request's values are wrong; the message says what to send instead."""


def _rows(flags: np.ndarray) -> str:
    rows = np.flatnonzero(flags)
    shown = ", ".join(map(str, rows[:5])) + (", …" if len(rows) > 5 else "")
    return f"row{'s' if len(rows) > 1 else ''} {shown}"


def finite(name: str, x: np.ndarray) -> np.ndarray:
    """Float input without NaN or infinity, as float32."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise RequestError(f"{name} must be float32, got {x.dtype}")
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise RequestError(f"{name} contains NaN or infinity ({_rows(bad)}); send finite values")
    return x.astype(np.float32, copy=False)


def model_images(name: str, x: np.ndarray, size: int, what: str = "in [-1,1] (model space)") -> np.ndarray:
    """float [B, 3, size, size] images in model space ([-1, 1]; or `what` they are), finite, as float32."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1:] != (3, size, size):
        raise RequestError(f"{name} must be float32 [B,3,{size},{size}] {what}, got shape {x.shape}")
    return finite(name, x)


def codes(name: str, z: np.ndarray, width: int) -> np.ndarray:
    """float [B, width] latent codes, finite, as float32."""
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] != width:
        raise RequestError(f"{name} must be float32 [B,{width}], got shape {z.shape}")
    return finite(name, z)


def images(name: str, x: np.ndarray, size: int, checkpoint: str) -> np.ndarray:
    """uint8 [B, size, size, 3] RGB images for this checkpoint."""
    x = np.asarray(x)
    want = f"uint8 [B,{size},{size},3] RGB images ({checkpoint} works at {size}×{size})"
    if x.dtype != np.uint8:
        raise RequestError(f"{name} must be {want}, got {x.dtype}")
    if x.ndim != 4 or x.shape[3] != 3:
        raise RequestError(f"{name} must be {want}, got shape {list(x.shape)}; convert to RGB, batch first")
    if x.shape[1:3] != (size, size):
        raise RequestError(
            f"{name} must be {want}, got {x.shape[1]}×{x.shape[2]}; resize to {size}×{size} first"
        )
    return x


def step_count(value: int, num_timesteps: int) -> int:
    """One DDIM step count: it must have an integer stride (diffusion.ddim_timesteps says which do)."""
    from diffusegae.diffusion import ddim_timesteps  # only the loop models pay for importing it

    try:
        ddim_timesteps(value, num_timesteps)
    except (TypeError, ValueError) as err:
        raise RequestError(f"{err} (20 is a good default)") from None
    return int(value)


def sampler_name(value: object) -> str:
    """A sampler of dpm_solver.SAMPLERS ("ddim" or "dpmpp2m"), by name (str or UTF-8 bytes)."""
    from diffusegae.dpm_solver import SAMPLERS

    try:
        name = value.decode("utf-8") if isinstance(value, bytes) else value
    except UnicodeDecodeError:
        raise RequestError(f"sampler must be UTF-8 text, got {value!r}") from None
    if name not in SAMPLERS:
        raise RequestError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    return name


def samplers(x: np.ndarray) -> list[str]:
    """One sampler name per row ([B, 1] UTF-8) → the names."""
    rows = np.asarray(x, dtype=object).reshape(len(x), -1)
    if rows.shape[1] != 1:
        raise RequestError(f"sampler must be one name per image ([B,1]), got {list(np.shape(x))}")
    return [sampler_name(item) for item in rows[:, 0]]


def steps(x: np.ndarray, num_timesteps: int) -> np.ndarray:
    """DDIM step counts, one per row ([B, 1] → int64 [B]), each checked by `step_count`."""
    values = np.asarray(x).reshape(len(x), -1)
    if values.shape[1] != 1 or not np.issubdtype(values.dtype, np.integer):
        raise RequestError(f"steps must be one integer per image ([B,1]), got {values.dtype} {list(x.shape)}")
    for value in np.unique(values):
        step_count(int(value), num_timesteps)
    return values[:, 0].astype(np.int64)


def timesteps(x: np.ndarray, num_timesteps: int) -> np.ndarray:
    """The network's timestep t, one per row, in 0..T-1."""
    t = np.asarray(x)
    if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
        raise RequestError(f"t must be int64 [B], got {t.dtype} {list(t.shape)}")
    bad = (t < 0) | (t >= num_timesteps)
    if bad.any():
        raise RequestError(f"t must be in 0..{num_timesteps - 1}, got {t[bad][0]} ({_rows(bad)})")
    return t.astype(np.int64, copy=False)


def seeds(x: np.ndarray) -> np.ndarray:
    values = np.asarray(x).reshape(len(x), -1)[:, 0]
    bad = values < 0
    if bad.any():
        raise RequestError(f"seed must be an integer in 0..{SEED_MAX}, got {values[bad][0]} ({_rows(bad)})")
    return values.astype(np.int64)


def _numbers(name: str, x: np.ndarray, hint: str) -> np.ndarray:
    """One finite float per row ([B,1] → [B])."""
    values = np.asarray(x, dtype=np.float32).reshape(len(x), -1)[:, 0]
    bad = ~np.isfinite(values)
    if bad.any():
        raise RequestError(f"{name} must be a finite number ({hint}), got {values[bad][0]} ({_rows(bad)})")
    return values


def alphas(x: np.ndarray) -> np.ndarray:
    return _numbers("alpha", x, "0 gives the first image, 1 the second")


def amps(x: np.ndarray) -> np.ndarray:
    return _numbers("amp", x, "about ±0.3 is a visible edit")


def direction_indices(x: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """One direction per row, by name or number (UTF-8 text) → row numbers of the directions."""
    out = []
    for item in np.asarray(x, dtype=object).reshape(len(x), -1)[:, 0]:
        try:
            text = item.decode("utf-8") if isinstance(item, bytes) else str(item)
        except UnicodeDecodeError:
            raise RequestError(f"direction must be UTF-8 text, got {item!r}") from None
        try:
            out.append(direction_index(names, text))
        except ValueError as err:
            raise RequestError(str(err)) from None
    return np.asarray(out, dtype=np.int64)


def attribute_names(row: np.ndarray, gae: GAEConfig) -> list[str]:
    """One row of the attributes tensor → known, distinct attribute names (at least one)."""
    names = []
    for item in row:
        try:
            name = item.decode("utf-8") if isinstance(item, bytes) else str(item)
        except UnicodeDecodeError:
            raise RequestError(f"attribute names must be UTF-8 text, got {item!r}") from None
        try:
            gae.chunk(name)  # raises ValueError naming the choices
        except ValueError as err:
            raise RequestError(str(err)) from None
        if name in names:
            raise RequestError(f"attribute {name!r} is named twice; name each attribute once")
        names.append(name)
    if not names:
        raise RequestError(f"name at least one attribute of {', '.join(gae.attribute_names)}")
    return names


def attribute_mask(x: np.ndarray, gae: GAEConfig) -> np.ndarray:
    """bool [B, z_dis width]: which z_dis entries each row takes from the other operand."""
    rows = np.asarray(x, dtype=object).reshape(len(x), -1)
    mask = np.zeros((len(rows), gae.z_dis_channels), dtype=bool)
    for i, row in enumerate(rows):
        mask[i] = latents.attribute_mask(gae, attribute_names(row, gae))
    return mask


def same_batch(**arrays: np.ndarray) -> int:
    sizes = {name: len(a) for name, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise RequestError(f"batch sizes differ: {sizes}; send the same number of rows in each input")
    return next(iter(sizes.values()))
