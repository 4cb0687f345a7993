"""The user ops, in model space (float32 NCHW in [-1, 1]), on any Engine.

The DDIM loop itself is engines/ddim_loop.py (shared with the server): each step is one `engine.eps` call
followed by the pure update of diffusion.py. The code math (swap, recombine, interpolate) is latents.py and
the request checks are checks.py, both shared with the server's models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusegae import checks, diffusion, latents
from diffusegae.config import ModelConfig
from diffusegae.engines import ddim_loop
from diffusegae.engines.base import Engine, require_gae
from diffusegae.engines.registry import ENGINES, load_engine, lookup
from diffusegae.manipulate import Directions
from diffusegae.paths import SHIPPED_CHECKPOINT


@dataclass(frozen=True)
class Speedups:
    """The opt-in, lossy speed-ups, each off by default (BENCHMARKS.md gives each one's quality beside its
    speed: `bench/official.py --modes`).

    feature_reuse: run the whole UNet only every N-th DDIM step, the outermost level alone in between
    (ddim_loop.FeatureReuse; 1: off). invert_steps: the inversion inside edit / reconstruct / interpolate
    walks this many steps instead of the decoding's (None: the same)."""

    feature_reuse: int = 1
    invert_steps: int | None = None

    def check(self, engine: Engine) -> None:
        """Refuse values the engine cannot run, saying why (in-process and served alike)."""
        ddim_loop.check_reuse(engine, self.feature_reuse)
        if self.invert_steps is not None:
            checks.step_count(self.invert_steps, engine.config.diffusion.num_timesteps)

    def active(self) -> dict[str, int]:
        """The modes switched on, by name: what a result says it was made with ({} for the exact path)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v != getattr(Speedups, k)}


EXACT = Speedups()  # no speed-up on: the default everywhere


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        directions: Directions | None = None,
        sampler: str = "ddim",
        speedups: Speedups = EXACT,
    ) -> None:
        self.engine = engine
        speedups.check(engine)
        self.speedups = speedups
        self.config: ModelConfig = engine.config
        self.directions = directions  # attribute directions for `manipulate` (imported Diff-AE classifiers)
        # what every op samples and inverts with when it names no sampler: "ddim" or "dpmpp2m"
        self.sampler = checks.sampler_name(sampler)

    def modes(self) -> dict[str, object]:
        """Every lossy setting the results are made with, by name ({} for the exact fp32 path): the speed-ups
        that are on, the engine's reduced precision (the torch engine's dtype, ONNX Runtime's files) and its
        Winograd convolutions (exact up to rounding, but not the direct kernel's rounding)."""
        modes: dict[str, object] = dict(self.speedups.active())
        dtype = str(getattr(self.engine, "dtype", "float32")).removeprefix("torch.")
        if dtype != "float32":
            modes["dtype"] = dtype
        if getattr(self.engine, "precision", "fp32") != "fp32":
            modes["precision"] = self.engine.precision
        if getattr(self.engine, "winograd", False):
            modes["winograd"] = True
        return modes

    # ---- checks (diffusegae.checks: the same messages as the server's) ----

    def _images(self, x: np.ndarray, name: str = "x0") -> np.ndarray:
        return checks.model_images(name, x, self.config.image_size)

    def _z_sem(self, z: np.ndarray, name: str = "z_sem") -> np.ndarray:
        return checks.codes(name, z, self.config.encoder.out_channels)

    def _attributes(self, names: Sequence[str] | None) -> list[str]:
        """Known, distinct attribute names (all of them for None)."""
        gae = self.config.gae
        if names is None:
            return list(gae.attribute_names)
        return checks.attribute_names([names] if isinstance(names, str) else list(names), gae)

    # ---- the ops ----

    def encode(self, x0: np.ndarray) -> np.ndarray:
        """x0 → z_sem [B,512]."""
        return self.engine.encode(self._images(x0))

    def disentangle(self, z_sem: np.ndarray) -> np.ndarray:
        """z_sem → z_dis (GAE encoder)."""
        require_gae(self.config, "disentangle")
        return self.engine.gae_encode(self._z_sem(z_sem))

    def entangle(self, z_dis: np.ndarray) -> np.ndarray:
        """z_dis → z_sem (GAE decoder)."""
        require_gae(self.config, "entangle")
        return self.engine.gae_decode(checks.codes("z_dis", z_dis, self.config.gae.z_dis_channels))

    def invert(
        self, x0: np.ndarray, z_sem: np.ndarray, steps: int = 20, sampler: str | None = None
    ) -> np.ndarray:
        """Inversion x0 → x_T conditioned on z_sem (Diff-AE Eq. 7 for DDIM), walking the timesteps upward."""
        x, z = self._images(x0), self._z_sem(z_sem)
        checks.same_batch(x0=x, z_sem=z)
        return self._loop(x, z, steps, True, sampler)

    def decode(
        self, x_T: np.ndarray, z_sem: np.ndarray, steps: int = 20, sampler: str | None = None
    ) -> np.ndarray:
        """Sampling x_T → x0 conditioned on z_sem, walking the timesteps downward."""
        x, z = self._images(x_T, "x_T"), self._z_sem(z_sem)
        checks.same_batch(x_T=x, z_sem=z)
        return self._loop(x, z, steps, False, sampler)

    def _loop(
        self, x: np.ndarray, z: np.ndarray, steps: int, inverse: bool, sampler: str | None
    ) -> np.ndarray:
        n = len(x)
        walks = (self._steps(steps, n), inverse, self._samplers(sampler, n))
        return ddim_loop.run(self.engine, x, z, *walks, reuse=self.speedups.feature_reuse)

    def _inversion(self, x0: np.ndarray, z_sem: np.ndarray, steps: int, sampler: str | None) -> np.ndarray:
        """invert, inside the composite ops: with Speedups.invert_steps when set."""
        return self.invert(x0, z_sem, self.speedups.invert_steps or steps, sampler)

    def _steps(self, steps: int, batch: int) -> np.ndarray:
        checks.step_count(steps, self.config.diffusion.num_timesteps)  # refuses bad counts, says why
        return np.full(batch, steps, np.int64)

    def _samplers(self, sampler: str | None, batch: int) -> list[str]:
        return [checks.sampler_name(self.sampler if sampler is None else sampler)] * batch

    def noise(self, batch: int, seed: int) -> np.ndarray:
        """x_T ~ N(0, I) from a seed, identical on every engine and machine."""
        return diffusion.seeded_noise(batch, self.config.image_size, seed)

    def reconstruct(
        self, x0: np.ndarray, steps: int = 20, seed: int | None = None, sampler: str | None = None
    ) -> np.ndarray:
        """encode → invert → decode; with a seed, decode from random x_T instead of the inferred one."""
        z = self.encode(x0)
        x_T = self._inversion(x0, z, steps, sampler) if seed is None else self.noise(len(z), seed)
        return self.decode(x_T, z, steps, sampler)

    def edit(
        self,
        source: np.ndarray,
        reference: np.ndarray,
        swap: Sequence[str],
        steps: int = 20,
        sampler: str | None = None,
    ) -> np.ndarray:
        """Take the `swap` attributes from `reference` and the rest from `source`; keep the source's x_T.

        A single reference image applies to every source image.
        """
        require_gae(self.config, "edit")
        names = self._attributes(swap)
        source, reference = self._images(source, "source"), self._images(reference, "reference")
        reference = self._one_for_each(reference, source)
        n = len(source)
        z = self.engine.encode(np.concatenate([source, reference]))
        x_T = self._inversion(source, z[:n], steps, sampler)
        return self.decode(x_T, self._swap_codes(z[:n], z[n:], names), steps, sampler)

    def swap_codes(self, z_source: np.ndarray, z_reference: np.ndarray, swap: Sequence[str]) -> np.ndarray:
        """The z_sem `edit` decodes: disentangle both, take the `swap` chunks of z_dis from the reference,
        entangle. z_reference may be one row for every source row."""
        require_gae(self.config, "swap_codes")
        names = self._attributes(swap)
        z_source, z_reference = self._z_sem(z_source, "z_source"), self._z_sem(z_reference, "z_reference")
        return self._swap_codes(z_source, self._one_for_each(z_reference, z_source), names)

    @staticmethod
    def _one_for_each(reference: np.ndarray, source: np.ndarray) -> np.ndarray:
        """One reference row for every source row; otherwise the batches must agree."""
        if len(reference) == 1:
            return latents.one_for_each(reference, len(source))
        checks.same_batch(source=source, reference=reference)
        return reference

    def _swap_codes(self, z_source: np.ndarray, z_reference: np.ndarray, names: Sequence[str]) -> np.ndarray:
        n = len(z_source)
        z_dis = self.engine.gae_encode(np.concatenate([z_source, z_reference]))
        mask = latents.attribute_mask(self.config.gae, names)
        return self.engine.gae_decode(latents.swap(z_dis[:n], z_dis[n:], mask))

    def recombine(
        self, parts: Mapping[str, np.ndarray], steps: int = 20, seed: int = 0, sampler: str | None = None
    ) -> np.ndarray:
        """One image (batch) per attribute → an image showing each attribute of its own source."""
        require_gae(self.config, "recombine")
        gae = self.config.gae
        missing = [a for a in gae.attribute_names if a not in parts]
        if missing:
            raise checks.RequestError(f"recombine needs an image for every attribute; missing {missing}")
        self._attributes(list(parts))
        images = {name: self._images(img, name) for name, img in parts.items()}
        n = checks.same_batch(**images)
        z_dis = self.engine.gae_encode(self.engine.encode(np.concatenate(list(images.values()))))
        mixed = latents.recombine(dict(zip(images, np.split(z_dis, len(images)), strict=True)), gae)
        return self.decode(self.noise(n, seed), self.engine.gae_decode(mixed), steps, sampler)

    def interpolate(
        self,
        a: np.ndarray,
        b: np.ndarray,
        alpha: float,
        attributes: Sequence[str] | None = None,
        steps: int = 20,
        sampler: str | None = None,
    ) -> np.ndarray:
        """Move from a toward b by alpha: lerp the codes (only the named z_dis chunks), slerp x_T."""
        alpha = float(checks.alphas(np.array([alpha]))[0])
        a, b = self._images(a, "a"), self._images(b, "b")
        n = checks.same_batch(a=a, b=b)
        if self.config.gae is None and attributes is not None:
            raise checks.RequestError(
                "attributes need a DiffuseGAE checkpoint; a plain Diff-AE lerps all of z_sem"
            )
        names = self._attributes(attributes) if self.config.gae is not None else []
        z = self.engine.encode(np.concatenate([a, b]))
        x_a, x_b = self._inversion(a, z[:n], steps, sampler), self._inversion(b, z[n:], steps, sampler)
        x_T = latents.interpolate_noise(x_a, x_b, alpha)
        if self.config.gae is None:
            return self.decode(x_T, latents.interpolate(z[:n], z[n:], alpha), steps, sampler)
        z_dis = self.engine.gae_encode(z)
        mask = latents.attribute_mask(self.config.gae, names)
        mixed = self.engine.gae_decode(latents.interpolate(z_dis[:n], z_dis[n:], alpha, mask))
        return self.decode(x_T, mixed, steps, sampler)

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
        return self.directions.apply(checks.codes("z_sem", z_sem, self.directions.width), direction, amp)


def load_pipeline(
    checkpoint: str | Path | None = None,
    engine: str = "torch",
    device: str | None = None,
    speedups: Speedups = EXACT,
    **options,
) -> Pipeline:
    """A pipeline over a checkpoint directory (default: the shipped checkpoint) on the named engine.

    engine="onnxruntime" exports the checkpoint into its onnx/ cache on first use; engine="tensorrt" builds
    fp16 plans from those files (needs the tensorrt package and a CUDA GPU; unverified on this project's
    machines). `options` go to the engine: threads, providers, graph_optimization, io_binding (onnxruntime);
    precision, workspace_gb (tensorrt); dtype, compile, cuda_graphs, winograd (torch). device: each engine's
    own default when None (torch: cpu; onnxruntime: the installed providers; tensorrt: cuda:0). Engines are
    looked up by name in engines/registry.py. speedups: the opt-in lossy modes (default: none, exact).
    """
    from diffusegae.checkpoint import load_directions

    lookup(ENGINES, engine)  # an unknown name fails before the checkpoint is looked for
    path = Path(checkpoint) if checkpoint is not None else SHIPPED_CHECKPOINT
    if checkpoint is None and not path.is_dir():
        raise FileNotFoundError(
            f"the default checkpoint {path} is missing: pass a checkpoint directory, or train one with "
            "`python -m diffusegae.train --checkpoint DIR --preset tiny32 --stage 1`"
        )
    return Pipeline(load_engine(engine, path, device, **options), load_directions(path), speedups=speedups)
