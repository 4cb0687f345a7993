"""edit: take the named attributes' z_dis chunks from the reference (b), the rest from the source (a)."""

from __future__ import annotations

from diffusegae import checks, latents
from diffusegae.export.specs import Z_DIS
from diffusegae.server.models.base import Arrays, BatchedModel
from diffusegae.server.specs import ATTRIBUTES, pair

SOURCE, REFERENCE = pair(Z_DIS)


class TritonPythonModel(BatchedModel):
    def check(self, inputs: Arrays) -> Arrays:
        checks.same_batch(**inputs)
        return {
            SOURCE: checks.finite(SOURCE, inputs[SOURCE]),
            REFERENCE: checks.finite(REFERENCE, inputs[REFERENCE]),
            ATTRIBUTES: checks.attribute_mask(inputs[ATTRIBUTES], self.config.gae),
        }

    def compute(self, batch: Arrays) -> Arrays:
        return {Z_DIS: latents.swap(batch[SOURCE], batch[REFERENCE], batch[ATTRIBUTES])}
