"""invert and decode: the DDIM loop over every queued request at once, through the Engine protocol.

Requests are stacked into one batch whatever their step counts (ddim_loop gives each sample its own
schedule). eps runs on the in-process OnnxRuntimeEngine, or over BLS on the `unet` model when the leaves
are native backends (engine parameter `bls`).
"""

from __future__ import annotations

from diffusegae.engines import ddim_loop
from diffusegae.export.specs import X0, X_T, Z_SEM
from diffusegae.server import validation
from diffusegae.server.models.base import Arrays, BatchedModel
from diffusegae.server.specs import INVERT, LOOP_ENGINES, PARAM_ENGINE, STEPS


class TritonPythonModel(BatchedModel):
    def setup(self) -> None:
        self.inverse = self.name == INVERT
        self.source = X0 if self.inverse else X_T  # what the loop starts from
        kind = self.parameters.get(PARAM_ENGINE, LOOP_ENGINES[0])
        if kind == "bls":
            from diffusegae.server.models.bls import BLSEngine

            self.engine = BLSEngine(self.config)
        elif kind == "onnxruntime":
            self.engine = self.load_engine()
        else:
            raise ValueError(f"{self.name}: unknown engine {kind!r}; choose from {', '.join(LOOP_ENGINES)}")

    def check(self, inputs: Arrays) -> Arrays:
        validation.same_batch(**inputs)
        return {
            self.source: validation.finite(self.source, inputs[self.source]),
            Z_SEM: validation.finite(Z_SEM, inputs[Z_SEM]),
            STEPS: validation.steps(inputs[STEPS], self.config.diffusion.num_timesteps),
        }

    def compute(self, batch: Arrays) -> Arrays:
        (output,) = self.spec.output_names
        x = ddim_loop.run(self.engine, batch[self.source], batch[Z_SEM], batch[STEPS], self.inverse)
        return {output: x}
