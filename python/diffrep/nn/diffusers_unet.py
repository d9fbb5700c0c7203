"""Import a diffusion U-Net saved by diffusers (``UNet2DModel``: ``config.json`` + safetensors in a local
folder) into diffrep's :class:`~diffrep.nn.unet.UNet` (docs/architecture.md#pretrained-u-nets-from-diffusers).

Both networks are the DDPM / ADM U-Net (Ho et al. 2020 App. B; Dhariwal & Nichol 2021): the same
residual blocks, attention, down- and up-sampling and skip structure, so a checkpoint maps tensor for
tensor and the imported model reproduces the source model's outputs (tests/nn/test_diffusers_unet.py
checks this on a model written here in diffusers' format). The config fields that differ between the
published checkpoints map to :class:`~diffrep.nn.unet.UNetConfig` fields:

================================  ===========================================
diffusers ``config.json``          diffrep ``UNetConfig``
================================  ===========================================
``sample_size``                    ``image_size``
``block_out_channels``             ``model_channels`` (the first) x ``channel_mult``
``layers_per_block``               ``num_res_blocks``
``Attn*Block2D`` at level l        ``attention_resolutions`` (image_size / 2^l)
``add_attention``                  ``middle_attention``
``attention_head_dim`` (None: 1    ``num_head_channels`` (-1 and ``num_heads=1``)
head)
``resnet_time_scale_shift``        ``use_scale_shift_norm`` (``"scale_shift"``)
``norm_num_groups``, ``norm_eps``  ``num_groups``, ``norm_eps``
``flip_sin_to_cos``, ``freq_shift````time_embed_flip_sin_to_cos``, ``time_embed_freq_shift``
``downsample_padding``             ``downsample_padding``
================================  ===========================================

Anything else (class embeddings, Fourier time embeddings, ``center_input_sample``, skip or resnet
down/up-sampling blocks, output scale factors other than 1) is refused with the field named. The
weights file is ``diffusion_pytorch_model.safetensors`` (pickled ``.bin`` files are never loaded);
a pipeline folder with a ``unet/`` subfolder works too, and :func:`diffrep.nn.load_pretrained` loads such a
folder directly (``FOREIGN_LOADERS``). Attention weights saved under the older names
(``query``/``key``/``value``/``proj_attn``) are read as well. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .unet import UNet, UNetConfig

__all__ = ["DIFFUSERS_WEIGHTS", "unet_config_from_diffusers", "unet_state_from_diffusers", "load_diffusers_unet"]

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
_DOWN = ("DownBlock2D", "AttnDownBlock2D")
_UP = ("UpBlock2D", "AttnUpBlock2D")
_OLD_ATTN = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _refuse(field: str, value, why: str) -> ValueError:
    return ValueError(f"diffusers config {field}={value!r}: {why}; diffrep's U-Net cannot reproduce this model")


def _count(field: str, value, minimum: int = 1) -> int:
    """A diffusers count/width read exactly: int() truncated 2.7 to 2, read "abc" with a bare ValueError and
    let a width of 0 reach a modulo by zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _refuse(field, value, f"must be an int >= {minimum}")
    return value


def unet_config_from_diffusers(cfg: dict) -> UNetConfig:
    """The :class:`UNetConfig` of a diffusers ``UNet2DModel`` config (the dict of its ``config.json``)."""
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg must be the dict of a diffusers config.json, got {type(cfg).__name__}")
    name = cfg.get("_class_name", "UNet2DModel")
    if name != "UNet2DModel":
        raise _refuse("_class_name", name, "only UNet2DModel is supported (not conditional or 3-D U-Nets)")
    checks = {"time_embedding_type": "positional", "center_input_sample": False, "class_embed_type": None,
              "num_class_embeds": None, "act_fn": "silu", "mid_block_scale_factor": 1, "downsample_type": "conv",
              "upsample_type": "conv"}
    for key, want in checks.items():
        if key in cfg and cfg[key] != want:
            raise _refuse(key, cfg[key], f"only {want!r} is supported")
    downs = tuple(cfg.get("down_block_types", ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D")))
    ups = tuple(cfg.get("up_block_types", ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D")))
    chans = cfg.get("block_out_channels", (224, 448, 672, 896))
    if not isinstance(chans, (list, tuple)) or not chans:
        raise _refuse("block_out_channels", chans, "must be a non-empty list of ints")
    chans = tuple(_count("block_out_channels", c) for c in chans)
    for t in downs:
        if t not in _DOWN:
            raise _refuse("down_block_types", downs, f"block {t!r} is not one of {_DOWN}")
    for t in ups:
        if t not in _UP:
            raise _refuse("up_block_types", ups, f"block {t!r} is not one of {_UP}")
    if not (len(downs) == len(ups) == len(chans)):
        raise _refuse("down_block_types", downs, f"{len(downs)} down blocks, {len(ups)} up blocks and "
                      f"{len(chans)} block_out_channels must agree")
    down_attn = [t.startswith("Attn") for t in downs]
    up_attn = [t.startswith("Attn") for t in ups][::-1]
    if down_attn != up_attn:
        raise _refuse("up_block_types", ups, "attention must sit at the same levels going down and up "
                      f"(down: {downs})")
    mc = chans[0]
    if any(c % mc for c in chans):
        raise _refuse("block_out_channels", chans, f"every width must be a multiple of the first ({mc})")
    size = cfg.get("sample_size", 32)
    if isinstance(size, (list, tuple)):
        if not size or len({repr(v) for v in size}) != 1:
            raise _refuse("sample_size", size, "only square images are supported")
        size = size[0]
    size = _count("sample_size", size)
    groups = _count("norm_num_groups", cfg.get("norm_num_groups", 32))
    attn_groups = cfg.get("attn_norm_num_groups")
    if attn_groups is not None and _count("attn_norm_num_groups", attn_groups) != groups:
        raise _refuse("attn_norm_num_groups", attn_groups, f"must equal norm_num_groups={groups}")
    shift = cfg.get("resnet_time_scale_shift", "default")
    if shift not in ("default", "scale_shift"):
        raise _refuse("resnet_time_scale_shift", shift, "only 'default' and 'scale_shift' are supported")
    if shift != "default" and cfg.get("add_attention", True) and attn_groups is None:
        raise _refuse("resnet_time_scale_shift", shift, "with attn_norm_num_groups unset, diffusers builds the middle "
                      "attention without a GroupNorm (diffrep's attention always has one)")
    head_dim = cfg.get("attention_head_dim", 8)
    attended = [c for c, a in zip(chans, down_attn) if a] + ([chans[-1]] if cfg.get("add_attention", True) else [])
    if head_dim is not None:
        head_dim = _count("attention_head_dim", head_dim)
        bad = [c for c in attended if c % head_dim]
        if bad:
            raise _refuse("attention_head_dim", head_dim, f"does not divide the attention widths {bad}")
    padding = _count("downsample_padding", cfg.get("downsample_padding", 1), minimum=0)
    if padding not in (0, 1):
        raise _refuse("downsample_padding", padding, "only 0 and 1 are supported")
    return UNetConfig(
        image_size=size, in_channels=_count("in_channels", cfg.get("in_channels", 3)),
        out_channels=_count("out_channels", cfg.get("out_channels", 3)),
        model_channels=mc, channel_mult=tuple(c // mc for c in chans),
        num_res_blocks=_count("layers_per_block", cfg.get("layers_per_block", 2)),
        attention_resolutions=tuple(size // 2**i for i, a in enumerate(down_attn) if a),
        middle_attention=bool(cfg.get("add_attention", True)),
        num_heads=1, num_head_channels=-1 if head_dim is None else int(head_dim),
        dropout=float(cfg.get("dropout", 0.0)), use_scale_shift_norm=shift == "scale_shift",
        resblock_updown=False, conv_resample=True, num_groups=groups, time_embed_dim=4 * mc,
        norm_eps=float(cfg.get("norm_eps", 1e-5)), time_embed_flip_sin_to_cos=bool(cfg.get("flip_sin_to_cos", True)),
        time_embed_freq_shift=float(cfg.get("freq_shift", 0)), downsample_padding=padding)


def _rename_old_attention(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if "attentions" in parts and len(parts) >= 2 and parts[-2] in _OLD_ATTN:
            k = ".".join(parts[:-2] + [_OLD_ATTN[parts[-2]], parts[-1]])
        out[k] = v
    return out


def unet_state_from_diffusers(sd: dict, config: UNetConfig) -> dict:
    """diffusers ``UNet2DModel`` state dict -> the state dict of ``UNet(config)``; every source tensor must be
    used and every target tensor filled (a ValueError lists the ones that are not)."""
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise TypeError(f"unet_state_from_diffusers: sd must be a state dict (str -> tensor), got {type(sd).__name__}")
    if not isinstance(config, UNetConfig):
        raise TypeError(f"unet_state_from_diffusers: config must be a UNetConfig, got {type(config).__name__}")
    sd = _rename_old_attention(dict(sd))
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}

    def take(src: str) -> torch.Tensor:
        if src not in sd:
            raise KeyError(src)
        used.add(src)
        return sd[src]

    def copy(src: str, dst: str, suffixes=("weight", "bias")) -> None:
        for s in suffixes:
            out[f"{dst}.{s}"] = take(f"{src}.{s}")

    def resnet(src: str, dst: str, has_skip: bool) -> None:
        for a, b in (("norm1", "in_norm"), ("conv1", "in_conv"), ("time_emb_proj", "emb_layers.1"),
                     ("norm2", "out_norm"), ("conv2", "out_conv")):
            copy(f"{src}.{a}", f"{dst}.{b}")
        if has_skip:
            copy(f"{src}.conv_shortcut", f"{dst}.skip")

    def attention(src: str, dst: str) -> None:
        copy(f"{src}.group_norm", f"{dst}.norm")
        w = torch.cat([take(f"{src}.to_{n}.weight") for n in "qkv"])
        b = torch.cat([take(f"{src}.to_{n}.bias") for n in "qkv"])
        out[f"{dst}.qkv.weight"], out[f"{dst}.qkv.bias"] = w[..., None], b
        out[f"{dst}.proj_out.weight"] = take(f"{src}.to_out.0.weight")[..., None]
        out[f"{dst}.proj_out.bias"] = take(f"{src}.to_out.0.bias")

    cfg = config
    mc, nrb = cfg.model_channels, cfg.num_res_blocks
    try:
        copy("time_embedding.linear_1", "time_embed.0")
        copy("time_embedding.linear_2", "time_embed.2")
        copy("conv_in", "input_blocks.0.0")
        idx, ch, r = 1, mc, cfg.image_size
        skips = [mc]
        for level, mult in enumerate(cfg.channel_mult):
            for i in range(nrb):
                resnet(f"down_blocks.{level}.resnets.{i}", f"input_blocks.{idx}.0", ch != mult * mc)
                ch = mult * mc
                if r in cfg.attention_resolutions:
                    attention(f"down_blocks.{level}.attentions.{i}", f"input_blocks.{idx}.1")
                skips.append(ch)
                idx += 1
            if level != len(cfg.channel_mult) - 1:
                copy(f"down_blocks.{level}.downsamplers.0.conv", f"input_blocks.{idx}.0.op")
                skips.append(ch)
                idx += 1
                r //= 2
        resnet("mid_block.resnets.0", "middle_block.0", False)
        if cfg.middle_attention:
            attention("mid_block.attentions.0", "middle_block.1")
        resnet("mid_block.resnets.1", f"middle_block.{2 if cfg.middle_attention else 1}", False)
        for j, (level, mult) in enumerate(list(enumerate(cfg.channel_mult))[::-1]):
            for i in range(nrb + 1):
                dst = f"output_blocks.{j * (nrb + 1) + i}"
                sc = skips.pop()
                resnet(f"up_blocks.{j}.resnets.{i}", f"{dst}.0", ch + sc != mult * mc)
                ch = mult * mc
                attn = r in cfg.attention_resolutions
                if attn:
                    attention(f"up_blocks.{j}.attentions.{i}", f"{dst}.1")
                if level and i == nrb:
                    copy(f"up_blocks.{j}.upsamplers.0.conv", f"{dst}.{2 if attn else 1}.conv")
            if level:
                r *= 2
        copy("conv_norm_out", "out.0")
        copy("conv_out", "out.2")
    except KeyError as exc:
        raise ValueError(f"diffusers weights lack {exc.args[0]!r}, which a UNet2DModel with this config.json has "
                         "(a different architecture, or a truncated file?)") from None
    left = sorted(set(sd) - used)
    if left:
        raise ValueError(f"diffusers weights hold {len(left)} tensors the config does not explain, e.g. {left[:4]}")
    return out


def _model_folder(folder: Path) -> Path:
    if (folder / "config.json").is_file():
        return folder
    if (folder / "unet" / "config.json").is_file():  # a pipeline folder
        return folder / "unet"
    raise FileNotFoundError(f"{folder}: no config.json (nor unet/config.json of a diffusers pipeline folder)")


def load_diffusers_unet(folder: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> UNet:
    """A :class:`UNet` with the weights of the diffusers ``UNet2DModel`` saved in ``folder``.

    ``folder`` holds ``config.json`` and ``diffusion_pytorch_model.safetensors`` (or is a pipeline folder
    with them under ``unet/``). The returned model computes ``model(x, t)`` = the source model's
    ``model(x, t).sample``; save it with ``save_pretrained`` to use it as a diffrep model folder (SAMI's
    frozen denoiser reads such folders)."""
    from safetensors.torch import load_file

    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path (str or os.PathLike), got {type(folder).__name__}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    folder = _model_folder(Path(folder))
    try:
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{folder / 'config.json'} is not valid JSON: {exc}") from None
    config = unet_config_from_diffusers(raw)
    weights = folder / DIFFUSERS_WEIGHTS
    if not weights.is_file():
        pickled = folder / "diffusion_pytorch_model.bin"
        hint = (" (a pickled .bin file is there; convert it to safetensors with the library that wrote it: "
                "diffrep never unpickles weights)") if pickled.is_file() else ""
        raise FileNotFoundError(f"{folder}: no {DIFFUSERS_WEIGHTS}{hint}")
    try:
        sd = load_file(str(weights), device=str(map_location))
    except Exception as exc:  # safetensors raises its own error types for truncated / corrupted files
        raise ValueError(f"{weights}: cannot be read as safetensors (truncated or corrupted?): {exc}") from None
    model = UNet(config)
    state = unet_state_from_diffusers(sd, config)
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    if missing:
        raise ValueError(f"the imported weights leave {len(missing)} tensors of diffrep's U-Net unset, e.g. {missing[:4]}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(want[k].shape):
            raise ValueError(f"diffusers tensor for {k} has shape {tuple(v.shape)}, diffrep's U-Net expects "
                             f"{tuple(want[k].shape)}")
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    return model.to(map_location).eval()
