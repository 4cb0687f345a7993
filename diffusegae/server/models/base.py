"""What every python-backend model shares: set-up from the repository, per-request checks, one batch.

`execute` receives all requests the dynamic batcher queued. Each is read and checked on its own; a bad one
gets its own INVALID_ARG response. The good ones run together as one batch (`run`: concatenate, `compute`,
split back), and every request gets exactly one response. If the batch fails anyway, each request is
retried alone so that only the one at fault fails; nothing a request sends can take the model down.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import triton_python_backend_utils as pb_utils

from diffusegae.checks import RequestError
from diffusegae.config import ModelConfig
from diffusegae.server.pbtxt import config_dims
from diffusegae.server.specs import (
    PARAM_CHECKPOINT,
    PARAM_DIRECTIONS,
    PARAM_MODEL_CONFIG,
    PARAM_THREADS,
    ModelSpec,
    resolve_checkpoint,
    served_model,
)

if TYPE_CHECKING:  # pragma: no cover
    from diffusegae.engines.base import Engine

Arrays = dict[str, np.ndarray]


def in_process_engine(model: BatchedModel) -> Engine:
    """The loop engine "onnxruntime" (engines/registry.py): the model's checkpoint in-process."""
    return model.load_engine()


def error_response(message: str, code: Any) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))


class BatchedModel:
    """Base of the python-backend models: subclasses define `setup`, `check` and `compute` (or `run`)."""

    def initialize(self, args: dict[str, str]) -> None:
        # The repository's config.pbtxt carries the checkpoint and its config; the name picks the spec.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # for libraries that read it later
        self.model_config = json.loads(args["model_config"])
        self.name: str = args["model_name"]
        self.parameters = {k: v["string_value"] for k, v in self.model_config.get("parameters", {}).items()}
        repository = Path(args["model_repository"]).parent  # model_repository is this model's own folder
        self.checkpoint = resolve_checkpoint(self.parameters[PARAM_CHECKPOINT], repository)
        self.config = ModelConfig.from_dict(json.loads(self.parameters[PARAM_MODEL_CONFIG]))
        self.directions: tuple[str, ...] = tuple(json.loads(self.parameters.get(PARAM_DIRECTIONS, "[]")))
        self.spec: ModelSpec = served_model(self.config, self.name, self.directions)
        self._check_repository()
        self.threads = int(self.parameters.get(PARAM_THREADS, "1"))
        self.setup()

    def _check_repository(self) -> None:
        """The repository must be built for this checkpoint's config: the tensor shapes depend on it."""
        declared = {t["name"]: [int(d) for d in t["dims"]] for t in self.model_config["input"]}
        expected = {t.name: config_dims(t) for t in self.spec.inputs}
        if declared != expected:
            raise RuntimeError(
                f"model {self.name!r} declares inputs {declared} but checkpoint {self.checkpoint} needs "
                f"{expected}: rebuild the repository (`diffusegae build-repo --checkpoint ...`)"
            )

    def setup(self) -> None:
        """Load what `compute` needs (engines); called once at the end of initialize."""

    def load_engine(self) -> Engine:
        """The checkpoint on the OnnxRuntimeEngine (its ONNX cache), checked against the repository."""
        from diffusegae.engines.onnxruntime_engine import load_onnxruntime_engine

        engine = load_onnxruntime_engine(self.checkpoint, threads=self.threads)
        if engine.config != self.config:
            raise RuntimeError(
                f"checkpoint {self.checkpoint} holds model {engine.config.name!r}, not the "
                f"{self.config.name!r} this repository was built for: rebuild it (`diffusegae build-repo`)"
            )
        return engine

    def check(self, inputs: Arrays) -> Arrays:
        """Validate one request's inputs and return them converted; raise RequestError to reject it."""
        raise NotImplementedError

    def compute(self, batch: Arrays) -> Arrays:
        """All checked requests concatenated along the batch axis → outputs, batch first."""
        raise NotImplementedError

    def run(self, items: list[Arrays]) -> list[Arrays]:
        """Checked requests → their outputs; by default one `compute` over the stacked batch."""
        sizes = [len(next(iter(item.values()))) for item in items]
        batch = {name: np.concatenate([item[name] for item in items]) for name in items[0]}
        outputs = self.compute(batch)
        bounds = np.cumsum(sizes)[:-1]
        split = {name: np.split(value, bounds) for name, value in outputs.items()}
        return [{name: parts[i] for name, parts in split.items()} for i in range(len(items))]

    def _read(self, request: Any) -> Arrays:
        inputs = {}
        for name in self.spec.input_names:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None:
                inputs[name] = tensor.as_numpy()
            elif name not in self.spec.optional:
                raise RequestError(f"input {name!r} is missing; {self.name} takes {self.spec.input_names}")
        return inputs

    def _respond(self, outputs: Arrays) -> Any:
        tensors = [
            pb_utils.Tensor(t.name, np.ascontiguousarray(outputs[t.name], dtype=t.dtype))
            for t in self.spec.outputs
            if t.name in outputs  # prepare answers only for the images a request sent
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _run_all(self, good: list[tuple[int, Arrays]], responses: list[Any]) -> None:
        try:
            for (i, _), outputs in zip(good, self.run([item for _, item in good]), strict=True):
                responses[i] = self._respond(outputs)
        except Exception as err:  # an engine failure or a bug: never the whole model
            if len(good) > 1:  # find the request at fault: the others still get their results
                for one in good:
                    self._run_all([one], responses)
                return
            message = f"{self.name} failed: {type(err).__name__}: {err}"
            responses[good[0][0]] = error_response(message, pb_utils.TritonError.INTERNAL)

    def read_checked(self, request: Any, reject: Callable[[Any], None]) -> Arrays | None:
        """The request's checked inputs, or None after handing `reject` its error response."""
        try:
            return self.check(self._read(request))
        except RequestError as err:
            reject(error_response(f"{self.name}: {err}", pb_utils.TritonError.INVALID_ARG))
        except Exception as err:  # a check that crashed is a bug; keep serving the other requests
            message = f"{self.name} could not read the request: {type(err).__name__}: {err}"
            reject(error_response(message, pb_utils.TritonError.INTERNAL))
        return None

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        good = []
        for i, request in enumerate(requests):
            inputs = self.read_checked(request, lambda response, i=i: responses.__setitem__(i, response))
            if inputs is not None:
                good.append((i, inputs))
        if good:
            self._run_all(good, responses)
        return responses

    def finalize(self) -> None:
        """Nothing to release: engines and sessions go with the process."""
