"""Model space → uint8 NHWC images (values outside [-1, 1] are clipped)."""

from __future__ import annotations

from diffusegae import checks
from diffusegae.export.specs import X0
from diffusegae.images import to_uint8
from diffusegae.server.models.base import Arrays, BatchedModel
from diffusegae.server.specs import IMAGE


class TritonPythonModel(BatchedModel):
    def check(self, inputs: Arrays) -> Arrays:
        return {X0: checks.finite(X0, inputs[X0])}

    def compute(self, batch: Arrays) -> Arrays:
        return {IMAGE: to_uint8(batch[X0])}
