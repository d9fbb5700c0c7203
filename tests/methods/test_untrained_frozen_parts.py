"""A frozen pre-trained part that was never loaded is refused, never used silently (docs/architecture.md#frozen-parts):
EncDiff built with a VQ first stage refuses every verb until ``load_first_stage`` (or
``use_untrained_frozen_parts``, the recipes' ``allow_untrained_first_stage``); the state is saved with the
weights, and weights saved before it existed load as loaded."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file, save_file

from diffrep.methods.encdiff import EncDiff, EncDiffConfig
from diffrep.methods.encdiff_nets import SmallExtractorConfig
from diffrep.nn import frozen_parts
from diffrep.nn.unet import UNetConfig
from diffrep.nn.vq import VQAutoencoder, VQAutoencoderConfig

UNTRAINED_STAGE = r"EncDiff: the first stage \(the frozen VQ autoencoder, DyGA Table 7\) still holds its random initialisation"


def _config(first_stage: bool = True) -> EncDiffConfig:
    S = 8 if first_stage else 16
    un = UNetConfig(image_size=S, in_channels=3, out_channels=3, model_channels=8, channel_mult=(1,), num_res_blocks=1,
                    attention_resolutions=(S,), num_heads=1, num_groups=4, context_dim=4)
    sx = SmallExtractorConfig(image_size=16, num_units=2, token_dim=4, channels=(4, 8), hidden=8, mlp_hidden=(4,))
    vq = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=8, num_groups=4) \
        if first_stage else None
    return EncDiffConfig(unet=un, small_extractor=sx, first_stage=vq, conditioning="none", sample_steps=2,
                         scale_by_std=False)


def _images(n=2):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _verbs(m):
    x = _images()
    return {"loss": lambda: m.loss(x, step=0), "encode": lambda: m.encode(x), "tokens": lambda: m.tokens(x),
            "to_latent": lambda: m.to_latent(x), "from_latent": lambda: m.from_latent(torch.zeros(1, 3, 8, 8)),
            "generate": lambda: m.generate(torch.zeros(1, 2, 4)), "reconstruct": lambda: m.reconstruct(x),
            "condition_reliance": lambda: m.condition_reliance(x)}


@pytest.mark.parametrize("verb", list(_verbs(None)))
def test_every_verb_refuses_a_first_stage_never_loaded_and_says_how_to_load_it(verb):
    m = EncDiff(_config())
    with pytest.raises(ValueError, match=UNTRAINED_STAGE) as e:
        _verbs(m)[verb]()
    assert "model.load_first_stage(DIR)" in str(e.value) and "--first_stage_path DIR" in str(e.value)
    assert "model.use_untrained_frozen_parts()" in str(e.value)


def test_a_loaded_first_stage_runs_with_the_run_s_weights_and_survives_save_and_load(tmp_path):
    torch.manual_seed(1)
    vq = VQAutoencoder(_config().first_stage)
    vq.save_pretrained(tmp_path / "vq")
    m = EncDiff(_config())
    m.load_first_stage(tmp_path / "vq")
    assert frozen_parts.state(m, "first_stage") == frozen_parts.LOADED
    x = _images()
    # the latent is the VQ run's own encoding (scale 1: scale_by_std off), not a random autoencoder's
    torch.testing.assert_close(m.to_latent(x), vq._encode(x), rtol=0, atol=0)
    m.loss(x, step=0)
    d = m.save_pretrained(tmp_path / "m")
    back = EncDiff.from_pretrained(d)
    assert frozen_parts.state(back, "first_stage") == frozen_parts.LOADED
    torch.testing.assert_close(back.to_latent(x), vq._encode(x), rtol=0, atol=0)


def test_untrained_on_purpose_is_saved_and_a_model_saved_untrained_still_refuses(tmp_path):
    chosen = EncDiff(_config())
    chosen.use_untrained_frozen_parts()
    assert int(chosen.first_stage_source) == frozen_parts.CHOSEN
    chosen.loss(_images(), step=0)
    back = EncDiff.from_pretrained(chosen.save_pretrained(tmp_path / "chosen"))
    assert frozen_parts.state(back, "first_stage") == frozen_parts.CHOSEN
    back.encode(_images())
    fresh = EncDiff.from_pretrained(EncDiff(_config()).save_pretrained(tmp_path / "fresh"))
    with pytest.raises(ValueError, match=UNTRAINED_STAGE):
        fresh.encode(_images())


def test_weights_saved_before_the_state_existed_load_as_loaded(tmp_path):
    m = EncDiff(_config())
    m.use_untrained_frozen_parts()
    d = m.save_pretrained(tmp_path / "old")
    state = load_file(str(d / "model.safetensors"))
    del state["first_stage_source"]                 # what a file written before 2026-12-08 holds
    save_file(state, str(d / "model.safetensors"))
    back = EncDiff.from_pretrained(d)               # strict: the missing key is not an error
    assert frozen_parts.state(back, "first_stage") == frozen_parts.LOADED
    assert int(back.first_stage_source) == frozen_parts.LOADED
    back.encode(_images())


def test_a_corrupted_state_is_named(tmp_path):
    d = EncDiff(_config()).save_pretrained(tmp_path / "bad")
    state = load_file(str(d / "model.safetensors"))
    state["first_stage_source"] = torch.tensor(7, dtype=torch.int8)
    save_file(state, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match=r"first_stage_source = 7: not a frozen-part state"):
        EncDiff.from_pretrained(d)


def test_a_pixel_space_model_has_no_first_stage_to_refuse():
    m = EncDiff(_config(first_stage=False))
    assert not hasattr(m, "first_stage_source")
    m.use_untrained_frozen_parts()                  # nothing to mark
    m.loss(_images(), step=0)


def test_the_recipe_flag_marks_the_stage_untrained_on_purpose(monkeypatch):
    from diffrep.recipes.encdiff import EncDiffRecipeConfig, build

    monkeypatch.setattr("diffrep.recipes.encdiff.Shapes3DSubgrid", lambda pool=4: _images(8))
    cfg = EncDiffRecipeConfig(model=_config(), dataset="shapes3d_subgrid", allow_untrained_first_stage=True)
    model, _ = build(cfg)
    assert frozen_parts.state(model, "first_stage") == frozen_parts.CHOSEN
    with pytest.raises(ValueError, match="first_stage_path DIR"):
        build(dataclasses.replace(cfg, allow_untrained_first_stage=False))


# -- DisDiff: the frozen eps_theta of the disentangle stage and the LDM setting's first stage -------------------------
UNTRAINED_EPS = r"DisDiff: the frozen noise predictor eps_theta \(unet\) still holds its random initialisation"
UNTRAINED_VQ = r"DisDiff: the first stage \(the frozen VQ autoencoder of the LDM setting\) still holds its random"


def _disdiff_config(**kw):
    from diffrep.methods.disdiff import DisDiffConfig

    return DisDiffConfig(sample_steps=2, **kw)


@pytest.mark.parametrize("verb", ["loss", "sample", "decode", "reconstruct", "predict"])
def test_disdiff_refuses_a_random_eps_model_in_every_verb_that_reads_it(verb):
    from diffrep.methods.disdiff import DisDiff

    m = DisDiff(_disdiff_config())
    x = _images()
    calls = {"loss": lambda: m.loss(x, step=0), "sample": lambda: m.sample(1),
             "decode": lambda: m.decode(torch.zeros(1, 4, 8)), "reconstruct": lambda: m.reconstruct(x),
             "predict": lambda: m.predict(x, torch.zeros(2, dtype=torch.long))}
    with pytest.raises(ValueError, match=UNTRAINED_EPS) as e:
        calls[verb]()
    assert "load_pretrained_diffusion(unet)" in str(e.value) and "--pretrained_path DIR" in str(e.value)
    m.encode_units(x)                               # the encoder is trained here, not frozen: no refusal


def test_disdiff_reads_a_loaded_or_self_trained_eps_model(tmp_path):
    from diffrep.methods.disdiff import DisDiff
    from diffrep.nn.unet import UNet

    torch.manual_seed(2)
    pre = UNet(_disdiff_config().unet)
    m = DisDiff(_disdiff_config())
    m.load_pretrained_diffusion(pre)
    x = _images()
    t = torch.tensor([3, 700])
    eps, _ = m.predict(x, t)
    torch.testing.assert_close(eps, pre(x, t), rtol=0, atol=0)   # the loaded weights, not a random net's
    back = DisDiff.from_pretrained(m.save_pretrained(tmp_path / "m"))
    assert frozen_parts.state(back, "unet") == frozen_parts.LOADED
    back.use_untrained_frozen_parts()               # a loaded part stays loaded
    assert int(back.unet_source) == frozen_parts.LOADED
    # one run that pre-trains first: its pre-training steps train eps_theta, the later steps may read it
    both = DisDiff(_disdiff_config(pretrain_steps=1))
    with pytest.raises(ValueError, match=UNTRAINED_EPS):
        both.loss(x, step=1)                        # no pre-training step has run
    both.loss(x, step=0)
    assert frozen_parts.state(both, "unet") == frozen_parts.LOADED
    both.loss(x, step=1)


def test_disdiff_refuses_a_random_first_stage_until_it_is_loaded():
    from diffrep.methods.disdiff import DisDiff

    vq_cfg = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, embed_dim=3, z_channels=3,
                                 n_embed=8, num_groups=4)
    unet = dataclasses.replace(_disdiff_config().unet, image_size=8)
    cfg = _disdiff_config(first_stage=vq_cfg, unet=unet, stage="pretrain")
    m = DisDiff(cfg)
    with pytest.raises(ValueError, match=UNTRAINED_VQ) as e:
        m.loss(_images(), step=0)                  # pre-training on a random autoencoder's latents
    assert "--first_stage_path DIR" in str(e.value)
    with pytest.raises(ValueError, match=UNTRAINED_VQ):
        m.to_images(torch.zeros(1, 3, 8, 8))
    torch.manual_seed(4)
    vq = VQAutoencoder(vq_cfg)
    m.load_pretrained_diffusion(m.unet, vq)
    torch.testing.assert_close(m.to_diffusion_space(_images()), vq._encode(_images()), rtol=0, atol=0)
    m.loss(_images(), step=0)


def test_disdiff_own_unet_loads_the_first_stage_only_and_is_not_marked_trained():
    """The pre-training recipe passes the model's own U-Net with the VQ: that loads the first stage and leaves the
    U-Net's state as it was (before, it was marked loaded, so a later disentangle stage read random weights)."""
    from diffrep.methods.disdiff import DisDiff

    vq_cfg = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, embed_dim=3, z_channels=3,
                                 n_embed=8, num_groups=4)
    unet = dataclasses.replace(_disdiff_config().unet, image_size=8)
    m = DisDiff(_disdiff_config(first_stage=vq_cfg, unet=unet))
    before = {k: v.clone() for k, v in m.unet.state_dict().items()}
    m.load_pretrained_diffusion(m.unet, VQAutoencoder(vq_cfg))
    assert frozen_parts.state(m, "first_stage") == frozen_parts.LOADED
    assert frozen_parts.state(m, "unet") == frozen_parts.UNTRAINED
    assert all(torch.equal(v, m.unet.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match=UNTRAINED_EPS):
        m.sample(1)
    with pytest.raises(ValueError, match="nothing to load"):
        m.load_pretrained_diffusion(m.unet)
    with pytest.raises(ValueError, match="nothing to load"):
        m.load_pretrained_diffusion(m.unet, m.first_stage)


# -- MultiBeta: phases 2 and 3 read the frozen phase-1 VAE ------------------------------------------------------------
def _multibeta():
    from diffrep.methods.multibeta import MultiBeta, multibeta_config

    torch.manual_seed(0)
    return MultiBeta(multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=4,
                                      vae={"hidden": 16, "beta_embed_dim": 8}, denoiser={"hidden": 16, "depth": 1}))


def test_multibeta_phase_2_refuses_a_vae_never_trained_nor_loaded():
    m = _multibeta().set_phase(2)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with pytest.raises(ValueError, match=r"MultiBeta: phase 2 reads the frozen phase-1 VAE, which still holds its "
                                         r"random initialisation") as e:
        m.loss(x, step=0)
    assert "model.load_vae(vae)" in str(e.value) and "vae_from RUN/final" in str(e.value)


def test_multibeta_phase_2_reads_a_vae_trained_in_phase_1_or_loaded(tmp_path):
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    trained = _multibeta()
    trained.loss(x, step=0)                          # a phase-1 step: the VAE is trained here
    trained.set_phase(2).loss(x, step=0)
    back = type(trained).from_pretrained(trained.save_pretrained(tmp_path / "p1"))
    assert frozen_parts.state(back, "vae") == frozen_parts.LOADED
    other = _multibeta()
    torch.manual_seed(5)
    donor = _multibeta()
    other.load_vae(donor.vae)
    for k, v in donor.vae.state_dict().items():
        assert torch.equal(other.vae.state_dict()[k], v), k
    other.set_phase(2).loss(x, step=0)
    with pytest.raises(TypeError, match="vae must be a MultiBetaVAE"):
        other.load_vae(donor)


# -- SAMI's pretrained-denoiser mode: the encoder learns to guide the frozen denoiser ---------------------------------
def test_sami_frozen_mode_refuses_a_denoiser_never_loaded(tmp_path):
    from diffrep.methods.sami import SAMI

    from helpers import sami_images, tiny_sami_config

    m = SAMI(tiny_sami_config(freeze_denoiser=True))
    x = sami_images(2, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"SAMI \(freeze_denoiser\): the frozen denoiser still holds its random "
                                         r"initialisation") as e:
        m.loss(x, step=0)
    assert "model.load_denoiser(DIR)" in str(e.value) and "--pretrained_denoiser DIR" in str(e.value)
    torch.manual_seed(6)
    trained = SAMI(tiny_sami_config())
    m.load_denoiser(trained.denoiser)
    assert frozen_parts.state(m, "denoiser") == frozen_parts.LOADED
    m.loss(x, step=0)
    back = SAMI.from_pretrained(m.save_pretrained(tmp_path / "m"))
    back.loss(x, step=0)
    assert not any(p.requires_grad for p in m.denoiser.parameters())
    free = SAMI(tiny_sami_config())                 # the denoiser trains with the encoder: nothing frozen to refuse
    assert not hasattr(free, "denoiser_source")
    free.loss(x, step=0)
    free.load_denoiser(trained.denoiser)            # freeze=None follows config.freeze_denoiser (off): it trains on
    assert all(p.requires_grad for p in free.denoiser.parameters())
    free.load_denoiser(trained.denoiser, freeze=True)
    assert not any(p.requires_grad for p in free.denoiser.parameters())


def test_the_state_helpers_name_their_bad_inputs_and_save_one_int8_each():
    """frozen_parts' own checks (the mutation run of 2026-12-08 left these unasserted)."""
    with pytest.raises(TypeError, match=r"^track: model must be an nn.Module, got int$"):
        frozen_parts.track(3, "part")
    for bad in ("not a name", 3):
        with pytest.raises(ValueError, match=r"^track: part must be an attribute name, got "):
            frozen_parts.track(torch.nn.Linear(1, 1), bad)
    plain = torch.nn.Linear(1, 1)
    with pytest.raises(ValueError, match=r"^Linear tracks no frozen part 'part'$"):
        frozen_parts.state(plain, "part")
    frozen_parts.choose_untrained(plain)                      # no tracked part: nothing
    m = torch.nn.Module()
    m.part = torch.nn.Linear(1, 1)
    frozen_parts.track(m, "part")
    assert m.part_source.dtype == torch.int8 and m.part_source.shape == ()
    with pytest.raises(ValueError, match=r"^mark: value must be LOADED \(1\) or CHOSEN \(2\), got 0$"):
        frozen_parts.mark(m, "part", frozen_parts.UNTRAINED)
    with pytest.raises(ValueError, match=r"tracks no frozen part 'other'"):
        frozen_parts.mark(m, "other", frozen_parts.LOADED)
    # a state dict from before the buffer: the part's weights alone load as LOADED, stored as int8
    n = torch.nn.Module()
    n.part = torch.nn.Linear(1, 1)
    frozen_parts.track(n, "part")
    n.load_state_dict({f"part.{k}": v for k, v in m.part.state_dict().items()}, strict=False)
    assert frozen_parts.state(n, "part") == frozen_parts.LOADED and n.part_source.dtype == torch.int8
    bad = {**n.state_dict(), "part_source": torch.tensor(7, dtype=torch.int8)}
    with pytest.raises(ValueError, match=r"^part_source = 7: not a frozen-part state \(0 untrained, 1 loaded, "
                                         r"2 untrained on purpose\); the weights file is corrupted or not diffrep's$"):
        n.load_state_dict(bad)


def test_load_first_stage_reads_the_chosen_weights_ignores_training_only_settings_and_freezes(tmp_path):
    """load_first_stage's own rules (left unasserted by the tests above, mutation run of 2026-12-08): a VQ run that
    trained with a discriminator and other LPIPS settings loads (its discriminator dropped); weights='ema' reads
    the EMA copy; the loaded stage is frozen and in eval mode; another architecture and pixel space are named."""
    cfg = _config().first_stage
    torch.manual_seed(5)
    trained = VQAutoencoder(dataclasses.replace(cfg, disc_weight=0.5, disc_layers=1, disc_start=7, codebook_weight=2.0,
                                                perceptual_weights="lpips.pth"))
    assert any(k.startswith("discriminator.") for k in trained.state_dict())
    ema = {k: v + 0.25 if v.is_floating_point() else v for k, v in trained.state_dict().items()}
    trained.save_pretrained(tmp_path / "vq", ema_state=ema)
    for weights, state in (("model", trained.state_dict()), ("ema", ema)):
        m = EncDiff(_config())
        m.first_stage.train()
        m.load_first_stage(tmp_path / "vq", weights=weights)
        mine = m.first_stage.state_dict()
        assert all(torch.equal(mine[k], v) for k, v in state.items() if not k.startswith("discriminator."))
        assert not any(p.requires_grad for p in m.first_stage.parameters()) and not m.first_stage.training
    VQAutoencoder(dataclasses.replace(cfg, n_embed=16)).save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match=r"other: its VQAutoencoderConfig differs from this model's first_stage "
                                         r"config \(other than the training-only loss and discriminator settings\)$"):
        EncDiff(_config()).load_first_stage(tmp_path / "other")
    with pytest.raises(ValueError, match=r"^this EncDiff runs in pixel space \(first_stage=None\)$"):
        EncDiff(_config(first_stage=False)).load_first_stage(tmp_path / "vq")


def test_multibeta_load_vae_names_a_wrong_vae():
    m = _multibeta()
    with pytest.raises(TypeError, match=r"^MultiBeta.load_vae: vae must be a MultiBetaVAE, got Linear$"):
        m.load_vae(torch.nn.Linear(1, 1))
    other = type(m.vae)(dataclasses.replace(m.vae.config, latent_dim=m.vae.config.latent_dim + 1))
    with pytest.raises(ValueError, match=r"^MultiBeta.load_vae: the VAE's config differs from this model's config.vae$"):
        m.load_vae(other)


def test_disdiff_load_pretrained_diffusion_names_each_wrong_part():
    from diffrep.methods.disdiff import DisDiff
    from diffrep.nn.unet import UNet

    m = DisDiff(_disdiff_config())
    with pytest.raises(TypeError, match=r"^load_pretrained_diffusion: unet must be a UNet, got Linear$"):
        m.load_pretrained_diffusion(torch.nn.Linear(1, 1))
    with pytest.raises(TypeError, match=r"^load_pretrained_diffusion: first_stage must be a VQAutoencoder or None, "
                                        r"got Linear$"):
        m.load_pretrained_diffusion(UNet(_disdiff_config().unet), torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match=r"^load_pretrained_diffusion: nothing to load: give a trained model's parts, "
                                         r"not this DisDiff's own first stage \(or its own U-Net alone\)$"):
        m.load_pretrained_diffusion(m.unet)
    other = dataclasses.replace(_disdiff_config().unet, model_channels=_disdiff_config().unet.model_channels * 2)
    with pytest.raises(ValueError, match=r"^the pre-trained U-Net's config differs from DisDiffConfig.unet: "
                                         r"unet.model_channels: "):
        m.load_pretrained_diffusion(UNet(other))
    vq = VQAutoencoder(VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=8,
                                           num_groups=4))
    with pytest.raises(ValueError, match=r"^load_pretrained_diffusion: a VQ autoencoder was given, but this DisDiff "
                                         r"runs in pixel space \(DisDiffConfig.first_stage is None\)$"):
        m.load_pretrained_diffusion(UNet(_disdiff_config().unet), vq)
