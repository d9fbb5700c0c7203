"""Which weights a recipe reads from an earlier stage's folder (docs/methods/diffae.md#command-line and the
DisDiff, EncDiff and multi-beta pages): DiffAE's ``autoencoder_weights``, DisDiff's ``pretrained_weights`` and
``first_stage_weights``, EncDiff's ``first_stage_weights``, multi-beta's ``vae_from_weights``, SAMI's
``pretrained_denoiser_weights``.

Each earlier stage is saved with distinct raw and EMA weights (EMA = raw + 0.5 on every float tensor), and
the built model must hold exactly the tensors of the file its option names, read here with safetensors;
``auto`` is the EMA copy when the folder has one and the raw weights otherwise; ``ema`` without a copy is
refused naming the field. A study cell holding the pre-2026-12-07 value hashes as before the field existed."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from diffrep.config import ConfigError, apply_overrides, config_to_dict

S = 16  # image size of every tiny model here


def save_stage(model, folder, *, ema: bool):
    """save_pretrained, with an EMA copy that differs from the raw weights in every float tensor."""
    state = model.state_dict()
    ema_state = {k: (v + 0.5 if v.is_floating_point() else v.clone()) for k, v in state.items()} if ema else None
    model.save_pretrained(folder, ema_state=ema_state)
    return str(folder)


def saved(folder, which: str, prefix: str) -> dict:
    """The tensors under ``prefix`` of the folder's model.safetensors (``model``) or ema.safetensors (``ema``)."""
    state = load_file(f"{folder}/{'model' if which == 'model' else 'ema'}.safetensors")
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def assert_holds(module, want: dict):
    got = module.state_dict()
    assert set(got) == set(want)
    for k, v in got.items():
        assert torch.equal(v, want[k]), k


@pytest.fixture()
def small_images(monkeypatch):
    """The sub-grid the recipes train on, replaced by 8 random 16 px images (rendering it takes seconds)."""
    x = torch.rand(8, 3, S, S, generator=torch.Generator().manual_seed(0)) * 2 - 1
    monkeypatch.setattr("diffrep.recipes.encdiff.Shapes3DSubgrid", lambda pool=4: x)
    return x


def test_resolution_rule_on_a_folder_with_and_without_an_ema_copy(tmp_path, capsys):
    from diffrep.nn.unet import UNet, UNetConfig
    from diffrep.recipes.runinfo import stage_weights

    unet = UNet(UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1,),
                           num_res_blocks=1, attention_resolutions=(), num_groups=4))
    both, raw = save_stage(unet, tmp_path / "both", ema=True), save_stage(unet, tmp_path / "raw", ema=False)
    assert [stage_weights(both, w, "pretrained_path", "pretrained_weights")[1] for w in ("auto", "ema", "model")] \
        == ["ema", "ema", "model"]
    assert [stage_weights(raw, w, "pretrained_path", "pretrained_weights")[1] for w in ("auto", "model")] \
        == ["model", "model"]
    assert "has no EMA weights; using the raw weights" in capsys.readouterr().err  # auto says what it read
    with pytest.raises(FileNotFoundError, match=r"has no ema.safetensors; use --pretrained_weights model"):
        stage_weights(raw, "ema", "pretrained_path", "pretrained_weights")
    with pytest.raises(ValueError, match=r"--pretrained_weights must be auto, ema or model, got 'best'"):
        stage_weights(both, "best", "pretrained_path", "pretrained_weights")
    save_stage(unet, tmp_path / "run" / "final", ema=True)
    with pytest.raises(ValueError, match=r"--pretrained_path .* is a run folder"):  # the path check still runs first
        stage_weights(str(tmp_path / "run"), "auto", "pretrained_path", "pretrained_weights")
    with pytest.raises(TypeError, match=r"weights_field must be a field name"):
        stage_weights(both, "auto", "pretrained_path", "")


def test_diffae_stage_two_reads_the_chosen_weights_of_stage_one(tmp_path, small_images):
    from diffrep.methods.diffae import DiffAE
    from diffrep.recipes.diffae import build, shapes3d_cpu

    torch.manual_seed(0)
    stage1 = shapes3d_cpu()
    ae = DiffAE(stage1.model)
    both, raw = save_stage(ae, tmp_path / "both", ema=True), save_stage(ae, tmp_path / "raw", ema=False)
    base = dataclasses.replace(shapes3d_cpu("latent"), stats_images=8)  # all 8 images
    means = {}
    for folder, option, which in ((both, "auto", "ema"), (both, "ema", "ema"), (both, "model", "model"),
                                  (raw, "auto", "model")):
        model, _ = build(dataclasses.replace(base, autoencoder_path=folder, autoencoder_weights=option))
        assert_holds(model.encoder, saved(folder, which, "encoder."))
        assert_holds(model.unet, saved(folder, which, "unet."))
        # the z_sem statistics are those of the encoder read
        with torch.no_grad():
            z = model.encode(small_images)
        torch.testing.assert_close(model.z_mean, z.mean(0))
        means[folder, option] = model.z_mean
    assert not torch.allclose(means[both, "ema"], means[both, "model"])  # so the EMA encoder's codes differ
    with pytest.raises(FileNotFoundError, match=r"no ema.safetensors; use --autoencoder_weights model"):
        build(dataclasses.replace(base, autoencoder_path=raw, autoencoder_weights="ema"))
    with pytest.raises(ConfigError, match=r"autoencoder_weights"):
        apply_overrides(base, ["--autoencoder_weights", "best"])


def test_disdiff_reads_the_chosen_weights_of_the_pretrained_model_and_the_first_stage(tmp_path, small_images):
    from diffrep.methods.disdiff import DisDiff
    from diffrep.nn.vq import VQAutoencoder, VQAutoencoderConfig
    from diffrep.recipes.disdiff import build, cpu_model, shapes3d_cpu

    torch.manual_seed(1)
    pre = DisDiff(dataclasses.replace(cpu_model(), stage="pretrain"))
    both, raw = save_stage(pre, tmp_path / "both", ema=True), save_stage(pre, tmp_path / "raw", ema=False)
    for folder, option, which in ((both, "auto", "ema"), (both, "ema", "ema"), (both, "model", "model"),
                                  (raw, "auto", "model")):
        model, _ = build(dataclasses.replace(shapes3d_cpu(), pretrained_path=folder, pretrained_weights=option))
        assert_holds(model.unet, saved(folder, which, "unet."))
    with pytest.raises(FileNotFoundError, match=r"no ema.safetensors; use --pretrained_weights model"):
        build(dataclasses.replace(shapes3d_cpu(), pretrained_path=raw, pretrained_weights="ema"))

    # the LDM setting: a 16 px VQ (f = 2) under an 8 px U-Net
    vq_cfg = VQAutoencoderConfig(image_size=S, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=16, num_groups=4)
    ldm = dataclasses.replace(cpu_model(), first_stage=vq_cfg,
                              unet=dataclasses.replace(cpu_model().unet, image_size=8, channel_mult=(1, 2)))
    vq = VQAutoencoder(vq_cfg)
    vq_both, vq_raw = save_stage(vq, tmp_path / "vq_both", ema=True), save_stage(vq, tmp_path / "vq_raw", ema=False)
    for folder, option, which in ((vq_both, "auto", "ema"), (vq_both, "model", "model"), (vq_raw, "auto", "model")):
        cfg = dataclasses.replace(shapes3d_cpu(), model=dataclasses.replace(ldm, pretrain_steps=10),
                                  first_stage_path=folder, first_stage_weights=option)
        assert_holds(build(cfg)[0].first_stage, saved(folder, which, ""))
    with pytest.raises(FileNotFoundError, match=r"no ema.safetensors; use --first_stage_weights model"):
        build(dataclasses.replace(shapes3d_cpu(), model=dataclasses.replace(ldm, pretrain_steps=10),
                                  first_stage_path=vq_raw, first_stage_weights="ema"))


def test_encdiff_reads_the_chosen_weights_of_its_first_stage(tmp_path, small_images):
    from diffrep.methods.encdiff import EncDiff
    from diffrep.nn.vq import VQAutoencoder, VQAutoencoderConfig
    from diffrep.recipes.encdiff import EncDiffRecipeConfig, build, cpu_model

    vq_cfg = VQAutoencoderConfig(image_size=S, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=16, num_groups=4)
    pixel = cpu_model()
    mcfg = dataclasses.replace(pixel, first_stage=vq_cfg, unet=dataclasses.replace(pixel.unet, image_size=8))
    torch.manual_seed(2)
    vq = VQAutoencoder(vq_cfg)
    both, raw = save_stage(vq, tmp_path / "both", ema=True), save_stage(vq, tmp_path / "raw", ema=False)
    for folder, option, which in ((both, "auto", "ema"), (both, "ema", "ema"), (both, "model", "model"),
                                  (raw, "auto", "model")):
        model, _ = build(EncDiffRecipeConfig(model=mcfg, dataset="shapes3d_subgrid", first_stage_path=folder,
                                             first_stage_weights=option))
        assert_holds(model.first_stage, saved(folder, which, ""))
    with pytest.raises(FileNotFoundError, match=r"no ema.safetensors; use --first_stage_weights model"):
        build(EncDiffRecipeConfig(model=mcfg, dataset="shapes3d_subgrid", first_stage_path=raw,
                                  first_stage_weights="ema"))
    m = EncDiff(mcfg)  # the method's own loader takes the choice too
    m.load_first_stage(both, weights="ema")
    assert_holds(m.first_stage, saved(both, "ema", ""))


def test_multibeta_vae_from_reads_the_chosen_weights(tmp_path):
    from diffrep.methods.multibeta import MultiBeta, multibeta_config
    from diffrep.recipes.multibeta import _load_vae_from

    cfg = multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=10,
                           vae={"hidden": 16, "beta_embed_dim": 8}, denoiser={"hidden": 16, "depth": 1})
    torch.manual_seed(3)
    src = MultiBeta(cfg)
    both, raw = save_stage(src, tmp_path / "both", ema=True), save_stage(src, tmp_path / "raw", ema=False)
    for folder, option, which in ((both, "auto", "ema"), (both, "ema", "ema"), (both, "model", "model"),
                                  (raw, "auto", "model")):
        model = MultiBeta(cfg)
        _load_vae_from(model, folder, option)
        assert_holds(model.vae, saved(folder, which, "vae."))
    with pytest.raises(FileNotFoundError, match=r"no ema.safetensors; use --vae_from_weights model"):
        _load_vae_from(MultiBeta(cfg), raw, "ema")


def test_sami_reads_the_chosen_weights_of_its_pretrained_denoiser(tmp_path):
    from diffrep.recipes import get_recipe

    stage1, frozen = get_recipe("sami/disks-cpu"), get_recipe("sami/disks-cpu-frozen")
    torch.manual_seed(4)
    first, _ = stage1.build(stage1.make_config())
    both, raw = save_stage(first, tmp_path / "both", ema=True), save_stage(first, tmp_path / "raw", ema=False)
    for folder, option, which in ((both, "auto", "ema"), (both, "ema", "ema"), (both, "model", "model"),
                                  (raw, "auto", "model")):
        cfg = apply_overrides(frozen.make_config(), {"pretrained_denoiser": folder, "pretrained_denoiser_weights": option})
        assert_holds(frozen.build(cfg)[0].denoiser, saved(folder, which, "denoiser."))
    with pytest.raises(FileNotFoundError, match=r"no ema.safetensors; use --pretrained_denoiser_weights model"):
        frozen.build(apply_overrides(frozen.make_config(), {"pretrained_denoiser": raw,
                                                            "pretrained_denoiser_weights": "ema"}))


def test_a_study_cell_holding_the_old_value_hashes_as_before_the_field_existed():
    from diffrep.recipes.diffae import shapes3d_cpu
    from diffrep.recipes.disdiff import DisDiffRecipeConfig
    from diffrep.recipes.encdiff import EncDiffRecipeConfig
    from diffrep.recipes.multibeta import MultiBetaRecipeConfig
    from diffrep.recipes.sami import SAMIRecipeConfig
    from diffrep.study.spec import hashed_config

    cfg = shapes3d_cpu()
    full = config_to_dict(cfg)
    old = {k: v for k, v in full.items() if k != "autoencoder_weights"}  # the config before the field existed
    assert hashed_config(dataclasses.replace(cfg, autoencoder_weights="model")) == old
    for value in ("auto", "ema"):  # any other value is hashed
        assert hashed_config(dataclasses.replace(cfg, autoencoder_weights=value)) == {**old, "autoencoder_weights": value}
    # the value each recipe read before the field existed: the raw weights
    assert dict(type(cfg).fields_added) == {"autoencoder_weights": "model"}
    assert dict(DisDiffRecipeConfig.fields_added) == {"pretrained_weights": "model", "first_stage_weights": "model"}
    assert dict(EncDiffRecipeConfig.fields_added) == {"first_stage_weights": "model"}
    assert dict(MultiBetaRecipeConfig.fields_added) == {"vae_from_weights": "model"}
    for c in (DisDiffRecipeConfig, EncDiffRecipeConfig, MultiBetaRecipeConfig, type(cfg)):
        assert all(getattr(c(), k) == "auto" for k in c.fields_added)  # the default is the verbs' auto
    # SAMI's pretrained_denoiser already read the EMA copy when there was one: its default hashes as before
    sami = SAMIRecipeConfig()
    assert dict(SAMIRecipeConfig.fields_added) == {"pretrained_denoiser_weights": "auto"}
    assert "pretrained_denoiser_weights" not in hashed_config(sami)
    assert hashed_config(dataclasses.replace(sami, pretrained_denoiser_weights="model"))["pretrained_denoiser_weights"] \
        == "model"
