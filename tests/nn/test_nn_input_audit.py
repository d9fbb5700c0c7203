"""Input audit of diffrep.nn (pretrained save/load, configs): each test pins a defect that was found
and fixed; the comment says what happened before."""

from __future__ import annotations

import json

import pytest

from diffrep.config import ConfigError
from diffrep.nn.pretrained import load_pretrained
from diffrep.nn.unet import UNet, UNetConfig


def _tiny_unet_dir(tmp_path):
    cfg = UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1, 2),
                     num_res_blocks=1, num_groups=4, attention_resolutions=(4,))
    UNet(cfg).save_pretrained(tmp_path)
    return json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))


def test_config_json_errors_name_the_file(tmp_path):
    # Before: a config.json field of the wrong type gave "config field 'model_channels': expected int,
    # got str '8'" without saying which folder's config.json was at fault.
    data = _tiny_unet_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**data, "model_channels": "8"}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'model_channels': expected int, got str '8' \(in .*config.json\)"):
        load_pretrained(tmp_path)


@pytest.mark.parametrize("name", [["UNet"], 3, ""])
def test_class_name_must_be_a_string(tmp_path, name):
    # Before: "_class_name": ["UNet"] raised a bare "TypeError: unhashable type: 'list'".
    data = _tiny_unet_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**data, "_class_name": name}), encoding="utf-8")
    with pytest.raises(ValueError, match="'_class_name' must be a class name"):
        load_pretrained(tmp_path)


def test_binary_config_json_is_named(tmp_path):
    # Before: a binary/corrupted config.json raised a bare UnicodeDecodeError.
    _tiny_unet_dir(tmp_path)
    (tmp_path / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="config.json is not a UTF-8 text file"):
        UNet.from_pretrained(tmp_path)


def test_from_pretrained_argument_types(tmp_path):
    # Before: strict="no" was truthy (a strict load); directory=None gave "expected str, bytes or
    # os.PathLike object"; weights="bad" was refused only after the model was built.
    _tiny_unet_dir(tmp_path)
    with pytest.raises(TypeError, match="strict must be a bool"):
        UNet.from_pretrained(tmp_path, strict="no")
    with pytest.raises(TypeError, match="directory must be a path"):
        UNet.from_pretrained(None)
    with pytest.raises(ValueError, match="weights must be 'model' or 'ema'"):
        UNet.from_pretrained(tmp_path / "absent", weights="bad")
    assert isinstance(UNet.from_pretrained(tmp_path, strict=False), UNet)


def test_forward_down_uses_the_configured_time_embedding():
    # Before: forward_down embedded t with the ADM defaults ([cos, sin], no frequency shift) whatever
    # time_embed_flip_sin_to_cos / time_embed_freq_shift said (forward honoured them), so for a
    # DDPM-code / diffusers U-Net forward_up(forward_down(...)) differed from forward (DisDiff reads
    # a frozen U-Net through forward_down).
    import torch

    torch.manual_seed(0)
    cfg = UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1, 2),
                     num_res_blocks=1, num_groups=4, attention_resolutions=(), time_embed_flip_sin_to_cos=False,
                     time_embed_freq_shift=1.0)
    net = UNet(cfg).eval()
    for p in net.out.parameters():  # the zero-initialised last conv would hide any difference
        torch.nn.init.normal_(p)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    hs, emb = net.forward_down(x, t)
    torch.testing.assert_close(net.forward_up(hs[-1], hs, emb), net(x, t))
    with pytest.raises(ValueError, match="x has shape"):  # forward_down now checks its inputs like forward
        net.forward_down(torch.randn(2, 3, 8, 8), t)


@pytest.mark.parametrize("cls_name, field, value", [
    ("HalfUNetConfig", "num_groups", 0),  # was ZeroDivisionError in check_groups
    ("HalfUNetConfig", "model_channels", 0),  # was a model of zero-width convs, built without a word
    ("HalfUNetConfig", "in_channels", 0),
    ("HalfUNetConfig", "num_res_blocks", 0),  # was a GroupNorm shape error at the first forward
    ("HalfUNetConfig", "head_hidden", -1),  # was "Trying to create tensor with negative dimension"
    ("ConvVAEConfig", "hidden", 0),
    ("ConvVAEConfig", "extra_input_dim", -1),  # was accepted and ignored
    ("FeatureExtractorConfig", "in_channels", 0),
    ("VQAutoencoderConfig", "ch", 0),
    ("VQAutoencoderConfig", "z_channels", 0),
    ("VQAutoencoderConfig", "num_res_blocks", 0),
    ("VQAutoencoderConfig", "num_groups", 0),  # was ZeroDivisionError
    ("VQAutoencoderConfig", "beta", -1.0),  # a negative commitment weight was accepted
    ("VQAutoencoderConfig", "codebook_weight", -1.0),
    ("VQAutoencoderConfig", "dropout", 1.5),  # was torch's dropout error when the model was built
])
def test_encoder_and_vq_config_bounds(cls_name, field, value):
    import diffrep.nn.encoders as E
    import diffrep.nn.vq as V

    cls = getattr(E, cls_name, None) or getattr(V, cls_name)
    with pytest.raises(ConfigError, match=f"'{field}': must be"):
        cls(**{field: value})


def _unet_kw(**kw):
    return dict(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1, 2),
                num_res_blocks=1, num_groups=4, attention_resolutions=(), **kw)


@pytest.mark.parametrize("kw, field", [
    # was accepted and ignored: the resolutions matter only for placement="explicit"
    (dict(skip_dropout=0.1, skip_dropout_resolutions=(4,)), "skip_dropout_resolutions"),
    # was accepted: explicit placement with no resolutions applied the dropout nowhere
    (dict(skip_dropout=0.1, skip_dropout_placement="explicit"), "skip_dropout_resolutions"),
    # was accepted and ignored: no cross-attention blocks to stack
    (dict(transformer_depth=3), "transformer_depth"),
    # was accepted; the first forward raised timestep_embedding's ValueError (or the embedding divided by 0)
    (dict(time_embed_freq_shift=4.0), "time_embed_freq_shift"),
])
def test_unet_config_refuses_ignored_or_impossible_fields(kw, field):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        UNetConfig(**_unet_kw(**kw))


def test_unet_config_explicit_skip_dropout_still_accepted():
    cfg = UNetConfig(**_unet_kw(skip_dropout=0.1, skip_dropout_placement="explicit", skip_dropout_resolutions=(4,)))
    assert cfg.skip_dropout_levels() == {4}
    assert UNetConfig(**_unet_kw(context_dim=6, transformer_depth=2)).transformer_depth == 2
    assert UNetConfig(**_unet_kw(time_embed_freq_shift=1.0)).time_embed_freq_shift == 1.0


def test_lpips_weight_file_problems_are_named(tmp_path):
    # Before: a corrupt .safetensors raised safetensors' own SafetensorError (not naming the file as
    # LPIPS weights), a non-tensor entry an AttributeError ('int' object has no attribute 'shape'), and
    # NaN weights loaded silently (a NaN perceptual loss at every step).
    import torch

    from diffrep.nn.lpips import LPIPS

    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        LPIPS.from_file(bad)
    state = LPIPS().state_dict()
    key = next(iter(state))
    torch.save({**state, key: 3}, tmp_path / "int.pt")
    with pytest.raises(ValueError, match="are not floating-point tensors"):
        LPIPS.from_file(tmp_path / "int.pt")
    torch.save({**state, key: torch.full_like(state[key], float("nan"))}, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="non-finite values"):
        LPIPS.from_file(tmp_path / "nan.pt")


def test_attention_layers_refuse_zero_heads():
    # Before: AttentionBlock(num_heads=0) raised ZeroDivisionError; SpatialTransformer with num_heads=0
    # built a zero-width projection and depth=0 no transformer block at all, both without a word.
    from diffrep.nn.layers import AttentionBlock, SpatialTransformer

    with pytest.raises(ValueError, match="AttentionBlock: num_heads must be an int >= 1, got 0"):
        AttentionBlock(32, num_heads=0)
    with pytest.raises(ValueError, match="SpatialTransformer: num_heads must be an int >= 1, got 0"):
        SpatialTransformer(32, 0, 8, 4)
    with pytest.raises(ValueError, match="SpatialTransformer: depth must be an int >= 1, got 0"):
        SpatialTransformer(32, 2, 8, 4, depth=0)
    assert len(SpatialTransformer(32, 2, 8, 4, depth=2).blocks) == 2


def test_gaussian_kl_argument_types():
    # Before: a list gave "'list' object has no attribute 'shape'", and an integer logvar tensor failed
    # inside exp() ("exp_vml_cpu not implemented for 'Long'").
    import torch

    from diffrep.nn.gaussian import gaussian_kl

    with pytest.raises(TypeError, match="gaussian_kl: mu must be a floating-point tensor"):
        gaussian_kl([0.0], torch.zeros(1))
    with pytest.raises(TypeError, match="gaussian_kl: logvar must be a floating-point tensor, got torch.int64"):
        gaussian_kl(torch.zeros(1), torch.zeros(1, dtype=torch.long))
    # KL(N(1, e^0) || N(0, 1)) = 1/2 per dimension
    assert gaussian_kl(torch.ones(2, 3), torch.zeros(2, 3), reduction="sum").tolist() == [1.5, 1.5]


@pytest.mark.parametrize("key, value", [
    ("layers_per_block", 2.7),  # was truncated to 2 by int()
    ("block_out_channels", [0, 64]),  # was ZeroDivisionError (c % 0)
    ("block_out_channels", ["abc", 64]),  # was a bare "invalid literal for int()"
    ("norm_num_groups", None),  # was "int() argument must be ... not 'NoneType'"
    ("sample_size", []),  # already refused ("only square images"); kept
    ("sample_size", True),  # was read as image_size 1
])
def test_diffusers_config_counts_are_read_exactly(key, value):
    from diffrep.nn.diffusers_unet import unet_config_from_diffusers

    cfg = {"_class_name": "UNet2DModel", "sample_size": 8, "block_out_channels": [32, 64],
           "down_block_types": ["DownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"],
           "norm_num_groups": 8, "layers_per_block": 1, "add_attention": False}
    assert unet_config_from_diffusers(cfg).channel_mult == (1, 2)
    with pytest.raises(ValueError, match=f"diffusers config {key}="):
        unet_config_from_diffusers({**cfg, key: value})


def test_vq_decode_checks_the_latent():
    # Before: a latent with the wrong channel count failed inside the codebook distance
    # ("mat1 and mat2 shapes cannot be multiplied (128x5 and 2x4)"); with quantize=False inside a conv.
    import torch

    from diffrep.nn.vq import VQAutoencoder, VQAutoencoderConfig

    vq = VQAutoencoder(VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_groups=4, n_embed=4, embed_dim=2))
    for kw in ({}, {"quantize": False}):
        with pytest.raises(ValueError, match=r"VQAutoencoder.decode: z must be a float latent \[B, embed_dim=2"):
            vq.decode(torch.randn(2, 5, 8, 8), **kw)
    with pytest.raises(ValueError, match="VQAutoencoder.quantize"):
        vq.quantize(torch.randn(2, 2, 8))
    z = vq.encode(torch.rand(1, 3, 16, 16) * 2 - 1)
    assert vq.decode(z).shape == (1, 3, 16, 16)
