"""The shared save/load tester: every registered model class round-trips through
``save_pretrained``/``from_pretrained`` (docs/architecture.md#save-and-load-format, as diffusers' ``ModelTesterMixin``).

A new model class adds one entry to ``CASES`` (a tiny config and an input builder); the coverage test
fails until it does.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffrep.bfn import BFNConfig, BFNDataConfig, unet_io
from diffrep.nn import (ConvVAEConfig, FeatureExtractorConfig, HalfUNet, HalfUNetConfig, UNet, UNetConfig,
                        VQAutoencoderConfig, load_pretrained, model_registry)
from diffrep.diffusion import NoiseScheduleConfig
from diffrep.methods.multibeta import LatentDenoiserConfig, MultiBetaVAEConfig, multibeta_config
from diffrep.methods.sami import SAMIConfig, SAMIConvNetConfig
from diffrep.methods.toy_ddpm import ToyDDPMConfig
from diffrep.methods.diffae import DiffAEConfig
from diffrep.methods.disdiff import DisDiffConfig
from diffrep.methods.infodiffusion import InfoDiffusionConfig
from diffrep.recipes.encdiff import cpu_model as encdiff_cpu_model
from diffrep.recipes.paramrel import paramrel_config

_U = dict(image_size=8, in_channels=2, out_channels=2, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
          attention_resolutions=(4,), num_heads=2, num_groups=8)

_BFN_DATA = BFNDataConfig(data="discretised", image_size=8, channels=1, num_bins=16, sigma1=0.02)
_SAMI_CONVNET = SAMIConvNetConfig(image_size=8, in_channels=1, base_channels=2, channel_mult=(2, 2), latent_dim=3)

# class name -> (config, inputs builder, call)
CASES = {
    "UNet": (UNetConfig(**_U, latent_dim=3, num_outputs=2),
             lambda: (torch.randn(2, 2, 8, 8), torch.tensor([1, 7]), torch.randn(2, 3)), lambda m, a: m(a[0], a[1], z=a[2])),
    "HalfUNet": (HalfUNetConfig(image_size=8, in_channels=2, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                                latent_dim=3, num_groups=4),
                 lambda: (torch.randn(2, 2, 8, 8),), lambda m, a: m(*a)),
    "ConvEncoder": (ConvVAEConfig(image_size=32, in_channels=1, latent_dim=4, hidden=16),
                    lambda: (torch.randn(2, 1, 32, 32),), lambda m, a: m(*a)),
    "ConvDecoder": (ConvVAEConfig(image_size=32, in_channels=1, latent_dim=4, hidden=16),
                    lambda: (torch.randn(2, 4),), lambda m, a: m(*a)),
    "FeatureExtractor": (FeatureExtractorConfig(preset="encdiff", num_units=5),
                         lambda: (torch.randn(2, 3, 64, 64),), lambda m, a: m(*a)),
    "VQAutoencoder": (VQAutoencoderConfig(image_size=8, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=16, num_groups=4),
                      lambda: (torch.randn(2, 3, 8, 8),), lambda m, a: m(*a)),
    "ToyDDPM": (ToyDDPMConfig(unet=UNetConfig(**{**_U, "in_channels": 3, "out_channels": 3})),
                lambda: (torch.randn(2, 3, 8, 8), torch.tensor([0, 3])), lambda m, a: m.unet(*a)),
    "BFN": (BFNConfig(bfn=_BFN_DATA, unet=UNetConfig(**unet_io(_BFN_DATA), model_channels=8, channel_mult=(1, 2),
                                                     num_res_blocks=1, attention_resolutions=(), num_groups=4),
                      sample_steps=4),
            lambda: (torch.rand(2, 1, 8, 8) * 2 - 1,), lambda m, a: m.reconstruction_loss(a[0], torch.Generator().manual_seed(0))),
    "ParamReL": (paramrel_config(_BFN_DATA, 4, 8, (1, 2), res_blocks=1, groups=4, sample_steps=4),
                 lambda: (torch.rand(2, 1, 8, 8) * 2 - 1,), lambda m, a: m.encode(a[0])),
    "SAMIConvNet": (_SAMI_CONVNET, lambda: (torch.randn(2, 1, 8, 8),), lambda m, a: m(*a)),
    "SAMI": (SAMIConfig(denoiser=UNetConfig(**{**_U, "in_channels": 1, "out_channels": 1, "attention_resolutions": ()}),
                        convnet=_SAMI_CONVNET, schedule=NoiseScheduleConfig(kind="linear", num_timesteps=20),
                        sample_steps=5),
             lambda: (torch.rand(2, 1, 8, 8) * 2 - 1, torch.tensor([1, 7])),
             lambda m, a: (m.encode(a[0]), m.denoiser(a[0], a[1]))),
    "MultiBetaVAE": (MultiBetaVAEConfig(image_size=32, in_channels=1, latent_dim=3, hidden=16, beta_embed_dim=8, num_steps=5),
                     lambda: (torch.rand(2, 1, 32, 32) * 2 - 1, torch.tensor([0.0, 0.5]), torch.randn(2, 3)),
                     lambda m, a: (m.encode(a[0], a[1]), m.decode(a[2], a[1]), m.sigma(a[1]), m.s(a[1]))),
    "LatentDenoiser": (LatentDenoiserConfig(latent_dim=3, hidden=8, depth=1, num_steps=5),
                       lambda: (torch.randn(2, 3), torch.tensor([1, 5])), lambda m, a: m.predict(*a)),
    "MultiBeta": (multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=5, vae=dict(hidden=16, beta_embed_dim=8),
                                   denoiser=dict(hidden=8, depth=1), phase=2, adv_disc_weight=0.5, disc_channels=4, disc_layers=2),
                  lambda: (torch.rand(2, 1, 32, 32) * 2 - 1, torch.randn(2, 3)),
                  lambda m, a: (m.encode(a[0], 0.4), m.decode(a[1], 0.2), m.denoiser.predict(a[1], torch.tensor([2, 3])),
                                m.discriminator(a[0]), m.denoiser.sigma_table)),
    "EncDiff": (encdiff_cpu_model(num_units=3, token_dim=4),
                lambda: (torch.rand(2, 3, 16, 16) * 2 - 1, torch.tensor([3, 900])),
                lambda m, a: (m.tokens(a[0]), m.eps(a[0], a[1], m.tokens(a[0])))),
    "DiffAE": (DiffAEConfig(), lambda: (torch.rand(2, 3, 16, 16) * 2 - 1, torch.tensor([3, 900])),
               lambda m, a: (m.encode(a[0]), m.eps(a[0], a[1], m.encode(a[0])))),
    "InfoDiffusion": (InfoDiffusionConfig(), lambda: (torch.rand(2, 3, 16, 16) * 2 - 1, torch.tensor([3, 900])),
                      lambda m, a: (m.encode(a[0]), m.eps(a[0], a[1], m.encode(a[0])))),
    "DisDiff": (DisDiffConfig(), lambda: (torch.rand(2, 3, 16, 16) * 2 - 1, torch.tensor([3, 900])),
                lambda m, a: m.predict(a[0], a[1], m.encode_units(a[0]))),
}

# the VAE-family baselines (diffrep.methods.vae): 32 px, 2 latents, the encoder mean and the decoder
_VAE_CALL = lambda m, a: (m.encode(a[0]), m.decode(m.encode(a[0])))  # noqa: E731
for _name, _extra in (("AE", {}), ("VAE", {}), ("BetaVAE", {"capacity_max": 5.0}), ("BetaTCVAE", {}),
                      ("FactorVAE", {"disc_hidden": 4, "disc_layers": 1}), ("InfoVAE", {}),
                      ("DIPVAE", {"kind": "ii"}), ("FSQAE", {"levels": (3, 4)})):
    _cls = __import__("diffrep.methods.vae", fromlist=[_name]).__dict__[_name]
    _lat = {} if _name == "FSQAE" else {"latent_dim": 2}
    CASES[_name] = (_cls.config_class(image_size=32, **_lat, **_extra),
                    lambda: (torch.rand(2, 1, 32, 32) * 2 - 1,), _VAE_CALL)


def _flatten(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def assert_roundtrip(cls, config, make_inputs, call, tmp_path):
    torch.manual_seed(0)
    model = cls(config)
    if hasattr(model, "use_untrained_frozen_parts"):  # DisDiff's eps_theta: the round trip reads every weight as built
        model.use_untrained_frozen_parts()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))  # break zero-inits so outputs depend on every weight
    model.eval()
    d = model.save_pretrained(tmp_path / cls.__name__)
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["_class_name"] == cls.__name__ and "_diffrep_version" in cfg
    for loaded in (cls.from_pretrained(d), load_pretrained(d)):
        assert type(loaded) is cls
        assert loaded.config == model.config
        sd, sd2 = model.state_dict(), loaded.state_dict()
        assert sd.keys() == sd2.keys()
        for k in sd:
            torch.testing.assert_close(sd[k], sd2[k], rtol=0, atol=0)
        loaded.eval()
        args = make_inputs()
        with torch.no_grad():
            for a, b in zip(_flatten(call(model, args)), _flatten(call(loaded, args))):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_roundtrip(name, tmp_path):
    cfg, make_inputs, call = CASES[name]
    assert_roundtrip(model_registry()[name], cfg, make_inputs, call, tmp_path)


def test_every_registered_model_has_a_case():
    library = {name for name, cls in model_registry().items() if cls.__module__.startswith("diffrep.")}
    missing = sorted(library - set(CASES))  # classes that tests define for themselves don't count
    assert not missing, f"add a tiny case to CASES for: {missing}"


def test_load_pretrained_needs_no_prior_import(tmp_path):
    """A fresh process loads a saved ParamReL, SAMI or BFN by its class name alone: the class table
    (MODEL_CLASSES) imports its module; nothing registers as a side effect of importing recipes."""
    dirs = {}
    for name in ("ParamReL", "SAMI", "BFN"):
        torch.manual_seed(0)
        dirs[name] = str(model_registry()[name](CASES[name][0]).save_pretrained(tmp_path / name))
    code = f"""
import sys
from diffrep.nn.pretrained import load_pretrained
assert not [m for m in sys.modules if m.startswith(("diffrep.methods", "diffrep.recipes"))], "imported too early"
for name, d in {dirs!r}.items():
    m = load_pretrained(d)
    assert type(m).__name__ == name, (name, type(m))
assert "diffrep.recipes" not in sys.modules, "loading imported the recipes"
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__import__("diffrep").__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


def test_every_library_model_class_is_in_the_table():
    """diffrep's classes load in a fresh process only through MODEL_CLASSES: one registered by a
    decorator but missing from the table (or listed under a stale path) fails here."""
    from diffrep.nn.pretrained import MODEL_CLASSES

    for name, cls in model_registry().items():
        if cls.__module__.startswith("diffrep."):
            assert MODEL_CLASSES.get(name) == f"{cls.__module__}:{cls.__qualname__}", (
                f"add {name!r}: '{cls.__module__}:{cls.__qualname__}' to diffrep.nn.pretrained.MODEL_CLASSES")


def test_user_classes_join_after_the_table():
    from diffrep.nn.pretrained import MODEL_CLASSES, model_class, register_model

    assert model_class("UNet") is UNet and set(MODEL_CLASSES) <= set(model_registry())

    class UNet2(UNet):  # a user's class under a new name registers
        pass

    UNet2.__name__ = UNet2.__qualname__ = "UNetForTest"
    assert register_model(UNet2) is UNet2 and model_class("UNetForTest") is UNet2

    class UNetShadow(UNet):
        pass

    UNetShadow.__name__ = "UNet"  # a user's class may not take a library class's name
    with pytest.raises(ValueError, match="name of diffrep's"):
        register_model(UNetShadow)
    with pytest.raises(ValueError, match="neither one of diffrep's nor registered"):
        model_class("NoSuchModel")


def test_ema_weights_and_load_policy(tmp_path):
    cfg = CASES["HalfUNet"][0]
    m = HalfUNet(cfg)
    ema = {k: v + 1 for k, v in m.state_dict().items()}
    d = m.save_pretrained(tmp_path / "m", ema_state=ema)
    e = HalfUNet.from_pretrained(d, weights="ema")
    for k, v in e.state_dict().items():
        torch.testing.assert_close(v, ema[k])
    # a config for another class, an unknown field, a corrupted or missing weights file: clear errors
    with pytest.raises(ValueError, match="not a UNet"):
        UNet.from_pretrained(d)
    cfgj = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfgj, "latnt_dim": 3}))
    with pytest.raises(ValueError, match="latnt_dim"):
        HalfUNet.from_pretrained(d)
    (d / "config.json").write_text(json.dumps(cfgj))
    raw = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        HalfUNet.from_pretrained(d)
    (d / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError):
        HalfUNet.from_pretrained(d)
    # strict key policy: weights of a different architecture are rejected with the key names
    HalfUNet(HalfUNetConfig(**{**cfg.to_dict(), "latent_dim": 3, "head_hidden": 5})).save_pretrained(tmp_path / "o")
    (tmp_path / "o" / "config.json").write_text((d / "config.json").read_text())
    with pytest.raises(ValueError, match="missing keys|does not match|size mismatch"):
        HalfUNet.from_pretrained(tmp_path / "o")


def test_save_pretrained_onto_a_file_names_it(tmp_path):
    """A file where the folder should go: a message naming it, not mkdir's bare '[Errno 17] File exists'."""
    f = tmp_path / "model"
    f.write_text("not a folder")
    with pytest.raises(FileExistsError, match=r"^save_pretrained: .*model is a file; give a folder"):
        HalfUNet(CASES["HalfUNet"][0]).save_pretrained(f)
    assert f.read_text() == "not a folder"


def test_a_run_folder_is_named_with_its_final(tmp_path):
    """from_pretrained on a run folder (what 'diffrep train' and the Trainer print) said only "not a
    save_pretrained directory"; it now names the run's final/, and a plain folder keeps the bare message."""
    from diffrep.nn import load_pretrained

    m = HalfUNet(CASES["HalfUNet"][0])
    m.save_pretrained(tmp_path / "run" / "final")
    want = (f"{tmp_path / 'run' / 'config.json'} not found: not a save_pretrained directory; {tmp_path / 'run'} is a "
            f"run folder: load its final/ ({tmp_path / 'run' / 'final'})")
    for load in (HalfUNet.from_pretrained, load_pretrained):
        with pytest.raises(FileNotFoundError) as exc:
            load(tmp_path / "run")
        assert str(exc.value) == want
    with pytest.raises(FileNotFoundError) as exc:
        HalfUNet.from_pretrained(tmp_path)
    assert str(exc.value) == f"{tmp_path / 'config.json'} not found: not a save_pretrained directory"
    assert isinstance(HalfUNet.from_pretrained(tmp_path / "run" / "final"), HalfUNet)
