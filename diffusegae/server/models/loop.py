"""invert and decode: the sampling loop over every queued request at once, through the Engine protocol.

Requests are stacked into one batch whatever their step counts and samplers (ddim_loop gives each sample
its own schedule and solver history). eps runs on the in-process OnnxRuntimeEngine, or over BLS on the
`unet` model when the leaves are native backends (engine parameter `bls`).
"""

from __future__ import annotations

import numpy as np

from diffusegae import checks
from diffusegae.engines import ddim_loop
from diffusegae.engines.registry import DEFAULT_LOOP_ENGINE, LOOP_ENGINES, lookup
from diffusegae.export.specs import X0, X_T, Z_SEM
from diffusegae.server.models.base import Arrays, BatchedModel
from diffusegae.server.specs import INVERT, PARAM_ENGINE, SAMPLER, STEPS


class TritonPythonModel(BatchedModel):
    def setup(self) -> None:
        self.inverse = self.name == INVERT
        self.source = X0 if self.inverse else X_T  # what the loop starts from
        kind = self.parameters.get(PARAM_ENGINE, DEFAULT_LOOP_ENGINE)
        self.engine = lookup(LOOP_ENGINES, kind, f"{self.name} loop engine")(self)

    def check(self, inputs: Arrays) -> Arrays:
        n = checks.same_batch(**inputs)
        names = checks.samplers(inputs[SAMPLER]) if SAMPLER in inputs else ["ddim"] * n
        return {
            self.source: checks.finite(self.source, inputs[self.source]),
            Z_SEM: checks.finite(Z_SEM, inputs[Z_SEM]),
            STEPS: checks.steps(inputs[STEPS], self.config.diffusion.num_timesteps),
            SAMPLER: np.array(names, dtype=object),  # every request has one, so requests stack
        }

    def compute(self, batch: Arrays) -> Arrays:
        (output,) = self.spec.output_names
        x0_or_noise, z_sem = batch[self.source], batch[Z_SEM]
        x = ddim_loop.run(self.engine, x0_or_noise, z_sem, batch[STEPS], self.inverse, list(batch[SAMPLER]))
        return {output: x}
