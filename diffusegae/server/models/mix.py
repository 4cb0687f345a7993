"""interpolate: lerp the codes from a toward b by alpha (only the named z_dis chunks), slerp x_T.

A DiffuseGAE checkpoint mixes z_dis (every attribute when the request names none); a plain Diff-AE mixes
all of z_sem. alpha is per row.
"""

from __future__ import annotations

import numpy as np

from diffusegae import checks, latents
from diffusegae.export.specs import X_T, Z_DIS, Z_SEM
from diffusegae.server.models.base import Arrays, BatchedModel
from diffusegae.server.specs import ALPHA, ATTRIBUTES, pair

MASK = "mask"


class TritonPythonModel(BatchedModel):
    def setup(self) -> None:
        self.code = Z_DIS if self.config.gae is not None else Z_SEM
        self.operands = (*pair(self.code), *pair(X_T))

    def check(self, inputs: Arrays) -> Arrays:
        checks.same_batch(**inputs)
        checked = {name: checks.finite(name, inputs[name]) for name in self.operands}
        checked[ALPHA] = checks.alphas(inputs[ALPHA])
        n = len(checked[ALPHA])
        gae = self.config.gae
        if gae is None:
            checked[MASK] = np.ones((n, inputs[self.operands[0]].shape[1]), dtype=bool)
        elif ATTRIBUTES in inputs:
            checked[MASK] = checks.attribute_mask(inputs[ATTRIBUTES], gae)
        else:
            checked[MASK] = np.ones((n, gae.z_dis_channels), dtype=bool)
        return checked

    def compute(self, batch: Arrays) -> Arrays:
        code_a, code_b, x_t_a, x_t_b = (batch[name] for name in self.operands)
        alpha = batch[ALPHA].astype(np.float64)  # Pipeline's alpha is a Python float
        code = latents.interpolate(code_a, code_b, alpha, batch[MASK])
        return {self.code: code, X_T: latents.interpolate_noise(x_t_a, x_t_b, alpha)}
