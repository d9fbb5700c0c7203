import pytest
import torch

from diffrep.config import ConfigError
from diffrep.nn import UNET_PRESETS, SkipDropout, UNet, UNetConfig, unet_preset


def n_params(cfg: UNetConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in UNet(cfg).parameters())


def test_ddpm_cifar10_parameter_count():
    # Ho et al. 2020, App. B: "Our CIFAR10 model has 35.7 million parameters". The exact count
    # 35,746,307 is that of the released checkpoint as converted to diffusers (google/ddpm-cifar10-32).
    assert n_params(unet_preset("ddpm-cifar10")) == 35_746_307


def test_ddpm_celebahq256_parameter_count():
    # Ho et al. 2020, App. B: the LSUN and CelebA-HQ 256 models have 114 million parameters;
    # google/ddpm-celebahq-256 has 113,673,219. SAMI's frozen CelebA-HQ denoiser is this network
    # (docs/methods/sami.md#architectures: 128 ch, [1,1,2,2,4,4], linear schedule, 1000 steps).
    assert n_params(unet_preset("ddpm-celebahq256")) == 113_673_219


def test_preset_counts_are_stable():
    # our own presets for the method specs (no published counts): pinned to catch silent changes
    assert n_params(unet_preset("sami-celeba64")) == 16_625_795
    assert n_params(unet_preset("paramrel-celeba64")) == 9_591_491
    assert n_params(unet_preset("dyga-table8")) == 37_549_507
    assert set(UNET_PRESETS) >= {"ddpm-cifar10", "ddpm-celebahq256", "dyga-table8"}


def tiny(**kw) -> UNetConfig:
    base = dict(image_size=8, in_channels=2, out_channels=2, model_channels=16, channel_mult=(1, 2),
                num_res_blocks=1, attention_resolutions=(4,), num_heads=2, num_groups=8)
    return UNetConfig(**{**base, **kw})


def test_forward_shapes_and_conditioning_paths():
    torch.manual_seed(0)
    x, t = torch.randn(3, 2, 8, 8), torch.tensor([0, 5, 999])
    assert UNet(tiny())(x, t).shape == (3, 2, 8, 8)
    m = UNet(tiny(latent_dim=5, num_outputs=2))
    a, b = m(x, t, z=torch.randn(3, 5))
    assert a.shape == b.shape == (3, 2, 8, 8)
    mc = UNet(tiny(context_dim=6, transformer_depth=1))
    assert mc(x, t, context=torch.randn(3, 4, 6)).shape == (3, 2, 8, 8)


def _perturb(m):
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))  # undo zero-init so every path matters
    return m


def test_latent_and_context_change_output():
    torch.manual_seed(0)
    x, t = torch.randn(2, 2, 8, 8), torch.tensor([3, 4])
    for cond in ("adagn_eq12", "infodiff"):
        m = _perturb(UNet(tiny(latent_dim=4, latent_cond=cond))).eval()
        z = torch.randn(2, 4)
        assert not torch.allclose(m(x, t, z=z), m(x, t, z=z + 1))
    m = _perturb(UNet(tiny(context_dim=3))).eval()
    c = torch.randn(2, 5, 3)
    assert not torch.allclose(m(x, t, context=c), m(x, t, context=c.flip(1) * 2))
    # tokens have no positional embedding: permuting them leaves the output unchanged (the DyGA paper's Table 8)
    torch.testing.assert_close(m(x, t, context=c), m(x, t, context=c.flip(1)), rtol=1e-5, atol=1e-5)


def test_adagn_eq12_structure():
    # ParamReL Eq. 12: AGN(h, z, t) = (1 + s(t)) GN((1 + s(z)) GN(h) + b(z)) + b(t): two GroupNorms
    m = UNet(tiny(latent_dim=4))
    blk = m.middle_block[0]
    assert blk.z_norm is not None and blk.z_layers[1].out_features == 2 * blk.out_norm.num_channels
    assert UNet(tiny(latent_dim=4, latent_cond="infodiff")).middle_block[0].z_norm is None


def test_skip_dropout_placement():
    # DyGA Sec. 3.3 and the authors' code: Table 8 U-Net, 12 decoder skips at 16,16,16,8,8,8,4,4,4,2,2,2 px
    cfg = unet_preset("dyga-table8")
    assert cfg.skip_dropout_levels() == {2}  # "paper": only levels without cross-attention
    assert unet_preset("dyga-table8", skip_dropout_placement="reference_code").skip_dropout_levels() == {16, 8}
    with torch.device("meta"):
        m = UNet(cfg)
    kinds = [isinstance(s, SkipDropout) for s in m.skip_dropouts]
    assert len(kinds) == 12 and kinds == [True] * 3 + [False] * 9  # decoder runs 2 px first


def test_skip_dropout_mask_is_per_channel_and_inverted():
    torch.manual_seed(0)
    sd = SkipDropout(0.5)
    s = torch.ones(64, 32, 4, 4)
    out = sd.train()(s)
    vals = set(out.unique().tolist())
    assert vals <= {0.0, 2.0}
    assert (out.amax(dim=(2, 3)) == out.amin(dim=(2, 3))).all()  # constant over H x W
    assert abs(out.mean().item() - 1.0) < 0.1
    torch.testing.assert_close(sd.eval()(s), s)
    assert set(SkipDropout(0.5, rescale=False).train()(s).unique().tolist()) <= {0.0, 1.0}


def test_skip_dropout_eval_is_the_identity_and_rescale_matches_the_training_mean():
    """Eval is the identity in both conventions (issue 19's contract); inverted dropout makes that the
    training mean (E[m] = 1 - rate, times 1 / (1 - rate)); Eq. 7 as printed (rescale=False) has a training
    mean of (1 - rate) s, which eval does not reproduce."""
    torch.manual_seed(0)
    s = torch.randn(3, 4, 2, 2)
    for rescale, train_mean_scale in ((True, 1.0), (False, 0.7)):
        sd = SkipDropout(0.3, rescale=rescale)
        assert sd.eval()(s) is s
        sd.train()
        mc = sd(s.repeat(20000, 1, 1, 1)).reshape(20000, *s.shape).mean(0)  # 20000 masks per (sample, channel)
        torch.testing.assert_close(mc, s * train_mean_scale, atol=0.05, rtol=0)
    assert SkipDropout(0.0, rescale=False).train()(s) is s


@pytest.mark.parametrize("field,kw,match", [
    ("attention_resolutions", dict(attention_resolutions=(3,)), "does not exist"),
    ("image_size", dict(image_size=6, channel_mult=(1, 2, 2)), "divisible"),
    ("num_heads", dict(num_heads=3), "heads"),
    ("num_groups", dict(model_channels=12), "num_groups"),
    ("skip_dropout", dict(skip_dropout=1.0), "skip_dropout"),
    ("channel_mult", dict(channel_mult="12"), "channel_mult"),
    ("dropout", dict(dropout="0.1"), "dropout"),
])
def test_bad_configs_name_the_field(field, kw, match):
    with pytest.raises(ConfigError, match=match) as ei:
        tiny(**kw)
    assert ei.value.field.startswith(field)


def test_forward_rejects_bad_inputs():
    m = UNet(tiny(latent_dim=3))
    x, t = torch.randn(2, 2, 8, 8), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="z must have shape"):
        m(x, t)
    with pytest.raises(ValueError, match="t must have shape"):
        m(x, torch.tensor([1]), z=torch.randn(2, 3))
    with pytest.raises(ValueError, match="channels"):
        m(torch.randn(2, 3, 8, 8), t, z=torch.randn(2, 3))
    with pytest.raises(ValueError, match="context"):
        UNet(tiny())(x, t, context=torch.randn(2, 3, 4))
