"""The public ops as Triton ensembles: the dataflow between leaf, loop and glue models.

Ensemble-internal tensors are named `<role>.<tensor>` (role: image, source, reference, a, b, an attribute,
or `out`/`mixed` for results); public inputs and outputs use the names of `diffusegae.server.specs`.
Every op takes an optional `sampler` ("ddim" when left out), routed to its invert and decode steps.
The first step of each is `prepare` over all the op's inputs: it checks every value and brings the images
to model space, so that every later step waits for it and a bad request fails before any other step runs.

    reconstruct  image → prepare → encoder → invert ─┐
                                     └──── z_sem ────┴→ decode → postprocess → output
    edit         source, reference → prepare → encoder → gae_encode → swap(attributes) → gae_decode ─┐
                 source x0, z_sem → invert → x_T ───────────────────────────────────────→ decode → …
    recombine    image_<attribute> … → prepare → encoder → gae_encode → combine(seed) → gae_decode,
                 x_T ~ N(0, I) from the seed ────────────────────────────────────────────→ decode → …
    interpolate  image_a, image_b → prepare → encoder → invert; [gae_encode] → mix(alpha, attributes)
                 → lerp codes [→ gae_decode], slerp x_T ──────────────────────────────────→ decode → …
    manipulate   image → prepare → encoder → steer(direction, amp) ──────────────────┐
                                     └──── invert (with the image's own z_sem) → x_T ┴→ decode → …
    inversion    image → prepare → encoder → invert → z_sem, x_T (kept by the application)
    edit_inverted  z_sem, x_T of a source, reference → prepare → encoder(reference) → gae_encode ×2 → swap
                 → gae_decode, the sent x_T ──────────────────────────────────────────────→ decode → …
                 (the same as edit on the source, without its encoder and inversion)
"""

from __future__ import annotations

from diffusegae.config import ModelConfig
from diffusegae.export.specs import ENCODER, GAE_DECODE, GAE_ENCODE, X0, X_T, Z_DIS, Z_SEM, TensorSpec
from diffusegae.server.specs import (
    ALPHA,
    ALPHA_TENSOR,
    AMP,
    AMP_TENSOR,
    ATTRIBUTES,
    ATTRIBUTES_TENSOR,
    COMBINE,
    DECODE,
    DIRECTION,
    DIRECTION_TENSOR,
    EDIT,
    EDIT_INVERTED,
    ENSEMBLE,
    IMAGE,
    IMAGE_A,
    IMAGE_B,
    INTERPOLATE,
    INVERSION,
    INVERT,
    MANIPULATE,
    MIX,
    OUTPUT,
    POSTPROCESS,
    PREPARE,
    RECOMBINE,
    RECONSTRUCT,
    REFERENCE,
    SAMPLER,
    SAMPLER_TENSOR,
    SEED,
    SEED_TENSOR,
    SOURCE,
    STEER,
    STEPS,
    STEPS_TENSOR,
    SWAP,
    ModelSpec,
    Step,
    checked,
    code_inputs,
    image_tensor,
    model_tensors,
    named,
    pair,
)


def _t(role: str, tensor: str) -> str:
    return f"{role}.{tensor}"


def _step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> Step:
    return Step(model, tuple(inputs.items()), tuple(outputs.items()))


def _prepare(inputs: list[TensorSpec], roles: dict[str, str], latents: dict[str, str]) -> Step:
    """All the op's inputs → prepare → <role>.x0 for each image (roles: image input → role), and the
    checked copy of each latent input (latents: latent input → the ensemble tensor later steps read)."""
    outputs = {named(X0, image): _t(role, X0) for image, role in roles.items()}
    outputs |= {checked(name): tensor for name, tensor in latents.items()}
    return _step(PREPARE, {t.name: t.name for t in inputs}, outputs)


def _encode(role: str) -> Step:
    return _step(ENCODER, {X0: _t(role, X0)}, {Z_SEM: _t(role, Z_SEM)})


def _disentangle(role: str) -> Step:
    return _step(GAE_ENCODE, {Z_SEM: _t(role, Z_SEM)}, {Z_DIS: _t(role, Z_DIS)})


def _entangle(role: str) -> Step:
    return _step(GAE_DECODE, {Z_DIS: _t(role, Z_DIS)}, {Z_SEM: _t(role, Z_SEM)})


# Every loop step gets the op's steps and (optional) sampler.
LOOP_VALUES = {STEPS: STEPS, SAMPLER: SAMPLER}


def _invert(role: str) -> Step:
    return _step(INVERT, {X0: _t(role, X0), Z_SEM: _t(role, Z_SEM), **LOOP_VALUES}, {X_T: _t(role, X_T)})


def _finish(x_t: str, z_sem: str) -> list[Step]:
    """decode(x_T, z_sem) → postprocess → the public output."""
    return [
        _step(DECODE, {X_T: x_t, Z_SEM: z_sem, **LOOP_VALUES}, {X0: _t("out", X0)}),
        _step(POSTPROCESS, {X0: _t("out", X0)}, {IMAGE: OUTPUT}),
    ]


def _ensemble(
    config: ModelConfig,
    name: str,
    inputs: list[TensorSpec],
    roles: dict[str, str],
    steps: list[Step],
    optional: tuple[str, ...] = (),
    outputs: tuple[TensorSpec, ...] | None = None,
    latents: dict[str, str] | None = None,
) -> ModelSpec:
    """An op: its inputs plus the optional sampler, prepare first, then `steps`; its output the image
    unless `outputs` says otherwise."""
    inputs = [*inputs, SAMPLER_TENSOR]
    return ModelSpec(
        name,
        tuple(inputs),
        outputs or (image_tensor(OUTPUT, config.image_size),),
        backend=ENSEMBLE,
        steps=(_prepare(inputs, roles, latents or {}), *steps),
        optional=(*optional, SAMPLER),
    )


def reconstruct(config: ModelConfig) -> ModelSpec:
    steps = [_encode(IMAGE), _invert(IMAGE), *_finish(_t(IMAGE, X_T), _t(IMAGE, Z_SEM))]
    return _ensemble(config, RECONSTRUCT, [image_tensor(IMAGE), STEPS_TENSOR], {IMAGE: IMAGE}, steps)


def _swap() -> list[Step]:
    """Both z_sem → the edited z_sem ("mixed"): the swapped attributes from the reference, the rest kept."""
    z_src, z_ref = pair(Z_DIS)
    return [
        _disentangle(SOURCE),
        _disentangle(REFERENCE),
        _step(
            SWAP,
            {z_src: _t(SOURCE, Z_DIS), z_ref: _t(REFERENCE, Z_DIS), ATTRIBUTES: ATTRIBUTES},
            {Z_DIS: _t("mixed", Z_DIS)},
        ),
        _entangle("mixed"),
    ]


def edit(config: ModelConfig) -> ModelSpec:
    steps = [
        _encode(SOURCE),
        _encode(REFERENCE),
        *_swap(),
        _invert(SOURCE),
        *_finish(_t(SOURCE, X_T), _t("mixed", Z_SEM)),
    ]
    inputs = [image_tensor(SOURCE), image_tensor(REFERENCE), ATTRIBUTES_TENSOR, STEPS_TENSOR]
    return _ensemble(config, EDIT, inputs, {SOURCE: SOURCE, REFERENCE: REFERENCE}, steps)


def inversion(config: ModelConfig) -> ModelSpec:
    """What edit_inverted starts from: the image's z_sem and its inverted x_T (the public outputs)."""
    t = model_tensors(config)
    steps = [
        _step(ENCODER, {X0: _t(IMAGE, X0)}, {Z_SEM: Z_SEM}),
        _step(INVERT, {X0: _t(IMAGE, X0), Z_SEM: Z_SEM, **LOOP_VALUES}, {X_T: X_T}),
    ]
    inputs = [image_tensor(IMAGE), STEPS_TENSOR]
    return _ensemble(config, INVERSION, inputs, {IMAGE: IMAGE}, steps, outputs=(t[Z_SEM], t[X_T]))


def edit_inverted(config: ModelConfig) -> ModelSpec:
    """edit, from a source's inversion: its z_sem and x_T (what `inversion` answered) instead of the image."""
    latents = {Z_SEM: _t(SOURCE, Z_SEM), X_T: _t(SOURCE, X_T)}
    steps = [_encode(REFERENCE), *_swap(), *_finish(_t(SOURCE, X_T), _t("mixed", Z_SEM))]
    inputs = [*code_inputs(config), image_tensor(REFERENCE), ATTRIBUTES_TENSOR, STEPS_TENSOR]
    return _ensemble(config, EDIT_INVERTED, inputs, {REFERENCE: REFERENCE}, steps, latents=latents)


def recombine(config: ModelConfig) -> ModelSpec:
    names = config.gae.attribute_names
    steps = [s for a in names for s in (_encode(a), _disentangle(a))]
    codes = {named(Z_DIS, a): _t(a, Z_DIS) for a in names}
    steps += [
        _step(COMBINE, {**codes, SEED: SEED}, {Z_DIS: _t("mixed", Z_DIS), X_T: _t("mixed", X_T)}),
        _entangle("mixed"),
        *_finish(_t("mixed", X_T), _t("mixed", Z_SEM)),
    ]
    inputs = [*(image_tensor(named(IMAGE, a)) for a in names), SEED_TENSOR, STEPS_TENSOR]
    return _ensemble(config, RECOMBINE, inputs, {named(IMAGE, a): a for a in names}, steps)


def interpolate(config: ModelConfig) -> ModelSpec:
    gae = config.gae is not None
    code = Z_DIS if gae else Z_SEM  # a GAE model lerps named z_dis chunks; a plain Diff-AE all of z_sem
    steps = []
    roles = {IMAGE_A: "a", IMAGE_B: "b"}
    for role in roles.values():
        steps += [_encode(role), _invert(role)]
        steps += [_disentangle(role)] if gae else []
    mix_inputs = {
        **dict(zip(pair(code), (_t("a", code), _t("b", code)), strict=True)),
        **dict(zip(pair(X_T), (_t("a", X_T), _t("b", X_T)), strict=True)),
        ALPHA: ALPHA,
        **({ATTRIBUTES: ATTRIBUTES} if gae else {}),
    }
    steps.append(_step(MIX, mix_inputs, {code: _t("mixed", code), X_T: _t("mixed", X_T)}))
    steps += [_entangle("mixed")] if gae else []
    steps += _finish(_t("mixed", X_T), _t("mixed", Z_SEM))
    inputs = [image_tensor(IMAGE_A), image_tensor(IMAGE_B), ALPHA_TENSOR, STEPS_TENSOR]
    if gae:  # optional: left out, every attribute is interpolated (Pipeline's attributes=None)
        inputs.append(ATTRIBUTES_TENSOR)
        return _ensemble(config, INTERPOLATE, inputs, roles, steps, optional=(ATTRIBUTES,))
    return _ensemble(config, INTERPOLATE, inputs, roles, steps)


def manipulate(config: ModelConfig) -> ModelSpec:
    steps = [
        _encode(IMAGE),
        _invert(IMAGE),
        _step(STEER, {Z_SEM: _t(IMAGE, Z_SEM), DIRECTION: DIRECTION, AMP: AMP}, {Z_SEM: _t("moved", Z_SEM)}),
        *_finish(_t(IMAGE, X_T), _t("moved", Z_SEM)),
    ]
    inputs = [image_tensor(IMAGE), DIRECTION_TENSOR, AMP_TENSOR, STEPS_TENSOR]
    return _ensemble(config, MANIPULATE, inputs, {IMAGE: IMAGE}, steps)


def ensembles(config: ModelConfig, directions: tuple[str, ...] = ()) -> list[ModelSpec]:
    """The public ops of a checkpoint; edit, recombine and edit_inverted need a GAE, manipulate attribute
    directions."""
    gae = config.gae is not None
    ops = [reconstruct(config), *((edit(config), recombine(config)) if gae else ()), interpolate(config)]
    ops += [inversion(config), *((edit_inverted(config),) if gae else ())]
    if directions:
        ops.append(manipulate(config))
    return ops
