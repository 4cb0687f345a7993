"""The blocking client (tritonclient.grpc)."""

from __future__ import annotations

import time

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from diffusegae.client.calls import Call
from diffusegae.client.errors import ServerError
from diffusegae.client.ops import Ops, infer_args


class Client(Ops[np.ndarray]):
    """Calls the server's ops over gRPC, blocking (options: see Ops)."""

    def _connect(self, url: str) -> grpcclient.InferenceServerClient:
        return grpcclient.InferenceServerClient(url)

    def _infer(self, call: Call) -> np.ndarray:
        inputs, outputs = infer_args(call)
        attempt = 0
        while True:
            try:
                result = self._grpc.infer(call.model, inputs, outputs=outputs, client_timeout=self.timeout)
                return result.as_numpy(call.output)
            except InferenceServerException as err:
                error = ServerError.from_triton(err)
                delay = self.retry.delay(attempt, error)
                if delay is None:
                    raise error from None
                time.sleep(delay)
                attempt += 1

    def is_ready(self) -> bool:
        try:
            return bool(self._grpc.is_server_ready(client_timeout=5.0))
        except InferenceServerException:
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the server is ready; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server at {self.url} was not ready within {timeout:.0f} s")
            time.sleep(0.2)

    def close(self) -> None:
        self._grpc.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
