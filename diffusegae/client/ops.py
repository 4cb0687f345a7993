"""The public ops, written once for both clients: each builds a Call and hands it to `_infer`.

Client._infer returns the output array; AsyncClient._infer is a coroutine, so there the same methods return
awaitables (`await client.edit(...)`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from diffusegae.client import calls
from diffusegae.client.calls import Call, Image, Inversion
from diffusegae.client.errors import Retry, ServerError
from diffusegae.client.replicas import Replicas, endpoints
from diffusegae.server.specs import OUTPUT

R = TypeVar("R")


def infer_args(call: Call) -> tuple[list[grpcclient.InferInput], list[grpcclient.InferRequestedOutput]]:
    inputs = []
    for name, array in call.inputs.items():
        tensor = grpcclient.InferInput(name, list(array.shape), _datatype(name, array))
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs, [grpcclient.InferRequestedOutput(name) for name in call.outputs]


def _datatype(name: str, array: np.ndarray) -> str:
    # The array's own dtype goes on the wire: the server names the dtype it wants when they differ.
    datatype = np_to_triton_dtype(array.dtype)
    if datatype is None:
        raise TypeError(f"{name}: numpy {array.dtype} cannot be sent; images are uint8")
    return datatype


def image_size_of(meta: dict[str, Any], op: str) -> int:
    """The image size from an op's model metadata (JSON): its output is [B, size, size, 3]."""
    shapes = {o["name"]: [int(d) for d in o.get("shape", [])] for o in meta.get("outputs", [])}
    shape = shapes.get(OUTPUT, [])
    if len(shape) != 4 or shape[1] != shape[2] or shape[1] <= 0:
        raise ServerError(f"the {op} op's {OUTPUT} has shape {shape}, not [B,size,size,3]", "UNKNOWN")
    return shape[1]


class Ops(Generic[R]):
    """The ops, written once for both clients; a subclass supplies the transport (`_connect`, `_infer`).

    Every op takes `sampler`: "ddim" or "dpmpp2m" (DPM-Solver++(2M)); None leaves it to the server (DDIM).
    `url`: one server, several ("a:8001,b:8001" or a list) or "dns:///name:port" (client/replicas.py: each
    request goes to the ready replica with the fewest in flight). `timeout` (seconds) bounds each attempt
    (None waits forever); UNAVAILABLE is retried `retries` times with exponential backoff from `backoff`
    seconds, on another replica when there is one.
    """

    def __init__(
        self,
        url: str | Sequence[str] = "127.0.0.1:8001",
        timeout: float | None = 300.0,
        retries: int = Retry.retries,
        backoff: float = 0.25,
    ) -> None:
        self.url = url if isinstance(url, str) else ",".join(url)
        self.timeout = timeout
        self.retry = Retry(retries, backoff)
        self.replicas = Replicas(endpoints(url), self._connect)

    @property
    def _grpc(self) -> Any:
        """The first replica's connection (for calls that need no balancing)."""
        return self.replicas.replicas[0].grpc

    @contextlib.contextmanager
    def _replica(self) -> Iterator[Any]:
        """The least-loaded replica's connection for one attempt (sync or async); UNAVAILABLE there marks
        it down, and the caller's Retry tries again elsewhere."""
        replica = self.replicas.acquire()
        answered = unavailable = False
        try:
            yield replica.grpc
            answered = True
        except InferenceServerException as err:
            unavailable = ServerError.from_triton(err).retryable
            raise
        finally:
            self.replicas.release(replica, answered, unavailable)

    def _connect(self, url: str) -> Any:
        raise NotImplementedError

    def _infer(self, call: Call) -> R:
        raise NotImplementedError

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], output: str = OUTPUT) -> R:
        """Send tensors as they are to any model of the server (an op, or e.g. `invert`) → one output."""
        return self._infer(Call(model, dict(inputs), output))

    def send(self, call: Call) -> R:
        """One request as built by `diffusegae.client.calls` (every output it names) → what the op returns."""
        return self._infer(call)

    def reconstruct(self, images: Image, steps: int = 20, sampler: str | None = None) -> R:
        """encode → invert → decode: uint8 [B,H,W,3] images back through the model."""
        return self._infer(calls.reconstruct(images, steps, sampler))

    def edit(
        self,
        source: Image,
        reference: Image,
        swap: str | Sequence[str],
        steps: int = 20,
        sampler: str | None = None,
    ) -> R:
        """Take the `swap` attributes from `reference` (one image, or one per source), keep the rest."""
        return self._infer(calls.edit(source, reference, swap, steps, sampler))

    def invert(self, images: Image, steps: int = 20, sampler: str | None = None) -> R:
        """encode → invert once: an Inversion (z_sem, x_T) to edit from many times with `edit_inverted`."""
        return self._infer(calls.inversion(images, steps, sampler))

    def edit_inverted(
        self, source: Inversion, reference: Image, swap: str | Sequence[str], steps: int | None = None
    ) -> R:
        """`edit` from an Inversion of the source: the same output, without encoding and inverting it again
        (decoded with the inversion's steps and sampler unless `steps` is given)."""
        return self._infer(calls.edit_inverted(source, reference, swap, steps))

    def recombine(
        self, parts: Mapping[str, Image], steps: int = 20, seed: int = 0, sampler: str | None = None
    ) -> R:
        """One image (batch) per attribute name → images showing each attribute of its own source."""
        return self._infer(calls.recombine(parts, steps, seed, sampler))

    def interpolate(
        self,
        a: Image,
        b: Image,
        alpha: float,
        attributes: str | Sequence[str] | None = None,
        steps: int = 20,
        sampler: str | None = None,
    ) -> R:
        """From a toward b by alpha (only the named attributes; all when None)."""
        return self._infer(calls.interpolate(a, b, alpha, attributes, steps, sampler))

    def manipulate(
        self, images: Image, direction: str | int, amp: float, steps: int = 20, sampler: str | None = None
    ) -> R:
        """Move an attribute by amp along a classifier direction (name or number): imported Diff-AE models."""
        return self._infer(calls.manipulate(images, direction, amp, steps, sampler))
