"""prepare: check every value a request of a public op carries, and bring its images to model space.
Latents a request sends (edit_inverted's z_sem and x_T) are checked and passed on as <name>_checked.

Each ensemble runs it first, on all its inputs, so a bad request fails here before any other step starts
(see specs.prepare_model); the later models check their own inputs again for direct calls. The inputs
present differ from op to op, so requests are handled one by one (a cheap conversion, no network).
"""

from __future__ import annotations

import numpy as np

from diffusegae import checks
from diffusegae.export.specs import X0, X_T, Z_SEM
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
    checked,
    code_inputs,
    image_inputs,
    model_tensors,
    named,
)


class TritonPythonModel(BatchedModel):
    def setup(self) -> None:
        self.images = image_inputs(self.config)
        self.latents = [t.name for t in code_inputs(self.config)]
        size, name = self.config.image_size, self.config.name
        width = model_tensors(self.config)[Z_SEM].shape[1]

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
            Z_SEM: lambda z: checks.codes(Z_SEM, z, width),
            X_T: lambda x: checks.model_images(X_T, x, size, "(the x_T of an inversion)"),
        }

    def check(self, inputs: Arrays) -> Arrays:
        sent = [*self.images, *self.latents]
        if not any(name in inputs for name in sent):
            raise checks.RequestError(f"send at least one image: any of {', '.join(sent)}")
        checks.same_batch(**inputs)
        for name, x in inputs.items():
            self.checks[name](x)
        return {name: x for name, x in inputs.items() if name in sent}

    def run(self, items: list[Arrays]) -> list[Arrays]:
        # Only what a request sent (the ensemble asks for exactly those): images in model space, latents
        # as they came, checked.
        return [dict(self._output(name, x) for name, x in item.items()) for item in items]

    def _output(self, name: str, x: np.ndarray) -> tuple[str, np.ndarray]:
        if name in self.images:
            return named(X0, name), to_model(x)
        return checked(name), x  # float32 already: the config declares it
