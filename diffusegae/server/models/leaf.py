"""encoder, gae_encode, gae_decode, unet: one exported component each, on the OnnxRuntimeEngine.

The loop models run their own engine in-process; these serve direct calls, the ensembles' encoder and GAE
steps, and BLS (the loop models' `bls` engine calls `unet`).
"""

from __future__ import annotations

from diffusegae import checks
from diffusegae.export.specs import ENCODER, GAE_DECODE, GAE_ENCODE, TIMESTEP, UNET
from diffusegae.server.models.base import Arrays, BatchedModel

# component → the Engine protocol method that runs it
METHODS = {ENCODER: "encode", GAE_ENCODE: "gae_encode", GAE_DECODE: "gae_decode", UNET: "eps"}


class TritonPythonModel(BatchedModel):
    def setup(self) -> None:
        self.engine = self.load_engine()
        self.method = getattr(self.engine, METHODS[self.name])

    def check(self, inputs: Arrays) -> Arrays:
        checks.same_batch(**inputs)
        num_timesteps = self.config.diffusion.num_timesteps
        return {
            name: checks.timesteps(x, num_timesteps) if name == TIMESTEP else checks.finite(name, x)
            for name, x in inputs.items()
        }

    def compute(self, batch: Arrays) -> Arrays:
        (output,) = self.spec.output_names
        return {output: self.method(*(batch[name] for name in self.spec.input_names))}
