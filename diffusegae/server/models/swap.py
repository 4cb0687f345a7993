"""edit: take the named attributes' z_dis chunks from the reference (b), the rest from the source (a)."""

from __future__ import annotations

import numpy as np

from diffusegae.export.specs import Z_DIS
from diffusegae.server import validation
from diffusegae.server.models.base import Arrays, BatchedModel
from diffusegae.server.specs import ATTRIBUTES, pair

SOURCE, REFERENCE = pair(Z_DIS)


class TritonPythonModel(BatchedModel):
    def check(self, inputs: Arrays) -> Arrays:
        validation.same_batch(**inputs)
        return {
            SOURCE: validation.finite(SOURCE, inputs[SOURCE]),
            REFERENCE: validation.finite(REFERENCE, inputs[REFERENCE]),
            ATTRIBUTES: validation.attribute_mask(inputs[ATTRIBUTES], self.config.gae),
        }

    def compute(self, batch: Arrays) -> Arrays:
        return {Z_DIS: np.where(batch[ATTRIBUTES], batch[REFERENCE], batch[SOURCE])}
