import dataclasses

import pytest
import torch

from diffusegae import build_model, preset
from diffusegae.models.encoder import DiffAEEncoder
from diffusegae.models.layers import AttentionBlock

from ..conftest import randomize


def test_unet_eps_shape_and_zero_init(tiny_model):
    fresh = build_model(preset("tiny32"))
    x = torch.randn(3, 3, 32, 32)
    t = torch.tensor([0, 500, 999])
    z = torch.randn(3, 512)
    with torch.no_grad():
        # zero-initialised output conv (BeatGANs): the network says v = 0, which is eps = sqrt(1 − ᾱ_t)·x_t
        assert fresh.cfg.unet.prediction == "v"
        assert torch.count_nonzero(fresh.unet.out(torch.randn(3, 32, 32, 32))) == 0
        eps = tiny_model.unet(x, t, z)
    assert eps.shape == x.shape and torch.isfinite(eps).all()


@pytest.mark.parametrize("mode", ["scale", "scale_shift"])
def test_unet_depends_on_t_and_z_per_sample(mode):
    cfg = preset("tiny32")
    cfg = dataclasses.replace(cfg, unet=dataclasses.replace(cfg.unet, adagn_mode=mode))
    torch.manual_seed(0)
    unet = randomize(build_model(cfg)).unet.eval()
    x = torch.randn(1, 3, 32, 32).repeat(2, 1, 1, 1)
    with torch.no_grad():
        same = unet(x, torch.tensor([10, 10]), torch.zeros(2, 512))
        t_diff = unet(x, torch.tensor([10, 900]), torch.zeros(2, 512))
        z_diff = unet(x, torch.tensor([10, 10]), torch.stack([torch.zeros(512), torch.ones(512)]))
    torch.testing.assert_close(same[0], same[1])
    assert (t_diff[0] - t_diff[1]).abs().max() > 1e-3
    assert (z_diff[0] - z_diff[1]).abs().max() > 1e-3
    torch.testing.assert_close(t_diff[0], same[0])  # the other sample is unaffected


def test_encoders_are_batch_independent(tiny_model):
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        full = tiny_model.encoder(x)
        single = tiny_model.encoder(x[2:3])
    assert full.shape == (4, 512)
    torch.testing.assert_close(full[2:3], single, rtol=1e-4, atol=1e-5)


def test_alter_resnet_ends_late_stages_with_attention(tiny_model):
    stages = tiny_model.encoder.stages
    assert isinstance(stages[-1][-1], AttentionBlock)
    assert not any(isinstance(m, AttentionBlock) for m in stages[0].modules())


@pytest.mark.parametrize("pool_size", [1, 2, 4])
def test_alter_resnet_head_keeps_a_pool_size_map(pool_size):
    """pool_size k: a k×k average map is flattened into the head, so z_sem can say where things are."""
    cfg = preset("tiny32")
    cfg = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, pool_size=pool_size))
    enc = build_model(cfg).encoder.eval()
    width = cfg.encoder.model_channels * cfg.encoder.channel_mult[-1]
    assert enc.head[-1].in_features == width * pool_size**2
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert enc(x).shape == (2, 512)
        # a global pool cannot tell a feature map from its mirror image; a spatial head can
        trunk = enc.stages(enc.stem(x))
        flipped = enc.head(trunk.flip(-1))
    assert torch.allclose(flipped, enc.head(trunk), atol=1e-5) == (pool_size == 1)


def test_diffae_encoder_keeps_the_global_pool():
    cfg = preset("diffae64")
    with pytest.raises(ValueError, match="pool_size"):
        dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, pool_size=4))


def test_diffae_encoder_head_is_pool_then_1x1_conv():
    cfg = preset("diffae64").encoder
    cfg = dataclasses.replace(cfg, model_channels=32, channel_mult=(1, 2, 2))
    enc = DiffAEEncoder(cfg, 32).eval()
    assert isinstance(enc.out[2], torch.nn.AdaptiveAvgPool2d)
    with torch.no_grad():
        assert enc(torch.randn(2, 3, 32, 32)).shape == (2, 512)


def test_gae_round_trip_shapes_and_chunks(tiny_model):
    gae = tiny_model.gae
    z = torch.randn(5, 512)
    with torch.no_grad():
        z_dis = gae.encode(z)
        assert z_dis.shape == (5, 100)
        assert gae.decode(z_dis).shape == (5, 512)
    parts = gae.split(z_dis)
    assert list(parts) == ["identity", "background", "pose"]
    assert [p.shape[1] for p in parts.values()] == [60, 20, 20]
    assert torch.equal(torch.cat(list(parts.values()), dim=1), z_dis)


def test_gae_norms_layer_in_encoder_group_in_decoder(tiny_model):
    enc_norms = {type(m) for m in tiny_model.gae.encoder.modules() if "Norm" in type(m).__name__}
    dec_norms = {type(m) for m in tiny_model.gae.decoder.modules() if "Norm" in type(m).__name__}
    assert enc_norms == {torch.nn.LayerNorm}
    assert dec_norms == {torch.nn.GroupNorm}


def test_gae_standardises_with_its_statistics(tiny_model):
    gae = tiny_model.gae
    z = torch.randn(3, 512)
    with torch.no_grad():
        before = gae.encode(z)
        gae.z_mean.fill_(2.0)
        gae.z_std.fill_(3.0)
        after = gae.encode(z * 3.0 + 2.0)
        gae.z_mean.zero_()
        gae.z_std.fill_(1.0)
    torch.testing.assert_close(before, after, rtol=1e-4, atol=1e-5)
