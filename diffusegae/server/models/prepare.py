"""prepare: check every value a request of a public op carries, and bring its images to model space.

Each ensemble runs it first, on all its inputs, so a bad request fails here before any other step starts
(see specs.prepare_model); the later models check their own inputs again for direct calls. The inputs
present differ from op to op, so requests are handled one by one (a cheap conversion, no network).
"""

from __future__ import annotations

from diffusegae import checks
from diffusegae.export.specs import X0
from diffusegae.images import to_model
from diffusegae.server.models.base import Arrays, BatchedModel
from diffusegae.server.specs import (
    ALPHA,
    AMP,
    ATTRIBUTES,
    DIRECTION,
    SAMPLER,
    SEED,
    STEPS,
    image_inputs,
    named,
)


class TritonPythonModel(BatchedModel):
    def setup(self) -> None:
        self.images = image_inputs(self.config)
        size, name = self.config.image_size, self.config.name

        def images(image: str):
            return lambda x: checks.images(image, x, size, name)

        self.checks = {
            **{image: images(image) for image in self.images},
            STEPS: lambda x: checks.steps(x, self.config.diffusion.num_timesteps),
            SAMPLER: checks.samplers,
            SEED: checks.seeds,
            ALPHA: checks.alphas,
            ATTRIBUTES: lambda x: checks.attribute_mask(x, self.config.gae),
            DIRECTION: lambda x: checks.direction_indices(x, self.directions),
            AMP: checks.amps,
        }

    def check(self, inputs: Arrays) -> Arrays:
        if not any(name in inputs for name in self.images):
            raise checks.RequestError(f"send at least one image: any of {', '.join(self.images)}")
        checks.same_batch(**inputs)
        for name, x in inputs.items():
            self.checks[name](x)
        return {name: x for name, x in inputs.items() if name in self.images}

    def run(self, items: list[Arrays]) -> list[Arrays]:
        # Only the x0 of the images a request sent: the ensemble asks for exactly those.
        return [{named(X0, name): to_model(x) for name, x in item.items()} for item in items]
