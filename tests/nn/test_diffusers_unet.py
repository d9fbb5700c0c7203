"""Import of diffusers ``UNet2DModel`` folders (config.json + safetensors) into diffrep's U-Net.

The default tests write a small model in diffusers' format by hand (its tensor names, no diffusers
needed) and compare the imported U-Net with a functional forward written here from diffusers'
definition of UNet2DModel (DDPM's U-Net: Ho et al. 2020 App. B). The slow test builds the fixture
with diffusers itself when it is installed."""

import importlib
import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from diffrep.nn.diffusers_unet import load_diffusers_unet, unet_config_from_diffusers

BASE = dict(_class_name="UNet2DModel", sample_size=8, in_channels=3, out_channels=2, layers_per_block=1,
            block_out_channels=[8, 16], down_block_types=["DownBlock2D", "AttnDownBlock2D"],
            up_block_types=["AttnUpBlock2D", "UpBlock2D"], norm_num_groups=4, norm_eps=1e-5, attention_head_dim=8,
            flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, resnet_time_scale_shift="default",
            add_attention=True, attn_norm_num_groups=None, act_fn="silu", center_input_sample=False,
            time_embedding_type="positional", mid_block_scale_factor=1)
DDPM = dict(flip_sin_to_cos=False, freq_shift=1, downsample_padding=0, norm_eps=1e-6, attention_head_dim=None)
SCALE_SHIFT = dict(resnet_time_scale_shift="scale_shift", attn_norm_num_groups=4, layers_per_block=2)


def diffusers_state(cfg, seed=0):
    """Random tensors under the names (and shapes) a diffusers UNet2DModel with ``cfg`` saves."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def p(name, *shape):
        sd[name] = 0.3 * torch.randn(*shape, generator=g)

    def norm(name, c):
        sd[name + ".weight"] = 1 + 0.2 * torch.randn(c, generator=g)
        p(name + ".bias", c)

    def conv(name, cin, cout, k=3):
        p(name + ".weight", cout, cin, k, k)
        p(name + ".bias", cout)

    def lin(name, cin, cout):
        p(name + ".weight", cout, cin)
        p(name + ".bias", cout)

    chans, lpb = cfg["block_out_channels"], cfg["layers_per_block"]
    temb = 4 * chans[0]
    mult = 2 if cfg["resnet_time_scale_shift"] == "scale_shift" else 1

    def resnet(name, cin, cout):
        norm(name + ".norm1", cin)
        conv(name + ".conv1", cin, cout)
        lin(name + ".time_emb_proj", temb, mult * cout)
        norm(name + ".norm2", cout)
        conv(name + ".conv2", cout, cout)
        if cin != cout:
            conv(name + ".conv_shortcut", cin, cout, 1)

    def attention(name, c):
        norm(name + ".group_norm", c)
        for n in ("to_q", "to_k", "to_v", "to_out.0"):
            lin(f"{name}.{n}", c, c)

    conv("conv_in", cfg["in_channels"], chans[0])
    lin("time_embedding.linear_1", chans[0], temb)
    lin("time_embedding.linear_2", temb, temb)
    ch, skips = chans[0], [chans[0]]
    for level, (typ, c) in enumerate(zip(cfg["down_block_types"], chans)):
        for i in range(lpb):
            resnet(f"down_blocks.{level}.resnets.{i}", ch, c)
            ch = c
            if typ.startswith("Attn"):
                attention(f"down_blocks.{level}.attentions.{i}", c)
            skips.append(c)
        if level < len(chans) - 1:
            conv(f"down_blocks.{level}.downsamplers.0.conv", c, c)
            skips.append(c)
    resnet("mid_block.resnets.0", ch, ch)
    if cfg["add_attention"]:
        attention("mid_block.attentions.0", ch)
    resnet("mid_block.resnets.1", ch, ch)
    for j, (typ, c) in enumerate(zip(cfg["up_block_types"], chans[::-1])):
        for i in range(lpb + 1):
            resnet(f"up_blocks.{j}.resnets.{i}", ch + skips.pop(), c)
            ch = c
            if typ.startswith("Attn"):
                attention(f"up_blocks.{j}.attentions.{i}", c)
        if j < len(chans) - 1:
            conv(f"up_blocks.{j}.upsamplers.0.conv", c, c)
    norm("conv_norm_out", ch)
    conv("conv_out", ch, cfg["out_channels"])
    return sd


def reference_forward(sd, cfg, x, t):
    """UNet2DModel.forward(x, t).sample written out from diffusers' definition."""
    G, eps, lpb = cfg["norm_num_groups"], cfg["norm_eps"], cfg["layers_per_block"]
    chans = cfg["block_out_channels"]

    def gn(h, n):
        return F.group_norm(h, G, sd[n + ".weight"], sd[n + ".bias"], eps)

    def conv(h, n, stride=1, padding=1):
        return F.conv2d(h, sd[n + ".weight"], sd[n + ".bias"], stride=stride, padding=padding)

    def lin(h, n):
        return F.linear(h, sd[n + ".weight"], sd[n + ".bias"])

    half = chans[0] // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - cfg["freq_shift"]))
    arg = t.float()[:, None] * freqs[None]
    emb = torch.cat([arg.sin(), arg.cos()], -1)
    if cfg["flip_sin_to_cos"]:
        emb = torch.cat([emb[:, half:], emb[:, :half]], -1)
    temb = lin(F.silu(lin(emb, "time_embedding.linear_1")), "time_embedding.linear_2")

    def resnet(h, n):
        r = h
        h = conv(F.silu(gn(h, n + ".norm1")), n + ".conv1")
        tt = lin(F.silu(temb), n + ".time_emb_proj")[:, :, None, None]
        if cfg["resnet_time_scale_shift"] == "default":
            h = gn(h + tt, n + ".norm2")
        else:
            scale, shift = tt.chunk(2, 1)
            h = gn(h, n + ".norm2") * (1 + scale) + shift
        h = conv(F.silu(h), n + ".conv2")
        if n + ".conv_shortcut.weight" in sd:
            r = conv(r, n + ".conv_shortcut", padding=0)
        return r + h

    def attn(h, n):
        B, C, H, W = h.shape
        heads = C // cfg["attention_head_dim"] if cfg["attention_head_dim"] else 1
        d = C // heads
        u = gn(h, n + ".group_norm").reshape(B, C, H * W).transpose(1, 2)
        q, k, v = (lin(u, f"{n}.{m}").reshape(B, H * W, heads, d).transpose(1, 2) for m in ("to_q", "to_k", "to_v"))
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1)
        o = (w @ v).transpose(1, 2).reshape(B, H * W, C)
        return h + lin(o, n + ".to_out.0").transpose(1, 2).reshape(B, C, H, W)

    h = conv(x, "conv_in")
    skips = [h]
    for level, typ in enumerate(cfg["down_block_types"]):
        for i in range(lpb):
            h = resnet(h, f"down_blocks.{level}.resnets.{i}")
            if typ.startswith("Attn"):
                h = attn(h, f"down_blocks.{level}.attentions.{i}")
            skips.append(h)
        if level < len(chans) - 1:
            n = f"down_blocks.{level}.downsamplers.0.conv"
            h = conv(F.pad(h, (0, 1, 0, 1)), n, 2, 0) if cfg["downsample_padding"] == 0 else conv(h, n, 2, 1)
            skips.append(h)
    h = resnet(h, "mid_block.resnets.0")
    if cfg["add_attention"]:
        h = attn(h, "mid_block.attentions.0")
    h = resnet(h, "mid_block.resnets.1")
    for j, typ in enumerate(cfg["up_block_types"]):
        for i in range(lpb + 1):
            h = resnet(torch.cat([h, skips.pop()], 1), f"up_blocks.{j}.resnets.{i}")
            if typ.startswith("Attn"):
                h = attn(h, f"up_blocks.{j}.attentions.{i}")
        if j < len(chans) - 1:
            h = conv(F.interpolate(h, scale_factor=2.0, mode="nearest"), f"up_blocks.{j}.upsamplers.0.conv")
    return conv(F.silu(gn(h, "conv_norm_out")), "conv_out")


def write_folder(folder, cfg, sd):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "diffusion_pytorch_model.safetensors"))
    return folder


@pytest.mark.parametrize("variant", [{}, DDPM, SCALE_SHIFT, dict(add_attention=False)], ids=["adm", "ddpm", "scale_shift", "no_mid_attention"])
def test_imported_unet_reproduces_the_source_model(tmp_path, variant):
    cfg = {**BASE, **variant}
    sd = diffusers_state(cfg)
    model = load_diffusers_unet(write_folder(tmp_path / "m", cfg, sd))
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 17, 999])
    with torch.no_grad():
        want = reference_forward(sd, cfg, x, t)
        got = model(x, t)
    assert got.shape == want.shape == (3, 2, 8, 8)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (got - want).abs().max()
    assert want.abs().mean() > 0.1  # a non-trivial output (random weights everywhere, no zero-init)


def test_config_mapping_and_pipeline_folder_and_old_attention_names(tmp_path):
    cfg = {**BASE, **DDPM}
    c = unet_config_from_diffusers(cfg)
    assert (c.image_size, c.model_channels, c.channel_mult, c.num_res_blocks) == (8, 8, (1, 2), 1)
    assert c.attention_resolutions == (4,) and c.num_head_channels == -1 and c.num_heads == 1
    assert (c.norm_eps, c.time_embed_flip_sin_to_cos, c.time_embed_freq_shift, c.downsample_padding) == (1e-6, False, 1.0, 0)
    sd = diffusers_state(cfg)
    old = {k.replace("to_q", "query").replace("to_k", "key").replace("to_v", "value").replace("to_out.0", "proj_attn"): v
           for k, v in sd.items()}
    model = load_diffusers_unet(write_folder(tmp_path / "pipe" / "unet", cfg, old).parent)
    x, t = torch.randn(1, 3, 8, 8), torch.tensor([5])
    with torch.no_grad():
        assert torch.allclose(model(x, t), reference_forward(sd, cfg, x, t), atol=1e-5)


def test_saved_as_a_diffrep_model_folder(tmp_path):
    from diffrep.nn import load_pretrained

    cfg = dict(BASE)
    model = load_diffusers_unet(write_folder(tmp_path / "d", cfg, diffusers_state(cfg)))
    model.save_pretrained(tmp_path / "diffrep")
    again = load_pretrained(tmp_path / "diffrep")
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([1, 2])
    with torch.no_grad():
        assert torch.equal(model(x, t), again(x, t))


@pytest.mark.parametrize("change,match", [
    (dict(down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"]), "CrossAttnDownBlock2D"),
    (dict(up_block_types=["UpBlock2D", "UpBlock2D"]), "same levels"),
    (dict(center_input_sample=True), "center_input_sample"),
    (dict(resnet_time_scale_shift="scale_shift"), "without a GroupNorm"),
    (dict(block_out_channels=[8, 12]), "multiple of the first"),
    (dict(attention_head_dim=6), "does not divide"),
    (dict(_class_name="UNet2DConditionModel"), "UNet2DModel"),
])
def test_unsupported_configs_are_refused_naming_the_field(change, match):
    with pytest.raises(ValueError, match=match):
        unet_config_from_diffusers({**BASE, **change})


def test_bad_weights_are_named(tmp_path):
    cfg = dict(BASE)
    sd = diffusers_state(cfg)
    missing = dict(sd)
    missing.pop("mid_block.resnets.1.conv2.bias")
    with pytest.raises(ValueError, match="lack 'mid_block.resnets.1.conv2.bias'"):
        load_diffusers_unet(write_folder(tmp_path / "a", cfg, missing))
    with pytest.raises(ValueError, match="does not explain.*extra"):
        load_diffusers_unet(write_folder(tmp_path / "b", cfg, {**sd, "extra.weight": torch.zeros(1)}))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "c" / "diffusion_pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="never unpickles"):
        load_diffusers_unet(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_diffusers_unet(tmp_path)
    f = write_folder(tmp_path / "e", cfg, sd) / "diffusion_pytorch_model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_diffusers_unet(tmp_path / "e")


@pytest.mark.slow
def test_against_diffusers_itself(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    importlib.import_module("safetensors.torch")  # diffusers' save_pretrained needs the submodule imported

    for variant in ({}, DDPM, SCALE_SHIFT):
        cfg = {k: v for k, v in {**BASE, **variant}.items() if not k.startswith("_")}
        torch.manual_seed(0)
        src = diffusers.UNet2DModel(**cfg)
        with torch.no_grad():
            for prm in src.parameters():
                prm.add_(0.1 * torch.randn_like(prm))
        src.save_pretrained(tmp_path / "m", safe_serialization=True)
        model = load_diffusers_unet(tmp_path / "m")
        x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 700])
        with torch.no_grad():
            assert torch.allclose(model(x, t), src(x, t).sample, atol=1e-5)


def test_load_pretrained_and_the_model_verbs_read_a_diffusers_folder(tmp_path, capsys):
    from diffrep.cli._common import resolve_weights
    from diffrep.nn import load_pretrained

    cfg = {**BASE, "_diffusers_version": "0.31.0"}
    sd = diffusers_state(cfg)
    folder = write_folder(tmp_path / "d", cfg, sd)
    model = load_pretrained(folder)
    x, t = torch.randn(1, 3, 8, 8), torch.tensor([9])
    with torch.no_grad():
        assert torch.allclose(model(x, t), reference_forward(sd, cfg, x, t), atol=1e-5)
    assert resolve_weights(folder, "auto") == "model" and "no EMA weights" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="diffusers folder"):
        load_pretrained(folder, weights="ema")
