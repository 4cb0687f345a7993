"""The asyncio client (tritonclient.grpc.aio): the same ops as Client, as coroutines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from diffusegae.client.calls import Call
from diffusegae.client.ops import Ops, infer_args


class AsyncClient(Ops[Awaitable[np.ndarray]]):
    """`await client.edit(...)`; `async with AsyncClient(url) as client:` closes the channel at the end."""

    def _connect(self, url: str) -> grpcaio.InferenceServerClient:
        return grpcaio.InferenceServerClient(url)

    async def _infer(self, call: Call) -> np.ndarray:
        inputs, outputs = infer_args(call)

        async def attempt() -> grpcaio.InferResult:
            with self._replica() as grpc:  # held until the answer arrives
                return await grpc.infer(call.model, inputs, outputs=outputs, client_timeout=self.timeout)

        result = await self.retry.acall(attempt)
        return call.result({name: result.as_numpy(name) for name in call.outputs})

    async def is_ready(self) -> bool:
        for replica in self.replicas.replicas:
            try:
                if await replica.grpc.is_server_ready(client_timeout=5.0):
                    return True
            except InferenceServerException:
                continue
        return False

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not await self.is_ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server at {self.url} was not ready within {timeout:.0f} s")
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        for grpc in self.replicas.close():
            await grpc.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
