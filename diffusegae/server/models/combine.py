"""recombine: each z_dis chunk from the image given for that attribute; x_T ~ N(0, I) from the seed.

Row i of a request gets row i of the noise that diffusion.seeded_noise(B, size, seed_i) draws for the
request's B rows, so a request whose rows share one seed (what the client sends) gets exactly the
in-process pipeline's x_T.
"""

from __future__ import annotations

import numpy as np

from diffusegae.diffusion import seeded_noise
from diffusegae.export.specs import X_T, Z_DIS
from diffusegae.server import validation
from diffusegae.server.models.base import Arrays, BatchedModel
from diffusegae.server.specs import SEED, named


class TritonPythonModel(BatchedModel):
    def setup(self) -> None:
        self.parts = {a: named(Z_DIS, a) for a in self.config.gae.attribute_names}

    def check(self, inputs: Arrays) -> Arrays:
        validation.same_batch(**inputs)
        checked = {name: validation.finite(name, inputs[name]) for name in self.parts.values()}
        return {**checked, SEED: validation.seeds(inputs[SEED])}

    def run(self, items: list[Arrays]) -> list[Arrays]:
        return [self.combine(item) for item in items]  # x_T depends on the request's own batch size

    def combine(self, item: Arrays) -> Arrays:
        gae = self.config.gae
        z_dis = np.concatenate([item[self.parts[a]][:, gae.chunk(a)] for a in gae.attribute_names], axis=1)
        seeds = item[SEED]
        x_t = np.empty((len(seeds), 3, self.config.image_size, self.config.image_size), np.float32)
        for seed in np.unique(seeds):
            rows = seeds == seed
            x_t[rows] = seeded_noise(len(seeds), self.config.image_size, int(seed))[rows]
        return {Z_DIS: z_dis, X_T: x_t}
