"""The blocking client (tritonclient.grpc)."""

from __future__ import annotations

import time

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from diffusegae.client.calls import Call
from diffusegae.client.ops import Ops, image_size_of, infer_args
from diffusegae.server.specs import EDIT


class Client(Ops[np.ndarray]):
    """Calls the server's ops over gRPC, blocking (options: see Ops)."""

    def _connect(self, url: str) -> grpcclient.InferenceServerClient:
        return grpcclient.InferenceServerClient(url)

    def _infer(self, call: Call) -> np.ndarray:
        inputs, outputs = infer_args(call)

        def attempt() -> grpcclient.InferResult:
            with self._replica() as grpc:
                return grpc.infer(call.model, inputs, outputs=outputs, client_timeout=self.timeout)

        result = self.retry.call(attempt)
        return call.result({name: result.as_numpy(name) for name in call.outputs})

    def image_size(self, op: str = EDIT) -> int:
        """The served checkpoint's image size, read from an op's metadata (its output [B, size, size, 3])."""

        def attempt() -> dict:
            with self._replica() as grpc:
                return grpc.get_model_metadata(op, as_json=True, client_timeout=self.timeout)

        return image_size_of(self.retry.call(attempt), op)

    def is_ready(self) -> bool:
        """True when a replica (every one, with several, need not be) answers ready."""
        for replica in self.replicas.replicas:
            try:
                if replica.grpc.is_server_ready(client_timeout=5.0):
                    return True
            except InferenceServerException:
                continue
        return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the server is ready; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server at {self.url} was not ready within {timeout:.0f} s")
            time.sleep(0.2)

    def close(self) -> None:
        for grpc in self.replicas.close():
            grpc.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
