"""The server's names, written once: Triton models, their tensors, parameters and wire types.

The leaf models (encoder, gae_encode, gae_decode, unet) take their names and tensors from
`diffusegae.export.specs`; this module adds the loop models (invert, decode), the glue models between
leaves (prepare, postprocess, swap, combine, mix, steer) and the public ensembles' inputs and outputs.
A checkpoint with attribute directions (an imported Diff-AE classifier) also gets `steer` and `manipulate`.
`config.pbtxt` files, the python-backend models and the client all read these. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from diffusegae.config import ModelConfig
from diffusegae.export.specs import (
    BATCH,
    X0,
    X_T,
    Z_DIS,
    Z_SEM,
    BatchProfile,
    TensorIO,
    TensorSpec,
    specs_for,
)

# ---- model names ----
PREPARE = "prepare"  # every ensemble's first step: checks all request values, uint8 NHWC → model space
POSTPROCESS = "postprocess"  # model space → uint8 NHWC
INVERT = "invert"  # DDIM inversion x0 → x_T (Diff-AE Eq. 7), batched loop
DECODE = "decode"  # DDIM sampling x_T → x0, batched loop
SWAP = "swap"  # edit: named z_dis chunks from the reference
COMBINE = "combine"  # recombine: each z_dis chunk from its own image; x_T from the seed
MIX = "mix"  # interpolate: lerp the codes (named chunks), slerp x_T
STEER = "steer"  # manipulate: move z_sem along a named attribute direction by amp
# the public ops (ensembles)
RECONSTRUCT = "reconstruct"
EDIT = "edit"
RECOMBINE = "recombine"
INTERPOLATE = "interpolate"
MANIPULATE = "manipulate"  # only for checkpoints with attribute directions
# invert once, edit many times: an application keeps a source's (z_sem, x_T) and edits from them later
INVERSION = "inversion"  # image → z_sem, x_T
EDIT_INVERTED = "edit_inverted"  # z_sem, x_T of a source + reference → the edit (GAE checkpoints)

# ---- tensor names (the public ones are the wire contract of the client) ----
IMAGE = "image"
SOURCE = "source"
REFERENCE = "reference"
OUTPUT = "output"
STEPS = "steps"
SEED = "seed"
ALPHA = "alpha"
ATTRIBUTES = "attributes"
DIRECTION = "direction"
AMP = "amp"
SAMPLER = "sampler"  # optional on every public op and loop model: "ddim" (default) or "dpmpp2m"


def named(name: str, suffix: str) -> str:
    """A tensor that is one of several of its kind: `named("image", "pose")` → "image_pose"."""
    return f"{name}_{suffix}"


def pair(name: str) -> tuple[str, str]:
    """The two operands of a binary op (swap: a = source, b = reference; mix: interpolate from a to b)."""
    return named(name, "a"), named(name, "b")


IMAGE_A, IMAGE_B = pair(IMAGE)

# ---- config.pbtxt parameters of the python-backend models ----
PARAM_CHECKPOINT = "checkpoint"  # checkpoint directory; a relative path is resolved against the repository
# The checkpoint's ModelConfig as JSON: the glue models need only this (not the weights, nor torch, which
# checkpoint.py imports), and the models that load the checkpoint check it is the one the repository is for.
PARAM_MODEL_CONFIG = "model_config"
PARAM_THREADS = "threads"  # onnxruntime intra-op threads per model process
PARAM_ENGINE = "engine"  # loop models: where eps runs (a name of engines.registry.LOOP_ENGINES)
PARAM_BATCHING = "batching"  # loop models: "request" (dynamic batching) or "step" (engines/scheduler.py)
LOOP_BATCHING = ("request", "step")
PARAM_DEADLINE = "deadline_s"  # step batching: a request not finished this long after arrival is dropped
DEFAULT_DEADLINE_S = 600.0
# step batching: samples stepped together (default: the model's max_batch) and samples that may wait
PARAM_MAX_ACTIVE = "max_active"
PARAM_MAX_WAITING = "max_waiting"
# invert: MiB of inversions kept (engines/xt_cache.py; 0 turns it off) so a source edited again skips its loop
PARAM_XT_CACHE_MB = "xt_cache_mb"
DEFAULT_XT_CACHE_MB = 64.0
# the opt-in lossy speed-ups (engines.pipeline.Speedups), written only when on: invert and decode run the
# whole UNet every N-th step (request batching only); invert walks this many steps whatever `steps` says
PARAM_FEATURE_REUSE = "feature_reuse"
PARAM_INVERT_STEPS = "invert_steps"
# The checkpoint's direction names as JSON (only when it has some): prepare checks requests against them.
PARAM_DIRECTIONS = "directions"


def resolve_checkpoint(reference: str, repository: str | Path) -> Path:
    """The checkpoint a repository names: absolute, or relative to the repository folder."""
    path = Path(reference)
    return path if path.is_absolute() else (Path(repository) / path).resolve()


# ---- backends ----
PYTHON = "python"
ENSEMBLE = "ensemble"
ONNXRUNTIME = "onnxruntime"
TENSORRT = "tensorrt"
PYTHON_ORT = "python-ort"  # leaf models as python-backend models running the OnnxRuntimeEngine
LEAF_BACKENDS = (PYTHON_ORT, ONNXRUNTIME, TENSORRT)

MAX_BATCH = BatchProfile().max
# A lone request pays the queue delay once per loop model; a loop costs tens of eps calls, so 2 ms buys
# fuller batches for nothing. Models called once per request batch whatever is queued, without waiting.
LOOP_QUEUE_DELAY_US = 2000

# numpy dtype name → config.pbtxt data_type
STRING_DTYPE = "object"
DTYPES = {
    "float32": "TYPE_FP32",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "uint8": "TYPE_UINT8",
    STRING_DTYPE: "TYPE_STRING",
}
ANY = -1  # a dimension of any size

# The per-request values, one row per image: [B, 1] (attributes: [B, K] names, UTF-8).
STEPS_TENSOR = TensorSpec(STEPS, "int32", (BATCH, 1))
SEED_TENSOR = TensorSpec(SEED, "int64", (BATCH, 1))
ALPHA_TENSOR = TensorSpec(ALPHA, "float32", (BATCH, 1))
ATTRIBUTES_TENSOR = TensorSpec(ATTRIBUTES, STRING_DTYPE, (BATCH, ANY))
DIRECTION_TENSOR = TensorSpec(DIRECTION, STRING_DTYPE, (BATCH, 1))  # a direction's name or number, UTF-8
AMP_TENSOR = TensorSpec(AMP, "float32", (BATCH, 1))
SAMPLER_TENSOR = TensorSpec(SAMPLER, STRING_DTYPE, (BATCH, 1))  # a dpm_solver.SAMPLERS name, UTF-8


def image_tensor(name: str, size: int | None = None) -> TensorSpec:
    """uint8 [B,H,W,3] on the wire; size None accepts any shape so the model can say what it wants."""
    return TensorSpec(name, "uint8", (BATCH, ANY, ANY, ANY) if size is None else (BATCH, size, size, 3))


@dataclass(frozen=True)
class Step:
    """One ensemble step: which model, and model tensor → ensemble tensor maps for its inputs and outputs."""

    model: str
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ModelSpec(TensorIO):
    """A Triton model: python-backend (module under diffusegae.server.models), native leaf, or ensemble."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    backend: str = PYTHON
    module: str | None = None
    steps: tuple[Step, ...] = ()
    optional: tuple[str, ...] = ()  # inputs a request may leave out
    queue_delay_us: int = 0
    max_batch: int = MAX_BATCH


def model_tensors(config: ModelConfig) -> dict[str, TensorSpec]:
    """x0, x_t, z_sem (and z_dis) as the leaf models declare them."""
    tensors = {t.name: t for spec in specs_for(config) for t in (*spec.inputs, *spec.outputs)}
    return {name: tensors[name] for name in (X0, X_T, Z_SEM, Z_DIS) if name in tensors}


def renamed(tensor: TensorSpec, name: str) -> TensorSpec:
    return TensorSpec(name, tensor.dtype, tensor.shape, tensor.sample_range)


def leaf_models(config: ModelConfig, backend: str = PYTHON_ORT) -> list[ModelSpec]:
    """The exported components as Triton models (python-backend over onnxruntime, or a native backend)."""
    served = {"backend": PYTHON, "module": "leaf"} if backend == PYTHON_ORT else {"backend": backend}
    return [
        ModelSpec(s.name, s.inputs, s.outputs, max_batch=s.profile.max, **served) for s in specs_for(config)
    ]


def image_inputs(config: ModelConfig) -> list[str]:
    """Every image input of the public ops of a config (recombine: one per attribute)."""
    names = [IMAGE, IMAGE_A, IMAGE_B]
    if config.gae is not None:
        names += [SOURCE, REFERENCE, *(named(IMAGE, a) for a in config.gae.attribute_names)]
    return names


def code_inputs(config: ModelConfig) -> list[TensorSpec]:
    """The latent inputs of the public ops (edit_inverted's z_sem and x_T of a source); none without a GAE."""
    t = model_tensors(config)
    return [t[Z_SEM], t[X_T]] if config.gae is not None else []


def checked(name: str) -> str:
    """prepare's output for a latent input it checked (the later steps read this, not the raw input)."""
    return named(name, "checked")


def prepare_model(config: ModelConfig, directions: tuple[str, ...] = ()) -> ModelSpec:
    """prepare: any of the ops' images, latents and values in (all optional), x0_<image> out for each image
    sent and <latent>_checked for each latent sent.

    Every ensemble runs it first on all its inputs, so a bad value fails the request before any other step
    has started (Triton 2.51 leaves an ensemble request in flight forever when a step fails while a sibling
    step is running; graceful shutdown then waits out its whole exit timeout).
    """
    x0 = model_tensors(config)[X0]
    images = image_inputs(config)
    latents = code_inputs(config)
    values = [STEPS_TENSOR, SAMPLER_TENSOR, SEED_TENSOR, ALPHA_TENSOR]
    values += [ATTRIBUTES_TENSOR] if config.gae is not None else []
    values += [DIRECTION_TENSOR, AMP_TENSOR] if directions else []
    inputs = (*(image_tensor(name) for name in images), *latents, *values)
    outputs = (
        *(renamed(x0, named(X0, name)) for name in images),
        *(renamed(t, checked(t.name)) for t in latents),
    )
    return ModelSpec(PREPARE, inputs, outputs, module="prepare", optional=tuple(t.name for t in inputs))


def python_models(config: ModelConfig, directions: tuple[str, ...] = ()) -> list[ModelSpec]:
    """The loop and glue models (python backend): no GAE, no swap or combine; no directions, no steer."""
    t = model_tensors(config)
    s = config.image_size
    code = t[Z_DIS] if config.gae is not None else t[Z_SEM]  # what interpolate lerps
    models = [
        prepare_model(config, directions),
        ModelSpec(POSTPROCESS, (t[X0],), (image_tensor(IMAGE, s),), module="postprocess"),
        *(
            ModelSpec(
                name,
                (t[start], t[Z_SEM], STEPS_TENSOR, SAMPLER_TENSOR),
                (t[end],),
                module="loop",
                optional=(SAMPLER,),
                queue_delay_us=LOOP_QUEUE_DELAY_US,
            )
            for name, start, end in ((INVERT, X0, X_T), (DECODE, X_T, X0))
        ),
        ModelSpec(
            MIX,
            (
                *(renamed(code, n) for n in pair(code.name)),
                *(renamed(t[X_T], n) for n in pair(X_T)),
                ALPHA_TENSOR,
                *((ATTRIBUTES_TENSOR,) if config.gae is not None else ()),
            ),
            (code, t[X_T]),
            module="mix",
            optional=(ATTRIBUTES,) if config.gae is not None else (),
        ),
    ]
    if config.gae is not None:
        z_dis = t[Z_DIS]
        models += [
            ModelSpec(
                SWAP,
                (*(renamed(z_dis, n) for n in pair(Z_DIS)), ATTRIBUTES_TENSOR),
                (z_dis,),
                module="swap",
            ),
            ModelSpec(
                COMBINE,
                (*(renamed(z_dis, named(Z_DIS, a)) for a in config.gae.attribute_names), SEED_TENSOR),
                (z_dis, t[X_T]),
                module="combine",
            ),
        ]
    if directions:
        models.append(ModelSpec(STEER, (t[Z_SEM], DIRECTION_TENSOR, AMP_TENSOR), (t[Z_SEM],), module="steer"))
    return models


def served_model(config: ModelConfig, name: str, directions: tuple[str, ...] = ()) -> ModelSpec:
    """The python-backend model called `name` (a leaf or a loop / glue model)."""
    models = {m.name: m for m in (*leaf_models(config), *python_models(config, directions))}
    if name not in models:
        raise ValueError(f"no python-backend model {name!r} for {config.name!r}; known: {', '.join(models)}")
    return models[name]


def check_attribute_names(config: ModelConfig) -> None:
    """Attribute names become tensor names (image_<attribute>): keep them to letters, digits and _."""
    for name in config.gae.attribute_names if config.gae is not None else ():
        if not name.replace("_", "").isalnum():
            raise ValueError(f"attribute name {name!r} cannot name a Triton tensor; use letters, digits, _")
