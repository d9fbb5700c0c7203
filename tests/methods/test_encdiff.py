"""EncDiff + DyGA + Skip Dropout (the DyGA paper's Alg. 1, Eq. 2, Eq. 7, Tables 7-9): the loss against
an independent computation, Skip Dropout and backbone dropout placement and rates, the anchor refresh
(BatchNorm in eval, epoch boundaries), the LDM DDIM spacing, verbs (attention probabilities,
interchange, condition reliance), FSQ tokens, save/load, recipes and bad inputs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from diffrep.config import ConfigError
from diffrep.diffusion.schedules import NoiseScheduleConfig
from diffrep.methods.dyga import DyGAConfig
from diffrep.methods.encdiff import EncDiff, EncDiffConfig, ldm_ddim_pairs
from diffrep.methods.encdiff_nets import SmallExtractorConfig
from diffrep.nn.unet import UNetConfig, unet_preset
from diffrep.nn.vq import VQAutoencoderConfig

from helpers import untrained_on_purpose

U, D = 4, 8


def tiny(first_stage=True, **kw) -> EncDiffConfig:
    """8 px latents (16 px images through an f = 2 VQ) or 16 px pixel space; U-Net levels at S and S/2,
    cross-attention at S/2 and the middle block, so "reference_code" drops the S and S/2 skips."""
    S = 8 if first_stage else 16
    un = UNetConfig(image_size=S, in_channels=3, out_channels=3, model_channels=16, channel_mult=(1, 2),
                    num_res_blocks=1, attention_resolutions=(S // 2,), num_heads=2, num_groups=8, context_dim=D,
                    skip_dropout=0.2, skip_dropout_placement="reference_code", resblock_updown=True)
    sx = SmallExtractorConfig(image_size=16, num_units=U, token_dim=D, channels=(8, 16), hidden=16, mlp_hidden=(8,))
    vq = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=16, num_groups=4) if first_stage else None
    base = dict(unet=un, small_extractor=sx, first_stage=vq, dyga=DyGAConfig(num_units=U, token_dim=D, n_components=2, min_mass=2),
                schedule=NoiseScheduleConfig(kind="ldm_linear", num_timesteps=40, beta_start=0.0015, beta_end=0.0155),
                sample_steps=4)
    return EncDiffConfig(**{**base, **kw})


def images(n=8, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_table8_skip_dropout_placement_per_the_issue():
    """Read per resolution, the paper's rule drops nothing in the Table 8 U-Net (cross-attention at 16, 8,
    4 px and the 2 px middle block... and the decoder's 2 px blocks have none: the spec's per-block
    reading drops those); the authors' code drops the 16 and 8 px skips (6 of 12)."""
    ref = unet_preset("dyga-table8", skip_dropout_placement="reference_code")
    assert ref.skip_dropout_levels() == {16, 8}
    assert unet_preset("dyga-table8", skip_dropout_placement="paper").skip_dropout_levels() == {2}
    m = untrained_on_purpose(EncDiff(EncDiffConfig(first_stage=VQAutoencoderConfig(ch=8, num_groups=4, n_embed=16),
                              extractor=dataclasses.replace(EncDiffConfig().extractor, preset="encdiff", num_units=20),
                              dyga=DyGAConfig(token_dim=16), unet=dataclasses.replace(ref, context_dim=16))))
    kinds = [type(sd).__name__ for sd in m.unet.skip_dropouts]
    assert kinds == ["Identity"] * 6 + ["SkipDropout"] * 6           # decoder order: 2, 4, 8, 16 px


def test_skip_dropout_drops_exactly_the_configured_skips_at_the_rate_and_is_identity_in_eval():
    m = untrained_on_purpose(EncDiff(tiny(first_stage=False, conditioning="none")))
    seen = {}
    for i, blk in enumerate(m.unet.output_blocks):
        blk.register_forward_pre_hook(lambda mod, args, i=i: seen.__setitem__(i, args[0].detach().clone()))
    skips = {}
    for i, sd in enumerate(m.unet.skip_dropouts):
        sd.register_forward_hook(lambda mod, args, out, i=i: skips.__setitem__(i, (args[0].detach(), out.detach())))
    x, t = torch.randn(64, 3, 16, 16), torch.full((64,), 5)
    ctx = torch.rand(64, U, D)
    m.train()
    torch.manual_seed(0)
    m.unet(x, t, context=ctx)
    levels = [16 // 2 ** (1 - i // 2) for i in range(len(m.unet.output_blocks))]   # 8, 8, 16, 16... per block
    res = m.config.unet
    assert [type(s).__name__ == "SkipDropout" for s in m.unet.skip_dropouts] == [r in res.skip_dropout_levels() for r in
                                                                                [8, 8, 16, 16]]
    dropped = kept = 0
    for i, (inp, out) in skips.items():
        if type(m.unet.skip_dropouts[i]).__name__ == "SkipDropout":
            ratio = out / inp                                          # 0 or 1 / 0.8 per (sample, channel)
            per = ratio.flatten(2)
            assert torch.allclose(per, per[..., :1].expand_as(per), atol=1e-5)   # one draw per channel
            vals = per[..., 0]
            assert bool(((vals.abs() < 1e-6) | ((vals - 1.25).abs() < 1e-5)).all())
            dropped += int((vals.abs() < 1e-6).sum())
            kept += vals.numel()
        else:
            assert torch.equal(inp, out)
    rate = dropped / kept                                              # 64 x (16 + 16 + 32 + 32) draws
    assert abs(rate - 0.2) < 4 * (0.2 * 0.8 / kept) ** 0.5
    assert levels  # the placement list above is the one the U-Net built
    m.eval()
    a = m.unet(x, t, context=ctx)
    torch.manual_seed(1)
    assert torch.equal(a, m.unet(x, t, context=ctx))


def test_backbone_dropout_drops_only_the_backbone_channels_at_the_sd_levels():
    m = untrained_on_purpose(EncDiff(tiny(first_stage=False, conditioning="none", backbone_dropout=0.5,
                     unet=dataclasses.replace(tiny(first_stage=False).unet, skip_dropout=0.0))))
    got = {}
    for i, blk in enumerate(m.unet.output_blocks):
        blk.register_forward_pre_hook(lambda mod, args, i=i: got.__setitem__(i, args[0].detach().clone()), prepend=False)
    ref = {}
    m.unet.output_blocks[0].register_forward_pre_hook(lambda mod, args: ref.__setitem__(0, args[0].clone()), prepend=True)
    m.train()
    x, t, ctx = torch.randn(16, 3, 16, 16), torch.full((16,), 3), torch.rand(16, U, D)
    m.unet(x, t, context=ctx)
    # reference_code levels of this U-Net: 16 and 8 px (no attention factor matches) -> all 4 decoder blocks
    assert len(m._bd_hooks) == 4
    # block 0: h = middle output (32 ch), skip 32 ch; the hook saw the input before the capture hook ran
    before, after = ref[0], got[0]
    h_b, h_a = before[:, :32], after[:, :32]
    ratio = (h_a / h_b).flatten(2)[..., 0]
    assert bool(((ratio.abs() < 1e-5) | ((ratio - 2.0).abs() < 1e-4)).all())
    assert torch.equal(before[:, 32:], after[:, 32:])                 # the skip half untouched
    m.eval()
    assert torch.equal(m.unet(x, t, context=ctx), m.unet(x, t, context=ctx))


@pytest.mark.parametrize("loss_type", ["l1", "l2"])
def test_loss_equals_an_independent_eq2_computation(loss_type):
    m = untrained_on_purpose(EncDiff(tiny(loss_type=loss_type, conditioning="none", scale_by_std=False)))
    with torch.no_grad():
        for p in m.unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    m.eval()
    x = images(6)
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    t = torch.randint(0, 40, (6,), generator=g)
    noise = torch.randn(6, 3, 8, 8, generator=g)
    with torch.no_grad():
        z0 = m.first_stage.encode(x)
        betas = torch.linspace(0.0015 ** 0.5, 0.0155 ** 0.5, 40, dtype=torch.float64) ** 2
        ab = torch.cumprod(1 - betas, 0)[t].float()[:, None, None, None]
        zt = ab.sqrt() * z0 + (1 - ab).sqrt() * noise
        c = m.extractor(x)[1]
        err = m.unet(zt, t, context=c) - noise
        want = err.abs().mean() if loss_type == "l1" else (err ** 2).mean()
    torch.testing.assert_close(out["loss"], want, rtol=1e-5, atol=1e-6)


def test_scale_by_std_is_set_from_the_first_training_batch():
    m = untrained_on_purpose(EncDiff(tiny()))
    x = images(8)
    m.train()
    m.loss(x, step=0)
    with torch.no_grad():
        z = m.first_stage.encode(x)
    torch.testing.assert_close(m.scale_factor, 1 / z.flatten().std())
    s = float(m.scale_factor)
    m.loss(images(8, seed=1), step=1)
    assert float(m.scale_factor) == s
    torch.testing.assert_close(m.to_latent(x), z * s)


def test_anchor_refresh_at_epoch_boundaries_with_batchnorm_in_eval():
    m = untrained_on_purpose(EncDiff(tiny(dyga=DyGAConfig(num_units=U, token_dim=D, n_components=2, min_mass=2, refresh_every=2))))
    data = images(40)
    m.attach_anchor_data(data, steps_per_epoch=2, batch_size=16)
    bn = [mod for mod in m.extractor.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    m.train()
    for step in range(4):
        if step == 4 - 0:
            break
        stats = [b.running_mean.clone() for b in bn]
        out = m.loss(data[:8], step=step)
        if step == 0:
            assert not bool(m.dyga.fitted) and "anchors_mean" not in out
    assert len(m.anchor_history) == 0                                  # refresh_every = 2 epochs = 4 steps
    stats = [b.running_mean.clone() for b in bn]
    n_before = [b.num_batches_tracked.clone() for b in bn]
    out = m.loss(data[:8], step=4)
    assert len(m.anchor_history) == 1 and m.anchor_history[0]["epoch"] == 2 and m.training
    assert out["anchors_mean"] == float(m.dyga.n_anchors.float().mean())
    # the refresh itself did not touch BatchNorm statistics (only this step's training forward did: +1)
    assert [int(b.num_batches_tracked - n) for b, n in zip(bn, n_before)] == [1] * len(bn)
    # the anchors were fitted on eval-mode features of the whole dataset
    m2 = untrained_on_purpose(EncDiff(m.config))
    m2.load_state_dict(m.state_dict())
    assert stats is not None and torch.equal(m2.dyga.anchors, m.dyga.anchors)
    feats = m.features(data)
    assert feats.shape == (40, U, D)
    torch.testing.assert_close(m.dyga.norm_lo, feats.amin(dim=(0, 2)))


def test_ldm_ddim_spacing():
    pairs = ldm_ddim_pairs(1000, 100)
    assert pairs[0] == (991, 981) and pairs[-1] == (1, 0) and len(pairs) == 100
    m = untrained_on_purpose(EncDiff(tiny(ddim_spacing="ldm")))
    seen = []
    m._eps = lambda z, t, c: (seen.append(int(t[0])), torch.zeros_like(z))[1]  # the sampling loop's prediction
    m.generate(torch.rand(2, U, D), generator=torch.Generator().manual_seed(0))
    assert seen == [31, 21, 11, 1]


def test_attention_maps_are_probabilities_over_tokens():
    m = untrained_on_purpose(EncDiff(tiny()))
    with torch.no_grad():
        for p in m.unet.parameters():
            p.add_(0.3 * torch.randn_like(p))
    maps = m.attention_maps(images(2), generator=torch.Generator().manual_seed(0), steps=2)
    assert maps.shape == (2, U, 16, 16)
    torch.testing.assert_close(maps.sum(1), torch.ones(2, 16, 16), rtol=1e-5, atol=1e-5)   # softmax over tokens
    assert float(maps.std()) > 1e-4


def test_attention_capture_reproduces_the_fused_attention():
    """The probabilities the hook recomputes give the fused path's output when applied to v."""
    from diffrep.nn.layers import _attend

    m = untrained_on_purpose(EncDiff(tiny()))
    blk = [mod for mod in m.unet.modules() if type(mod).__name__ == "SpatialTransformer"][0].blocks[0]
    attn = blk.attn2
    h, ctx = torch.randn(2, 16, attn.to_q.in_features), torch.rand(2, U, D)
    q = attn.to_q(h).reshape(2, 16, attn.heads, -1).transpose(1, 2)
    k = attn.to_k(ctx).reshape(2, U, attn.heads, -1).transpose(1, 2)
    v = attn.to_v(ctx).reshape(2, U, attn.heads, -1).transpose(1, 2)
    p = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1)
    mine = (p @ v).transpose(1, 2).reshape(2, 16, -1)
    torch.testing.assert_close(mine, _attend(attn.to_q(h), attn.to_k(ctx), attn.to_v(ctx), attn.heads),
                               rtol=1e-5, atol=1e-6)


def test_interchange_with_the_same_image_repeats_the_generation_and_swaps_one_unit():
    m = untrained_on_purpose(EncDiff(tiny()))
    x, y = images(2), images(2, seed=5)
    rows = m.interchange(x, x, units=[0, 2], generator=torch.Generator().manual_seed(3))
    ref = m.generate(m.tokens(x), generator=torch.Generator().manual_seed(3))
    assert rows.shape == (2, 2, 3, 16, 16)
    torch.testing.assert_close(rows[0], ref)
    torch.testing.assert_close(rows[1], ref)
    calls = []
    real = m.generate
    m.generate = lambda c, **kw: (calls.append(c.clone()), real(c, **kw))[1]
    m.interchange(x, y, units=[1], generator=torch.Generator().manual_seed(3))
    a, b = m.tokens(x), m.tokens(y)
    want = a.clone()
    want[:, 1] = b[:, 1]
    torch.testing.assert_close(calls[0], want)
    frames = real.__self__.interpolate(x, y, alphas=(0.0, 1.0), generator=torch.Generator().manual_seed(3))
    assert frames.shape == (2, 2, 3, 16, 16)


def test_condition_reliance_is_one_when_tokens_are_identical_across_the_batch():
    m = untrained_on_purpose(EncDiff(tiny()))
    x = images(1).repeat(6, 1, 1, 1)
    r = m.condition_reliance(x, t_range=(10, 30), generator=torch.Generator().manual_seed(0))
    assert r["reliance"] == pytest.approx(1.0, abs=1e-6)


def test_fsq_tokens_lie_on_the_codebook_grid():
    m = untrained_on_purpose(EncDiff(tiny(conditioning="fsq", fsq_levels=(5, 3))))
    c = torch.rand(7, U, D)
    codes = m.fsq.fsq(m.fsq.down(c))
    grid = torch.tensor([[-1.0, -0.5, 0.0, 0.5, 1.0], [-1.0, 0.0, 1.0, 9, 9]])
    for j in range(2):
        assert bool((codes[..., j, None] - grid[j]).abs().min(-1).values.lt(1e-6).all())
    torch.testing.assert_close(m.condition(c), m.fsq.up(codes))


def test_save_load_round_trip_keeps_anchors_scale_and_outputs(tmp_path):
    m = untrained_on_purpose(EncDiff(tiny()))
    data = images(30)
    m.train()
    m.loss(data[:8], step=0)
    m.refresh_anchors(data, batch_size=16)
    m.eval()
    d = m.save_pretrained(tmp_path / "m")
    m2 = EncDiff.from_pretrained(d)
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    m2.eval()
    torch.testing.assert_close(m2.tokens(data[:4]), m.tokens(data[:4]), rtol=0, atol=0)
    torch.testing.assert_close(m2.encode(data[:4]), m.encode(data[:4]), rtol=0, atol=0)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    torch.testing.assert_close(m2.sample(2, generator=g()), m.sample(2, generator=g()), rtol=0, atol=0)
    codes = m.pca_codes(data)
    assert codes.shape == (30, U) and codes.dtype == torch.float64
    torch.testing.assert_close(codes.mean(0), torch.zeros(U, dtype=torch.float64), atol=1e-6, rtol=0)


def test_recipes_and_bad_inputs():
    from diffrep.recipes import get_recipe

    for name in ("encdiff/shapes3d", "encdiff/mpi3d-toy", "encdiff/cars3d", "encdiff/celeba64",
                 "encdiff/mpi3d-toy-baseline", "encdiff/mpi3d-toy-dyga", "encdiff/mpi3d-toy-sd"):
        cfg = get_recipe(name).make_config()
        assert cfg.train.lr == 1e-4 and cfg.train.ema_decay == 0.9999
        assert cfg.train.batch_size == (64 if "celeba" in name else 512)
        assert cfg.model.dyga.refresh_every == (5 if "cars3d" in name else 1)
    arms = {n: get_recipe(f"encdiff/mpi3d-toy{n}").make_config().model for n in ("-baseline", "-dyga", "-sd", "")}
    assert [(a.conditioning, a.unet.skip_dropout) for a in arms.values()] == [("none", 0.0), ("dyga", 0.0),
                                                                            ("none", 0.2), ("dyga", 0.2)]
    with pytest.raises(ValueError, match="first_stage_path"):
        get_recipe("encdiff/shapes3d").build(get_recipe("encdiff/shapes3d").make_config())
    with pytest.raises(ConfigError):
        tiny(dyga=DyGAConfig(num_units=U + 1, token_dim=D))
    with pytest.raises(ConfigError):
        tiny(unet=dataclasses.replace(tiny().unet, context_dim=D + 1))
    m = untrained_on_purpose(EncDiff(tiny()))
    with pytest.raises(ValueError, match="no tokens"):
        m.sample(2)
    with pytest.raises(ValueError):
        m.loss(torch.rand(2, 3, 8, 8), step=0)
    with pytest.raises(ValueError, match="unit"):
        m.interchange(images(1), images(1), units=[U])
    with pytest.raises(ValueError, match="tokens"):
        m.generate(torch.rand(2, U + 1, D))
    with pytest.raises(ValueError, match="t_range"):
        m.condition_reliance(images(2), t_range=(30, 10))
    # more DDIM steps than the schedule has timesteps: named by the argument given (it read "num_steps must be an
    # int in [1, T]", the spacing's own parameter)
    T = m.schedule.num_timesteps
    for call in (lambda: m.generate(torch.zeros(1, U, D), steps=T + 1), lambda: m.reconstruct(images(1), steps=T + 1)):
        with pytest.raises(ValueError, match=rf"^steps must be at most the schedule's {T} timesteps \(DDIM skips steps, "
                                             rf"it adds none\), got {T + 1}$"):
            call()
    for call in (lambda: m.tokens(images(1), aligned="no"), lambda: m.pca_codes(images(2), aligned=0),
                 lambda: m.representation_fn(images(2), aligned="no")):
        with pytest.raises(TypeError, match="aligned must be True or False"):   # "no" read as True
            call()


def test_a_recipe_loads_the_frozen_first_stage_from_a_vq_run(tmp_path):
    """build() adopts the checkpoint's VQ config (minus its training-only discriminator) and weights."""
    from diffrep.nn.vq import VQAutoencoder
    from diffrep.recipes.encdiff import EncDiffRecipeConfig, build

    vq_cfg = dataclasses.replace(tiny().first_stage, disc_weight=0.75, disc_layers=1, disc_channels=8)
    torch.manual_seed(3)
    vq = VQAutoencoder(vq_cfg)
    vq.save_pretrained(tmp_path / "vq")
    cfg = EncDiffRecipeConfig(model=tiny(first_stage=True), dataset="shapes3d_subgrid", first_stage_path=str(tmp_path / "vq"))
    mp = pytest.MonkeyPatch()
    mp.setattr("diffrep.recipes.encdiff.Shapes3DSubgrid", lambda pool=4: images(64))
    try:
        model, ds = build(cfg)
    finally:
        mp.undo()
    assert model.first_stage.discriminator is None and not any(p.requires_grad for p in model.first_stage.parameters())
    for k, v in model.first_stage.state_dict().items():
        assert torch.equal(v, vq.state_dict()[k]), k
    assert model._anchor_data[1] == len(ds) // cfg.train.batch_size


def test_encdiff_has_the_method_surface():
    from diffrep.methods import EncDiff as Exported
    from diffrep.methods.base import Method, surface_problems

    assert Exported is EncDiff and surface_problems(EncDiff, Method) == []


def test_loss_logs_anchor_counts_and_uses_the_generator_for_the_gumbel_draw():
    """Against the survivors of the EncDiff mutation run (benches/results/mutation_encdiff_2026-12-06.md)."""
    cfg = tiny(dyga=DyGAConfig(num_units=U, token_dim=D, n_components=2, min_mass=2, gumbel_input="responsibility"))
    m = untrained_on_purpose(EncDiff(cfg))
    data = images(40)
    m.refresh_anchors(data, batch_size=16)
    m.eval()                                   # no dropout, BatchNorm fixed; DyGA itself set to training below
    m.dyga.train()
    outs = [m.loss(data[:8], step=3, generator=torch.Generator().manual_seed(9)) for _ in range(2)]
    assert float(outs[0]["loss"].detach()) == float(outs[1]["loss"].detach())
    n = m.dyga.n_anchors
    assert outs[0]["anchors_min"] == float(n.min()) and outs[0]["anchors_max"] == float(n.max())
    assert outs[0]["dyga_delta_mean"] == m.dyga.last_align["delta_mean"]
    c = m.extractor(data[:8])[1]
    a = m.condition(c, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, m.condition(c, generator=torch.Generator().manual_seed(4)))


def test_compat_fits_on_the_sanity_check_batches_then_every_epoch():
    """[C] row 10: Lightning's sanity check (2 validation batches) fits the anchors before training, on
    raw tokens of the first images in dataset order; then the code refits after every epoch. Paper
    mode has no anchors before the end of epoch r."""
    cfg = DyGAConfig(num_units=U, token_dim=D, n_components=2, min_mass=2, compat="dis-dis", sanity_check_points=24)
    m = untrained_on_purpose(EncDiff(tiny(first_stage=False, dyga=cfg)))
    data = images(40)
    m.attach_anchor_data(data, steps_per_epoch=2, batch_size=8)
    m.train()
    feats0 = m.features(data[:24])
    m.loss(data[:8], step=0)
    assert len(m.anchor_history) == 1 and m.anchor_history[0]["n_points"] == 24
    assert m.anchor_history[0]["epoch"] == 0
    torch.testing.assert_close(m.dyga.norm_hi, feats0.amax(dim=(0, 2)))   # fitted on the first 24 raw tokens
    m.loss(data[:8], step=0)                                              # step 0 again (accumulation): no refit
    assert len(m.anchor_history) == 1
    m.loss(data[:8], step=1)
    assert len(m.anchor_history) == 1
    m.loss(data[:8], step=2)                                              # end of epoch 1: refit on all 40
    assert len(m.anchor_history) == 2 and m.anchor_history[1]["n_points"] == 40 and m.anchor_history[1]["epoch"] == 1
    none = untrained_on_purpose(EncDiff(tiny(first_stage=False, dyga=DyGAConfig(**{**cfg.to_dict(), "sanity_check_points": 0}))))
    none.attach_anchor_data(data, steps_per_epoch=2, batch_size=8)
    none.loss(data[:8], step=0)
    assert not bool(none.dyga.fitted)
    paper = untrained_on_purpose(EncDiff(tiny(first_stage=False, dyga=DyGAConfig(num_units=U, token_dim=D, n_components=2, min_mass=2))))
    paper.attach_anchor_data(data, steps_per_epoch=2, batch_size=8)
    paper.loss(data[:8], step=0)
    assert not bool(paper.dyga.fitted) and paper.anchor_history == []
    fitted = untrained_on_purpose(EncDiff(tiny(first_stage=False, dyga=cfg)))                   # anchors already there (a loaded model)
    fitted.refresh_anchors(data, epoch=3, batch_size=8)
    fitted.attach_anchor_data(data, steps_per_epoch=2, batch_size=8)
    fitted.loss(data[:8], step=0)
    assert [h["epoch"] for h in fitted.anchor_history] == [3]
    each = untrained_on_purpose(EncDiff(tiny(first_stage=False, dyga=DyGAConfig(num_units=U, token_dim=D, n_components=2, min_mass=2))))
    each.attach_anchor_data(data, steps_per_epoch=1, batch_size=8)         # one step per epoch, r = 1
    for step in (0, 1, 1, 2):
        each.loss(data[:8], step=step)
    assert [h["epoch"] for h in each.anchor_history] == [1, 2]


def test_grids_with_ddim_noise_repeat_under_a_seed_and_share_the_step_noise_across_rows():
    """eta > 0: interchange / interpolate draw each row's DDIM step noise from the given generator, rewound per
    row, so a seeded call repeats whatever the global stream does, and rows with equal tokens are equal."""
    m = untrained_on_purpose(EncDiff(tiny(first_stage=False, eta=0.7))).eval()
    x, y = images(2), images(2, seed=5)
    torch.manual_seed(1)
    first = m.interchange(x, y, units=[0, 1], generator=torch.Generator().manual_seed(3), steps=3)
    torch.manual_seed(2)
    again = m.interchange(x, y, units=[0, 1], generator=torch.Generator().manual_seed(3), steps=3)
    assert torch.equal(first, again)
    same = m.interchange(x, x, units=[0, 3], generator=torch.Generator().manual_seed(3), steps=3)
    assert torch.equal(same[0], same[1])
    torch.manual_seed(7)  # no generator: the global CPU stream, rewound per row the same way
    same = m.interchange(x, x, units=[0, 3], steps=3)
    assert torch.equal(same[0], same[1])
    g = torch.Generator().manual_seed(4)
    x_T = torch.randn((2, 3, 16, 16), generator=g)
    want = m.generate(m.tokens(x), x_T=x_T, steps=3, generator=g)
    frames = m.interpolate(x, x, alphas=(0.0, 0.5), generator=torch.Generator().manual_seed(4), steps=3)
    torch.testing.assert_close(frames[0], want, rtol=0, atol=0)
    assert torch.equal(frames[0], frames[1])
