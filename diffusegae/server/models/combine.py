"""recombine: each z_dis chunk from the image given for that attribute; x_T ~ N(0, I) from the seed.

Row i of a request gets row i of the noise that diffusion.seeded_noise(B, size, seed_i) draws for the
request's B rows, so a request whose rows share one seed (what the client sends) gets exactly the
in-process pipeline's x_T.
"""

from __future__ import annotations

from diffusegae import checks, latents
from diffusegae.export.specs import X_T, Z_DIS
from diffusegae.server.models.base import Arrays, BatchedModel
from diffusegae.server.specs import SEED, named


class TritonPythonModel(BatchedModel):
    def setup(self) -> None:
        self.parts = {a: named(Z_DIS, a) for a in self.config.gae.attribute_names}

    def check(self, inputs: Arrays) -> Arrays:
        checks.same_batch(**inputs)
        checked = {name: checks.finite(name, inputs[name]) for name in self.parts.values()}
        return {**checked, SEED: checks.seeds(inputs[SEED])}

    def run(self, items: list[Arrays]) -> list[Arrays]:
        return [self.combine(item) for item in items]  # x_T depends on the request's own batch size

    def combine(self, item: Arrays) -> Arrays:
        z_dis = latents.recombine({a: item[name] for a, name in self.parts.items()}, self.config.gae)
        return {Z_DIS: z_dis, X_T: latents.noise_for_seeds(item[SEED], self.config.image_size)}
