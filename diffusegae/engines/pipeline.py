"""The user ops, in model space (float32 NCHW in [-1, 1]), on any Engine.

The DDIM loop itself is engines/ddim_loop.py (shared with the server): each step is one `engine.eps` call
followed by the pure update of diffusion.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from diffusegae import diffusion
from diffusegae.config import ModelConfig
from diffusegae.engines import ddim_loop
from diffusegae.engines.base import Engine, require_gae
from diffusegae.manipulate import Directions
from diffusegae.paths import SHIPPED_CHECKPOINT

ENGINES = ("torch", "onnxruntime", "tensorrt")


class Pipeline:
    def __init__(self, engine: Engine, directions: Directions | None = None) -> None:
        self.engine = engine
        self.config: ModelConfig = engine.config
        self.directions = directions  # attribute directions for `manipulate` (imported Diff-AE classifiers)

    # ---- checks: a bad input gets a message that says what to send instead ----

    def _images(self, x: np.ndarray, name: str = "x0") -> np.ndarray:
        x = np.asarray(x)
        s = self.config.image_size
        if x.ndim != 4 or x.shape[1:] != (3, s, s):
            raise ValueError(
                f"{name} must be float32 [B,3,{s},{s}] in [-1,1] (model space), got shape {x.shape}"
            )
        return self._finite(x, name)

    def _codes(self, z: np.ndarray, width: int, name: str) -> np.ndarray:
        z = np.asarray(z)
        if z.ndim != 2 or z.shape[1] != width:
            raise ValueError(f"{name} must be float32 [B,{width}], got shape {z.shape}")
        return self._finite(z, name)

    @staticmethod
    def _finite(x: np.ndarray, name: str) -> np.ndarray:
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{name} must be a float array, got {x.dtype}")
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinity")
        return x.astype(np.float32, copy=False)

    @staticmethod
    def _same_batch(**arrays: np.ndarray) -> int:
        sizes = {name: len(a) for name, a in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"batch sizes differ: {sizes}; pass the same number of items to each")
        return next(iter(sizes.values()))

    def _attributes(self, names: Sequence[str] | None, op: str) -> list[str]:
        gae = self.config.gae
        if names is None:
            return list(gae.attribute_names)
        if isinstance(names, str):
            names = [names]
        for name in names:
            gae.chunk(name)  # raises ValueError naming the choices
        if not names:
            raise ValueError(f"{op}: name at least one attribute of {', '.join(gae.attribute_names)}")
        return list(names)

    # ---- the ops ----

    def encode(self, x0: np.ndarray) -> np.ndarray:
        """x0 → z_sem [B,512]."""
        return self.engine.encode(self._images(x0))

    def disentangle(self, z_sem: np.ndarray) -> np.ndarray:
        """z_sem → z_dis (GAE encoder)."""
        require_gae(self.config, "disentangle")
        return self.engine.gae_encode(self._codes(z_sem, self.config.encoder.out_channels, "z_sem"))

    def entangle(self, z_dis: np.ndarray) -> np.ndarray:
        """z_dis → z_sem (GAE decoder)."""
        require_gae(self.config, "entangle")
        return self.engine.gae_decode(self._codes(z_dis, self.config.gae.z_dis_channels, "z_dis"))

    def invert(self, x0: np.ndarray, z_sem: np.ndarray, steps: int = 20) -> np.ndarray:
        """DDIM inversion x0 → x_T conditioned on z_sem (Diff-AE Eq. 7), walking the timesteps upward."""
        x = self._images(x0)
        z = self._codes(z_sem, self.config.encoder.out_channels, "z_sem")
        n = self._same_batch(x0=x, z_sem=z)
        return ddim_loop.run(self.engine, x, z, self._steps(steps, n), inverse=True)

    def decode(self, x_T: np.ndarray, z_sem: np.ndarray, steps: int = 20) -> np.ndarray:
        """DDIM sampling x_T → x0 conditioned on z_sem, walking the timesteps downward."""
        x = self._images(x_T, "x_T")
        z = self._codes(z_sem, self.config.encoder.out_channels, "z_sem")
        n = self._same_batch(x_T=x, z_sem=z)
        return ddim_loop.run(self.engine, x, z, self._steps(steps, n), inverse=False)

    def _steps(self, steps: int, batch: int) -> np.ndarray:
        diffusion.ddim_timesteps(steps, self.config.diffusion.num_timesteps)  # refuses bad counts, says why
        return np.full(batch, steps, np.int64)

    def noise(self, batch: int, seed: int) -> np.ndarray:
        """x_T ~ N(0, I) from a seed, identical on every engine and machine."""
        return diffusion.seeded_noise(batch, self.config.image_size, seed)

    def reconstruct(self, x0: np.ndarray, steps: int = 20, seed: int | None = None) -> np.ndarray:
        """encode → invert → decode; with a seed, decode from random x_T instead of the inferred one."""
        z = self.encode(x0)
        x_T = self.invert(x0, z, steps) if seed is None else self.noise(len(z), seed)
        return self.decode(x_T, z, steps)

    def edit(
        self, source: np.ndarray, reference: np.ndarray, swap: Sequence[str], steps: int = 20
    ) -> np.ndarray:
        """Take the `swap` attributes from `reference` and the rest from `source`; keep the source's x_T.

        A single reference image applies to every source image.
        """
        require_gae(self.config, "edit")
        names = self._attributes(swap, "edit")
        source, reference = self._images(source, "source"), self._images(reference, "reference")
        if len(reference) == 1 and len(source) > 1:
            reference = np.repeat(reference, len(source), axis=0)
        n = self._same_batch(source=source, reference=reference)
        z = self.engine.encode(np.concatenate([source, reference]))
        x_T = self.invert(source, z[:n], steps)
        return self.decode(x_T, self._swap_codes(z[:n], z[n:], names), steps)

    def swap_codes(self, z_source: np.ndarray, z_reference: np.ndarray, swap: Sequence[str]) -> np.ndarray:
        """The z_sem `edit` decodes: disentangle both, take the `swap` chunks of z_dis from the reference,
        entangle. z_reference may be one row for every source row."""
        require_gae(self.config, "swap_codes")
        names = self._attributes(swap, "swap_codes")
        width = self.config.encoder.out_channels
        z_source, z_reference = (
            self._codes(z_source, width, "z_source"),
            self._codes(z_reference, width, "z_reference"),
        )
        if len(z_reference) == 1 and len(z_source) > 1:
            z_reference = np.repeat(z_reference, len(z_source), axis=0)
        self._same_batch(z_source=z_source, z_reference=z_reference)
        return self._swap_codes(z_source, z_reference, names)

    def _swap_codes(self, z_source: np.ndarray, z_reference: np.ndarray, names: Sequence[str]) -> np.ndarray:
        n = len(z_source)
        z_dis = self.engine.gae_encode(np.concatenate([z_source, z_reference]))
        return self.engine.gae_decode(self._swap(z_dis[:n], z_dis[n:], names))

    def recombine(self, parts: Mapping[str, np.ndarray], steps: int = 20, seed: int = 0) -> np.ndarray:
        """One image (batch) per attribute → an image showing each attribute of its own source."""
        require_gae(self.config, "recombine")
        gae = self.config.gae
        missing = [a for a in gae.attribute_names if a not in parts]
        if missing:
            raise ValueError(f"recombine needs an image for every attribute; missing {missing}")
        self._attributes(list(parts), "recombine")
        images = {name: self._images(img, name) for name, img in parts.items()}
        n = self._same_batch(**images)
        z_dis = self.engine.gae_encode(self.engine.encode(np.concatenate(list(images.values()))))
        by_name = dict(zip(images, np.split(z_dis, len(images)), strict=True))
        mixed = np.concatenate([by_name[name][:, gae.chunk(name)] for name in gae.attribute_names], axis=1)
        return self.decode(self.noise(n, seed), self.engine.gae_decode(mixed), steps)

    def interpolate(
        self,
        a: np.ndarray,
        b: np.ndarray,
        alpha: float,
        attributes: Sequence[str] | None = None,
        steps: int = 20,
    ) -> np.ndarray:
        """Move from a toward b by alpha: lerp the codes (only the named z_dis chunks), slerp x_T."""
        if not np.isfinite(alpha):
            raise ValueError(f"alpha must be a finite number, got {alpha}")
        a, b = self._images(a, "a"), self._images(b, "b")
        n = self._same_batch(a=a, b=b)
        z = self.engine.encode(np.concatenate([a, b]))
        x_T = diffusion.slerp(self.invert(a, z[:n], steps), self.invert(b, z[n:], steps), alpha)
        if self.config.gae is None:
            if attributes is not None:
                raise ValueError(
                    "attributes need a DiffuseGAE checkpoint; a plain Diff-AE lerps all of z_sem"
                )
            return self.decode(x_T, diffusion.lerp(z[:n], z[n:], alpha), steps)
        z_dis = self.engine.gae_encode(z)
        mixed = z_dis[:n].copy()
        for name in self._attributes(attributes, "interpolate"):
            chunk = self.config.gae.chunk(name)
            mixed[:, chunk] = diffusion.lerp(z_dis[:n, chunk], z_dis[n:, chunk], alpha)
        return self.decode(x_T, self.engine.gae_decode(mixed), steps)

    def manipulate(
        self, z_sem: np.ndarray, direction: str | int | Sequence[str | int], amp: float | np.ndarray
    ) -> np.ndarray:
        """z_sem moved by amp along an attribute's classifier direction (Diff-AE's manipulation).

        direction: a name (e.g. "Smiling") or row number, or one per sample. Decode the result with the
        image's own x_T (`invert`) to change that attribute and keep the rest.
        """
        if self.directions is None:
            raise ValueError(
                f"manipulate needs attribute directions and {self.config.name!r} has none: import the "
                "checkpoint with `diffusegae import-diffae ... --classifier CLS_CKPT`"
            )
        return self.directions.apply(self._codes(z_sem, self.directions.width, "z_sem"), direction, amp)

    def _swap(self, z_dis: np.ndarray, donor: np.ndarray, names: Sequence[str]) -> np.ndarray:
        out = z_dis.copy()
        for name in names:
            chunk = self.config.gae.chunk(name)
            out[:, chunk] = donor[:, chunk]
        return out


def load_pipeline(
    checkpoint: str | Path | None = None, engine: str = "torch", device: str = "cpu", **options
) -> Pipeline:
    """A pipeline over a checkpoint directory (default: the shipped checkpoint) on the named engine.

    engine="onnxruntime" exports the checkpoint into its onnx/ cache on first use; engine="tensorrt" builds
    fp16 plans from those files (needs the tensorrt package and a CUDA GPU; unverified on this project's
    machines). `options` go to the engine: threads, providers, graph_optimization, io_binding (onnxruntime);
    precision, workspace_gb (tensorrt); dtype, compile, cuda_graphs (torch).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    from diffusegae.checkpoint import load_directions

    path = Path(checkpoint) if checkpoint is not None else SHIPPED_CHECKPOINT
    if checkpoint is None and not path.is_dir():
        raise FileNotFoundError(
            f"the default checkpoint {path} is missing: pass a checkpoint directory, or train one with "
            "`python -m diffusegae.train --checkpoint DIR --preset tiny32 --stage 1`"
        )
    return Pipeline(_load_engine(path, engine, device, **options), load_directions(path))


def _load_engine(path: Path, engine: str, device: str, **options) -> Engine:
    if engine == "onnxruntime":
        from diffusegae.engines.onnxruntime_engine import load_onnxruntime_engine

        return load_onnxruntime_engine(path, **options)
    if engine == "tensorrt":
        from diffusegae.engines.tensorrt_engine import load_tensorrt_engine

        return load_tensorrt_engine(path, **options)
    from diffusegae.checkpoint import load_checkpoint
    from diffusegae.engines.torch_engine import TorchEngine

    return TorchEngine(load_checkpoint(path, device), device, **options)
