"""A config.json written before a field existed loads with the value its weights were trained with
(``Config.fields_added``), not with today's default (docs/architecture.md#save-and-load-format)."""

import json

import pytest
import torch

from diffrep.methods.vae import BetaVAE
from diffrep.nn import ConvEncoder, ConvVAEConfig
from diffrep.nn.pretrained import PretrainedMixin


def _drop_field(folder, name):
    path = folder / "config.json"
    data = json.loads(path.read_text())
    del data[name]
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("make", [
    lambda: BetaVAE(BetaVAE.config_class(image_size=32, conv_kernels=(4, 4, 4, 4))),
    lambda: ConvEncoder(ConvVAEConfig(image_size=32, in_channels=1, conv_kernels=(4, 4, 4, 4))),
])
def test_a_model_saved_before_conv_kernels_existed_loads_with_4x4_kernels(tmp_path, make):
    torch.manual_seed(0)
    old = make().eval()
    old.save_pretrained(tmp_path)
    _drop_field(tmp_path, "conv_kernels")  # as the files written before 2026-12-07
    new = PretrainedMixin.from_pretrained(tmp_path).eval()
    assert type(new) is type(old) and new.config.conv_kernels == (4, 4, 4, 4)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    encode = (lambda m, v: m.encode(v)) if isinstance(old, BetaVAE) else (lambda m, v: m(v)[0])
    torch.testing.assert_close(encode(new, x), encode(old, x), rtol=0, atol=0)


def test_a_config_that_holds_the_field_keeps_its_value(tmp_path):
    model = BetaVAE(BetaVAE.config_class(image_size=32))
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["conv_kernels"] == [4, 4, 2, 2]
    assert PretrainedMixin.from_pretrained(tmp_path).config.conv_kernels == (4, 4, 2, 2)


def test_fields_added_is_not_a_config_field():
    assert "fields_added" not in BetaVAE.config_class().to_dict()
    assert "fields_added" not in ConvVAEConfig().to_dict()


def test_a_multibeta_model_saved_before_conv_kernels_existed_loads_with_4x4_kernels(tmp_path):
    """The field sits in the nested ``vae`` section of MultiBeta's config.json."""
    from diffrep.methods.multibeta import MultiBeta, multibeta_config

    torch.manual_seed(0)
    cfg = multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=5,
                           vae=dict(hidden=32, beta_embed_dim=16, conv_kernels=(4, 4, 4, 4)),
                           denoiser=dict(hidden=32, depth=1))
    old = MultiBeta(cfg).eval()
    old.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    data = json.loads(path.read_text())
    del data["vae"]["conv_kernels"]
    path.write_text(json.dumps(data))
    new = PretrainedMixin.from_pretrained(tmp_path).eval()
    assert new.vae.config.conv_kernels == (4, 4, 4, 4)
    x, beta = torch.rand(2, 1, 32, 32) * 2 - 1, torch.full((2,), 0.4)
    torch.testing.assert_close(new.vae.encode(x, beta), old.vae.encode(x, beta), rtol=0, atol=0)


def test_the_multibeta_conv_encoder_is_dlib_conv_encoder():
    """disentanglement_lib conv_encoder: 32 4x4, 32 4x4, 64 2x2, 64 2x2, all stride 2 (64 px: 64 -> 4)."""
    from diffrep.methods.multibeta_vae import MultiBetaVAE, MultiBetaVAEConfig

    vae = MultiBetaVAE(MultiBetaVAEConfig(image_size=64, in_channels=3))
    got = [(c.out_channels, c.kernel_size, c.stride, c.padding) for c in vae.encoder.convs]
    assert got == [(32, (4, 4), (2, 2), (1, 1)), (32, (4, 4), (2, 2), (1, 1)),
                   (64, (2, 2), (2, 2), (0, 0)), (64, (2, 2), (2, 2), (0, 0))]
    h = torch.zeros(1, 3, 64, 64)
    for conv in vae.encoder.convs:
        h = conv(h)
    assert h.shape == (1, 64, 4, 4)


def _tiny_vq(**kw):
    from diffrep.nn.vq import VQAutoencoderConfig

    return VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=16, num_groups=4, **kw)


OLD_VQ = dict(downsample_padding=1, norm_eps=1e-5, legacy_beta=False)  # the VQ autoencoder before 2026-12-07


def test_a_vq_autoencoder_saved_before_the_taming_layout_loads_with_its_own_layout(tmp_path):
    from diffrep.nn.vq import VQAutoencoder

    torch.manual_seed(0)
    old = VQAutoencoder(_tiny_vq(**OLD_VQ)).eval()
    old.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    data = json.loads(path.read_text())
    for key in OLD_VQ:
        del data[key]
    path.write_text(json.dumps(data))
    new = PretrainedMixin.from_pretrained(tmp_path).eval()
    assert {k: getattr(new.config, k) for k in OLD_VQ} == OLD_VQ
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(new.encode(x), old.encode(x), rtol=0, atol=0)


def test_an_optional_nested_config_gets_its_fields_added(tmp_path):
    """EncDiff's ``first_stage`` is Optional[VQAutoencoderConfig]: an older EncDiff file's VQ section too."""
    from diffrep.config import with_fields_added
    from diffrep.methods.encdiff import EncDiffConfig

    data = {"first_stage": {"image_size": 16}, "sample_steps": 4}
    got = with_fields_added(EncDiffConfig, data)
    assert got["first_stage"] == {"image_size": 16, **OLD_VQ} and got["sample_steps"] == 4
    assert data == {"first_stage": {"image_size": 16}, "sample_steps": 4}  # the input is not changed
    assert with_fields_added(EncDiffConfig, {"first_stage": None}) == {"first_stage": None}


def test_fields_added_is_not_in_the_dataclass_fields():
    """Code that rebuilds a config from ``__dataclass_fields__`` (a common idiom) keeps working."""
    cfg = BetaVAE.config_class(image_size=32)
    assert "fields_added" not in cfg.__dataclass_fields__
    assert type(cfg)(**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}) == cfg
