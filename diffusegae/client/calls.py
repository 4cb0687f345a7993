"""The public ops as requests: which ensemble, and its input tensors built from user values.

Images: a uint8 [H,W,3] or [B,H,W,3] array, a PIL image, or a list of either. Values are checked only as
far as the wire needs (an integer must be an integer); the server checks the rest and says what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffusegae import latents
from diffusegae.export.specs import X_T, Z_SEM, TensorSpec
from diffusegae.server.specs import (
    ALPHA_TENSOR,
    AMP,
    AMP_TENSOR,
    ATTRIBUTES,
    DIRECTION,
    EDIT,
    EDIT_INVERTED,
    IMAGE,
    IMAGE_A,
    IMAGE_B,
    INTERPOLATE,
    INVERSION,
    MANIPULATE,
    OUTPUT,
    RECOMBINE,
    RECONSTRUCT,
    REFERENCE,
    SAMPLER,
    SEED_TENSOR,
    SOURCE,
    STEPS,
    STEPS_TENSOR,
    named,
)

Image = Any  # np.ndarray | PIL.Image.Image | a sequence of them


@dataclass(frozen=True)
class Call:
    model: str
    inputs: dict[str, np.ndarray]
    output: str = OUTPUT
    more: tuple[str, ...] = ()  # further outputs to ask for
    # what the op returns, from its outputs by name (None: the `output` array)
    answer: Callable[[dict[str, np.ndarray]], Any] | None = None

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.output, *self.more)

    def result(self, arrays: dict[str, np.ndarray]) -> Any:
        return arrays[self.output] if self.answer is None else self.answer(arrays)


@dataclass(frozen=True)
class Inversion:
    """A source as `inversion` answered it: what `edit_inverted` edits from, as often as wanted (the encoder
    and the inversion loop are not run again). Keep it with the image: it is only valid for the checkpoint,
    step count and sampler it was made with."""

    z_sem: np.ndarray  # float32 [B, 512]
    x_T: np.ndarray  # float32 [B, 3, H, W]
    steps: int
    sampler: str | None = None


def images(value: Image) -> np.ndarray:
    """A batch [B,H,W,C] from one image, a batch array or a list of images (PIL images become RGB)."""
    if isinstance(value, list | tuple):
        return np.stack([_array(v) for v in value])
    x = _array(value)
    return x[None] if x.ndim == 3 else x


def _array(value: Image) -> np.ndarray:
    if not isinstance(value, np.ndarray) and hasattr(value, "convert"):  # a PIL image, without importing PIL
        return np.asarray(value.convert("RGB"))
    return np.ascontiguousarray(value)


def per_row(spec: TensorSpec, value: Any, rows: int) -> np.ndarray:
    """One scalar repeated for each image, [rows, 1], in the spec's dtype."""
    dtype = np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.integer):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{spec.name} must be an integer, got {value!r}")
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise ValueError(f"{spec.name} must fit {dtype} ({info.min}..{info.max}), got {value}")
    elif isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{spec.name} must be a number, got {value!r}")
    return np.full((rows, 1), value, dtype=dtype)


def attribute_names(names: str | Sequence[str], rows: int) -> np.ndarray:
    """The attributes tensor: the same names for each image, UTF-8, [rows, K]."""
    names = [names] if isinstance(names, str) else list(names)
    return np.array([[n.encode("utf-8") for n in names]] * rows, dtype=object).reshape(rows, len(names))


def loop_values(steps: int, sampler: str | None, rows: int) -> dict[str, np.ndarray]:
    """steps, one per image, and the sampler when one is named (left out, the server uses "ddim")."""
    values = {STEPS: per_row(STEPS_TENSOR, steps, rows)}
    if sampler is not None:
        if not isinstance(sampler, str):
            raise TypeError(f"sampler must be a name such as 'ddim' or 'dpmpp2m', got {sampler!r}")
        values[SAMPLER] = np.array([[sampler.encode("utf-8")]] * rows, dtype=object).reshape(rows, 1)
    return values


def reconstruct(image: Image, steps: int, sampler: str | None = None) -> Call:
    x = images(image)
    return Call(RECONSTRUCT, {IMAGE: x, **loop_values(steps, sampler, len(x))})


def edit(
    source: Image, reference: Image, swap: str | Sequence[str], steps: int, sampler: str | None = None
) -> Call:
    src, ref = images(source), images(reference)
    if len(ref) == 1:  # one reference for every source, as Pipeline.edit (the server checks the rest)
        ref = latents.one_for_each(ref, len(src))
    n = len(src)
    inputs = {SOURCE: src, REFERENCE: ref, ATTRIBUTES: attribute_names(swap, n)}
    return Call(EDIT, {**inputs, **loop_values(steps, sampler, n)})


def recombine(parts: Mapping[str, Image], steps: int, seed: int, sampler: str | None = None) -> Call:
    if not parts:
        raise ValueError("recombine needs one image (or batch) per attribute, e.g. {'identity': image, ...}")
    inputs = {named(IMAGE, name): images(image) for name, image in parts.items()}
    n = len(next(iter(inputs.values())))
    inputs[SEED_TENSOR.name] = per_row(SEED_TENSOR, seed, n)
    return Call(RECOMBINE, {**inputs, **loop_values(steps, sampler, n)})


def interpolate(
    a: Image,
    b: Image,
    alpha: float,
    attributes: str | Sequence[str] | None,
    steps: int,
    sampler: str | None = None,
) -> Call:
    xa, xb = images(a), images(b)
    n = len(xa)
    inputs = {IMAGE_A: xa, IMAGE_B: xb, ALPHA_TENSOR.name: per_row(ALPHA_TENSOR, alpha, n)}
    if attributes is not None:  # left out: the server interpolates every attribute
        inputs[ATTRIBUTES] = attribute_names(attributes, n)
    return Call(INTERPOLATE, {**inputs, **loop_values(steps, sampler, n)})


def manipulate(
    image: Image, direction: str | int, amp: float, steps: int, sampler: str | None = None
) -> Call:
    x = images(image)
    n = len(x)
    name = np.array([[str(direction).encode("utf-8")]] * n, dtype=object).reshape(n, 1)
    inputs = {IMAGE: x, DIRECTION: name, AMP: per_row(AMP_TENSOR, amp, n)}
    return Call(MANIPULATE, {**inputs, **loop_values(steps, sampler, n)})


def inversion(image: Image, steps: int, sampler: str | None = None) -> Call:
    x = images(image)
    return Call(
        INVERSION,
        {IMAGE: x, **loop_values(steps, sampler, len(x))},
        output=Z_SEM,
        more=(X_T,),
        answer=lambda out: Inversion(out[Z_SEM], out[X_T], steps, sampler),
    )


def edit_inverted(
    source: Inversion, reference: Image, swap: str | Sequence[str], steps: int | None = None
) -> Call:
    """edit from an Inversion; decoding with its own steps and sampler unless `steps` says otherwise."""
    if not isinstance(source, Inversion):
        raise TypeError(f"edit_inverted takes the Inversion that client.invert returned, not {type(source)}")
    ref = images(reference)
    n = len(source.z_sem)
    if len(ref) == 1:
        ref = latents.one_for_each(ref, n)
    inputs = {Z_SEM: source.z_sem, X_T: source.x_T, REFERENCE: ref, ATTRIBUTES: attribute_names(swap, n)}
    values = loop_values(source.steps if steps is None else steps, source.sampler, n)
    return Call(EDIT_INVERTED, {**inputs, **values})
