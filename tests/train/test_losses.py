"""The training losses on hand-built codes whose answers are known, and a stage-1 overfitting check."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from diffusegae import build_model, preset
from diffusegae.latents import chunk_masks
from diffusegae.train.losses import chunk_consistency_loss, diffusion_loss, gae_losses, reassembly_loss
from diffusegae.train.stages import STAGES, simple_loss, step_generator

CHUNKS = [slice(0, 6), slice(6, 8), slice(8, 10)]  # three attributes, z_dis width 10
WIDTH, D = 10, 16


def encode(z: torch.Tensor) -> torch.Tensor:
    """E: the first WIDTH dimensions are the code."""
    return z[:, :WIDTH]


def decode(code: torch.Tensor) -> torch.Tensor:
    """D: the code padded with zeros, so D∘E is the identity on z whose tail is zero, and E∘D always is."""
    return F.pad(code, (0, D - WIDTH))


def groups(batch: int, share: bool = True, seed: int = 0) -> torch.Tensor:
    """z [B, 1+K, D] in GROUP(C, 1) layout: member 1+k equals the centre on chunk k (if `share`)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.zeros(batch, 1 + len(CHUNKS), D)
    z[:, :, :WIDTH] = torch.randn(batch, 1 + len(CHUNKS), WIDTH, generator=gen)
    if share:
        for k, sl in enumerate(CHUNKS):
            z[:, 1 + k, sl] = z[:, 0, sl]
    return z


def test_all_gae_losses_vanish_when_the_group_property_holds_by_construction() -> None:
    out = gae_losses(
        encode,
        decode,
        groups(5),
        CHUNKS,
        lambda_ss=1.0,
        lambda_ur=0.5,
        generator=torch.Generator().manual_seed(1),
    )
    for name in ("r", "ss", "ur", "dis"):
        assert out[name].item() == 0.0, name


def test_swap_loss_sees_a_partner_that_does_not_share_its_attribute() -> None:
    out = gae_losses(encode, decode, groups(5, share=False), CHUNKS, 1.0, 0.5)
    assert out["r"].item() == 0.0 and out["ur"].item() == 0.0
    assert out["ss"].item() > 0.1
    assert out["dis"].item() == pytest.approx(out["ss"].item())


def test_swap_loss_counts_each_failed_swap() -> None:
    # Break only attribute 2 (the last) of one group: terms 1 and 2 of k=2 and the reassembly see it.
    z = groups(1)
    z[0, 3, 8:10] += 1.0  # partner of attribute 2 now differs from C on chunk 2 (by 1 in 2 of 16 dims)
    out = gae_losses(encode, decode, z, CHUNKS, 1.0, 0.0)
    # 7 terms (2K + 1); the three broken ones each have mean |error| 2/16
    assert out["ss"].item() == pytest.approx(3 * (2 / 16) / 7)


def test_chunk_consistency_is_zero_when_shared_chunks_match_and_counts_only_when_weighted() -> None:
    z = groups(6)
    masks = torch.from_numpy(chunk_masks(CHUNKS, WIDTH))
    assert chunk_consistency_loss(encode(z.reshape(-1, D)).reshape(6, 4, WIDTH), masks).item() == 0.0
    loose = groups(6, share=False)
    unweighted = gae_losses(encode, decode, loose, CHUNKS, 1.0, 0.5, torch.Generator().manual_seed(0))
    weighted = gae_losses(encode, decode, loose, CHUNKS, 1.0, 0.5, torch.Generator().manual_seed(0), 2.0)
    assert unweighted["sc"].item() > 0.5  # random partners: a shared chunk is as far apart as any other
    assert weighted["dis"].item() == pytest.approx(unweighted["dis"].item() + 2.0 * unweighted["sc"].item())


def test_chunk_consistency_sees_a_leak_and_ignores_the_scale() -> None:
    # Chunk 0 (attribute 0) also carries a value that only partner 0's other attributes change: a leak.
    z = groups(8, seed=3)
    masks = torch.from_numpy(chunk_masks(CHUNKS, WIDTH))
    codes = encode(z.reshape(-1, D)).reshape(8, 4, WIDTH)
    leaky = codes.clone()
    leaky[:, 1, 0] += 3.0  # partner 0 differs from C on chunk 0 although it shares attribute 0
    loss = chunk_consistency_loss(leaky, masks)
    assert loss.item() > 0.05
    assert chunk_consistency_loss(5.0 * leaky, masks).item() == pytest.approx(loss.item(), rel=1e-5)
    with pytest.raises(ValueError, match="at least two partners"):
        chunk_consistency_loss(codes[:, :2], masks[:1])


def test_reassembly_loss_is_zero_iff_encode_inverts_decode_on_z_u() -> None:
    codes = torch.randn(8, WIDTH, generator=torch.Generator().manual_seed(2))
    masks = chunk_masks(CHUNKS, WIDTH)
    assert reassembly_loss(encode, decode, codes, masks, torch.Generator().manual_seed(0)).item() == 0.0
    halve = lambda c: 0.5 * decode(c)  # noqa: E731
    shrink = reassembly_loss(encode, halve, codes, masks, torch.Generator().manual_seed(0))
    assert shrink.item() == pytest.approx(0.5 * codes.abs().mean().item(), rel=1e-5)  # permutes, keeps |·|


def test_gae_losses_on_a_real_gae_are_finite_and_differentiable() -> None:
    torch.manual_seed(0)
    gae = build_model(preset("tiny32")).gae
    chunks = [gae.cfg.chunk(n) for n in gae.cfg.attribute_names]
    z = torch.randn(3, 4, 512)
    out = gae_losses(gae.encoder, gae.decoder, z, chunks, 1.0, 0.5, torch.Generator().manual_seed(0))
    assert all(torch.isfinite(v) for v in out.values())
    out["dis"].backward()
    assert all(p.grad is not None for p in gae.parameters())


def test_diffusion_loss_is_zero_for_an_oracle_eps() -> None:
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    noise, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 700])

    def oracle(x_t: torch.Tensor, t_: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return noise

    assert diffusion_loss(oracle, x0, torch.zeros(2, 512), t, noise).item() == 0.0


def test_stage1_loss_drops_when_overfitting_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = build_model(preset("tiny32")).train()
    x0 = torch.rand(4, 3, 32, 32) * 2 - 1
    params = [*model.encoder.parameters(), *model.unet.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    assert STAGES[1].optimizer == "adamw"
    losses = []
    for _ in range(30):
        loss = simple_loss(model, x0, step_generator(0, 1, 0))  # same t and ε every step
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 0.5
    assert min(losses[-5:]) < 0.5 * losses[0], losses
