"""The Engine protocol over the PyTorch reference models: eager by default; reduced precision, torch.compile
and CUDA graphs as options, so a benchmark can set the exported engines against the best plain PyTorch run.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffusegae.engines.allocator import keep_freed_memory
from diffusegae.engines.base import require_gae
from diffusegae.engines.winograd import use_winograd
from diffusegae.export import specs
from diffusegae.models import DiffusionAutoencoder

REDUCED_DTYPES = (torch.float16, torch.bfloat16)
DTYPES = (torch.float32, *REDUCED_DTYPES)
# Calls before a capture: cuDNN / cuBLAS pick algorithms and torch.compile compiles on the first calls, and
# none of that may happen inside a capture (the torch.cuda.graph recipe warms up on a side stream).
GRAPH_WARMUP_CALLS = 3


class TorchEngine:
    """encode / eps / gae_encode / gae_decode on the PyTorch model; numpy float32 in and out, batch first.

    dtype: torch.float16 (CUDA only) or torch.bfloat16 (CUDA, or a CPU: oneDNN runs bf16 matmuls and
    convolutions on AVX-512 BF16 / AMX where the CPU has them; without them bf16 is emulated and slower)
    runs the networks in that precision, a lossy option: weights are cast on a copy of `model` and
    autocast covers the places that build fp32 tensors inside the model (timestep features); GroupNorm /
    AdaGN statistics stay fp32 (GroupNorm32, the AdaGN reference, autocast's fp32 list). compile:
    torch.compile the UNet and the encoder; each new batch size compiles on first use, so call warmup()
    before timing. cuda_graphs (CUDA only): the UNet's eps call is captured in a CUDA graph per input
    shape (i.e. per batch size) on first use and replayed after. winograd (float32): the UNet's and the
    encoder's wide 3×3 convolutions computed with Winograd's F(4×4, 3×3) (engines/winograd.py: a quarter
    of the multiplies, rounding differences near 1e-5 relative; a CPU option, since cuDNN picks its own
    algorithms), with the networks in channels-last layout. On a CPU the engine sets glibc's malloc
    thresholds for the process once (diffusegae.engines.allocator: freed activations stay in the heap).
    """

    def __init__(
        self,
        model: DiffusionAutoencoder,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        compile: bool = False,
        cuda_graphs: bool = False,
        winograd: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = check_options(self.device, dtype, cuda_graphs, winograd)
        self.winograd = winograd
        if self.device.type == "cpu":
            keep_freed_memory()  # eager activations: reuse the heap instead of faulting fresh pages in
        if self.dtype != torch.float32 or winograd:
            # Change a copy: the caller's float32 model is usually also the reference being compared against.
            model = copy.deepcopy(model).to(dtype=self.dtype)
        if winograd:
            use_winograd(model)
            # Channels-last weights make every convolution's output channels-last, the layout the Winograd
            # convolutions compute in (the diffae64 UNet call at batch 8: 2.41 s against 2.69 s NCHW).
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(self.device).eval()
        self.config = model.cfg
        unet: Callable[..., torch.Tensor] = self.model.unet
        encoder: Callable[..., torch.Tensor] = self.model.encoder
        if compile:
            # Freezing (CPU): weights become constants, so inductor folds them and pre-packs oneDNN's
            # convolution weights once (the diffae64 UNet call at batch 1: 1.43× eager; bench/NOTES.md).
            options = {"freezing": True} if self.device.type == "cpu" else None
            unet, encoder = torch.compile(unet, options=options), torch.compile(encoder, options=options)
        self._unet = CUDAGraphed(unet) if cuda_graphs else unet
        self._encoder = encoder

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        # cache_enabled=False: autocast's weight-cast cache must not outlive a CUDA graph capture.
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False)

    def _run(self, fn: Callable[..., Any], *arrays: np.ndarray) -> Any:
        """fn on the arrays as tensors; its tensor (or tuple of tensors) back as float32 numpy."""
        with torch.inference_mode(), self._autocast():
            tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays]
            out = fn(*tensors)
            if isinstance(out, tuple):
                return tuple(_to_numpy(o) for o in out)
            return _to_numpy(out)

    def encode(self, x0: np.ndarray) -> np.ndarray:
        return self._run(self._encoder, x0.astype(np.float32, copy=False))

    def eps(self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray) -> np.ndarray:
        return self._run(self._unet, *_unet_inputs(x_t, t, z_sem))

    def eps_and_deep(
        self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """eps and the UNet's deep feature (feature reuse's full step; eager, whatever `compile` says)."""
        return self._run(self.model.unet.eps_and_deep, *_unet_inputs(x_t, t, z_sem))

    def eps_from_deep(
        self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray, deep: np.ndarray
    ) -> np.ndarray:
        """eps from the outermost level on an earlier step's deep feature (feature reuse's cheap step)."""
        inputs = (*_unet_inputs(x_t, t, z_sem), deep.astype(np.float32, copy=False))
        return self._run(self.model.unet.eps_from_deep, *inputs)

    def gae_encode(self, z_sem: np.ndarray) -> np.ndarray:
        require_gae(self.config, "gae_encode")
        return self._run(self.model.gae.encode, z_sem.astype(np.float32, copy=False))

    def gae_decode(self, z_dis: np.ndarray) -> np.ndarray:
        require_gae(self.config, "gae_decode")
        return self._run(self.model.gae.decode, z_dis.astype(np.float32, copy=False))

    def warmup(self, batch_sizes: Iterable[int], seed: int = 0) -> dict[str, dict[int, float]]:
        """Run every component once per batch size (compiles, captures graphs); returns seconds per call.

        The times are what the first call cost: compile / capture time, kept apart from the timed runs.
        """
        calls = {
            specs.ENCODER: self.encode,
            specs.GAE_ENCODE: self.gae_encode,
            specs.GAE_DECODE: self.gae_decode,
            specs.UNET: self.eps,
        }
        seconds: dict[str, dict[int, float]] = {}
        for spec in specs.specs_for(self.config):
            seconds[spec.name] = {}
            for batch in batch_sizes:
                inputs = spec.sample_inputs(batch, seed)
                start = time.perf_counter()
                calls[spec.name](*(inputs[name] for name in spec.input_names))  # .cpu() inside synchronizes
                seconds[spec.name][batch] = time.perf_counter() - start
        return seconds


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    # contiguous(): a channels-last result (winograd) reaches numpy in the NCHW layout callers index by
    return tensor.float().contiguous().cpu().numpy()


def _unet_inputs(x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray) -> tuple[np.ndarray, ...]:
    return (
        x_t.astype(np.float32, copy=False),
        t.astype(np.int64, copy=False),
        z_sem.astype(np.float32, copy=False),
    )


def check_options(
    device: torch.device, dtype: torch.dtype | str | None, cuda_graphs: bool, winograd: bool = False
) -> torch.dtype:
    """The compute dtype for these options; ValueError for combinations the engine cannot run."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None) if dtype in ("float32", "float16", "bfloat16") else dtype
    dtype = torch.float32 if dtype is None else dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of torch.float32, torch.float16, torch.bfloat16, got {dtype!r}")
    if dtype == torch.float16 and device.type != "cuda":
        raise ValueError(
            f"dtype={dtype} needs a CUDA device (got device {str(device)!r}): CPUs have no fast float16 "
            "path here; on CPU use torch.bfloat16 or float32 (dtype=None)"
        )
    if cuda_graphs and device.type != "cuda":
        raise ValueError(f"cuda_graphs=True needs a CUDA device, got device {str(device)!r}")
    if winograd and (device.type != "cpu" or dtype != torch.float32):
        raise ValueError(
            f"winograd=True is a float32 CPU option (got device {str(device)!r}, dtype {dtype}): its "
            "transforms lose too much in reduced precision, and on a GPU cuDNN chooses Winograd by itself"
        )
    return dtype


class CUDAGraphed:
    """`fn` captured in one CUDA graph per input shape, with static input and output buffers, then replayed.

    A replay reruns the recorded kernels on the recorded memory: inputs are copied into the static buffers,
    and the returned tensor is the static output, overwritten by the next replay of that shape (the engine
    copies it to the host at once). Each shape keeps its own private memory pool, so shapes may interleave.
    """

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        self.fn = fn
        self.graphs: dict[tuple[Any, ...], tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...], Any]] = {}

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        key = tuple((tuple(a.shape), a.dtype, a.device) for a in args)
        if key not in self.graphs:
            self.graphs[key] = self._capture(args)
        graph, inputs, output = self.graphs[key]
        for buffer, arg in zip(inputs, args, strict=True):
            buffer.copy_(arg)
        graph.replay()
        return output

    def _capture(
        self, args: tuple[torch.Tensor, ...]
    ) -> tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...], Any]:
        inputs = tuple(a.clone() for a in args)
        with torch.cuda.device(inputs[0].device):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(GRAPH_WARMUP_CALLS):
                    self.fn(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                output = self.fn(*inputs)
        return graph, inputs, output


def load_torch_engine(checkpoint_dir: str | Path, device: str | None = None, **options: Any) -> TorchEngine:
    """A TorchEngine over a checkpoint directory on `device` (default cpu; options as in TorchEngine)."""
    from diffusegae.checkpoint import load_checkpoint

    device = device or "cpu"
    return TorchEngine(load_checkpoint(checkpoint_dir, device), device, **options)
