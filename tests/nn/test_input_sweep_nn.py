"""Input sweep of diffrep.nn (tests/bad_inputs.py): each public layer, model verb, config and loader
called once validly with tiny sizes, then with one argument at a time replaced by a bad value. A bad
value must give a ValueError or TypeError (ConfigError is one) naming the argument, never a
torch-internal error, a ZeroDivisionError or a silently wrong output."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from bad_inputs import Case, sweep_tests

from diffrep.nn import encoders as E
from diffrep.nn import fsq as Q
from diffrep.nn import layers as L
from diffrep.nn import unet as U
from diffrep.nn import vq as V
from diffrep.nn.gaussian import gaussian_kl
from diffrep.nn.diffusers_unet import unet_config_from_diffusers
from diffrep.nn.images import check_images
from diffrep.nn.lpips import resolve_lpips_weights
from diffrep.nn.pretrained import load_pretrained, model_class


def _x(b=2, c=3, s=8, seed=0):
    return torch.randn(b, c, s, s, generator=torch.Generator().manual_seed(seed))


def _finite(out):
    outs = out if isinstance(out, (tuple, list)) else out.values() if isinstance(out, dict) else (out,)
    for o in outs:
        if isinstance(o, torch.Tensor) and o.is_floating_point():
            assert bool(torch.isfinite(o).all())


UNET_KW = dict(image_size=8, in_channels=3, out_channels=3, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
               attention_resolutions=(4,), num_groups=4)


def _unet(**kw):
    return U.UNet(U.UNetConfig(**{**UNET_KW, **kw})).eval()


def _unet_call(verb):
    def make():
        net = _unet(latent_dim=3)
        return getattr(net, verb), dict(x=_x(), t=torch.tensor([1, 5]), z=torch.randn(2, 3))
    return make


def _vq():
    return V.VQAutoencoder(V.VQAutoencoderConfig(image_size=8, ch=8, ch_mult=(1, 2), num_res_blocks=1, num_groups=4,
                                                 n_embed=4, embed_dim=2, z_channels=2))


def _fsq_verb(verb, arg, value):
    def make():
        return getattr(Q.FSQ([3, 4]), verb), {arg: value()}
    return make


# Forward passes and elementwise tensor maths propagate NaN/inf as torch does (no scan: a host
# synchronisation per layer; the models' losses scan their batches, docs/architecture.md#inputs) and
# take any batch size of their one batched input.
NAN = ("*:nan", "*:inf")
FORWARD = NAN + ("x:batch-1",)
ANY_SHAPE = ("*:ndim+1", "*:ndim-1", "*:empty", "*:batch-1")

# integer images stay refused; t may be an integer or float timestep tensor (documented)
CASES = [
    Case("gaussian_kl", lambda: (gaussian_kl, dict(mu=torch.randn(2, 3), logvar=torch.randn(2, 3), reduction="sum")),
         accepted=NAN),
    Case("timestep_embedding", lambda: (L.timestep_embedding, dict(t=torch.tensor([1.0, 5.0]), dim=8,
                                                                   max_period=10000.0, freq_shift=0.0)),
         accepted=NAN + ("t:int_dtype", "t:empty", "t:batch-1")),
    # emb_dim=0 is an unconditioned block (documented)
    Case("ResBlock", lambda: (L.ResBlock, dict(in_channels=8, out_channels=8, emb_dim=4, num_groups=4, dropout=0.0)),
         accepted=("emb_dim:zero",)),
    Case("ResBlock.forward", lambda: (L.ResBlock(8, 8, 4, num_groups=4, latent_dim=3).forward,
                                      dict(x=_x(c=8), emb=torch.randn(2, 4), z=torch.randn(2, 3))),
         accepted=NAN),
    Case("AttentionBlock", lambda: (L.AttentionBlock, dict(channels=8, num_heads=2, num_groups=4))),
    Case("AttentionBlock.forward", lambda: (L.AttentionBlock(8, 2, num_groups=4).forward, dict(x=_x(c=8))),
         accepted=FORWARD),
    Case("SpatialTransformer", lambda: (L.SpatialTransformer, dict(channels=8, num_heads=2, dim_head=4, context_dim=5,
                                                                   depth=1, num_groups=4))),
    Case("SpatialTransformer.forward", lambda: (L.SpatialTransformer(8, 2, 4, 5, num_groups=4).forward,
                                                dict(x=_x(c=8), context=torch.randn(2, 3, 5))),
         accepted=NAN),
    Case("GroupNorm", lambda: (L.GroupNorm, dict(num_groups=2, num_channels=4))),
    Case("Downsample", lambda: (L.Downsample, dict(channels=4, out_channels=4)), skip=("out_channels:None",)),
    Case("Upsample", lambda: (L.Upsample, dict(channels=4, out_channels=4)), skip=("out_channels:None",)),
    Case("make_act", lambda: (L.make_act, dict(name="silu"))),
    Case("UNetConfig", lambda: (U.UNetConfig, dict(UNET_KW))),
    Case("UNet.forward", _unet_call("forward"), accepted=("t:float_dtype", "*:nan", "*:inf")),
    Case("UNet.forward_down", _unet_call("forward_down"), accepted=("t:float_dtype", "*:nan", "*:inf")),
    Case("SkipDropout", lambda: (U.SkipDropout, dict(rate=0.1))),
    Case("unet_preset", lambda: (U.unet_preset, dict(name="ddpm-cifar10"))),
    Case("HalfUNetConfig", lambda: (E.HalfUNetConfig, dict(image_size=8, in_channels=3, model_channels=8,
                                                           channel_mult=(1, 2), num_res_blocks=1, latent_dim=4,
                                                           num_groups=4))),
    Case("HalfUNet.forward", lambda: (E.HalfUNet(E.HalfUNetConfig(image_size=8, model_channels=8, channel_mult=(1, 2),
                                                                  num_res_blocks=1, latent_dim=4, num_groups=4)).forward,
                                      dict(x=_x())), accepted=FORWARD),
    Case("ConvVAEConfig", lambda: (E.ConvVAEConfig, dict(image_size=32, in_channels=1, latent_dim=3, hidden=8))),
    Case("ConvEncoder.forward", lambda: (E.ConvEncoder(E.ConvVAEConfig(image_size=32, in_channels=1, latent_dim=3,
                                                                       hidden=8)).forward, dict(x=_x(c=1, s=32))),
         accepted=FORWARD),
    Case("ConvDecoder.forward", lambda: (E.ConvDecoder(E.ConvVAEConfig(image_size=32, in_channels=1, latent_dim=3,
                                                                       hidden=8)).forward, dict(z=torch.randn(2, 3))),
         accepted=NAN + ("z:batch-1",)),
    Case("FeatureExtractorConfig", lambda: (E.FeatureExtractorConfig, dict(image_size=64, in_channels=1, num_units=2))),
    Case("PerUnitMLP", lambda: (E.PerUnitMLP, dict(num_units=2, widths=(1, 4), act="relu", final_act=True))),
    Case("PerUnitMLP.forward", lambda: (E.PerUnitMLP(2, (1, 4)).forward, dict(s=torch.randn(5, 2))),
         accepted=NAN + ("s:batch-1",)),
    Case("VQAutoencoderConfig", lambda: (V.VQAutoencoderConfig, dict(image_size=8, ch=8, ch_mult=(1, 2), num_res_blocks=1,
                                                                     num_groups=4, n_embed=4, embed_dim=2))),
    # images in [-1, 1], NaN refused, as every model's (the module call, which the loss uses, scans nothing)
    Case("VQAutoencoder.encode", lambda: (_vq().encode, dict(x=_x().clamp(-1, 1))), accepted=("x:batch-1",)),
    Case("VQAutoencoder.reconstruct", lambda: (_vq().reconstruct, dict(x=_x().clamp(-1, 1))), accepted=("x:batch-1",)),
    Case("VQAutoencoder.decode", lambda: (_vq().decode, dict(z=torch.randn(2, 2, 4, 4), quantize=True)),
         accepted=NAN + ("z:batch-1",)),
    # the loss scans its batch (NaN refused); step=None means "past disc_start" (documented)
    # ... and its images must lie in [-1, 1] (docs/architecture.md#inputs)
    Case("VQAutoencoder.loss", lambda: (_vq().loss, dict(batch=_x().clamp(-1, 1), step=0)), check=_finite,
         skip=("step:None",), accepted=("batch:batch-1",)),
    Case("VectorQuantizer", lambda: (V.VectorQuantizer, dict(n_embed=4, embed_dim=2, beta=0.25))),
    Case("VectorQuantizer.forward", lambda: (V.VectorQuantizer(4, 2).forward, dict(z=torch.randn(2, 2, 3, 3))),
         accepted=NAN + ("z:batch-1",)),
    Case("PatchDiscriminator", lambda: (V.PatchDiscriminator, dict(in_channels=3, ch=4, n_layers=1))),
    Case("hinge_d_loss", lambda: (V.hinge_d_loss, dict(logits_real=torch.randn(2, 1, 3, 3),
                                                       logits_fake=torch.randn(2, 1, 3, 3))),
         accepted=NAN + ("*:ndim+1", "*:ndim-1", "*:batch-1")),
    # FSQ works on one axis of any tensor (leading axes free; dim any axis), forward propagates NaN
    Case("FSQ", lambda: (Q.FSQ, dict(levels=[3, 4], eps=1e-3, shift="tan", dim=-1)), accepted=("dim:zero",)),
    Case("FSQ.forward", _fsq_verb("forward", "z", lambda: torch.randn(5, 2)),
         accepted=NAN + ANY_SHAPE),
    Case("FSQ.codes_to_indices", _fsq_verb("codes_to_indices", "codes", lambda: torch.tensor([[0.0, 0.5], [1.0, -1.0]])),
         accepted=ANY_SHAPE),
    Case("FSQ.indices_to_codes", _fsq_verb("indices_to_codes", "indices", lambda: torch.tensor([0, 5, 11])),
         accepted=ANY_SHAPE),
    Case("fsq_bound", lambda: (Q.fsq_bound, dict(z=torch.randn(4, 2), levels=[3, 4], eps=1e-3, shift="tan")),
         accepted=NAN + ANY_SHAPE),
    # channels/size None: no requirement (the defaults)
    Case("check_images", lambda: (check_images, dict(x=_x(), channels=3, size=8, multiple_of=2)),
         skip=("channels:None", "size:None"), accepted=("x:batch-1",)),
]



def _saved_unet():
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="diffrep-sweep-", dir=_TMP.name))
    _unet().save_pretrained(d)
    return d


_TMP = tempfile.TemporaryDirectory(prefix="diffrep-sweep-nn-")  # removed when the session ends


def _adaptive_weight():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3))
    return V.adaptive_weight, dict(rec_loss=(w ** 2).sum(), g_loss=w.sum(), last_layer=w, max_weight=1e4)


def _lpips():
    from diffrep.nn.lpips import LPIPS

    return LPIPS().forward, dict(x=torch.rand(1, 3, 16, 16) * 2 - 1, y=torch.rand(1, 3, 16, 16) * 2 - 1)


# a directory that does not exist is a FileNotFoundError naming it
CASES += [
    Case("load_pretrained", lambda: (load_pretrained, dict(directory=_saved_unet())), errors=(FileNotFoundError,),
         names={"directory": ("x",)}),
    Case("UNet.from_pretrained", lambda: (U.UNet.from_pretrained, dict(directory=_saved_unet(), strict=True,
                                                                       weights="model")),
         errors=(FileNotFoundError,), names={"directory": ("x",)}),
    # ema_state=None writes no EMA file (the default); any str is a path
    Case("UNet.save_pretrained", lambda: (_unet().save_pretrained, dict(directory=Path(_TMP.name) / "save",
                                                                        ema_state=_unet().state_dict())),
         skip=("ema_state:None", "directory:str")),
    Case("model_class", lambda: (model_class, dict(name="UNet"))),
    Case("gaussian_head_output", lambda: (E.gaussian_head_output, dict(mean=torch.randn(2, 3), raw=torch.randn(2, 3),
                                                                       variance_head="logvar")),
         accepted=NAN),
    Case("dlib_stride2_conv", lambda: (E.dlib_stride2_conv, dict(cin=3, cout=4, kernel=4))),
    Case("check_conv_kernels", lambda: (E.check_conv_kernels, dict(kernels=(4, 4, 2, 2))),
         names={"kernels": ("conv_kernels",)}),
    Case("check_levels", lambda: (L.check_levels, dict(image_size=8, channel_mult=(1, 2), attention_resolutions=(4,)))),
    Case("FeatureExtractor.forward", lambda: (E.FeatureExtractor(E.FeatureExtractorConfig(
        image_size=64, in_channels=1, num_units=2)).forward, dict(x=_x(b=1, c=1, s=64))), accepted=FORWARD),
    Case("adaptive_weight", _adaptive_weight, accepted=NAN + ("*:ndim+1",)),  # a [1] loss is a scalar
    Case("LPIPS.forward", _lpips, accepted=NAN),
    Case("unet_config_from_diffusers", lambda: (unet_config_from_diffusers, dict(cfg=dict(
        _class_name="UNet2DModel", sample_size=8, block_out_channels=[8, 16], down_block_types=["DownBlock2D"] * 2,
        up_block_types=["UpBlock2D"] * 2, norm_num_groups=4, layers_per_block=1, add_attention=False)))),
    # path=None reads $DIFFREP_LPIPS_WEIGHTS (documented); a missing file is a FileNotFoundError naming it
    Case("resolve_lpips_weights", lambda: (resolve_lpips_weights, dict(path=_weight_file())), skip=("path:None",),
         errors=(FileNotFoundError,), names={"path": ("x", "bogus")}),
]


def _weight_file():
    p = Path(_TMP.name) / "lpips.safetensors"
    p.touch()
    return p



test_valid_call, test_bad_input = sweep_tests(CASES)
