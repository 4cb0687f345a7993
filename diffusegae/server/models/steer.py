"""manipulate: move z_sem along an attribute direction (diffusegae.manipulate) by amp, one per row."""

from __future__ import annotations

from diffusegae import checks
from diffusegae.checkpoint import load_directions
from diffusegae.export.specs import Z_SEM
from diffusegae.server.models.base import Arrays, BatchedModel
from diffusegae.server.specs import AMP, DIRECTION


class TritonPythonModel(BatchedModel):
    def setup(self) -> None:
        self.moves = load_directions(self.checkpoint)
        if self.moves is None or self.moves.names != self.directions:
            raise RuntimeError(
                f"checkpoint {self.checkpoint} does not hold the directions this repository was built for: "
                "rebuild it (`diffusegae build-repo`)"
            )

    def check(self, inputs: Arrays) -> Arrays:
        checks.same_batch(**inputs)
        return {
            Z_SEM: checks.finite(Z_SEM, inputs[Z_SEM]),
            DIRECTION: checks.direction_indices(inputs[DIRECTION], self.directions),
            AMP: checks.amps(inputs[AMP]),
        }

    def compute(self, batch: Arrays) -> Arrays:
        return {Z_SEM: self.moves.apply(batch[Z_SEM], batch[DIRECTION], batch[AMP])}
