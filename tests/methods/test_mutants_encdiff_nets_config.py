"""EncDiff's small extractor, FSQ token bottleneck and configuration against independent computations (mutation
survivors of 2026-12-08, benches/results/mutation_nets_2026-12-08.md).

- ``SmallExtractor`` (docs/methods/encdiff.md): 3x3 stride-2 convs each followed by BatchNorm and ReLU, flatten,
  Linear-ReLU-Linear to N scalars, one MLP per unit 1 -> mlp_hidden -> D with a final ReLU (Table 9's layout).
  Recomputed with plain tensor ops from the module's weights; parameters counted by hand.
- ``FSQTokens``: Linear(D -> len(levels)), FSQ (Mentzer et al. App. A.1 bound, round, / (L // 2)), Linear back.
- ``ldm_schedule`` / ``ldm_ddim_pairs``: the LDM linear schedule and ``make_ddim_timesteps("uniform") + 1``.
- ``EncDiffConfig.validate``: every branch names its field.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import randomise_parameters
from diffrep.config import ConfigError
from diffrep.diffusion import NoiseScheduleConfig
from diffrep.methods.dyga import DyGAConfig
from diffrep.methods.encdiff_config import EncDiffConfig, ldm_ddim_pairs, ldm_schedule
from diffrep.methods.encdiff_nets import FSQTokens, SmallExtractor, SmallExtractorConfig
from diffrep.nn.unet import UNetConfig
from diffrep.nn.vq import VQAutoencoderConfig


pytestmark = pytest.mark.usefixtures("float64_default")


def _randomise(net: torch.nn.Module, seed: int = 0) -> None:
    randomise_parameters(net, seed, 0.5)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def _extractor_reference(net: SmallExtractor, x: torch.Tensor, train: bool):
    """conv(3x3, s2, p1) -> BatchNorm -> ReLU per level; Linear-ReLU-Linear; per-unit MLP with ReLU after every layer."""
    convs = [m for m in net.cnn if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in net.cnn if isinstance(m, torch.nn.BatchNorm2d)]
    h = x
    for conv, bn in zip(convs, bns):
        h = F.conv2d(h, conv.weight, conv.bias, stride=2, padding=1)
        if train:  # batch statistics, biased variance
            mean, var = h.mean(dim=(0, 2, 3)), h.var(dim=(0, 2, 3), unbiased=False)
        else:
            mean, var = bn.running_mean, bn.running_var
        h = (h - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + 1e-5)
        h = torch.relu(h * bn.weight[None, :, None, None] + bn.bias[None, :, None, None])
    h = h.reshape(h.shape[0], -1)
    fc1, fc2 = net.fc[0], net.fc[2]
    s = torch.relu(h @ fc1.weight.T + fc1.bias) @ fc2.weight.T + fc2.bias
    tokens = []
    for n in range(s.shape[1]):
        t = s[:, n:n + 1]
        for w, b in zip(net.mlp.weights, net.mlp.biases):
            t = torch.relu(t @ w[n] + b[n])  # final ReLU too
        tokens.append(t)
    return s, torch.stack(tokens, dim=1)


def test_small_extractor_default_layout_and_hand_counted_parameters():
    cfg = SmallExtractorConfig()
    assert (cfg.image_size, cfg.in_channels, cfg.num_units, cfg.token_dim, cfg.channels, cfg.hidden, cfg.mlp_hidden) == (
        32, 3, 10, 16, (32, 64, 64), 128, (64,))
    net = SmallExtractor(cfg)
    conv = lambda a, b: a * b * 9 + b  # noqa: E731 (3x3 with bias)
    bn = lambda c: 2 * c  # noqa: E731 (affine weight and bias)
    convs = conv(3, 32) + bn(32) + conv(32, 64) + bn(64) + conv(64, 64) + bn(64)
    fc = (64 * 4 * 4) * 128 + 128 + 128 * 10 + 10  # 32 px / 2^3 = 4
    mlp = 10 * ((1 * 64 + 64) + (64 * 16 + 16))
    assert sum(p.numel() for p in net.parameters()) == convs + fc + mlp
    assert [type(m).__name__ for m in net.cnn] == ["Conv2d", "BatchNorm2d", "ReLU"] * 3 + ["Flatten"]
    assert all((m.kernel_size, m.stride, m.padding) == ((3, 3), (2, 2), (1, 1)) for m in net.cnn if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("train", [False, True])
def test_small_extractor_forward_equals_reference(train):
    cfg = SmallExtractorConfig(image_size=8, in_channels=2, num_units=3, token_dim=4, channels=(3, 5), hidden=6,
                               mlp_hidden=(5, 3))
    net = SmallExtractor(cfg)
    _randomise(net)
    net.train(train)
    x = torch.randn(4, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    s, tokens = net(x)
    ref_s, ref_tokens = _extractor_reference(net, x, train)
    assert s.shape == (4, 3) and tokens.shape == (4, 3, 4)
    torch.testing.assert_close(s, ref_s)
    torch.testing.assert_close(tokens, ref_tokens)


@pytest.mark.parametrize("kw, field, text", [
    (dict(channels=()), "channels", "need at least one conv level"),
    (dict(image_size=12, channels=(4, 4, 4)), "image_size", "12 is not divisible by 2^3"),
    (dict(image_size=6, channels=(4, 4)), "image_size", "6 is not divisible by 2^2"),
])
def test_small_extractor_config_names_the_field(kw, field, text):
    with pytest.raises(ConfigError) as e:
        SmallExtractorConfig(**kw)
    assert e.value.field == field and e.value.message == text


def test_small_extractor_input_checks_name_it_and_cast_to_its_dtype():
    cfg = SmallExtractorConfig(image_size=8, in_channels=2, num_units=2, token_dim=3, channels=(4,), hidden=4,
                               mlp_hidden=(2,))
    net = SmallExtractor(cfg).eval()
    for bad in (torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 8, 4)):
        with pytest.raises(ValueError) as e:
            net(bad)
        assert str(e.value) == f"SmallExtractor: x must have shape [B, 2, 8, 8], got {tuple(bad.shape)}"
    s32, tok32 = net(torch.ones(2, 2, 8, 8, dtype=torch.float32))  # cast to the float64 weights
    s64, tok64 = net(torch.ones(2, 2, 8, 8))
    assert s32.dtype == tok32.dtype == torch.float64
    torch.testing.assert_close((s32, tok32), (s64, tok64))
    # finite=False: no host read of the batch here (the loss checks the data); a NaN propagates
    s, _ = net(torch.full((1, 2, 8, 8), float("nan")))
    assert torch.isnan(s).all()


def test_small_extractor_accepts_divisible_sizes():
    for size, chans in ((8, (4, 4, 4)), (4, (4, 4)), (6, (4,))):
        cfg = SmallExtractorConfig(image_size=size, channels=chans, num_units=2, token_dim=3, hidden=4, mlp_hidden=(2,))
        s, tok = SmallExtractor(cfg).eval()(torch.zeros(1, 3, size, size))
        assert s.shape == (1, 2) and tok.shape == (1, 2, 3)


def _fsq_reference(z: torch.Tensor, levels) -> torch.Tensor:
    """FSQ App. A.1: h = (L - 1)(1 - eps)/2, offset 0.5 for even L, shift = tan(offset / h); round; / (L // 2)."""
    out = []
    for i, L in enumerate(levels):
        h = (L - 1) * (1 - 1e-3) / 2
        offset = 0.0 if L % 2 else 0.5
        bounded = torch.tanh(z[..., i] + math.tan(offset / h)) * h - offset
        out.append(torch.round(bounded) / (L // 2))
    return torch.stack(out, dim=-1)


def test_fsq_tokens_equal_down_quantise_up():
    m = FSQTokens(6, (8, 5, 5))
    _randomise(m, seed=3)
    c = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(4)) * 2
    z = c @ m.down.weight.T + m.down.bias
    q = _fsq_reference(z, (8, 5, 5))
    torch.testing.assert_close(m(c), q @ m.up.weight.T + m.up.bias)
    assert (m.down.in_features, m.down.out_features, m.up.in_features, m.up.out_features) == (6, 3, 3, 6)
    assert sum(p.numel() for p in m.parameters()) == (6 * 3 + 3) + (3 * 6 + 6)


@pytest.mark.parametrize("levels", ["855", b"8", 5, None])
def test_fsq_tokens_refuses_levels_that_are_not_a_sequence(levels):
    with pytest.raises(TypeError, match=r"levels must be a sequence of FSQ levels \(ints >= 2\), got"):
        FSQTokens(4, levels)


def test_fsq_tokens_refuses_a_bad_token_dim_and_a_non_3d_input():
    with pytest.raises(ValueError, match=r"^token_dim must be a positive int, got 0$"):
        FSQTokens(0, (8, 5))
    with pytest.raises(ValueError, match=r"FSQTokens: tokens must be \(B, N, D\), got \(2, 4\)"):
        FSQTokens(4, (8, 5))(torch.zeros(2, 4))


# ---------------------------------------------------------------- schedule and DDIM spacing


def test_ldm_schedule_is_the_paper_linear_one():
    s = ldm_schedule()
    assert (s.kind, s.num_timesteps, s.beta_start, s.beta_end) == ("ldm_linear", 1000, 0.0015, 0.0155)


def test_ldm_ddim_pairs_by_hand():
    # c = 1000 // 30 = 33: t in {1, 34, ..., 991} (31 steps, more than asked, as LDM)
    pairs = ldm_ddim_pairs(1000, 30)
    ts = list(range(991, 0, -33))
    assert ts[-1] == 1 and len(ts) == 31
    assert pairs == list(zip(ts, ts[1:] + [0]))
    assert ldm_ddim_pairs(10, 4) == [(9, 7), (7, 5), (5, 3), (3, 1), (1, 0)]  # c = 2
    assert ldm_ddim_pairs(10, 2) == [(6, 1), (1, 0)]  # c = 5
    assert ldm_ddim_pairs(5, 1) == [(1, 0)]  # c = 5: only t = 0 + 1


@pytest.mark.parametrize("T, n, text", [
    (10, 10, "num_steps=10: the LDM DDIM spacing of 10 steps over T=10 (c=1) reaches t=10, outside the schedule [0, 9]"),
    (10, 3, "(c=3) reaches t=10"),
    (10, 11, "num_steps must be at most num_timesteps=10, got 11"),
])
def test_ldm_ddim_pairs_refusals(T, n, text):
    with pytest.raises(ValueError) as e:
        ldm_ddim_pairs(T, n)
    assert text in str(e.value)


@pytest.mark.parametrize("T, n, message", [(0, 1, "num_timesteps must be a positive int, got 0"),
                                          (10, 0, "num_steps must be a positive int, got 0"),
                                          (10, True, "num_steps must be a positive int, got True")])
def test_ldm_ddim_pairs_validates_its_ints(T, n, message):
    with pytest.raises(ValueError) as e:
        ldm_ddim_pairs(T, n)
    assert str(e.value) == message


# ---------------------------------------------------------------- EncDiffConfig

U, D = 3, 4


def _unet(S=8, cin=3, cout=3, ctx=D):
    return UNetConfig(image_size=S, in_channels=cin, out_channels=cout, model_channels=8, channel_mult=(1,),
                      num_res_blocks=1, attention_resolutions=(), num_heads=1, num_groups=4, context_dim=ctx)


def _cfg(**kw) -> EncDiffConfig:
    base = dict(unet=_unet(), small_extractor=SmallExtractorConfig(image_size=16, num_units=U, token_dim=D,
                                                                   channels=(4,), hidden=4, mlp_hidden=(2,)),
                first_stage=VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=16,
                                                num_groups=4),
                dyga=DyGAConfig(num_units=U, token_dim=D, n_components=2, min_mass=2),
                schedule=NoiseScheduleConfig(kind="ldm_linear", num_timesteps=40, beta_start=0.0015, beta_end=0.0155),
                sample_steps=4)
    base.update(kw)
    return EncDiffConfig(**base)


def test_encdiff_defaults_are_tables_7_to_9():
    c = EncDiffConfig()
    assert c.small_extractor is None and c.extractor_in_use is c.extractor
    assert (c.num_units, c.token_dim, c.image_size, c.image_channels) == (20, 32, 64, 3)
    assert (c.loss_type, c.conditioning, c.fsq_levels, c.sample_steps, c.ddim_spacing, c.eta) == (
        "l1", "dyga", (8, 5, 5), 100, "uniform", 0.0)
    assert (c.scale_by_std, c.backbone_dropout, c.token_bank_size) == (True, 0.0, 1024)
    assert (c.schedule.kind, c.schedule.num_timesteps, c.schedule.beta_start, c.schedule.beta_end) == (
        "ldm_linear", 1000, 0.0015, 0.0155)
    assert (c.unet.skip_dropout, c.unet.skip_dropout_placement, c.unet.context_dim) == (0.2, "reference_code", 32)
    assert c.first_stage is not None and c.first_stage.downsample_factor == 4


def test_encdiff_properties_follow_the_extractor_in_use():
    c = _cfg()
    assert c.extractor_in_use is c.small_extractor
    assert (c.num_units, c.token_dim, c.image_size, c.image_channels) == (U, D, 16, 3)
    sx = SmallExtractorConfig(image_size=8, in_channels=1, num_units=2, token_dim=5, channels=(4,), hidden=4, mlp_hidden=(2,))
    c = _cfg(small_extractor=sx, first_stage=None, unet=_unet(8, 1, 1, 5), conditioning="none")
    assert (c.num_units, c.token_dim, c.image_size, c.image_channels) == (2, 5, 8, 1)


@pytest.mark.parametrize("kw, field, text", [
    (dict(unet=_unet(ctx=5)), "unet.context_dim", "5 != the extractor's token dim 4"),
    (dict(dyga=DyGAConfig(num_units=2, token_dim=D, n_components=2, min_mass=2)), "dyga.num_units",
     "DyGA is set for (2 units, 4-d) but the extractor gives (3, 4-d)"),
    (dict(dyga=DyGAConfig(num_units=U, token_dim=5, n_components=2, min_mass=2), unet=_unet()), "dyga.num_units",
     "DyGA is set for (3 units, 5-d)"),
    (dict(first_stage=VQAutoencoderConfig(image_size=32, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=16, num_groups=4)),
     "first_stage.image_size", "the first stage reads 3x32px, the extractor 3x16px"),
    (dict(first_stage=VQAutoencoderConfig(image_size=16, in_channels=1, ch=8, ch_mult=(1, 2), num_res_blocks=1,
                                          n_embed=16, num_groups=4)),
     "first_stage.image_size", "the first stage reads 1x16px, the extractor 3x16px"),
    (dict(unet=_unet(S=16)), "unet.image_size", "the U-Net must map 3x8x8 latents, is set for 3->3 channels at 16px"),
    (dict(unet=_unet(cin=4)), "unet.image_size", "is set for 4->3 channels at 8px"),
    (dict(unet=_unet(cout=4)), "unet.image_size", "is set for 3->4 channels at 8px"),
    (dict(first_stage=None), "unet.image_size", "the U-Net must map 3x16x16 latents, is set for 3->3 channels at 8px"),
    (dict(ddim_spacing="ldm", sample_steps=40), "sample_steps", "reaches t=40, outside the schedule [0, 39]"),
])
def test_every_encdiff_validation_branch_names_its_field(kw, field, text):
    with pytest.raises(ConfigError) as e:
        _cfg(**kw)
    assert e.value.field == field
    assert text in e.value.message


def test_encdiff_accepts_what_the_branches_allow():
    # DyGA sizes are only checked when DyGA conditions the model
    c = _cfg(conditioning="none", dyga=DyGAConfig(num_units=7, token_dim=D, n_components=2, min_mass=2))
    assert c.dyga.num_units == 7
    c = _cfg(conditioning="fsq", dyga=DyGAConfig(num_units=U, token_dim=9, n_components=2, min_mass=2))
    assert c.dyga.token_dim == 9
    assert _cfg(first_stage=None, unet=_unet(S=16)).unet.image_size == 16
    assert _cfg(ddim_spacing="ldm", sample_steps=4).sample_steps == 4  # c = 10: t = 31, 21, 11, 1
    assert _cfg(ddim_spacing="uniform", sample_steps=40).sample_steps == 40
