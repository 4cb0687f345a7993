"""An Engine whose eps is a BLS call to the `unet` model (native leaves: onnxruntime_onnx, tensorrt_plan).

Only eps: the loop models need nothing else. Outputs are asked for in CPU memory, so a GPU `unet` hands
back host arrays (the DDIM update runs in numpy). Unverified on GPU: no GPU machine ran it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from diffusegae.config import ModelConfig
from diffusegae.export.specs import EPS, TIMESTEP, UNET, X_T, Z_SEM


class BLSEngine:
    def __init__(self, config: ModelConfig, model: str = UNET) -> None:
        self.config = config
        self.model = model

    def eps(self, x_t: np.ndarray, t: np.ndarray, z_sem: np.ndarray) -> np.ndarray:
        inputs = [
            pb_utils.Tensor(X_T, np.ascontiguousarray(x_t, dtype=np.float32)),
            # [B,1] on the wire: the config declares t as dims [1] reshaped to [B] inside the model
            pb_utils.Tensor(TIMESTEP, np.ascontiguousarray(t, dtype=np.int64).reshape(-1, 1)),
            pb_utils.Tensor(Z_SEM, np.ascontiguousarray(z_sem, dtype=np.float32)),
        ]
        options = {}
        if hasattr(pb_utils, "PreferredMemory"):
            options["preferred_memory"] = pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0)
        request = pb_utils.InferenceRequest(
            model_name=self.model, inputs=inputs, requested_output_names=[EPS], **options
        )
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"BLS call to {self.model!r} failed: {response.error().message()}")
        return pb_utils.get_output_tensor_by_name(response, EPS).as_numpy()

    def encode(self, x0: np.ndarray) -> np.ndarray:
        raise NotImplementedError("the BLS engine serves the loop models: eps only")

    gae_encode = gae_decode = encode


def bls_engine(model: Any) -> BLSEngine:
    """The loop engine "bls" (engines/registry.py) for a python-backend model."""
    return BLSEngine(model.config)
